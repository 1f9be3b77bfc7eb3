//! A real Prometheus (Debian's package; `scripts/test.sh` installs it) scrapes the service
//! running over the demo's SQLite pair every second, with deploy/prometheus/alerts.yml
//! loaded (its `for:` durations shortened to seconds). Through Prometheus' HTTP API: the
//! divergence, row count and schema alerts fire for the demo's tables; every PromQL
//! expression of every dashboard panel returns data; and once the service's fix scripts
//! are applied to the subscriber (with sqlite3), the divergence and row count alerts
//! resolve.
//!
//! Without a `prometheus` binary the test says SKIPPED and passes, unless
//! DRIFTWATCH_REQUIRE_PROMETHEUS is set.

use driftwatch_tests as common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::Value as Json;
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(90);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn prometheus_binary() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("prometheus"))
        .find(|p| p.is_file())
}

/// The alert rules with every `for:` shortened to 2s.
fn fast_rules() -> String {
    let rules = std::fs::read_to_string(repo().join("deploy/prometheus/alerts.yml")).unwrap();
    rules
        .lines()
        .map(|line| {
            let body = line.trim_start();
            if body.starts_with("for:") {
                format!("{}for: 2s", &line[..line.len() - body.len()])
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every panel's PromQL, rows' nested panels included: (dashboard file, panel title, expr).
fn dashboard_queries() -> Vec<(String, String, String)> {
    fn walk(file: &str, panels: &[Json], out: &mut Vec<(String, String, String)>) {
        for panel in panels {
            let title = panel["title"].as_str().unwrap_or_default();
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push((file.to_string(), title.to_string(), expr.to_string()));
                }
            }
            walk(
                file,
                panel["panels"].as_array().map_or(&[], |v| v.as_slice()),
                out,
            );
        }
    }
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("dashboards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    for path in files {
        let dashboard: Json =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        walk(
            &file,
            dashboard["panels"].as_array().map_or(&[], |v| v.as_slice()),
            &mut out,
        );
    }
    out
}

/// Grafana's template variables, as values the demo has.
fn substitute(expr: &str) -> String {
    let values = [
        ("__rate_interval", "1m"),
        ("__interval", "1m"),
        ("__range", "1m"),
        ("group", "demo"),
        ("table", "order_lines"),
        ("subscriber", "subscriber"),
    ];
    let mut out = String::new();
    let mut rest = expr;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, len) = match after.strip_prefix('{') {
            Some(braced) => {
                let end = braced.find('}').expect("a closed ${…}");
                // ${var:format}: the format does not matter for single values.
                let name = braced[..end].split(':').next().unwrap();
                (name, end + 2)
            }
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        let value = values
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("unknown template variable ${name} in {expr}"))
            .1;
        out.push_str(value);
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

struct Prometheus {
    base: String,
    log: PathBuf,
    _process: tokio::process::Child,
}

impl Prometheus {
    async fn start(binary: &Path, dir: &Path, target: &str) -> Prometheus {
        std::fs::write(dir.join("alerts.yml"), fast_rules()).unwrap();
        std::fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - alerts.yml\n\
                 scrape_configs:\n  - job_name: driftwatch\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .unwrap();
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap().port()
        };
        let log = dir.join("prometheus.log");
        let process = tokio::process::Command::new(binary)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let prometheus = Prometheus {
            base: format!("http://127.0.0.1:{port}"),
            log,
            _process: process,
        };
        let ready = format!("{}/-/ready", prometheus.base);
        prometheus
            .wait("Prometheus to be ready", || async {
                let r = reqwest::get(&ready).await.ok()?;
                r.status().is_success().then_some(())
            })
            .await;
        prometheus
    }

    /// Polls `probe` every 500 ms until it answers, failing after WAIT with
    /// Prometheus' log.
    async fn wait<T, Fut>(&self, what: &str, probe: impl Fn() -> Fut) -> T
    where
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(v) = probe().await {
                return v;
            }
            if tokio::time::Instant::now() > deadline {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                panic!("timed out waiting for {what}; Prometheus' log:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn api(&self, path: &str, query: &[(&str, &str)]) -> Json {
        let body = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .query(query)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }

    /// The active alerts of group demo and subscriber `subscriber`: (alertname, table,
    /// state: pending or firing).
    async fn alerts(&self) -> BTreeSet<(String, String, String)> {
        let alerts = self.api("/api/v1/alerts", &[]).await;
        alerts["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["labels"]["group"] == "demo" && a["labels"]["subscriber"] == "subscriber")
            .map(|a| {
                let label = |k: &str| a["labels"][k].as_str().unwrap_or_default().to_string();
                let state = a["state"].as_str().unwrap_or_default().to_string();
                (label("alertname"), label("table"), state)
            })
            .collect()
    }
}

/// Applies a fix script to the demo's subscriber with the sqlite3 client (the test
/// command installs it), waiting for the service's readers if need be.
fn apply(script: &str, subscriber: &Path, dir: &Path) {
    let file = dir.join("fix.sql");
    std::fs::write(&file, script).unwrap();
    let out = std::process::Command::new("sqlite3")
        .args(["-bail", "-cmd", ".timeout 10000"])
        .arg(subscriber)
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap_or_else(|e| panic!("sqlite3: {e} (the test command installs it)"));
    assert!(
        out.status.success(),
        "sqlite3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_and_resolve_and_every_dashboard_query_has_data() {
    let Some(binary) = prometheus_binary() else {
        if std::env::var_os("DRIFTWATCH_REQUIRE_PROMETHEUS").is_some() {
            panic!("no prometheus binary on PATH, and DRIFTWATCH_REQUIRE_PROMETHEUS is set");
        }
        println!("SKIPPED: no prometheus binary on PATH (scripts/test.sh installs Debian's prometheus package)");
        return;
    };
    let dir = temp_dir();
    let setup = driftwatch::demo::create(&dir.path().join("demo"), "127.0.0.1:0").unwrap();
    let mut config = driftwatch::config::load(&setup.config_path).unwrap();
    for g in &mut config.groups {
        for t in &mut g.tables {
            t.confirm_after = Duration::from_secs(1);
        }
    }
    let service = Served::start(config).await;
    let target = service.addr.to_string();

    let prometheus = Prometheus::start(&binary, dir.path(), &target).await;

    let want: BTreeSet<(String, String)> = [
        ("DriftwatchConfirmedDivergence", "customers"),
        ("DriftwatchConfirmedDivergence", "order_lines"),
        // The order lines of the demo's gap are missing: confirmed, so counted.
        ("DriftwatchRowCountDifference", "order_lines"),
        ("DriftwatchSchemaMismatch", "customers"),
    ]
    .iter()
    .map(|(a, t)| (a.to_string(), t.to_string()))
    .collect();
    prometheus
        .wait(
            "the divergence, row count and schema alerts to fire",
            || async {
                let firing: BTreeSet<(String, String)> = prometheus
                    .alerts()
                    .await
                    .into_iter()
                    .filter(|(_, _, state)| state == "firing")
                    .map(|(alert, table, _)| (alert, table))
                    .collect();
                want.is_subset(&firing).then_some(())
            },
        )
        .await;

    // Every dashboard query, once rate() windows hold a few scrapes.
    let queries = dashboard_queries();
    assert!(queries.len() > 20, "{queries:#?}");
    let mut empty = Vec::new();
    for (file, title, expr) in &queries {
        let promql = substitute(expr);
        let answer = prometheus.api("/api/v1/query", &[("query", &promql)]).await;
        assert_eq!(
            answer["status"], "success",
            "{file} {title:?}: {promql}: {answer}"
        );
        if answer["data"]["result"]
            .as_array()
            .is_none_or(|r| r.is_empty())
        {
            empty.push(format!("{file} {title:?}: {promql}"));
        }
    }
    assert!(
        empty.is_empty(),
        "dashboard queries without data:\n{}",
        empty.join("\n")
    );

    // The fix scripts, from the service's script endpoint, applied to the subscriber; a
    // pass now: the divergence and row count alerts resolve. The schema alert stays: a
    // script changes rows, never columns.
    let client = reqwest::Client::new();
    for table in ["customers", "order_lines"] {
        let base = format!("http://{target}/api/v1/groups/demo/tables/{table}");
        let script = client
            .get(format!("{base}/script"))
            .query(&[
                ("subscriber", "subscriber"),
                ("dialect", "sqlite"),
                ("mode", "fix"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(script.status().as_u16(), 200, "{table}");
        apply(
            &script.text().await.unwrap(),
            &setup.subscriber_path,
            dir.path(),
        );
        let validate = client
            .post(format!("{base}/validate"))
            .send()
            .await
            .unwrap();
        assert_eq!(validate.status().as_u16(), 202, "{table}");
    }
    prometheus
        .wait("the divergence and row count alerts to resolve", || async {
            let active = prometheus.alerts().await;
            let divergent = active.iter().any(|(alert, _, _)| {
                alert == "DriftwatchConfirmedDivergence" || alert == "DriftwatchRowCountDifference"
            });
            let schema = active.contains(&(
                "DriftwatchSchemaMismatch".to_string(),
                "customers".to_string(),
                "firing".to_string(),
            ));
            (!divergent && schema).then_some(())
        })
        .await;

    drop(prometheus);
    service.stop(Duration::from_secs(10)).await;
}
