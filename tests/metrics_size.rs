//! The size of a /metrics scrape of 1,000 converged tables, served by the real service over
//! SQLite files: it must stay under 1 MB, so that scraping a large deployment every 15 s
//! stays cheap for both sides.

use driftwatch_tests as common;

use std::time::{Duration, Instant};

use common::*;

/// Tables in the config, each with one subscriber.
const TABLES: usize = 1_000;
/// What a scrape of them may weigh on the wire (gzip, as Prometheus asks for it; 43 KB
/// measured).
const MAX_GZIP_BYTES: usize = 100_000;
/// And uncompressed, as Prometheus holds it while parsing (788 KB measured).
const MAX_BYTES: usize = 1_000_000;
/// Series per converged table and subscriber: row counts of both sides, the raw row count
/// difference, matched chunks, converged, last success, last duration, passes by result.
/// The problem series (divergent rows by kind and status, mismatched chunks, the confirmed
/// row count difference, a schema mismatch) exist only while they count something.
const MAX_SAMPLES_PER_TABLE: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_of_1000_tables_is_bounded_and_compressed() {
    let dir = temp_dir();
    let config = driftwatch::demo::many_tables(dir.path(), TABLES).unwrap();
    let config = driftwatch::config::load(&config).unwrap();
    let service = Served::start(config).await;
    let base = service.base.clone();
    // Every table's first pass published: every per-table series exists.
    let deadline = Instant::now() + Duration::from_secs(300);
    let body = loop {
        let body = reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let passed = body
            .lines()
            .filter(|l| l.starts_with("driftwatch_validations_total{"))
            .count();
        if passed == TABLES {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "{passed} of {TABLES} tables passed"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let samples = body.lines().filter(|l| !l.starts_with('#')).count();
    let gzip = reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gzip.headers()["content-encoding"], "gzip");
    let compressed = gzip.bytes().await.unwrap().len();
    eprintln!(
        "/metrics of {TABLES} tables: {} bytes, {compressed} gzip, {samples} samples",
        body.len()
    );
    assert!(
        samples <= TABLES * MAX_SAMPLES_PER_TABLE + 100,
        "{samples} samples for {TABLES} tables"
    );
    assert!(body.len() < MAX_BYTES, "{} bytes uncompressed", body.len());
    assert!(compressed < MAX_GZIP_BYTES, "{compressed} bytes gzip");
    service.stop(Duration::from_secs(15)).await;
}
