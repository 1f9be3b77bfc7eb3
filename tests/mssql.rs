//! The SQL Server engine. Without a server (none runs on these machines): every statement
//! the engine sends, for a table holding every SQL Server type, parses as T-SQL with
//! sqlparser's MsSqlDialect and matches its golden file byte for byte. With a server
//! (DRIFTWATCH_TEST_MSSQL_URL, e.g. the container of deploy/compose.yaml): the core
//! property, random tables and mutations reported exactly in both strategies.

use driftwatch_tests as common;

use std::fmt::Write;

use common::*;
use driftwatch::engine::mssql::{
    choose_key, columns_statement, fraction_digits, keys_statement, logical_type, spell_type,
    ServerInfo, Statement, Statements,
};
use driftwatch::engine::DigestSpec;
use driftwatch::table::{KeyRange, QueryColumn, TableQuery, TableRef};
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
            // The key is NOT NULL, as a primary key is.
            nullable: name != "OrderID" && name != "Code",
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
            .map(|&(name, base, len, p, s, nullable)| QueryColumn {
                nullable,
                // Both sides of the benchmark's pair declare the same table.
                declared_alike: true,
                ..column(name, base, len, p, s)
            })
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

/// The benchmark's orders table in SQL Server types (sys.columns' view of it, with
/// is_nullable).
const BENCH_ORDERS: &[(&str, &str, i16, u8, u8, bool)] = &[
    ("id", "bigint", 8, 19, 0, false),
    ("customer_id", "int", 4, 10, 0, false),
    ("status", "nvarchar", 32, 0, 0, false),
    ("amount", "decimal", 9, 12, 2, false),
    ("currency", "char", 3, 0, 0, false),
    ("placed_at", "datetimeoffset", 10, 33, 6, false),
    ("shipped_at", "datetime2", 8, 26, 6, true),
    ("note", "nvarchar", 510, 0, 0, true),
];

fn column(name: &str, base: &str, len: i16, p: u8, s: u8) -> QueryColumn {
    let logical = logical_type(base).unwrap_or_else(|| panic!("{base} is compared"));
    QueryColumn {
        fraction_digits: fraction_digits(base, s),
        ..QueryColumn::new(name, &spell_type(base, len, p, s), logical)
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

// ---- the live suite's tables and config, checked without a server ---------------------

/// The SQL Server type of a generated column. Keys fit an index: a clustered index key
/// holds at most 900 bytes, and the wide schema's key is a bigint (8) and a text
/// (nvarchar(400): 800 bytes at most).
fn mssql_type(c: &Col, key: bool) -> &'static str {
    match c.gen {
        Gen::Int => "bigint",
        // The generator's decimals have at most 15 digits and a scale of at most 13 (a
        // mutation adds a digit to a scale of 12).
        Gen::Numeric => "decimal(38,13)",
        Gen::Float => "float",
        // A binary collation, so that keys order by code point as on the other side.
        Gen::Text if key => "nvarchar(400) COLLATE Latin1_General_100_BIN2",
        Gen::Text | Gen::Json => "nvarchar(max)",
        Gen::Bytes => "varbinary(max)",
        Gen::Timestamp => "datetime2(7)",
        Gen::TimestampTz => "datetimeoffset(7)",
        Gen::Bool => "bit",
        Gen::Uuid => "uniqueidentifier",
        Gen::Date => "date",
    }
}

/// The bytes SQL Server counts against the 900 of an index key.
const INDEX_KEY_BYTES: usize = 900;

/// Whether `v` can be stored in a column of `declared` (one of [`mssql_type`]'s) as it
/// is, without SQL Server refusing it (ANSI_WARNINGS, which tiberius sets, turns a value
/// too long into error 2628/8152) or rounding it.
fn fits(v: &Value, declared: &str) -> Result<(), String> {
    use driftwatch::value::{Decimal, Timestamp};
    let years = |t: &Timestamp| {
        let year = driftwatch::value::format_timestamp(*t)[..4]
            .parse::<i32>()
            .ok();
        (!t.is_infinite() && year.is_some_and(|y| (1..=9999).contains(&y)))
            .then_some(())
            .ok_or_else(|| format!("{v} is outside 0001..9999"))
    };
    let declared_len = |ty: &str| -> Option<usize> {
        ty.strip_prefix("nvarchar(")?
            .split(')')
            .next()?
            .parse()
            .ok()
    };
    match (v, declared) {
        (Value::Null, _) => Ok(()),
        (Value::Int(i), "bigint") if i64::try_from(*i).is_ok() => Ok(()),
        (Value::Decimal(Decimal::Finite { digits, exp, .. }), "decimal(38,13)") => {
            let integer_digits = digits.len() as i32 + exp;
            if *exp < -13 {
                Err(format!("{v} has more than 13 digits after the point"))
            } else if integer_digits > 25 {
                Err(format!("{v} has more than 25 digits before the point"))
            } else {
                Ok(())
            }
        }
        (Value::Float(f), "float") if f.is_finite() => Ok(()),
        (Value::Text(s) | Value::Json(s), ty) if ty.starts_with("nvarchar(max)") => {
            (s.encode_utf16().count() <= 1 << 30)
                .then_some(())
                .ok_or("too long".into())
        }
        (Value::Text(s), ty) if declared_len(ty).is_some() => {
            let (n, max) = (s.encode_utf16().count(), declared_len(ty).unwrap());
            (n <= max)
                .then_some(())
                .ok_or_else(|| format!("a text of {n} UTF-16 code units in {ty}"))
        }
        (Value::Bytes(_), "varbinary(max)")
        | (Value::Bool(_), "bit")
        | (Value::Uuid(_), "uniqueidentifier") => Ok(()),
        (Value::Timestamp(t), "datetime2(7)") | (Value::TimestampTz(t, _), "datetimeoffset(7)")
            if t.nanos % 100 == 0 =>
        {
            years(t)
        }
        (Value::Date(d), "date") => {
            let year = driftwatch::value::format_date(*d)[..4].parse::<i32>().ok();
            year.is_some_and(|y| (1..=9999).contains(&y))
                .then_some(())
                .ok_or_else(|| format!("{v} is outside 0001..9999"))
        }
        _ => Err(format!("{v} cannot be a {declared}")),
    }
}

/// Why a row (or a key: its first values) cannot be loaded as it is, if it cannot: a
/// value past its column, or a key past an index's bytes.
fn unfit(schema: &Schema, row: &[Value]) -> Option<String> {
    for (i, (v, c)) in row.iter().zip(&schema.cols).enumerate() {
        if let Err(e) = fits(v, mssql_type(c, i < schema.key)) {
            return Some(format!("column {}: {e}", c.name));
        }
    }
    let key_bytes: usize = row[..schema.key]
        .iter()
        .map(|v| match v {
            Value::Text(s) => 2 * s.encode_utf16().count(),
            _ => 8,
        })
        .sum();
    (key_bytes > INDEX_KEY_BYTES).then(|| format!("a key of {key_bytes} bytes"))
}

/// Fits a generated case to SQL Server: rows whose key does not fit its column are left
/// out on both sides (the generator's inserted rows may have long text keys), and keys
/// that differ only in trailing spaces, which SQL Server compares as one key.
fn fit(case: &mut Case) {
    let n = case.schema.key;
    let schema = case.schema.clone();
    let long: std::collections::BTreeSet<Vec<String>> = case
        .publisher
        .iter()
        .chain(&case.subscriber)
        .filter(|r| unfit(&schema, &r[..n]).is_some())
        .map(|r| key_strings(&r[..n]))
        .collect();
    case.publisher
        .retain(|r| !long.contains(&key_strings(&r[..n])));
    case.subscriber
        .retain(|r| !long.contains(&key_strings(&r[..n])));
    case.expected.retain(|(k, _, _)| !long.contains(k));
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

/// The cases the live suite loads, fitted.
fn live_cases(seed: u64) -> Vec<(Schema, Case, u64)> {
    let domain = Domain {
        portable: true,
        sqlite: false,
    };
    shapes(seed)
        .into_iter()
        .enumerate()
        .map(|(si, (schema, rows, chunk_rows))| {
            let mut case = Case::generate(schema.clone(), rows, seed * 10 + si as u64 + 5, domain);
            fit(&mut case);
            (schema, case, chunk_rows)
        })
        .collect()
}

/// The live suite's config: the shared pair config, each database given the password's
/// environment variable, written as TOML by the toml crate.
fn live_config(
    pub_url: &str,
    sub_url: &str,
    table: &str,
    strategy: &str,
    chunk_rows: u64,
    password_env: &str,
) -> String {
    let text = pair_config(pub_url, sub_url, table, table, strategy, chunk_rows);
    let mut config: toml::Table = toml::from_str(&text).unwrap();
    let databases = config["databases"].as_table_mut().unwrap();
    for name in ["pub", "sub"] {
        databases[name]
            .as_table_mut()
            .unwrap()
            .insert("password_env".into(), password_env.into());
    }
    toml::to_string(&config).unwrap()
}

#[test]
fn every_generated_value_fits_its_declared_sql_server_type() {
    let mut rows = 0;
    for seed in 0..proptest_cases().max(3) {
        for (schema, case, _) in live_cases(seed) {
            for row in case.publisher.iter().chain(&case.subscriber) {
                if let Some(why) = unfit(&schema, row) {
                    panic!(
                        "seed {seed}: the row keyed {:?} cannot be loaded: {why}",
                        key_strings(&row[..schema.key])
                    );
                }
                rows += 1;
            }
            assert!(
                !case.expected.is_empty() || case.publisher.len() < 50,
                "seed {seed}"
            );
        }
    }
    assert!(rows > 10_000, "{rows} rows checked");
    // What the checks refuse: a key past its column, a decimal past its scale.
    let text_key = text_key_schema();
    let long_key = [
        Value::Text("k".repeat(401)),
        Value::Int(1),
        Value::Null,
        Value::Null,
        Value::Null,
    ];
    assert!(unfit(&text_key, &long_key)
        .unwrap()
        .contains("401 UTF-16 code units"));
    let emoji_key = [
        Value::Text("😀".repeat(201)),
        Value::Int(1),
        Value::Null,
        Value::Null,
        Value::Null,
    ];
    assert!(
        unfit(&text_key, &emoji_key).is_some(),
        "an emoji is two code units"
    );
    let scale_14 = driftwatch::value::Decimal::parse("1.00000000000001").unwrap();
    assert!(fits(&Value::Decimal(scale_14), "decimal(38,13)").is_err());
}

#[test]
fn the_live_suites_config_is_toml_that_driftwatch_loads() {
    const VAR: &str = "DRIFTWATCH_TEST_MSSQL_CONFIG_CHECK";
    std::env::set_var(VAR, "pw\"with'quotes");
    let server = "mssql://sa@127.0.0.1:14331/master?trust_server_certificate=true";
    let toml = live_config(
        &live::url_of(server, "dw_prop_ms_pub"),
        &live::url_of(server, "dw_prop_ms_sub"),
        "dbo.t0_1",
        "pushdown",
        150,
        VAR,
    );
    let dir = temp_dir();
    let config = load_config(dir.path(), &toml);
    for (name, database) in [("pub", "dw_prop_ms_pub"), ("sub", "dw_prop_ms_sub")] {
        let db = &config.databases[name];
        assert_eq!(db.password.as_deref(), Some("pw\"with'quotes"), "{name}");
        assert_eq!(
            db.url,
            format!("mssql://sa@127.0.0.1:14331/{database}?trust_server_certificate=true")
        );
    }
    let table = &config.groups[0].tables[0];
    assert_eq!(table.name, "dbo.t0_1");
    assert_eq!(table.chunk_rows, 150);
}

#[test]
fn the_live_suites_database_setup_parses_as_tsql() {
    let [single_user, drop_create] = live::setup_statements("dw_prop_ms_pub");
    assert_eq!(
        single_user,
        "IF DB_ID(N'dw_prop_ms_pub') IS NOT NULL ALTER DATABASE [dw_prop_ms_pub] SET SINGLE_USER WITH ROLLBACK IMMEDIATE"
    );
    parse_tsql(&drop_create);
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
                     (and DRIFTWATCH_TEST_MSSQL_PASSWORD); see docs/testing.md"
                );
                None
            }
        }
    }

    const PASSWORD_ENV: &str = "DRIFTWATCH_TEST_MSSQL_PASSWORD";

    pub fn url_of(server: &str, database: &str) -> String {
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

    async fn try_exec(c: &mut Client<Compat<TcpStream>>, sql: &str) -> tiberius::Result<()> {
        c.simple_query(sql).await?.into_results().await.map(|_| ())
    }

    async fn exec(c: &mut Client<Compat<TcpStream>>, sql: &str) {
        try_exec(c, sql)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{sql}"));
    }

    /// Closing other sessions of a database before dropping it, which a server may refuse
    /// (Babelfish has no SINGLE_USER), then dropping and creating it.
    pub fn setup_statements(name: &str) -> [String; 2] {
        let ident = quote_ident(name);
        [
            format!("IF DB_ID(N'{name}') IS NOT NULL ALTER DATABASE {ident} SET SINGLE_USER WITH ROLLBACK IMMEDIATE"),
            format!("IF DB_ID(N'{name}') IS NOT NULL DROP DATABASE {ident}; CREATE DATABASE {ident}"),
        ]
    }

    /// A fresh database; the client is connected to it.
    async fn database(server: &str, name: &str) -> Client<Compat<TcpStream>> {
        let mut admin = connect(server).await;
        let [single_user, drop_create] = setup_statements(name);
        if let Err(e) = try_exec(&mut admin, &single_user).await {
            eprintln!("{name}: SET SINGLE_USER refused ({e}): dropping it as it is");
        }
        exec(&mut admin, &drop_create).await;
        connect(&url_of(server, name)).await
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
            .map(|col| {
                QueryColumn::new(
                    col.name,
                    mssql_type(col, false),
                    driftwatch::value::LogicalType::Text,
                )
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
        for seed in 0..proptest_cases() {
            for (si, (schema, case, chunk_rows)) in live_cases(seed).into_iter().enumerate() {
                let table = format!("t{seed}_{si}");
                load(&mut pubc, &table, &schema, &case.publisher).await;
                load(&mut subc, &table, &schema, &case.subscriber).await;
                for strategy in ["pushdown", "streamed"] {
                    let toml = live_config(
                        &url_of(&server, "dw_prop_ms_pub"),
                        &url_of(&server, "dw_prop_ms_sub"),
                        &format!("dbo.{table}"),
                        strategy,
                        chunk_rows,
                        PASSWORD_ENV,
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
        drop((pubc, subc));
        let mut admin = connect(&server).await;
        for name in ["dw_prop_ms_pub", "dw_prop_ms_sub"] {
            let [single_user, _] = setup_statements(name);
            let _ = try_exec(&mut admin, &single_user).await;
            exec(&mut admin, &format!("DROP DATABASE {}", quote_ident(name))).await;
        }
    }
}
