//! `driftwatch check` against the service: the same differences, the same confirmation,
//! whatever the cap on kept rows (max_diff_rows).

use std::time::{Duration, Instant};

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
