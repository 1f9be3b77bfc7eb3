//! Temporal columns whose two sides hold different fractional-second precisions: a
//! PostgreSQL timestamp(6) replicated into MariaDB datetime(3), and a PostgreSQL
//! timestamp(3) into timestamp(6). By default the column is schema drift and not compared;
//! with `temporal_precision = "round"` or `"truncate"` it is compared at the coarser
//! precision and exactly the real differences are found; and the fix scripts written from
//! such a comparison converge the pair.

use driftwatch_tests as common;

use std::collections::BTreeSet;

use common::*;
use driftwatch::compare::schema::Resolved;
use driftwatch::script::{Dialect, Mode, Options};
use driftwatch::status::{PairStatus, State};
use mysql_async::prelude::Queryable;

type Found = BTreeSet<(Vec<String>, String, Vec<String>)>;

/// A one-table config with the table's `temporal_precision` (and strategy).
fn config(pub_url: &str, sub_url: &str, strategy: &str, precision: &str) -> String {
    pair_config(pub_url, sub_url, "public.t", "t", strategy, 100)
        + &format!("temporal_precision = \"{precision}\"\n")
}

fn changed(rows: &[(&str, &[&str])]) -> Found {
    rows.iter()
        .map(|(k, cols)| {
            (
                vec![k.to_string()],
                "changed".to_string(),
                cols.iter().map(|c| c.to_string()).collect(),
            )
        })
        .collect()
}

async fn pass(toml: &str) -> (PairStatus, Found) {
    let dir = temp_dir();
    run_pass(load_config(dir.path(), toml)).await.remove(0)
}

/// The `at` and `opens` literals of one row.
type Values = [&'static str; 2];

/// The publisher's rows (id, `at` timestamp(6), `opens` time(6)), and the copy a replica
/// that rounds, and one that truncates, store at 3 digits. Row 6 is the one real
/// difference: its copy is a millisecond off, whichever way the replica narrows.
const ROWS: &[(i32, Values, Values, Values)] = &[
    (
        1,
        ["'2025-06-14 02:00:00.123456'", "'08:00:00.000400'"],
        ["'2025-06-14 02:00:00.123'", "'08:00:00'"],
        ["'2025-06-14 02:00:00.123'", "'08:00:00'"],
    ),
    // A half below the precision: rounded up, or dropped.
    (
        2,
        ["'2025-06-14 02:00:00.1235'", "'08:00:00.0005'"],
        ["'2025-06-14 02:00:00.124'", "'08:00:00.001'"],
        ["'2025-06-14 02:00:00.123'", "'08:00:00'"],
    ),
    // Rounding carries into the next day and year, and a time to 24:00:00.
    (
        3,
        ["'2025-12-31 23:59:59.9999'", "'23:59:59.999999'"],
        ["'2026-01-01 00:00:00'", "'24:00:00'"],
        ["'2025-12-31 23:59:59.999'", "'23:59:59.999'"],
    ),
    (4, ["NULL", "NULL"], ["NULL", "NULL"], ["NULL", "NULL"]),
    // Before 2000 too, a half goes to the later time.
    (
        5,
        ["'1999-12-31 23:59:59.0005'", "'00:00:00'"],
        ["'1999-12-31 23:59:59.001'", "'00:00:00'"],
        ["'1999-12-31 23:59:59'", "'00:00:00'"],
    ),
    (
        6,
        ["'2025-06-14 02:00:00.500400'", "'12:00:00'"],
        ["'2025-06-14 02:00:00.501'", "'12:00:00'"],
        ["'2025-06-14 02:00:00.501'", "'12:00:00'"],
    ),
];

/// The real difference, found whichever way the copy was narrowed.
fn real_difference() -> Found {
    changed(&[("6", &["at"])])
}

/// Rows 2, 3 and 5 narrowed the other way: what a comparison with the wrong mode finds.
fn wrong_mode() -> Found {
    changed(&[
        ("2", &["at", "opens"]),
        ("3", &["at", "opens"]),
        ("5", &["at"]),
        ("6", &["at"]),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_timestamp6_into_mariadb_datetime3() {
    let pubc = pg_database("dw_cross_pg_pub").await;
    let mut subc = mysql_database("dw_cross_my_sub").await;
    let values: Vec<String> = ROWS
        .iter()
        .map(|(id, [at, opens], ..)| format!("({id}, {at}, {opens}, {})", id * 10))
        .collect();
    pubc.batch_execute(&format!(
        "CREATE TABLE t (id int PRIMARY KEY, at timestamp(6), opens time(6), qty int); INSERT INTO t VALUES {}",
        values.join(", ")
    ))
    .await
    .unwrap();
    subc.query_drop(
        "CREATE TABLE t (id int PRIMARY KEY, at datetime(3) NULL, opens time(3) NULL, qty int)",
    )
    .await
    .unwrap();
    let (pub_url, sub_url) = (pg_url("dw_cross_pg_pub"), mysql_url("dw_cross_my_sub"));

    for (mode, other, copy) in [("round", "truncate", 0), ("truncate", "round", 1)] {
        let values: Vec<String> = ROWS
            .iter()
            .map(|(id, _, rounded, truncated)| {
                let [at, opens] = [rounded, truncated][copy];
                format!("({id}, {at}, {opens}, {})", id * 10)
            })
            .collect();
        subc.query_drop(format!(
            "DELETE FROM t; INSERT INTO t VALUES {}",
            values.join(", ")
        ))
        .await
        .unwrap();

        // By default the precision loss is schema drift, and those columns are not compared.
        let (status, found) = pass(&config(&pub_url, &sub_url, "auto", "exact")).await;
        assert_eq!(status.error, None);
        assert_eq!(status.compared_columns, ["id", "qty"]);
        assert_eq!(
            status.schema.type_mismatch,
            [
                "at: timestamp(6) without time zone vs datetime(3): 6 against 3 fractional-second digits; set temporal_precision = \"round\" or \"truncate\" to compare them at 3",
                "opens: time(6) without time zone vs time(3): 6 against 3 fractional-second digits; set temporal_precision = \"round\" or \"truncate\" to compare them at 3",
            ]
        );
        assert!(status.schema_mismatch);
        assert!(found.is_empty(), "{found:?}");

        // At the coarser precision, the way the copy was made: only the real difference.
        let (status, found) = pass(&config(&pub_url, &sub_url, "auto", mode)).await;
        assert_eq!(status.error, None, "{mode}");
        assert_eq!(status.compared_columns, ["id", "at", "opens", "qty"]);
        assert!(!status.schema_mismatch, "{mode}: {:?}", status.schema);
        assert_eq!(status.strategy, Some(Resolved::Streamed));
        assert_eq!(found, real_difference(), "{mode}");

        // The other way, the halves and the carries differ too.
        let (_, found) = pass(&config(&pub_url, &sub_url, "streamed", other)).await;
        assert_eq!(found, wrong_mode(), "{mode} copy compared with {other}");
    }

    // A fix script from a rounded comparison writes the publisher's values at the
    // compared precision: MariaDB, which truncates what it is given, then stores the
    // rounded values (the original .1235 would become .123 there, and differ again).
    subc.query_drop("DELETE FROM t").await.unwrap();
    let rounded: Vec<String> = ROWS
        .iter()
        .filter(|r| r.0 != 2)
        .map(|(id, _, [at, opens], _)| format!("({id}, {at}, {opens}, {})", id * 10))
        .collect();
    subc.query_drop(format!("INSERT INTO t VALUES {}", rounded.join(", ")))
        .await
        .unwrap();
    let toml = config(&pub_url, &sub_url, "auto", "round");
    let dir = temp_dir();
    let (text, summary) = script_for(
        load_config(dir.path(), &toml),
        &Options {
            dialect: Dialect::Mysql,
            mode: Mode::Fix,
            guards: true,
            batch_statements: 10,
            redrive_batch_keys: 10,
            counts_in_header: true,
            include_in_flight: false,
            skip_unrepresentable: false,
        },
    )
    .await;
    assert_eq!((summary.missing, summary.changed), (1, 1), "{text}");
    assert!(text.contains("'2025-06-14 02:00:00.124'"), "{text}");
    assert!(
        text.contains("-- Compared and written at the coarser precision (temporal_precision): at (rounded to 3 fractional digits), opens (rounded to 3 fractional digits)\n"),
        "{text}"
    );
    let file = dir.path().join("fix.sql");
    std::fs::write(&file, &text).unwrap();
    let args = mysql_client_args("dw_cross_my_sub");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_client(mysql_client(), &args, &file);
    assert!(out.contains("driftwatch: 0 statements skipped"), "{out}");
    let (status, found) = pass(&toml).await;
    assert!(found.is_empty(), "{found:?}");
    assert_eq!(status.state, State::Converged);
}

/// The subscriber is the finer side: its values are compared rounded to the publisher's
/// milliseconds, and a guarded script matches each row by every value that compares equal
/// to what the diff saw, so it applies where the row is unchanged and skips it where the
/// row moved since.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_timestamp3_into_timestamp6_and_its_guarded_script() {
    let pubc = pg_database("dw_cross_ms_pub").await;
    let subc = pg_database("dw_cross_us_sub").await;
    // (id, publisher's at and qty, subscriber's at and qty)
    let rows = [
        (1, "02:00:00.123", 1, "02:00:00.123456", 1),
        (2, "02:00:00.124", 2, "02:00:00.1235", 2),
        (3, "02:00:00.123", 3, "02:00:00.1229", 30),
        (4, "2026-01-01 00:00:00", 4, "2025-12-31 23:59:59.9996", 4),
        (5, "02:00:00.5", 5, "02:00:00.5015", 5),
        (6, "02:00:00.8", 6, "02:00:00.8004", 60),
    ];
    let at = |t: &str| {
        if t.contains('-') {
            format!("'{t}'")
        } else {
            format!("'2025-06-14 {t}'")
        }
    };
    // The subscriber's timestamp holds PostgreSQL's default of 6 digits.
    for (client, ty, side) in [(&pubc, "timestamp(3)", 0), (&subc, "timestamp", 1)] {
        let values: Vec<String> = rows
            .iter()
            .map(|r| {
                let (t, q) = if side == 0 { (r.1, r.2) } else { (r.3, r.4) };
                format!("({}, {}, {q})", r.0, at(t))
            })
            .collect();
        client
            .batch_execute(&format!(
                "CREATE TABLE t (id int PRIMARY KEY, at {ty}, qty int); INSERT INTO t VALUES {}",
                values.join(", ")
            ))
            .await
            .unwrap();
    }
    let (pub_url, sub_url) = (pg_url("dw_cross_ms_pub"), pg_url("dw_cross_us_sub"));

    let (status, found) = pass(&config(&pub_url, &sub_url, "auto", "exact")).await;
    assert_eq!(status.compared_columns, ["id", "qty"]);
    assert_eq!(status.strategy, Some(Resolved::Pushdown));
    assert_eq!(found, changed(&[("3", &["qty"]), ("6", &["qty"])]));

    // A database hashes what it holds: pushdown cannot compare at a coarser precision.
    let (status, _) = pass(&config(&pub_url, &sub_url, "pushdown", "round")).await;
    let error = status.error.unwrap_or_default();
    assert!(
        error.contains("cannot compare column at at 3 fractional-second digits"),
        "{error}"
    );

    let toml = config(&pub_url, &sub_url, "auto", "round");
    let (status, found) = pass(&toml).await;
    assert_eq!(status.error, None);
    assert_eq!(status.strategy, Some(Resolved::Streamed));
    let want = changed(&[("3", &["qty"]), ("5", &["at"]), ("6", &["qty"])]);
    assert_eq!(found, want);

    let dir = temp_dir();
    let (text, _) = script_for(
        load_config(dir.path(), &toml),
        &Options {
            dialect: Dialect::Postgres,
            mode: Mode::Fix,
            guards: true,
            batch_statements: 10,
            redrive_batch_keys: 10,
            counts_in_header: true,
            include_in_flight: false,
            skip_unrepresentable: false,
        },
    )
    .await;
    // Row 6 moves on after the diff (past what rounds to the value the diff saw).
    subc.batch_execute("UPDATE t SET at = '2025-06-14 02:00:00.8006' WHERE id = 6")
        .await
        .unwrap();
    let file = dir.path().join("fix.sql");
    std::fs::write(&file, &text).unwrap();
    let out = run_client(
        "psql",
        &["-X", "-q", "-v", "ON_ERROR_STOP=1", &sub_url],
        &file,
    );
    assert!(
        out.contains("driftwatch: 1 statements skipped"),
        "{out}\n{text}"
    );
    let (_, found) = pass(&toml).await;
    assert_eq!(found, changed(&[("6", &["at", "qty"])]), "{text}");
    // The rows updated keep their finer values where those compared equal.
    let kept: String = subc
        .query_one("SELECT at::text FROM t WHERE id = 3", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, "2025-06-14 02:00:00.1229");
}
