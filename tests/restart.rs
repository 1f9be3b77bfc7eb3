//! The service's state across restarts: after SIGTERM, and after kill -9 in the middle
//! of a pass, confirmed differences stay confirmed (never pending, never "converged")
//! until a pass finds them resolved, and pending ones keep their first sighting.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

const ROWS: i64 = 60_000;
/// 5 missing, 3 changed, 2 extra.
const DRIFT: u64 = 10;

fn make_pair(dir: &Path) {
    for (name, subscriber) in [("pub.db", false), ("sub.db", true)] {
        let mut c = rusqlite::Connection::open(dir.join(name)).unwrap();
        c.execute_batch("CREATE TABLE orders (id INTEGER PRIMARY KEY, note TEXT NOT NULL, amount INTEGER NOT NULL)")
            .unwrap();
        let tx = c.transaction().unwrap();
        {
            let mut ins = tx
                .prepare("INSERT INTO orders VALUES (?1, ?2, ?3)")
                .unwrap();
            for id in 1..=ROWS {
                if subscriber && [100, 20_000, 20_001, 40_000, 59_999].contains(&id) {
                    continue; // missing
                }
                let amount = if subscriber && [7, 30_000, 50_000].contains(&id) {
                    -1 // changed
                } else {
                    id * 3
                };
                ins.execute(rusqlite::params![id, format!("order {id}"), amount])
                    .unwrap();
            }
            if subscriber {
                for id in [ROWS + 1, ROWS + 2] {
                    ins.execute(rusqlite::params![id, "extra", 0]).unwrap();
                }
            }
        }
        tx.commit().unwrap();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Service {
    child: Child,
    base: String,
}

impl Service {
    fn start(config: &Path) -> Service {
        let port = free_port();
        let child = Command::new(driftwatch_tests::bin())
            .args(["serve", "--config"])
            .arg(config)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Service {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The status of the one pair, once the service answers.
    async fn pair(&self) -> Option<Json> {
        let r = reqwest::get(format!("{}/api/v1/status", self.base))
            .await
            .ok()?;
        let j: Json = serde_json::from_str(&r.text().await.ok()?).ok()?;
        j["tables"].as_array()?.first().cloned()
    }

    async fn metric(&self, name: &str) -> Option<String> {
        let r = reqwest::get(format!("{}/metrics", self.base)).await.ok()?;
        let text = r.text().await.ok()?;
        Some(
            text.lines()
                .filter(|l| l.starts_with(name))
                .collect::<Vec<_>>()
                .join("\n"),
        )
    }

    fn signal(&mut self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn confirmed(p: &Json) -> u64 {
    ["missing", "extra", "changed"]
        .iter()
        .map(|k| p["confirmed"][k].as_u64().unwrap_or(0))
        .sum()
}

async fn until<T>(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Restarts the service and asserts that, from its first answer on, the pair shows its
/// confirmed differences, through its first pass.
async fn assert_resumes_confirmed(config: &Path) {
    let svc = Service::start(config);
    let first = until("the restarted service", Duration::from_secs(20), || {
        svc.pair()
    })
    .await;
    assert_eq!(
        confirmed(&first),
        DRIFT,
        "first answer after the restart: {first}"
    );
    assert_eq!(first["state"], "divergent", "{first}");
    let converged = svc.metric("driftwatch_table_converged").await.unwrap();
    assert!(
        !converged.contains("} 1"),
        "converged before any pass: {converged}"
    );
    // Its first pass finds the same rows: still confirmed, nothing pending.
    let after = until(
        "a pass after the restart",
        Duration::from_secs(30),
        || async {
            let p = svc.pair().await?;
            (p["restored"] == false).then_some(p)
        },
    )
    .await;
    assert_eq!(confirmed(&after), DRIFT, "{after}");
    assert_eq!(after["pending"]["missing"], 0, "{after}");
}

#[tokio::test(flavor = "multi_thread")]
async fn confirmed_differences_stay_confirmed_across_sigterm_and_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    make_pair(dir.path());
    let config = dir.path().join("driftwatch.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
state_dir = "state"

[defaults]
interval = "1s"
confirm_after = "1s"
chunk_rows = 2000

[databases.pub]
url = "sqlite://{p}"

[databases.sub]
url = "sqlite://{s}"

[[groups]]
name = "g"
publisher = "pub"
subscribers = ["sub"]

[[groups.tables]]
name = "orders"
"#,
            p = dir.path().join("pub.db").display(),
            s = dir.path().join("sub.db").display()
        ),
    )
    .unwrap();

    let mut svc = Service::start(&config);
    let p = until("confirmation", Duration::from_secs(60), || async {
        let p = svc.pair().await?;
        (confirmed(&p) == DRIFT).then_some(p)
    })
    .await;
    let divergent_since = p["divergent_since"].clone();
    assert!(divergent_since.is_string(), "{p}");
    svc.signal("-TERM");
    drop(svc);
    assert_resumes_confirmed(&config).await;

    // kill -9 in the middle of passes (every second, each a few hundred milliseconds).
    for delay_ms in [150u64, 400, 650] {
        let mut svc = Service::start(&config);
        until("the service", Duration::from_secs(20), || svc.pair()).await;
        tokio::time::sleep(Duration::from_millis(1000 + delay_ms)).await;
        svc.signal("-KILL");
        drop(svc);
        assert_resumes_confirmed(&config).await;
    }

    // The first sighting survived every restart.
    let svc = Service::start(&config);
    let p = until("the service", Duration::from_secs(20), || svc.pair()).await;
    assert_eq!(p["divergent_since"], divergent_since, "{p}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_state_file_stops_the_service_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    make_pair(dir.path());
    std::fs::create_dir(dir.path().join("state")).unwrap();
    std::fs::write(
        dir.path().join("state").join(driftwatch::state::FILE_NAME),
        "this is not a state file",
    )
    .unwrap();
    let config = dir.path().join("driftwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nstate_dir = \"state\"\n[databases.pub]\nurl = \"sqlite://{p}\"\n[databases.sub]\nurl = \"sqlite://{p}\"\n[[groups]]\nname = \"g\"\npublisher = \"pub\"\nsubscribers = [\"sub\"]\n[[groups.tables]]\nname = \"orders\"\n",
            p = dir.path().join("pub.db").display()
        ),
    )
    .unwrap();
    let out = Command::new(driftwatch_tests::bin())
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(driftwatch::state::FILE_NAME)
            && stderr.contains("not a driftwatch state file"),
        "{stderr}"
    );
}
