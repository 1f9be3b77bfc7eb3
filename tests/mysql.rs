//! The MySQL/MariaDB engine against a real MariaDB on loopback: the core property (random
//! tables and mutations reported exactly, in both strategies), a PostgreSQL publisher with
//! a MariaDB subscriber compared streamed, a fix script in the MySQL dialect applied with
//! the server's own client, every type decoded and digested alike, and row texts that the
//! pushdown digest must not confuse (neither a plain join's nor a CRC32 XOR's collisions).

use driftwatch_tests as common;

use common::*;
use driftwatch::script::{Dialect, Mode, Options};
use driftwatch::status::State;

/// Values both PostgreSQL and MariaDB hold alike: no NaN or infinities, decimals of at
/// most 14 digits, no NUL in text (instants are folded by `mysql_fit`).
const DOMAIN: Domain = Domain {
    portable: true,
    sqlite: false,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_pairs_report_exactly_the_mutated_rows() {
    let mut pubc = mysql_database("dw_prop_my_pub").await;
    let mut subc = mysql_database("dw_prop_my_sub").await;
    let dir = temp_dir();
    for seed in 0..proptest_cases() {
        for (si, (schema, rows, chunk_rows)) in shapes(seed).into_iter().enumerate() {
            let mut case = Case::generate(schema.clone(), rows, seed * 10 + si as u64 + 3, DOMAIN);
            mysql_fit(&mut case);
            let table = format!("t{seed}_{si}");
            mysql_load(&mut pubc, &table, &schema, &case.publisher).await;
            mysql_load(&mut subc, &table, &schema, &case.subscriber).await;
            mysql_rewrite(&mut subc, &table, &schema, &case.rewrites).await;
            for strategy in ["pushdown", "streamed"] {
                let toml = pair_config(
                    &mysql_url("dw_prop_my_pub"),
                    &mysql_url("dw_prop_my_sub"),
                    &table,
                    &table,
                    strategy,
                    chunk_rows,
                );
                assert_exact(
                    toml,
                    dir.path(),
                    &case,
                    &format!("MariaDB seed {seed} shape {si} {strategy}"),
                )
                .await;
            }
        }
    }
}

/// PostgreSQL replicated into MariaDB and MariaDB into PostgreSQL, compared streamed: the
/// same logical data (numeric against decimal, timestamptz against timestamp, jsonb against
/// json, boolean against bit(1), ...) with known drift reports exactly that drift, whichever
/// engine is the publisher (and so chooses the chunk boundaries).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_and_mariadb_pairs_report_exactly_the_mutated_rows() {
    let pg = pg_database("dw_prop_pgmy_pub").await;
    let mut my = mysql_database("dw_prop_pgmy_sub").await;
    let dir = temp_dir();
    for seed in 0..proptest_cases() {
        for (si, (schema, rows, chunk_rows)) in shapes(seed).into_iter().enumerate() {
            let mut case = Case::generate(schema.clone(), rows, seed * 10 + si as u64 + 8, DOMAIN);
            mysql_fit(&mut case);
            // t…: PostgreSQL publishes; r…: MariaDB publishes the same rows.
            let (table, reverse) = (format!("t{seed}_{si}"), format!("r{seed}_{si}"));
            pg_load(&pg, &table, &schema, &case.publisher).await;
            mysql_load(&mut my, &table, &schema, &case.subscriber).await;
            mysql_load(&mut my, &reverse, &schema, &case.publisher).await;
            pg_load(&pg, &reverse, &schema, &case.subscriber).await;
            let (pg_url, my_url) = (pg_url("dw_prop_pgmy_pub"), mysql_url("dw_prop_pgmy_sub"));
            for (what, pub_url, sub_url, pub_table, sub_table) in [
                (
                    "PostgreSQL→MariaDB",
                    &pg_url,
                    &my_url,
                    format!("public.{table}"),
                    table.clone(),
                ),
                (
                    "MariaDB→PostgreSQL",
                    &my_url,
                    &pg_url,
                    reverse.clone(),
                    format!("public.{reverse}"),
                ),
            ] {
                let toml =
                    pair_config(pub_url, sub_url, &pub_table, &sub_table, "auto", chunk_rows);
                assert_exact(
                    toml,
                    dir.path(),
                    &case,
                    &format!("{what} seed {seed} shape {si}"),
                )
                .await;
            }
        }
    }
}

/// A fix script in the MySQL dialect, applied to the MariaDB subscriber with the server's
/// client, leaves the pair converged (with and without guards).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fix_scripts_converge_mariadb_pairs() {
    let mut pubc = mysql_database("dw_fix_my_pub").await;
    let mut subc = mysql_database("dw_fix_my_sub").await;
    let dir = temp_dir();
    for (seed, guards) in [(1u64, true), (2, false)] {
        let schema = wide_schema();
        let mut case = Case::generate(schema.clone(), 600, 200 + seed, DOMAIN);
        mysql_fit(&mut case);
        let table = format!("t{seed}");
        mysql_load(&mut pubc, &table, &schema, &case.publisher).await;
        mysql_load(&mut subc, &table, &schema, &case.subscriber).await;
        let toml = pair_config(
            &mysql_url("dw_fix_my_pub"),
            &mysql_url("dw_fix_my_sub"),
            &table,
            &table,
            "auto",
            200,
        );
        let rt = driftwatch::runtime::Runtime::new(load_config(dir.path(), &toml)).unwrap();
        let sub = driftwatch::diff::subscriber_of(&rt, "g", &table, None).unwrap();
        assert_eq!(
            driftwatch::diff::default_dialect(&rt, "g", &sub, driftwatch::script::Mode::Fix),
            Dialect::Mysql
        );
        let options = Options {
            dialect: Dialect::Mysql,
            mode: Mode::Fix,
            guards,
            batch_statements: 7,
            redrive_batch_keys: 5,
            counts_in_header: true,
            include_in_flight: false,
            skip_unrepresentable: false,
        };
        let (text, summary) = script_for(load_config(dir.path(), &toml), &options).await;
        assert_eq!(
            summary.missing + summary.extra + summary.changed,
            case.expected.len() as u64
        );
        mysql_apply(
            "dw_fix_my_sub",
            &text,
            &dir.path().join(format!("fix{seed}.sql")),
        );
        let results = run_pass(load_config(dir.path(), &toml)).await;
        let (status, found) = &results[0];
        assert_eq!(status.error, None, "seed {seed}");
        assert!(
            found.is_empty(),
            "seed {seed}, guards {guards}: still differs after the script: {:#?}",
            found.iter().take(5).collect::<Vec<_>>()
        );
        assert_eq!(status.state, State::Converged);
    }
}

/// Every MySQL type compared: decoded exactly, and equal values compare equal in both
/// strategies even where the two sides' column types differ (decimal(10,2) against
/// decimal(12,4), decimal(10,0) against decimal(12,3), datetime against datetime(6), float
/// against double, int against bigint unsigned, enum against varchar); one changed value is
/// reported in both. Temporal columns of different precisions (datetime(3) against
/// datetime(6), time(6) against time(3)) are schema drift, until `temporal_precision` says
/// how to compare them (streamed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mysql_type_decodes_exactly_and_digests_agree() {
    use driftwatch::table::{KeyRange, QueryColumn, TableQuery, TableRef};
    use driftwatch::value::{Decimal, LogicalType, Value};
    use mysql_async::prelude::Queryable;

    let columns = |alt: bool| {
        let pick = |a: &'static str, b: &'static str| if alt { b } else { a };
        [
            ("id", "int"),
            ("u", pick("bigint unsigned", "bigint unsigned")),
            ("i", pick("int", "bigint")),
            ("flag", "tinyint(1)"),
            ("y", "year"),
            ("b1", "bit(1)"),
            ("b12", "bit(12)"),
            ("d", pick("decimal(10,2)", "decimal(12,4)")),
            ("f", pick("float", "double")),
            ("g", "double"),
            ("c", pick("char(5)", "char(5)")),
            ("t", pick("varchar(20)", "text")),
            ("e", pick("enum('a','b c')", "varchar(5)")),
            ("s", "set('x','y')"),
            ("bin", "varbinary(10)"),
            ("dt", "date"),
            ("tm", pick("time(6)", "time(3)")),
            ("ts", pick("datetime(3)", "datetime(6)")),
            ("tz", "timestamp(6) NULL"),
            ("j", "json"),
            ("uu", "uuid"),
            ("ws", pick("datetime", "datetime(6)")),
            ("dz", pick("decimal(10,0)", "decimal(12,3)")),
        ]
    };
    let row1 = "(1, 18446744073709551615, -2147483648, 1, 2155, b'1', b'101010101010', 12.50, 1.5, -0e0, 'ab', 'é ', 'b c', 'y,x', X'00ff', '1000-01-01', '-838:59:59', '2025-06-14 02:00:00.123', '2038-01-19 03:14:07.5', '{\"a\": [1, 2]}', '123e4567-e89b-12d3-a456-426614174000', '2025-06-14 02:00:00', 125)";
    let row2 = "(2, 0, 0, 0, 1901, b'0', b'0', -0.01, -0.25, 1e308, '', '', 'a', '', X'', '9999-12-31', '24:00:00', '0000-00-00 00:00:00', NULL, 'null', NULL, '0000-00-00 00:00:00', -40)";
    let row3 = "(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '12:34:56.5', NULL, NULL, NULL, NULL, NULL, 0)";
    // Held to the end of the test, which drops the databases.
    let mut databases = Vec::new();
    for (db, alt) in [("dw_types_my_pub", false), ("dw_types_my_sub", true)] {
        let mut conn = mysql_database(db).await;
        let cols: Vec<String> = columns(alt)
            .iter()
            .map(|(n, t)| format!("`{n}` {t}"))
            .collect();
        conn.query_drop(format!(
            "SET SESSION sql_mode = ''; CREATE TABLE t ({}, PRIMARY KEY (id)); INSERT INTO t VALUES {row1}, {row2}, {row3}",
            cols.join(", ")
        ))
        .await
        .unwrap();
        databases.push(conn);
    }

    // Decoding, straight from the engine.
    let config = driftwatch::config::DatabaseConfig {
        url: mysql_url("dw_types_my_pub"),
        password: None,
        max_concurrent_queries: 2,
        max_rows_per_second: 0,
        statement_timeout: std::time::Duration::from_secs(30),
        replication: driftwatch::config::Replication::Off,
    };
    let engine = driftwatch::engine::connect("pub", &config).unwrap();
    let table = TableRef::parse("t");
    let schema = engine.introspect(&table).await.unwrap();
    let logical: Vec<_> = schema.columns.iter().map(|c| c.logical).collect();
    use LogicalType::*;
    assert_eq!(
        logical,
        [
            Int,
            Int,
            Int,
            Int,
            Int,
            Bool,
            Int,
            Decimal,
            Float,
            Float,
            Text,
            Text,
            Text,
            Text,
            Bytes,
            Date,
            Time,
            Timestamp,
            TimestampTz,
            Json,
            Uuid,
            Timestamp,
            Decimal
        ]
        .map(Some)
    );
    assert_eq!(schema.primary_key, ["id"]);
    let digits: Vec<(&str, Option<u8>)> = schema
        .columns
        .iter()
        .filter(|c| c.fraction_digits.is_some())
        .map(|c| (c.name.as_str(), c.fraction_digits))
        .collect();
    assert_eq!(
        digits,
        [
            ("tm", Some(6)),
            ("ts", Some(3)),
            ("tz", Some(6)),
            ("ws", Some(0))
        ]
    );
    let q = TableQuery {
        table: table.clone(),
        columns: schema
            .columns
            .iter()
            .map(|c| QueryColumn {
                identity: c.identity,
                fraction_digits: c.fraction_digits,
                ..QueryColumn::new(&c.name, &c.db_type, c.logical.unwrap())
            })
            .collect(),
        key: vec![0],
        filter: None,
        binary_collation: false,
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let n = engine.scan(&q, &KeyRange::default(), tx).await.unwrap();
    assert_eq!(n, 3);
    let rows: Vec<Vec<Value>> = rx.recv().await.unwrap();
    let text: Vec<String> = rows[0].iter().map(|v| v.to_string()).collect();
    assert_eq!(
        text,
        [
            "1",
            "18446744073709551615",
            "-2147483648",
            "1",
            "2155",
            "true",
            "2730",
            "12.5",
            "1.5",
            "0.0",
            "\"ab\"",
            "\"é \"",
            "\"b c\"",
            "\"x,y\"",
            "0x00ff",
            "1000-01-01",
            "\"-838:59:59\"",
            "2025-06-14 02:00:00.123",
            "2038-01-19 03:14:07.5+00",
            "\"{\\\"a\\\": [1, 2]}\"",
            "123e4567-e89b-12d3-a456-426614174000",
            "2025-06-14 02:00:00",
            "125",
        ]
    );
    assert_eq!(rows[1][7], Value::Decimal(Decimal::parse("-0.01").unwrap()));
    assert_eq!(rows[1][16], Value::Time(86_400_000_000_000));
    assert_eq!(rows[1][17], Value::Text("0000-00-00 00:00:00".into()));
    assert_eq!(rows[2][1], Value::Null);
    assert_eq!(rows[2][16], Value::Time(45_296_500_000_000));

    // Equal values, typed differently on each side: converged in both strategies; then
    // one value changed on the subscriber is reported in both.
    let dir = temp_dir();
    // A decimal, then (the decimal put back) a timestamp by one microsecond: pushdown
    // spells a timestamp declared alike by its UNIX_TIMESTAMP.
    let changes = [
        None,
        Some(("d", "UPDATE t SET d = 12.5001 WHERE id = 1")),
        Some((
            "tz",
            "UPDATE t SET d = 12.5, tz = '2038-01-19 03:14:07.500001' WHERE id = 1",
        )),
    ];
    for change in changes {
        let changed = change.is_some();
        if let Some((_, update)) = change {
            mysql_connect("dw_types_my_sub")
                .await
                .query_drop(update)
                .await
                .unwrap();
        }
        for (strategy, precision) in [
            ("pushdown", "exact"),
            ("streamed", "exact"),
            ("streamed", "truncate"),
        ] {
            let toml = config_for(strategy) + &format!("temporal_precision = \"{precision}\"\n");
            let results = run_pass(load_config(dir.path(), &toml)).await;
            let (status, found) = &results[0];
            assert_eq!(status.error, None, "{strategy}");
            let mismatched: Vec<&str> = status
                .schema
                .type_mismatch
                .iter()
                .map(|m| m.split(':').next().unwrap())
                .collect();
            let want: &[&str] = if precision == "exact" {
                &["tm", "ts", "ws"]
            } else {
                &[]
            };
            assert_eq!(mismatched, want, "{precision}: {:?}", status.schema);
            // The digests themselves agree: a chunk that differs only in how each side
            // spells equal values would be localized (and then found equal) all the same.
            assert_eq!(
                status.chunks_mismatched,
                u64::from(changed),
                "{strategy}, changed: {changed}"
            );
            let want: std::collections::BTreeSet<_> = match change {
                Some((column, _)) => [(
                    vec!["1".to_string()],
                    "changed".to_string(),
                    vec![column.to_string()],
                )]
                .into(),
                None => Default::default(),
            };
            assert_eq!(*found, want, "{strategy}, changed: {changed}");
        }
    }
}

/// Rows whose values a plain join of the columns' text would confuse: the separator moved
/// from one column into the next, a short text spelling a long text's MD5, a text `~`
/// against NULL; and the table has a column named `b`, as the bucket's alias is. The
/// pushdown digest tells each pair apart: every row is counted, the chunk mismatches and
/// each row is reported, while the row that is the same on both sides is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushdown_digests_tell_apart_rows_a_plain_join_confuses() {
    use mysql_async::prelude::Queryable;

    // Longer than the 255 characters hashed inline.
    let long = "a text longer than what is hashed inline ".repeat(7);
    // Held to the end of the test, which drops the databases.
    let mut databases = Vec::new();
    for (db, rows) in [
        (
            "dw_join_my_pub",
            "(1, 'a#b', 'c'), (2, MD5(?), 'x'), (3, '~', 'y'), (4, 'same', 'same')",
        ),
        (
            "dw_join_my_sub",
            "(1, 'a', 'b#c'), (2, ?, 'x'), (3, NULL, 'y'), (4, 'same', 'same')",
        ),
    ] {
        let mut conn = mysql_database(db).await;
        conn.query_drop("CREATE TABLE t (id int PRIMARY KEY, a text NULL, b varchar(200) NULL)")
            .await
            .unwrap();
        conn.exec_drop(format!("INSERT INTO t VALUES {rows}"), (long.as_str(),))
            .await
            .unwrap();
        databases.push(conn);
    }
    let dir = temp_dir();
    let toml = pair_config(
        &mysql_url("dw_join_my_pub"),
        &mysql_url("dw_join_my_sub"),
        "t",
        "t",
        "pushdown",
        1000,
    );
    let results = run_pass(load_config(dir.path(), &toml)).await;
    let (status, found) = &results[0];
    assert_eq!(status.error, None);
    // Every row counted: the table's column `b` must not be taken for the bucket.
    assert_eq!(status.publisher_rows, Some(4));
    assert!(status.chunks_mismatched >= 1);
    let changed = |id: &str, columns: &[&str]| {
        (
            vec![id.to_string()],
            "changed".to_string(),
            columns.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        )
    };
    let want: std::collections::BTreeSet<_> = [
        changed("1", &["a", "b"]),
        changed("2", &["a"]),
        changed("3", &["a"]),
    ]
    .into();
    assert_eq!(*found, want);
}

/// Rows that the peers' per-row scheme confuses: `BIT_XOR(CRC32(CONCAT_WS('#', ...)))`
/// (pt-table-checksum's and sync_diff_inspector's) is linear, so two changed rows whose
/// texts differ from the publisher's by the same bits cancel out, and the server itself
/// shows both sides' checksums equal. The pushdown digest tells the chunks apart and both
/// rows are reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushdown_digests_tell_apart_rows_a_crc32_xor_confuses() {
    // 'a' ^ '`' = 'c' ^ 'b' = 0x01: the two rows' texts change by the same bits.
    weaker_checksum_collides_but_each_row_is_reported(
        ("dw_crcxor_my_pub", "dw_crcxor_my_sub"),
        "SELECT BIT_XOR(CRC32(CONCAT_WS('#', id, a))) FROM t",
        [
            "(1, 'ab'), (2, 'cd'), (3, 'same')",
            "(1, '`b'), (2, 'bd'), (3, 'same')",
        ],
        &["1", "2"],
    )
    .await;
}

/// Rows that weaker uses of the same CRCs confuse, each shown colliding by the server
/// itself: `plumless` and `buckeroo` have the same CRC-32 (so a 32-bit CRC per row cannot
/// tell them apart), and two rows given the same edit (the last letter's low bit) whose
/// texts' CRC-32 and CRC-32C, as one 64-bit number each, differ in every bit the edit
/// flips, so that summing those numbers cancels the edit (found by search over the row
/// text driftwatch hashes; a sum of a linear hash cancels so for about one pair of rows in
/// 2^30 given this edit). The pushdown digest (64 bits of each row's SHA-256, summed)
/// reports every row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushdown_digests_tell_apart_rows_a_linear_crc_sum_confuses() {
    let databases = ("dw_crcsum_my_pub", "dw_crcsum_my_sub");
    weaker_checksum_collides_but_each_row_is_reported(
        databases,
        "SELECT SUM(CRC32(a)) FROM t",
        [
            "(1, 'plumless'), (2, 'same')",
            "(1, 'buckeroo'), (2, 'same')",
        ],
        &["1"],
    )
    .await;
    // The row text driftwatch hashes for this table.
    let text = "CONCAT_WS('#', id, CONCAT(LENGTH(a), ':', a))";
    weaker_checksum_collides_but_each_row_is_reported(
        databases,
        &format!("SELECT SUM(CRC32({text}) << 32 | CRC32C({text})) FROM t"),
        [
            "(1, 'eqxedeqs'), (2, 'hdjqhvsk'), (3, 'same')",
            "(1, 'eqxedeqr'), (2, 'hdjqhvsj'), (3, 'same')",
        ],
        &["1", "2"],
    )
    .await;
}

/// Loads `t (id, a)` with `rows` into the two databases, checks that the server's own
/// `weaker` checksum of `t` is the same on both, then that a pushdown pass mismatches
/// and reports exactly the `changed` ids, each as a changed `a`.
async fn weaker_checksum_collides_but_each_row_is_reported(
    (pub_db, sub_db): (&str, &str),
    weaker: &str,
    rows: [&str; 2],
    changed: &[&str],
) {
    use mysql_async::prelude::Queryable;

    let mut sums = Vec::new();
    // The databases are dropped when these guards go, also if the test fails.
    let mut databases = Vec::new();
    for (db, rows) in [pub_db, sub_db].into_iter().zip(rows) {
        let mut conn = mysql_database(db).await;
        conn.query_drop(format!(
            "CREATE TABLE t (id int PRIMARY KEY, a varchar(20) NOT NULL); INSERT INTO t VALUES {rows}"
        ))
        .await
        .unwrap();
        let sum: Option<String> = conn
            .query_first(format!("SELECT CAST(({weaker}) AS CHAR)"))
            .await
            .unwrap();
        sums.push(sum.unwrap());
        databases.push(conn);
    }
    assert_eq!(sums[0], sums[1], "{weaker} must collide here");
    let dir = temp_dir();
    let toml = pair_config(
        &mysql_url(pub_db),
        &mysql_url(sub_db),
        "t",
        "t",
        "pushdown",
        1000,
    );
    let results = run_pass(load_config(dir.path(), &toml)).await;
    let (status, found) = &results[0];
    assert_eq!(status.error, None);
    assert!(status.chunks_mismatched >= 1, "{weaker}");
    let want: std::collections::BTreeSet<_> = changed
        .iter()
        .map(|id| {
            (
                vec![id.to_string()],
                "changed".to_string(),
                vec!["a".to_string()],
            )
        })
        .collect();
    assert_eq!(*found, want, "{weaker}");
}

fn config_for(strategy: &str) -> String {
    pair_config(
        &mysql_url("dw_types_my_pub"),
        &mysql_url("dw_types_my_sub"),
        "t",
        "t",
        strategy,
        1000,
    )
}

/// Shutdown cancels a query in flight (KILL QUERY from a connection of its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_all_kills_the_running_query() {
    use driftwatch::table::{KeyRange, QueryColumn, TableQuery, TableRef};
    use driftwatch::value::LogicalType;
    use mysql_async::prelude::Queryable;

    let mut conn = mysql_database("dw_cancel_my").await;
    conn.query_drop("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
        .await
        .unwrap();
    let config = driftwatch::config::DatabaseConfig {
        url: mysql_url("dw_cancel_my"),
        password: None,
        max_concurrent_queries: 2,
        max_rows_per_second: 0,
        statement_timeout: std::time::Duration::from_secs(60),
        replication: driftwatch::config::Replication::Off,
    };
    let engine = driftwatch::engine::connect("db", &config).unwrap();
    let q = TableQuery {
        table: TableRef::parse("t"),
        columns: vec![QueryColumn::new("id", "int", LogicalType::Int)],
        key: vec![0],
        filter: Some("SLEEP(20) = 0".into()),
        binary_collation: false,
    };
    let started = std::time::Instant::now();
    let scan = {
        let (engine, q) = (engine.clone(), q.clone());
        tokio::spawn(async move {
            let (tx, _rx) = tokio::sync::mpsc::channel(4);
            engine.scan(&q, &KeyRange::default(), tx).await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    engine.cancel_all().await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), scan)
        .await
        .expect("the query ends once killed");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// The databases a test makes are dropped when it is done, also when it fails: a test
/// run leaves no dw_* database behind on the shared servers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_test_leaves_no_database_behind() {
    let failed = tokio::spawn(async {
        let _pg = pg_database("dw_guard_pg").await;
        let _my = mysql_database("dw_guard_my").await;
        assert!(
            pg_database_exists("dw_guard_pg").await && mysql_database_exists("dw_guard_my").await
        );
        panic!("this test fails on purpose, with its databases made");
    })
    .await;
    assert!(failed.unwrap_err().is_panic());
    assert!(!pg_database_exists("dw_guard_pg").await);
    assert!(!mysql_database_exists("dw_guard_my").await);
}
