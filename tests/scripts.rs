//! Convergence scripts: a fix script generated from random drift with hostile values,
//! applied with the engine's own client (psql, sqlite3), leaves the pair converged; a
//! redrive script re-fires a trigger-replicated hub; T-SQL scripts parse with sqlparser's
//! MsSqlDialect and match golden files byte for byte.

use driftwatch_tests as common;

use std::path::Path;
use std::process::Command;

use common::*;
use driftwatch::compare::localize::{Kind, RowChange};
use driftwatch::compare::schema::{Comparison, Resolved, SchemaReport};
use driftwatch::script::{self, Dialect, Mode, Options};
use driftwatch::table::{QueryColumn, TableQuery, TableRef};
use driftwatch::value::{Decimal, LogicalType, Timestamp, Value};

fn options(dialect: Dialect, mode: Mode, guards: bool) -> Options {
    Options {
        dialect,
        mode,
        guards,
        batch_statements: 7,
        redrive_batch_keys: 5,
        counts_in_header: true,
        include_in_flight: false,
        skip_unrepresentable: false,
    }
}

fn pair_config(pub_url: &str, sub_url: &str, table: &str, subscriber_table: &str) -> String {
    format!(
        "[defaults]\nconfirm_after = \"0s\"\nchunk_rows = 200\n[databases.pub]\nurl = \"{pub_url}\"\n[databases.sub]\nurl = \"{sub_url}\"\n\
         [[groups]]\nname = \"g\"\npublisher = \"pub\"\nsubscribers = [\"sub\"]\n[[groups.tables]]\nname = \"{table}\"\nsubscriber_name = \"{subscriber_table}\"\n"
    )
}

async fn assert_converged(dir: &Path, toml: &str, what: &str) {
    let results = run_pass(load_config(dir, toml)).await;
    let (status, found) = &results[0];
    assert_eq!(status.error, None, "{what}");
    assert!(
        found.is_empty(),
        "{what}: still differs after the script: {:#?}",
        found.iter().take(5).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fix_scripts_converge_postgres_pairs() {
    let (pubc, subc) = (
        pg_database("dw_fix_pub").await,
        pg_database("dw_fix_sub").await,
    );
    let dir = temp_dir();
    for (seed, guards) in [(1u64, true), (2, true), (3, false)] {
        let schema = wide_schema();
        let case = Case::generate(
            schema.clone(),
            800,
            100 + seed,
            Domain {
                portable: false,
                sqlite: false,
            },
        );
        let table = format!("t{seed}");
        pg_load(&pubc, &table, &schema, &case.publisher).await;
        pg_load(&subc, &table, &schema, &case.subscriber).await;
        let toml = pair_config(
            &pg_url("dw_fix_pub"),
            &pg_url("dw_fix_sub"),
            &format!("public.{table}"),
            &format!("public.{table}"),
        );
        let (text, summary) = script_for(
            load_config(dir.path(), &toml),
            &options(Dialect::Postgres, Mode::Fix, guards),
        )
        .await;
        assert_eq!(
            summary.missing + summary.extra + summary.changed,
            case.expected.len() as u64
        );
        let file = dir.path().join(format!("fix{seed}.sql"));
        std::fs::write(&file, &text).unwrap();
        run_client(
            "psql",
            &["-X", "-q", "-v", "ON_ERROR_STOP=1", &pg_url("dw_fix_sub")],
            &file,
        );
        assert_converged(
            dir.path(),
            &toml,
            &format!("PostgreSQL seed {seed}, guards {guards}"),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fix_scripts_converge_sqlite_pairs() {
    let dir = temp_dir();
    for (seed, guards) in [(1u64, true), (2, false)] {
        let (pub_db, sub_db) = (
            dir.path().join(format!("p{seed}.db")),
            dir.path().join(format!("s{seed}.db")),
        );
        for schema in [wide_schema(), text_key_schema()] {
            let case = Case::generate(
                schema.clone(),
                600,
                200 + seed,
                Domain {
                    portable: false,
                    sqlite: true,
                },
            );
            sqlite_load(&pub_db, "t", &schema, &case.publisher);
            sqlite_load(&sub_db, "t", &schema, &case.subscriber);
            let toml = pair_config(&sqlite_url(&pub_db), &sqlite_url(&sub_db), "t", "t");
            let (text, _) = script_for(
                load_config(dir.path(), &toml),
                &options(Dialect::Sqlite, Mode::Fix, guards),
            )
            .await;
            let file = dir.path().join("fix.sql");
            std::fs::write(&file, &text).unwrap();
            run_client("sqlite3", &["-bail", sub_db.to_str().unwrap()], &file);
            assert_converged(
                dir.path(),
                &toml,
                &format!("SQLite seed {seed}, guards {guards}"),
            )
            .await;
        }
    }
}

/// A guarded script applied after the subscriber moved on leaves the moved rows alone
/// and says how many it skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guards_leave_rows_changed_since_the_diff_alone() {
    let dir = temp_dir();
    let (pub_db, sub_db) = (dir.path().join("p.db"), dir.path().join("s.db"));
    let setup = "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c');";
    for db in [&pub_db, &sub_db] {
        rusqlite::Connection::open(db)
            .unwrap()
            .execute_batch(setup)
            .unwrap();
    }
    rusqlite::Connection::open(&sub_db)
        .unwrap()
        .execute_batch("UPDATE t SET v = 'x' WHERE id IN (1, 2); DELETE FROM t WHERE id = 3;")
        .unwrap();
    let toml = pair_config(&sqlite_url(&pub_db), &sqlite_url(&sub_db), "t", "t");
    let (text, _) = script_for(
        load_config(dir.path(), &toml),
        &options(Dialect::Sqlite, Mode::Fix, true),
    )
    .await;
    // Meanwhile replication (or a person) changes row 2 and puts row 3 back.
    rusqlite::Connection::open(&sub_db)
        .unwrap()
        .execute_batch("UPDATE t SET v = 'newer' WHERE id = 2; INSERT INTO t VALUES (3, 'back');")
        .unwrap();
    let file = dir.path().join("fix.sql");
    std::fs::write(&file, &text).unwrap();
    let out = Command::new("sqlite3")
        .arg(&sub_db)
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("driftwatch: 2 statements skipped"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let conn = rusqlite::Connection::open(&sub_db).unwrap();
    let rows: Vec<(i64, String)> = conn
        .prepare("SELECT id, v FROM t ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows,
        [
            (1, "a".to_string()),
            (2, "newer".to_string()),
            (3, "back".to_string())
        ]
    );
}

/// Azure SQL Data Sync's way, in miniature: the hub's triggers carry every change to the
/// member. Rows lost on the member come back by no-op updates on the hub; rows extra on
/// the member are deleted there by the script's second part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_scripts_refire_the_hubs_change_tracking() {
    let hub = pg_database("dw_redrive").await;
    hub.batch_execute(
        "CREATE SCHEMA member;
         CREATE TABLE public.orders (id bigint PRIMARY KEY, region text NOT NULL, amount numeric(12,2), note text);
         CREATE TABLE member.orders (LIKE public.orders INCLUDING ALL);
         CREATE FUNCTION sync_orders() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF TG_OP = 'DELETE' THEN DELETE FROM member.orders WHERE id = OLD.id; RETURN OLD; END IF;
           INSERT INTO member.orders VALUES (NEW.*) ON CONFLICT (id) DO UPDATE
             SET region = EXCLUDED.region, amount = EXCLUDED.amount, note = EXCLUDED.note;
           RETURN NEW;
         END $$;
         CREATE TRIGGER sync AFTER INSERT OR UPDATE OR DELETE ON public.orders FOR EACH ROW EXECUTE FUNCTION sync_orders();
         INSERT INTO public.orders SELECT g, 'EU', g / 7.0, CASE WHEN g % 5 = 0 THEN NULL ELSE 'n' || g END FROM generate_series(1, 3000) g;
         -- The gap, and drift on the member behind the hub's back.
         DELETE FROM member.orders WHERE id BETWEEN 1200 AND 1260;
         UPDATE member.orders SET amount = 0 WHERE id IN (5, 2999);
         INSERT INTO member.orders VALUES (9001, 'US', 1, 'member only'), (9002, 'US', 2, NULL);",
    )
    .await
    .unwrap();
    let dir = temp_dir();
    let url = pg_url("dw_redrive");
    let toml = pair_config(&url, &url, "public.orders", "member.orders");
    let (text, summary) = script_for(
        load_config(dir.path(), &toml),
        &options(Dialect::Postgres, Mode::Redrive, true),
    )
    .await;
    assert_eq!(
        (summary.missing, summary.extra, summary.changed),
        (61, 2, 2)
    );
    for line in text.lines().filter(|l| !l.starts_with("--")) {
        assert!(
            !line.to_lowercase().contains("_dss"),
            "a redrive script never touches Data Sync's own objects: {line}"
        );
    }
    assert!(
        text.contains("UPDATE \"public\".\"orders\" SET \"region\" = \"region\" WHERE \"id\" IN (")
    );
    let (hub_part, member_part) = text.split_once("===== Part 2").unwrap();
    assert!(
        !hub_part.contains("DELETE"),
        "the hub's part deletes nothing"
    );
    let hub_file = dir.path().join("hub.sql");
    std::fs::write(&hub_file, hub_part).unwrap();
    run_client(
        "psql",
        &["-X", "-q", "-v", "ON_ERROR_STOP=1", &url],
        &hub_file,
    );
    let member: String = member_part
        .lines()
        .filter_map(|l| l.strip_prefix("-- DELETE "))
        .map(|l| format!("DELETE {l}\n"))
        .collect();
    assert_eq!(member.lines().count(), 2);
    let member_file = dir.path().join("member.sql");
    std::fs::write(&member_file, member).unwrap();
    run_client(
        "psql",
        &["-X", "-q", "-v", "ON_ERROR_STOP=1", &url],
        &member_file,
    );
    assert_converged(dir.path(), &toml, "after the redrive").await;
}

// ---- T-SQL ------------------------------------------------------------------------------

fn col(name: &str, db_type: &str, t: LogicalType, identity: bool) -> QueryColumn {
    QueryColumn {
        identity,
        ..QueryColumn::new(name, db_type, t)
    }
}

/// A SQL Server table with a column of every comparable type.
fn every_type() -> Comparison {
    use LogicalType::*;
    let columns = vec![
        col("OrderID", "int", Int, true),
        col("Line No", "smallint", Int, false),
        col("Flag", "bit", Bool, false),
        col("Qty", "bigint", Int, false),
        col("Price", "decimal(38,10)", Decimal, false),
        col("Cost", "money", Decimal, false),
        col("Ratio", "float", Float, false),
        col("Weight", "real", Float, false),
        col("Name", "nvarchar(max)", Text, false),
        col("Code", "char(5)", Text, false),
        col("Blob", "varbinary(max)", Bytes, false),
        col("Day", "date", Date, false),
        col("At", "time(7)", Time, false),
        col("Stamp", "datetime2(7)", Timestamp, false),
        col("Moment", "datetimeoffset(7)", TimestampTz, false),
        col("Guid", "uniqueidentifier", Uuid, false),
    ];
    let q = TableQuery {
        table: TableRef::parse("dbo.Order Details"),
        columns,
        key: vec![0, 1],
        filter: None,
        binary_collation: false,
    };
    Comparison {
        publisher: q.clone(),
        subscriber: q,
        strategy: Resolved::Streamed,
        schema: SchemaReport {
            unsupported: vec!["Location (geography)".into()],
            ..Default::default()
        },
        time_column: None,
    }
}

fn dec(s: &str) -> Value {
    Value::Decimal(Decimal::parse(s).unwrap())
}

fn rows() -> Vec<Vec<Value>> {
    let ts = |secs: i64, nanos: u32| Timestamp { secs, nanos };
    vec![
        vec![
            Value::Int(1),
            Value::Int(1),
            Value::Bool(true),
            Value::Int(i64::MAX as i128),
            dec("-1234567890123456789012345678.0123456789"),
            dec("922337203685477.5807"),
            Value::float(1.5e-7),
            Value::float(-3.25),
            Value::Text("O'Brien; DROP TABLE x; -- é 日本 😀".into()),
            Value::Text("ab   ".into()),
            Value::Bytes(vec![0, 1, 254, 255]),
            Value::Date(-719_162),
            Value::Time(86_399_999_999_900),
            Value::Timestamp(ts(253_402_300_799, 999_999_900)),
            Value::instant(ts(0, 100)),
            Value::Uuid(*b"\x12\x34\x56\x78\x9a\xbc\xde\xf0\x01\x02\x03\x04\x05\x06\x07\x08"),
        ],
        vec![
            Value::Int(2),
            Value::Int(-32768),
            Value::Bool(false),
            Value::Int(i64::MIN as i128),
            dec("0"),
            dec("-0.0001"),
            Value::float(0.0),
            Value::float(1e38),
            Value::Text("".into()),
            Value::Null,
            Value::Bytes(vec![]),
            Value::Date(0),
            Value::Time(0),
            Value::Timestamp(ts(-62_135_596_800, 0)),
            Value::Null,
            Value::Null,
        ],
        vec![
            Value::Int(3),
            Value::Int(7),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Text("nul\0inside".into()),
            Value::Text("x".into()),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
        ],
    ]
}

fn changes() -> Vec<RowChange> {
    let r = rows();
    let mut changed = r[1].clone();
    changed[8] = Value::Text("it's changed".into());
    changed[4] = dec("12.5");
    vec![
        RowChange {
            key: r[0][..2].to_vec(),
            kind: Kind::Missing,
            changed: vec![],
            publisher: Some(r[0].clone()),
            subscriber: None,
        },
        RowChange {
            key: r[1][..2].to_vec(),
            kind: Kind::Changed,
            changed: vec![4, 8],
            publisher: Some(changed),
            subscriber: Some(r[1].clone()),
        },
        RowChange {
            key: r[2][..2].to_vec(),
            kind: Kind::Extra,
            changed: vec![],
            publisher: None,
            subscriber: Some(r[2].clone()),
        },
    ]
}

/// Every batch between GO lines parses as T-SQL.
fn assert_parses_as_tsql(script: &str) {
    let mut batch = String::new();
    let mut batches = 0;
    for line in script.lines().chain(std::iter::once("GO")) {
        if line.trim() == "GO" {
            if !batch.trim().is_empty() {
                parse_tsql(&batch);
                batches += 1;
            }
            batch.clear();
        } else {
            batch.push_str(line);
            batch.push('\n');
        }
    }
    assert!(batches > 1);
}

#[test]
fn tsql_scripts_parse_and_match_their_golden_files() {
    let cmp = every_type();
    for (name, mode, guards) in [
        ("tsql_fix.sql", Mode::Fix, true),
        ("tsql_fix_unguarded.sql", Mode::Fix, false),
        ("tsql_redrive.sql", Mode::Redrive, true),
    ] {
        let text = script::render(
            &options(Dialect::Tsql, mode, guards),
            &cmp,
            "SalesHub",
            "SalesMember",
            changes(),
        )
        .unwrap();
        if mode == Mode::Fix {
            assert_parses_as_tsql(&text);
        } else {
            // Part 2 is commented out; part 1 parses.
            assert_parses_as_tsql(text.split("===== Part 2").next().unwrap());
        }
        golden(name, &text);
    }
}

#[test]
fn a_value_the_dialect_cannot_hold_stops_the_script_naming_key_and_column() {
    let cmp = every_type();
    let mut bad = rows()[0].clone();
    bad[6] = Value::float(f64::NAN);
    let change = RowChange {
        key: bad[..2].to_vec(),
        kind: Kind::Missing,
        changed: vec![],
        publisher: Some(bad),
        subscriber: None,
    };
    let e = script::render(
        &options(Dialect::Tsql, Mode::Fix, true),
        &cmp,
        "a",
        "b",
        [change.clone()],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("Ratio") && e.contains("key (1, 1)") && e.contains("NaN"),
        "{e}"
    );
    let e = script::render(
        &options(Dialect::Mysql, Mode::Fix, true),
        &cmp,
        "a",
        "b",
        [change],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("Ratio"), "{e}");
}

/// A SQLite destination scripted in the PostgreSQL dialect: every cast is a PostgreSQL type
/// (not SQLite's DATETIME, BLOB or DOUBLE), so psql applies the script to a PostgreSQL copy
/// of the subscriber's table, which then equals the publisher.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_destination_scripted_for_postgres_casts_to_postgres_types() {
    type Row = (i64, String, String, Vec<u8>, f64, String, bool, String);
    let row = |i: i64, tweak: bool| -> Row {
        let t = if tweak { 1 } else { 0 };
        (
            i,
            format!("2025-06-14 02:00:{:02}.{:06}", (i + t) % 60, i * 7),
            format!("2025-06-{:02}", 1 + (i + t) % 28),
            vec![0, (i + t) as u8, 255],
            i as f64 + 0.25 + t as f64,
            format!("{}.{:02}", i + t, 50),
            (i + t) % 2 == 0,
            format!("n'{}", i + t),
        )
    };
    let publisher: Vec<Row> = (1..=40).map(|i| row(i, false)).collect();
    let subscriber: Vec<Row> = (1..=43)
        .filter(|i| !(5..=9).contains(i))
        .map(|i| row(i, (20..=24).contains(&i)))
        .collect();
    let dir = temp_dir();
    let (pub_db, sub_db) = (dir.path().join("pub.db"), dir.path().join("sub.db"));
    for (path, rows) in [(&pub_db, &publisher), (&sub_db, &subscriber)] {
        let c = rusqlite::Connection::open(path).unwrap();
        c.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, at DATETIME, day DATE, payload BLOB, \
             ratio DOUBLE, amount DECIMAL(12,2), flag BOOLEAN, note TEXT)",
        )
        .unwrap();
        for r in rows {
            c.execute(
                "INSERT INTO t VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                rusqlite::params![r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7],
            )
            .unwrap();
        }
    }
    // The PostgreSQL copy of the subscriber, in PostgreSQL's types.
    let db = "dw_sqlite_as_pg";
    let pg = pg_database(db).await;
    pg.batch_execute(
        "CREATE TABLE t (id bigint PRIMARY KEY, at timestamp, day date, payload bytea, \
         ratio double precision, amount numeric(12,2), flag boolean, note text)",
    )
    .await
    .unwrap();
    for r in &subscriber {
        let amount: f64 = r.5.parse().unwrap();
        pg.execute(
            "INSERT INTO t VALUES ($1, $2::text::timestamp, $3::text::date, $4, $5, $6::float8::numeric, $7, $8)",
            &[&r.0, &r.1, &r.2, &r.3, &r.4, &amount, &r.6, &r.7],
        )
        .await
        .unwrap();
    }

    let toml = pair_config(&sqlite_url(&pub_db), &sqlite_url(&sub_db), "t", "t");
    let (text, summary) = script_for(
        load_config(dir.path(), &toml),
        &options(Dialect::Postgres, Mode::Fix, true),
    )
    .await;
    assert_eq!((summary.missing, summary.extra, summary.changed), (5, 3, 5));
    for foreign in [
        "::DATETIME",
        "::BLOB",
        "::DOUBLE",
        "::DECIMAL",
        "::BOOLEAN",
        "::DATE",
    ] {
        assert!(!text.contains(foreign), "{foreign} in:\n{text}");
    }
    for native in ["::timestamp", "::bytea", "::double precision", "::numeric"] {
        assert!(text.contains(native), "no {native} in:\n{text}");
    }
    let file = dir.path().join("fix.sql");
    std::fs::write(&file, &text).unwrap();
    let out = run_client(
        "psql",
        &["-X", "-q", "-v", "ON_ERROR_STOP=1", &pg_url(db)],
        &file,
    );
    assert!(
        out.contains("driftwatch: 0 statements skipped"),
        "every guard matched: {out}"
    );
    let published = pair_config(&sqlite_url(&pub_db), &pg_url(db), "t", "public.t");
    assert_converged(
        dir.path(),
        &published,
        "the PostgreSQL copy after the script",
    )
    .await;

    // Redrive scripts run on the hub: its dialect by default, fix scripts the subscriber's.
    let rt = driftwatch::runtime::Runtime::new(load_config(dir.path(), &published)).unwrap();
    assert_eq!(
        driftwatch::diff::default_dialect(&rt, "g", "sub", Mode::Fix),
        Dialect::Postgres
    );
    assert_eq!(
        driftwatch::diff::default_dialect(&rt, "g", "sub", Mode::Redrive),
        Dialect::Sqlite
    );
}

/// Runs the diff and script of the only table of `config`: the result, and the text sent.
async fn generate(
    config: driftwatch::config::Config,
    options: &Options,
) -> (
    Result<(script::Summary, Option<String>), driftwatch::diff::DiffError>,
    String,
) {
    let rt = driftwatch::runtime::Runtime::new(config).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(16);
    let collect = async {
        let mut s = String::new();
        while let Some(piece) = rx.recv().await {
            s.push_str(&piece);
        }
        s
    };
    let generate =
        async move { driftwatch::diff::generate(&rt, "g", "public.t", "sub", options, &tx).await };
    tokio::join!(generate, collect)
}

/// A PostgreSQL table with NaN and infinities has no complete T-SQL script: by default the
/// script stops at the first such row; with skip_unrepresentable every other row is
/// written and those rows are listed, by key and column, at the top and at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_a_dialect_cannot_hold_are_left_out_and_listed_when_asked() {
    let (pubc, subc) = (
        pg_database("dw_skip_pub").await,
        pg_database("dw_skip_sub").await,
    );
    let create = "CREATE TABLE t (id int PRIMARY KEY, ratio double precision, note text)";
    pubc.batch_execute(&format!(
        "{create}; INSERT INTO t SELECT g, g / 4.0, 'n' || g FROM generate_series(1, 30) g;
         UPDATE t SET ratio = 'NaN' WHERE id IN (7, 9, 19); UPDATE t SET ratio = 'Infinity' WHERE id = 23"
    ))
    .await
    .unwrap();
    // 10 missing (every third id, 9 among them), 7, 19 and 23 changed to what T-SQL cannot
    // hold, 20 changed to what it can.
    subc.batch_execute(&format!(
        "{create}; INSERT INTO t SELECT g, g / 4.0, 'n' || g FROM generate_series(1, 30) g WHERE g % 3 <> 0;
         UPDATE t SET note = 'changed' WHERE id = 20"
    ))
    .await
    .unwrap();
    let dir = temp_dir();
    let toml = pair_config(
        &pg_url("dw_skip_pub"),
        &pg_url("dw_skip_sub"),
        "public.t",
        "public.t",
    );

    let stop = options(Dialect::Tsql, Mode::Fix, true);
    let (result, _) = generate(load_config(dir.path(), &toml), &stop).await;
    let e = result.unwrap_err().to_string();
    assert!(e.contains("column ratio") && e.contains("NaN"), "{e}");

    let skip = Options {
        skip_unrepresentable: true,
        ..stop.clone()
    };
    let (text, summary) = script_for(load_config(dir.path(), &toml), &skip).await;
    assert_eq!(summary.unrepresentable, 4, "{text}");
    assert_eq!(
        (
            summary.missing,
            summary.extra,
            summary.changed,
            summary.statements
        ),
        (10, 0, 4, 10)
    );
    assert!(summary.incomplete().is_some());
    assert_eq!(
        text.matches("INSERT INTO [public].[t]").count(),
        9,
        "{text}"
    );
    assert!(
        text.contains("UPDATE [public].[t] SET [note] = N'n20'"),
        "{text}"
    );
    let (top, end) = text
        .split_once("===== NOT WRITTEN")
        .expect("a section of the rows left out at the end");
    assert!(top.contains("-- NOT WRITTEN: 4 rows"), "{top}");
    for key in ["7", "9", "19", "23"] {
        let line = format!("--   key ({key}), column ratio: SQL Server cannot store");
        assert!(top.contains(&line), "the header lists {key}: {top}");
        assert!(end.contains(&line), "the end lists {key}: {end}");
    }
    assert_parses_as_tsql(&text);
}

/// Rows not verified yet are listed, not scripted, in a section whose every line is a
/// comment of its own (a comment broken over lines must not leave text a client runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_not_verified_yet_are_listed_as_comments_only() {
    let dir = temp_dir();
    let (pub_db, sub_db) = (dir.path().join("pub.db"), dir.path().join("sub.db"));
    for (path, rows) in [(&pub_db, 1..=20), (&sub_db, 1..=17)] {
        let c = rusqlite::Connection::open(path).unwrap();
        c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, note TEXT)")
            .unwrap();
        for id in rows {
            c.execute("INSERT INTO t VALUES (?1, 'n')", [id]).unwrap();
        }
    }
    // Nothing is confirmed within the hour: every difference stays unverified.
    let toml = pair_config(&sqlite_url(&pub_db), &sqlite_url(&sub_db), "t", "t")
        .replace("confirm_after = \"0s\"", "confirm_after = \"1h\"");
    // As the service does: a pass first, so the script re-checks (without waiting) what
    // it tracks.
    let rt = driftwatch::runtime::Runtime::new(load_config(dir.path(), &toml)).unwrap();
    let (g, t) = (&rt.config.groups[0], &rt.config.groups[0].tables[0]);
    rt.pass(g, t).await;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(16);
    let collect = async {
        let mut s = String::new();
        while let Some(piece) = rx.recv().await {
            s.push_str(&piece);
        }
        s
    };
    let sqlite = options(Dialect::Sqlite, Mode::Fix, true);
    let generate =
        async move { driftwatch::diff::generate(&rt, "g", "t", "sub", &sqlite, &tx).await };
    let (generated, text) = tokio::join!(generate, collect);
    let (summary, header) = generated.unwrap();
    let text = header.unwrap_or_default() + &text;
    assert_eq!((summary.in_flight, summary.statements), (3, 0), "{text}");
    let section: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.contains("differing rows are not verified"))
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(section.len() >= 4, "{text}");
    for line in section {
        assert!(
            line.starts_with("-- "),
            "not a comment of its own: {line:?}"
        );
    }
}
