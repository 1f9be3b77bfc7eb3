//! The core property: over random tables and random mutations (insert, delete, update;
//! NULLs, unicode, extremes, NaN, long text, binary), a pass reports exactly the mutated
//! keys, with the right kind and changed columns, in both digest strategies and across
//! chunk boundaries and bisection; equal values spelled differently are not reported.
//!
//! Seeds are fixed so that a failure names its case; DRIFTWATCH_PROPTEST_CASES runs more.

mod common;

use common::*;
use driftwatch::status::State;
use rand::Rng;

fn cases() -> u64 {
    std::env::var("DRIFTWATCH_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

fn config(pub_url: &str, sub_url: &str, table: &str, strategy: &str, chunk_rows: u64) -> String {
    format!(
        r#"
[defaults]
confirm_after = "0s"
chunk_rows = {chunk_rows}
max_diff_rows = 1000000

[databases.pub]
url = "{pub_url}"
[databases.sub]
url = "{sub_url}"

[[groups]]
name = "g"
publisher = "pub"
subscribers = ["sub"]

[[groups.tables]]
name = "{table}"
strategy = "{strategy}"
"#
    )
}

/// The two table shapes: an integer-led composite key in many small chunks, and a text
/// key in one chunk larger than a fetch, so that localizing must bisect.
fn shapes(seed: u64) -> [(Schema, usize, u64); 2] {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    [
        (wide_schema(), rng.random_range(200..1500), 150),
        (text_key_schema(), 3000, 5000),
    ]
}

async fn assert_exact(toml: String, dir: &std::path::Path, case: &Case, what: &str) {
    let results = run_pass(load_config(dir, &toml)).await;
    let (status, found) = &results[0];
    assert_eq!(status.error, None, "{what}");
    let expected = sorted(case.expected.clone());
    if *found != expected {
        let missed: Vec<_> = expected.difference(found).take(5).collect();
        let wrong: Vec<_> = found.difference(&expected).take(5).collect();
        panic!("{what}: {} expected, {} found\nnot reported: {missed:#?}\nwrongly reported: {wrong:#?}", expected.len(), found.len());
    }
    let count = |kind: &str| case.expected.iter().filter(|(_, k, _)| k == kind).count() as u64;
    let total = status.confirmed;
    assert_eq!(
        (total.missing, total.extra, total.changed),
        (count("missing"), count("extra"), count("changed")),
        "{what}"
    );
    let want = if case.expected.is_empty() {
        State::Converged
    } else {
        State::Divergent
    };
    assert_eq!(status.state, want, "{what}");
    assert_eq!(
        status.publisher_rows,
        Some(case.publisher.len() as u64),
        "{what}"
    );
    assert_eq!(
        status.subscriber_rows,
        Some(case.subscriber.len() as u64),
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pairs_report_exactly_the_mutated_rows() {
    let (pubc, subc) = (
        pg_database("dw_prop_pg_pub").await,
        pg_database("dw_prop_pg_sub").await,
    );
    let dir = temp_dir();
    for seed in 0..cases() {
        for (si, (schema, rows, chunk_rows)) in shapes(seed).into_iter().enumerate() {
            let case = Case::generate(
                schema.clone(),
                rows,
                seed * 10 + si as u64,
                Domain {
                    portable: false,
                    sqlite: false,
                },
            );
            let table = format!("t{seed}_{si}");
            pg_load(&pubc, &table, &schema, &case.publisher).await;
            pg_load(&subc, &table, &schema, &case.subscriber).await;
            pg_rewrite(&subc, &table, &schema, &case.rewrites).await;
            for strategy in ["pushdown", "streamed"] {
                let toml = config(
                    &pg_url("dw_prop_pg_pub"),
                    &pg_url("dw_prop_pg_sub"),
                    &format!("public.{table}"),
                    strategy,
                    chunk_rows,
                );
                assert_exact(
                    toml,
                    dir.path(),
                    &case,
                    &format!("PostgreSQL seed {seed} shape {si} {strategy}"),
                )
                .await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_pairs_report_exactly_the_mutated_rows() {
    let dir = temp_dir();
    let (pub_db, sub_db) = (dir.path().join("pub.db"), dir.path().join("sub.db"));
    for seed in 0..cases() {
        for (si, (schema, rows, chunk_rows)) in shapes(seed).into_iter().enumerate() {
            let case = Case::generate(
                schema.clone(),
                rows,
                seed * 10 + si as u64 + 5,
                Domain {
                    portable: false,
                    sqlite: true,
                },
            );
            let table = format!("t{seed}_{si}");
            sqlite_load(&pub_db, &table, &schema, &case.publisher);
            sqlite_load(&sub_db, &table, &schema, &case.subscriber);
            sqlite_rewrite(&sub_db, &table, &schema, &case.rewrites);
            for strategy in ["pushdown", "streamed"] {
                let toml = config(
                    &sqlite_url(&pub_db),
                    &sqlite_url(&sub_db),
                    &table,
                    strategy,
                    chunk_rows,
                );
                assert_exact(
                    toml,
                    dir.path(),
                    &case,
                    &format!("SQLite seed {seed} shape {si} {strategy}"),
                )
                .await;
            }
        }
    }
}

/// A PostgreSQL publisher and a SQLite subscriber (an edge copy), compared streamed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_to_sqlite_reports_exactly_the_mutated_rows() {
    let pubc = pg_database("dw_prop_cross_pub").await;
    let dir = temp_dir();
    let sub_db = dir.path().join("edge.db");
    for seed in 0..cases() {
        for (si, (schema, rows, chunk_rows)) in shapes(seed).into_iter().enumerate() {
            let case = Case::generate(
                schema.clone(),
                rows,
                seed * 10 + si as u64 + 7,
                Domain {
                    portable: true,
                    sqlite: true,
                },
            );
            let table = format!("t{seed}_{si}");
            pg_load(&pubc, &table, &schema, &case.publisher).await;
            sqlite_load(&sub_db, &table, &schema, &case.subscriber);
            let toml = config(
                &pg_url("dw_prop_cross_pub"),
                &sqlite_url(&sub_db),
                &format!("public.{table}"),
                "auto",
                chunk_rows,
            )
            .replace(
                "name = \"public.",
                "subscriber_name = \"TABLE\"\nname = \"public.",
            )
            .replace("TABLE", &table);
            assert_exact(
                toml,
                dir.path(),
                &case,
                &format!("PostgreSQL→SQLite seed {seed} shape {si}"),
            )
            .await;
        }
    }
}
