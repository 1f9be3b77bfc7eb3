//! `driftwatch check` against the service: the same differences, the same confirmation,
//! whatever the cap on kept rows (max_diff_rows); and the rows a check reads to
//! localize its differences, in either strategy.

use std::time::{Duration, Instant};

use driftwatch_tests::{pair_config, sqlite_url, write_config};

fn pair(dir: &std::path::Path) -> std::path::PathBuf {
    for (name, subscriber) in [("pub.db", false), ("sub.db", true)] {
        let c = rusqlite::Connection::open(dir.join(name)).unwrap();
        c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
            .unwrap();
        for id in 1..=1000 {
            // 25 changed rows, spread over the table.
            let v = if subscriber && id % 40 == 0 { -id } else { id };
            c.execute("INSERT INTO t VALUES (?1, ?2)", [id, v]).unwrap();
        }
    }
    let config = dir.join("driftwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[defaults]\ninterval = \"1h\"\nconfirm_after = \"1s\"\nmax_diff_rows = 5\n\
             [databases.pub]\nurl = \"sqlite://{}\"\n[databases.sub]\nurl = \"sqlite://{}\"\n\
             [[groups]]\nname = \"g\"\npublisher = \"pub\"\nsubscribers = [\"sub\"]\n\
             [[groups.tables]]\nname = \"t\"\n",
            dir.join("pub.db").display(),
            dir.join("sub.db").display()
        ),
    )
    .unwrap();
    config
}

#[tokio::test(flavor = "multi_thread")]
async fn check_and_serve_confirm_the_same_rows_past_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let config = pair(dir.path());
    let out = std::process::Command::new(driftwatch_tests::bin())
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("25 changed (25 confirmed, 0 pending, 0 in flight)"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("waiting to re-check differences not confirmed yet"),
        "check says what it waits for: {stderr}"
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let cfg = driftwatch::config::load(&config).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let svc = tokio::spawn(driftwatch::serve(cfg, listener, async {
        let _ = stopped.await;
    }));
    let start = Instant::now();
    loop {
        let text = match reqwest::get(format!("{base}/api/v1/status")).await {
            Ok(r) => r.text().await.unwrap(),
            Err(_) => String::new(),
        };
        if let Ok(j) = serde_json::from_str::<serde_json::Value>(&text) {
            let p = &j["tables"][0];
            if p["confirmed"]["changed"] == 25 {
                assert_eq!(p["pending"]["changed"], 0, "{p}");
                break;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(30), "serve: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(());
    svc.await.unwrap().unwrap();
}

/// A pass localizes a difference by its bucket's sub-buckets: a pushdown pass digests a
/// mismatched bucket again in them, a streamed pass sums its rows in them from the start.
/// Either reads the few rows around each sparse difference, not the 512-row buckets (1,536
/// rows each: the publisher's side twice, the subscriber's once), and a bucket where most
/// rows differ is read whole, every row still reported.
#[test]
fn a_pushdown_pass_reads_only_the_sub_buckets_around_a_difference() {
    reads_only_the_sub_buckets_around_a_difference("pushdown", 0);
}

/// The streamed pass reads every row of both sides (8,191 each) to digest them, and
/// beyond those only what the pushdown pass reads.
#[test]
fn a_streamed_pass_reads_only_the_sub_buckets_around_a_difference() {
    reads_only_the_sub_buckets_around_a_difference("streamed", 2 * 8191);
}

fn reads_only_the_sub_buckets_around_a_difference(strategy: &str, digest_rows: u64) {
    let dir = tempfile::tempdir().unwrap();
    for (name, subscriber) in [("pub.db", false), ("sub.db", true)] {
        let mut c = rusqlite::Connection::open(dir.path().join(name)).unwrap();
        c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            .unwrap();
        let tx = c.transaction().unwrap();
        for id in 1..=8192i64 {
            let v = match id {
                // Sparse: one changed, one missing, one extra, in buckets of their own.
                1000 if subscriber => "changed".to_string(),
                3000 if subscriber => continue,
                5000 if !subscriber => continue,
                // Dense: most of one bucket changed.
                6200..=6600 if subscriber => format!("{id} changed"),
                _ => id.to_string(),
            };
            tx.execute("INSERT INTO t VALUES (?1, ?2)", rusqlite::params![id, v])
                .unwrap();
        }
        tx.commit().unwrap();
    }
    let toml = pair_config(
        &sqlite_url(&dir.path().join("pub.db")),
        &sqlite_url(&dir.path().join("sub.db")),
        "t",
        "t",
        strategy,
        10_000,
    );
    let config = write_config(dir.path(), &toml);
    let out = std::process::Command::new(driftwatch_tests::bin())
        .args(["check", "--json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let t = &report["tables"][0];
    assert_eq!(
        (&t["missing"], &t["extra"], &t["changed"]),
        (&1.into(), &1.into(), &402.into()),
        "{t}"
    );
    let fetched: u64 = report["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["rows_fetched"].as_u64().unwrap())
        .sum();
    // The dense bucket: at most 512 rows read three times; each sparse difference: a
    // 16-row sub-bucket read three times. Reading the sparse differences' buckets whole
    // would fetch 4,608 rows more.
    assert!(
        fetched <= digest_rows + 3 * 512 + 3 * 3 * 16,
        "{strategy}: rows fetched: {fetched}"
    );
}
