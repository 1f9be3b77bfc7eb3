//! The core property: over random tables and random mutations (insert, delete, update;
//! NULLs, unicode, extremes, NaN, long text, binary), a pass reports exactly the mutated
//! keys, with the right kind and changed columns, in both digest strategies and across
//! chunk boundaries and bisection; equal values spelled differently are not reported.
//!
//! Seeds are fixed so that a failure names its case; DRIFTWATCH_PROPTEST_CASES runs more.

use driftwatch_tests as common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pairs_report_exactly_the_mutated_rows() {
    let (pubc, subc) = (
        pg_database("dw_prop_pg_pub").await,
        pg_database("dw_prop_pg_sub").await,
    );
    let dir = temp_dir();
    for seed in 0..proptest_cases() {
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
                let toml = pair_config(
                    &pg_url("dw_prop_pg_pub"),
                    &pg_url("dw_prop_pg_sub"),
                    &format!("public.{table}"),
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
    for seed in 0..proptest_cases() {
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
                let toml = pair_config(
                    &sqlite_url(&pub_db),
                    &sqlite_url(&sub_db),
                    &table,
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
    for seed in 0..proptest_cases() {
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
            let toml = pair_config(
                &pg_url("dw_prop_cross_pub"),
                &sqlite_url(&sub_db),
                &format!("public.{table}"),
                &table,
                "auto",
                chunk_rows,
            );
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
