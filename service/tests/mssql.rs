//! The SQL Server engine. Without a server (none runs on these machines): every statement
//! the engine sends, for a table holding every SQL Server type, parses as T-SQL with
//! sqlparser's MsSqlDialect and matches its golden file byte for byte. With a server
//! (DRIFTWATCH_TEST_MSSQL_URL, e.g. the container of deploy/compose.yaml): the core
//! property, random tables and mutations reported exactly in both strategies.

mod common;

use std::fmt::Write;

use common::*;
use driftwatch::engine::mssql::{
    choose_key, columns_statement, fraction_digits, keys_statement, logical_type, spell_type,
    ServerInfo, Statement, Statements,
};
use driftwatch::engine::{DigestSpec, KeyRange, QueryColumn, TableQuery, TableRef};
use driftwatch::value::Value;

/// (name, system type, max_length, precision, scale) as sys.columns gives them.
const EVERY_TYPE: &[(&str, &str, i16, u8, u8)] = &[
    ("OrderID", "int", 4, 10, 0),
    ("Code", "nvarchar", 40, 0, 0),
    ("Flag", "bit", 1, 1, 0),
    ("Tiny", "tinyint", 1, 3, 0),
    ("Small", "smallint", 2, 5, 0),
    ("Qty", "bigint", 8, 19, 0),
    ("Price", "decimal", 17, 38, 10),
    ("Amount", "numeric", 9, 12, 2),
    ("Cost", "money", 8, 19, 4),
    ("Fee", "smallmoney", 4, 10, 4),
    ("Weight", "real", 4, 24, 0),
    ("Ratio", "float", 8, 53, 0),
    ("Grade", "char", 10, 0, 0),
    ("Label", "varchar", 50, 0, 0),
    ("Notes", "varchar", -1, 0, 0),
    ("Initials", "nchar", 20, 0, 0),
    ("Name", "nvarchar", 100, 0, 0),
    ("Story", "nvarchar", -1, 0, 0),
    ("Legacy", "text", 16, 0, 0),
    ("LegacyN", "ntext", 16, 0, 0),
    ("Hash", "binary", 16, 0, 0),
    ("Token", "varbinary", 100, 0, 0),
    ("Blob", "varbinary", -1, 0, 0),
    ("Picture", "image", 16, 0, 0),
    ("Day", "date", 3, 10, 0),
    ("At", "time", 5, 16, 7),
    ("AtSecond", "time", 3, 8, 0),
    ("Created", "datetime", 8, 23, 3),
    ("Minute", "smalldatetime", 4, 16, 0),
    ("Stamp", "datetime2", 8, 27, 7),
    ("StampMs", "datetime2", 7, 23, 3),
    ("Moment", "datetimeoffset", 10, 34, 7),
    ("Guid", "uniqueidentifier", 16, 0, 0),
];

/// Not compared, as Data Sync does not sync them either.
const UNSUPPORTED: &[&str] = &[
    "xml",
    "sql_variant",
    "geography",
    "geometry",
    "hierarchyid",
    "timestamp",
];

fn every_type(filter: Option<&str>, binary_collation: bool) -> TableQuery {
    let columns = EVERY_TYPE
        .iter()
        .map(|&(name, base, len, p, s)| QueryColumn {
            identity: name == "OrderID",
            ..column(name, base, len, p, s)
        })
        .collect();
    TableQuery {
        table: TableRef::parse("Sales.Order Details"),
        columns,
        key: vec![0, 1],
        filter: filter.map(str::to_string),
        binary_collation,
    }
}

fn render(out: &mut String, name: &str, stmt: &Statement) {
    parse_tsql(&stmt.text);
    writeln!(out, "-- {name}").unwrap();
    for (i, p) in stmt.params.iter().enumerate() {
        writeln!(out, "-- @P{} = {p:?}", i + 1).unwrap();
    }
    writeln!(out, "{};\n", stmt.text).unwrap();
}

#[test]
fn every_statement_parses_as_tsql_and_matches_its_golden_file() {
    let key = |id: i128, code: &str| vec![Value::Int(id), Value::Text(code.into())];
    let mut out = String::new();
    let table = TableRef::parse("Sales.Order Details");
    render(
        &mut out,
        "introspection: columns",
        &columns_statement(&table),
    );
    render(&mut out, "introspection: keys", &keys_statement(&table));
    render(
        &mut out,
        "server version, at connect (auto streams below 13.0 and on Babelfish)",
        &Statement {
            text: ServerInfo::STATEMENT.into(),
            params: vec![],
            columns: vec![],
        },
    );
    for (what, filter, bytewise) in [
        ("", None, false),
        (
            " (filtered, keys compared bytewise)",
            Some("[Qty] > 0 AND [Label] <> N'it''s' AND ([Day] >= '2025-01-01' OR [Flag] = 1)"),
            true,
        ),
    ] {
        let q = every_type(filter, bytewise);
        let s = Statements::new(&q).unwrap();
        render(&mut out, &format!("lead bounds{what}"), &s.lead_bounds());
        let after = KeyRange {
            after: Some(key(10, "m")),
            ..KeyRange::default()
        };
        render(&mut out, &format!("key at{what}"), &s.key_at(&after, 4095));
        let chunk = KeyRange {
            lead_lo: Some(-1024),
            lead_hi: Some(4096),
            after: Some(key(-1024, "")),
            upto: Some(key(4095, "zz")),
        };
        let spec = DigestSpec {
            range: chunk.clone(),
            bucket_width: Some(512),
        };
        render(
            &mut out,
            &format!("digest by bucket{what}"),
            &s.digest(&spec),
        );
        let whole = DigestSpec {
            range: KeyRange::default(),
            bucket_width: None,
        };
        render(&mut out, &format!("digest of all{what}"), &s.digest(&whole));
        render(
            &mut out,
            &format!("rows in key order{what}"),
            &s.scan(&chunk, true),
        );
        render(
            &mut out,
            &format!("rows for a digest{what}"),
            &s.scan(&chunk, false),
        );
    }
    // A uniqueidentifier key compared with another engine's uuid: in RFC 4122 byte order.
    let mut by_guid = every_type(None, true);
    by_guid.key = vec![by_guid.columns.len() - 1];
    let s = Statements::new(&by_guid).unwrap();
    let guid = Value::Uuid(*b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff");
    let range = KeyRange {
        after: Some(vec![guid]),
        ..KeyRange::default()
    };
    render(
        &mut out,
        "key at, uuid key compared bytewise",
        &s.key_at(&range, 10),
    );
    // What the benchmark times on the other engines: the pushdown digest of a whole table
    // of its orders, here as SQL Server would hold them, so that its cost can be measured
    // wherever a server runs.
    let orders = TableQuery {
        table: TableRef::parse("dbo.orders"),
        columns: BENCH_ORDERS
            .iter()
            .map(|&(name, base, len, p, s)| column(name, base, len, p, s))
            .collect(),
        key: vec![0],
        filter: None,
        binary_collation: false,
    };
    let whole = DigestSpec {
        range: KeyRange::default(),
        bucket_width: None,
    };
    render(
        &mut out,
        "benchmark: pushdown digest of the whole orders table",
        &Statements::new(&orders).unwrap().digest(&whole),
    );
    golden("mssql_queries.sql", &out);
}

/// The benchmark's orders table in SQL Server types (sys.columns' view of it).
const BENCH_ORDERS: &[(&str, &str, i16, u8, u8)] = &[
    ("id", "bigint", 8, 19, 0),
    ("customer_id", "int", 4, 10, 0),
    ("status", "nvarchar", 32, 0, 0),
    ("amount", "decimal", 9, 12, 2),
    ("currency", "char", 3, 0, 0),
    ("placed_at", "datetimeoffset", 10, 33, 6),
    ("shipped_at", "datetime2", 8, 26, 6),
    ("note", "nvarchar", 510, 0, 0),
];

fn column(name: &str, base: &str, len: i16, p: u8, s: u8) -> QueryColumn {
    let logical = logical_type(base).unwrap_or_else(|| panic!("{base} is compared"));
    QueryColumn {
        name: name.into(),
        db_type: spell_type(base, len, p, s),
        logical,
        compare_as: logical,
        identity: false,
        fraction_digits: fraction_digits(base, s),
        compare_fraction: None,
    }
}

#[test]
fn types_outside_the_value_model_are_not_compared() {
    for t in UNSUPPORTED {
        assert_eq!(logical_type(t), None, "{t}");
    }
    assert_eq!(spell_type("nvarchar", -1, 0, 0), "nvarchar(max)");
    assert_eq!(spell_type("nchar", 20, 0, 0), "nchar(10)");
    assert_eq!(spell_type("float", 4, 24, 0), "real");
    assert_eq!(spell_type("datetime2", 7, 23, 3), "datetime2(3)");
}

#[test]
fn the_key_is_the_primary_key_else_the_narrowest_unique_not_null_index() {
    let row = |id, pk, c: &str, nullable| (id, pk, c.to_string(), nullable);
    assert_eq!(
        choose_key(&[
            row(1, true, "a", false),
            row(1, true, "b", false),
            row(2, false, "c", false)
        ]),
        ["a", "b"]
    );
    assert_eq!(
        choose_key(&[
            row(2, false, "a", false),
            row(2, false, "b", false),
            row(3, false, "n", true),
            row(4, false, "c", false),
        ]),
        ["c"]
    );
    assert!(choose_key(&[row(3, false, "n", true)]).is_empty());
}

#[test]
fn filters_that_could_write_are_refused() {
    use driftwatch::engine::mssql::check_filter;
    for ok in [
        "[Qty] > 0",
        "Region = N'x;y' AND [odd]]name] = 1",
        "(a = 1 OR b IN (SELECT id FROM dbo.Allowed))",
        "Note LIKE '%--%'",
    ] {
        check_filter(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in [
        "1 = 1; DELETE FROM t",
        "1 = 1) DELETE FROM t WHERE (1 = 1",
        "a = 1 -- comment",
        "a = 1 /* x */",
        "EXEC('x') = 1",
        "a IN (SELECT 1 INTO #t)",
        "a = 'unterminated",
        "(a = 1",
        "a = 1 waitfor delay '0:0:5'",
    ] {
        assert!(check_filter(bad).is_err(), "{bad} was accepted");
    }
}

// ---- against a live server (DRIFTWATCH_TEST_MSSQL_URL) -------------------------------

mod live {
    use super::*;
    use driftwatch::engine::mssql::{quote_ident, ConnectOptions};
    use driftwatch::script::Dialect;
    use tiberius::Client;
    use tokio::net::TcpStream;
    use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

    /// The URL of a server whose login may create databases (its database is the one
    /// connected to first, e.g. master), and the environment variable of its password.
    fn server() -> Option<String> {
        match std::env::var("DRIFTWATCH_TEST_MSSQL_URL") {
            Ok(url) => Some(url),
            Err(_) => {
                eprintln!(
                    "SKIPPED: the live SQL Server suite needs DRIFTWATCH_TEST_MSSQL_URL \
                     (and DRIFTWATCH_TEST_MSSQL_PASSWORD); see the README"
                );
                None
            }
        }
    }

    const PASSWORD_ENV: &str = "DRIFTWATCH_TEST_MSSQL_PASSWORD";

    fn url_of(server: &str, database: &str) -> String {
        let (base, query) = server.split_once('?').unwrap_or((server, ""));
        let scheme_end = base.find("://").unwrap() + 3;
        let host_end = base[scheme_end..]
            .find('/')
            .map_or(base.len(), |i| scheme_end + i);
        let mut url = format!("{}/{database}", &base[..host_end]);
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        url
    }

    async fn connect(url: &str) -> Client<Compat<TcpStream>> {
        let password = std::env::var(PASSWORD_ENV).ok();
        let opts = ConnectOptions::parse(url, password.as_deref()).unwrap();
        let config = opts
            .tiberius_config(std::time::Duration::from_secs(60))
            .unwrap();
        let tcp = TcpStream::connect(config.get_addr()).await.unwrap();
        Client::connect(config, tcp.compat_write())
            .await
            .unwrap_or_else(|e| panic!("SQL Server at {url}: {e}"))
    }

    async fn exec(c: &mut Client<Compat<TcpStream>>, sql: &str) {
        c.simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{sql}"))
            .into_results()
            .await
            .unwrap_or_else(|e| panic!("{e}\n{sql}"));
    }

    /// A fresh database; the client is connected to it.
    async fn database(server: &str, name: &str) -> Client<Compat<TcpStream>> {
        let mut admin = connect(server).await;
        exec(
            &mut admin,
            &format!(
                "IF DB_ID('{name}') IS NOT NULL BEGIN ALTER DATABASE [{name}] SET SINGLE_USER WITH ROLLBACK IMMEDIATE; DROP DATABASE [{name}] END; CREATE DATABASE [{name}]"
            ),
        )
        .await;
        connect(&url_of(server, name)).await
    }

    fn mssql_type(c: &Col, key: bool) -> &'static str {
        match c.gen {
            Gen::Int => "bigint",
            Gen::Numeric => "decimal(38,12)",
            Gen::Float => "float",
            // A binary collation, so that keys order by code point as on the other side.
            Gen::Text if key => "nvarchar(450) COLLATE Latin1_General_100_BIN2",
            Gen::Text | Gen::Json => "nvarchar(max)",
            Gen::Bytes => "varbinary(max)",
            Gen::Timestamp => "datetime2(7)",
            Gen::TimestampTz => "datetimeoffset(7)",
            Gen::Bool => "bit",
            Gen::Uuid => "uniqueidentifier",
            Gen::Date => "date",
        }
    }

    /// SQL Server compares text ignoring trailing spaces: keys that differ only there
    /// would be one key. Such rows are left out, on both sides alike.
    fn fit(case: &mut Case) {
        let n = case.schema.key;
        let folded = |k: &[Value]| -> Vec<String> {
            k.iter()
                .map(|v| match v {
                    Value::Text(s) => s.trim_end_matches(' ').to_string(),
                    other => other.to_string(),
                })
                .collect()
        };
        let mut spellings: std::collections::HashMap<
            Vec<String>,
            std::collections::BTreeSet<Vec<String>>,
        > = Default::default();
        for row in case.publisher.iter().chain(&case.subscriber) {
            spellings
                .entry(folded(&row[..n]))
                .or_default()
                .insert(key_strings(&row[..n]));
        }
        let clash = |k: &[Value]| spellings[&folded(k)].len() > 1;
        case.publisher.retain(|r| !clash(&r[..n]));
        case.subscriber.retain(|r| !clash(&r[..n]));
        case.expected
            .retain(|(k, _, _)| !spellings.values().any(|s| s.len() > 1 && s.contains(k)));
    }

    async fn load(
        c: &mut Client<Compat<TcpStream>>,
        table: &str,
        schema: &Schema,
        rows: &[Vec<Value>],
    ) {
        let create = create_table(table, schema, quote_ident, |col, key| {
            let null = if key { "NOT NULL" } else { "NULL" };
            format!("{} {null}", mssql_type(col, key))
        });
        exec(c, &create).await;
        let columns: Vec<QueryColumn> = schema
            .cols
            .iter()
            .map(|col| QueryColumn {
                name: col.name.into(),
                db_type: mssql_type(col, false).into(),
                logical: driftwatch::value::LogicalType::Text,
                compare_as: driftwatch::value::LogicalType::Text,
                identity: false,
                fraction_digits: None,
                compare_fraction: None,
            })
            .collect();
        for chunk in rows.chunks(100) {
            let values: Vec<String> = chunk
                .iter()
                .map(|row| {
                    let lits: Vec<String> = row
                        .iter()
                        .zip(&columns)
                        .map(|(v, col)| Dialect::Tsql.literal(col, v).unwrap())
                        .collect();
                    format!("({})", lits.join(", "))
                })
                .collect();
            exec(
                c,
                &format!("INSERT INTO {table} VALUES {}", values.join(", ")),
            )
            .await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sql_server_pairs_report_exactly_the_mutated_rows() {
        let Some(server) = server() else { return };
        let mut pubc = database(&server, "dw_prop_ms_pub").await;
        let mut subc = database(&server, "dw_prop_ms_sub").await;
        let dir = temp_dir();
        let domain = Domain {
            portable: true,
            sqlite: false,
        };
        for seed in 0..proptest_cases() {
            for (si, (schema, rows, chunk_rows)) in shapes(seed).into_iter().enumerate() {
                let mut case =
                    Case::generate(schema.clone(), rows, seed * 10 + si as u64 + 5, domain);
                fit(&mut case);
                let table = format!("t{seed}_{si}");
                load(&mut pubc, &table, &schema, &case.publisher).await;
                load(&mut subc, &table, &schema, &case.subscriber).await;
                for strategy in ["pushdown", "streamed"] {
                    let toml = pair_config(
                        &url_of(&server, "dw_prop_ms_pub"),
                        &url_of(&server, "dw_prop_ms_sub"),
                        &format!("dbo.{table}"),
                        &format!("dbo.{table}"),
                        strategy,
                        chunk_rows,
                    )
                    .replace(
                        "\n[databases.sub]",
                        &format!("password_env = \"{PASSWORD_ENV}\"\n[databases.sub]"),
                    )
                    .replace(
                        "\n\n[[groups]]",
                        &format!("\npassword_env = \"{PASSWORD_ENV}\"\n\n[[groups]]"),
                    );
                    assert_exact(
                        toml,
                        dir.path(),
                        &case,
                        &format!("SQL Server seed {seed} shape {si} {strategy}"),
                    )
                    .await;
                }
            }
        }
    }
}
