//! driftwatch against replication that is running: PostgreSQL logical replication and
//! MariaDB GTID replication between servers the test starts, a 250 ms delay each way on
//! the replication connection, and a write load (hot rows updated constantly, random
//! updates, inserts, deletes) throughout. One service compares the publisher with the
//! same subscriber twice: once confirming at replication positions, once by time alone.
//!
//! Asserted: no confirmed difference while no real drift exists, `check` exits 0 under the
//! load, no alert rule of deploy/prometheus fires on the scrapes of that time (promtool),
//! real drift injected on the subscriber is confirmed exactly and nothing else, and a fix
//! script fetched under the load applies without breaking replication and leaves the pair
//! converged. The figures (time to confirmation, rechecks and rows read) are printed.

use driftwatch_tests as common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::replication::*;
use common::Served;
use serde_json::Value as Json;

const LATENCY: Duration = Duration::from_millis(250);
const SEED_ROWS: i64 = 20_000;
/// The load never touches these ids: the injected drift lives there.
const SPARE: std::ops::RangeInclusive<i64> = 15_001..=20_000;
const MISSING: [i64; 5] = [15_100, 16_200, 17_300, 18_400, 19_500];
const CHANGED: [i64; 3] = [15_555, 17_777, 19_999];
const EXTRA: [i64; 2] = [900_000_001, 900_000_002];
/// Without positions a difference must stand still this long: well above the lag.
const CONFIRM_AFTER: &str = "10s";
const INTERVAL: &str = "5s";
/// How long the load runs with no drift, before any is injected.
const CLEAN_FOR: Duration = Duration::from_secs(40);

/// The service, with the requests these tests make of it.
struct Service(Served);

impl Service {
    async fn start(config: &Path) -> Service {
        Service(Served::start(driftwatch::config::load(config).unwrap()).await)
    }

    async fn text(&self, path: &str) -> String {
        reqwest::get(format!("{}{path}", self.0.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The status of each subscriber's pair, by subscriber.
    async fn pairs(&self) -> BTreeMap<String, Json> {
        let j: Json = serde_json::from_str(&self.text("/api/v1/status").await).unwrap();
        j["tables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["subscriber"].as_str().unwrap().to_string(), p.clone()))
            .collect()
    }

    async fn shutdown(self) {
        self.0.shutdown().await
    }
}

fn total(p: &Json, status: &str) -> u64 {
    ["missing", "extra", "changed"]
        .iter()
        .map(|k| p[status][k].as_u64().unwrap_or(0))
        .sum()
}

/// Every scrape of the metrics the alert rules read, one sample per series per scrape.
#[derive(Default)]
struct Scrapes {
    series: BTreeMap<String, Vec<Option<String>>>,
    n: usize,
    /// Unix time of the first scrape: promtool's time 0.
    t0: f64,
}

/// Promtool's seconds per real second: one scrape a second is one sample a "minute".
const COMPRESSION: f64 = 60.0;

impl Scrapes {
    fn add(&mut self, metrics: &str) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        if self.n == 0 {
            self.t0 = now;
        }
        for line in metrics.lines() {
            if line.starts_with('#') || !line.starts_with("driftwatch_") {
                continue;
            }
            if line.contains("_bucket{") {
                continue;
            }
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            // Timestamps move to promtool's compressed clock, so that the rules reading
            // time() against them (staleness, ages) judge them as they would live.
            let value = match value.parse::<f64>() {
                Ok(v)
                    if series
                        .split('{')
                        .next()
                        .unwrap_or("")
                        .ends_with("_timestamp_seconds")
                        && v > 0.0 =>
                {
                    format!("{:.0}", (v - self.t0) * COMPRESSION)
                }
                _ => value.to_string(),
            };
            let column = self.series.entry(series.to_string()).or_default();
            column.resize(self.n, None);
            column.push(Some(value));
        }
        self.n += 1;
    }

    /// Evaluates every rule of deploy/prometheus/alerts.yml over the scrapes, one scrape a
    /// "minute" (so a `for: 10m` hold is ten scrapes: stricter than real time), and
    /// returns promtool's verdict that none fires.
    fn assert_no_alert(&self, engine: &str) {
        let Some(promtool) = which("promtool") else {
            assert!(
                std::env::var_os("DRIFTWATCH_REQUIRE_PROMETHEUS").is_none(),
                "promtool is missing (the test command installs it)"
            );
            println!("{engine}: promtool not installed: alert rules not evaluated");
            return;
        };
        let rules = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus/alerts.yml"),
        )
        .unwrap();
        let names: Vec<&str> = rules
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- alert: "))
            .collect();
        assert!(names.len() >= 5, "alert names from alerts.yml: {names:?}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("alerts.yml"), &rules).unwrap();
        let mut test = String::from("rule_files:\n  - alerts.yml\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n");
        for (series, values) in &self.series {
            let vals: Vec<String> = (0..self.n)
                .map(|i| {
                    values
                        .get(i)
                        .cloned()
                        .flatten()
                        .unwrap_or_else(|| "_".into())
                })
                .collect();
            test.push_str(&format!(
                "      - series: '{}'\n        values: '{}'\n",
                series.replace('\'', "''"),
                vals.join(" ")
            ));
        }
        test.push_str("    alert_rule_test:\n");
        for minute in (10..self.n).step_by(5).chain([self.n - 1]) {
            for name in &names {
                test.push_str(&format!(
                    "      - eval_time: {minute}m\n        alertname: {name}\n        exp_alerts: []\n"
                ));
            }
        }
        std::fs::write(dir.path().join("test.yml"), &test).unwrap();
        let out = std::process::Command::new(promtool)
            .args(["test", "rules", "test.yml"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{engine}: an alert fired on {} scrapes without drift:\n{}{}",
            self.n,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!(
            "{engine}: promtool: none of {} alert rules fired over {} scrapes under the lagged load",
            names.len(),
            self.n
        );
    }
}

fn which(program: &str) -> Option<String> {
    let out = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn metric_sum(metrics: &str, name: &str, with: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && with.iter().all(|w| l.contains(w)))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

fn config(dir: &Path, publisher: &str, subscriber: &str) -> std::path::PathBuf {
    let mut doc = toml::Table::new();
    let defaults: toml::Table = toml::from_str(&format!(
        "interval = \"{INTERVAL}\"\nconfirm_after = \"{CONFIRM_AFTER}\"\nchunk_rows = 5000\n"
    ))
    .unwrap();
    doc.insert("defaults".into(), defaults.into());
    let db = |url: &str, replication: &str| {
        let mut t = toml::Table::new();
        t.insert("url".into(), url.into());
        t.insert("replication".into(), replication.into());
        toml::Value::Table(t)
    };
    let mut dbs = toml::Table::new();
    dbs.insert("pub".into(), db(publisher, "off"));
    dbs.insert("sub_positions".into(), db(subscriber, "auto"));
    dbs.insert("sub_time".into(), db(subscriber, "off"));
    doc.insert("databases".into(), dbs.into());
    let group: toml::Table = toml::from_str(
        "name = \"live\"\npublisher = \"pub\"\nsubscribers = [\"sub_positions\", \"sub_time\"]\n[[tables]]\nname = \"orders\"\n",
    )
    .unwrap();
    doc.insert("groups".into(), toml::Value::Array(vec![group.into()]));
    let path = dir.join("driftwatch.toml");
    std::fs::write(&path, toml::to_string(&doc).unwrap()).unwrap();
    path
}

/// What one engine's pair must show; `apply` runs a script on the subscriber.
async fn live_replication(
    engine: &str,
    publisher: &str,
    subscriber: &str,
    replication_ok: impl AsyncFn() -> anyhow::Result<()>,
    caught_up: impl AsyncFn() -> anyhow::Result<Duration>,
    apply: impl Fn(&Path),
) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), publisher, subscriber);
    let spec = LoadSpec {
        duration: Duration::from_secs(300),
        spare: Some(SPARE),
        ..LoadSpec::default()
    };
    let load = Load::start(publisher, spec).await.unwrap();
    let svc = Service::start(&config).await;

    // ---- no drift: nothing confirmed, check exits 0, no alert ------------------------------
    let check = tokio::task::spawn_blocking({
        let config = config.clone();
        move || {
            std::process::Command::new(driftwatch_tests::bin())
                .args(["check", "--config"])
                .arg(&config)
                .output()
                .unwrap()
        }
    });
    let mut scrapes = Scrapes::default();
    let mut seen_in_flight = 0u64;
    let clean_until = Instant::now() + CLEAN_FOR;
    while Instant::now() < clean_until {
        let metrics = svc.text("/metrics").await;
        scrapes.add(&metrics);
        for (sub, p) in svc.pairs().await {
            assert_eq!(
                total(&p, "confirmed"),
                0,
                "{engine}: {sub} confirmed a difference while none is real: {p}"
            );
            seen_in_flight = seen_in_flight.max(total(&p, "in_flight") + total(&p, "pending"));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let out = check.await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{engine}: check under the load:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "{engine}: check under the load: {}",
        String::from_utf8_lossy(&out.stdout).trim()
    );
    assert!(
        seen_in_flight > 0,
        "{engine}: the load never showed a difference in flight: the test proves nothing"
    );
    scrapes.assert_no_alert(engine);
    replication_ok().await.unwrap();

    // ---- real drift, injected on the subscriber under the load ----------------------------
    let metrics_before = svc.text("/metrics").await;
    let mut sub = Db::connect(subscriber).await.unwrap();
    let ids = |ids: &[i64]| {
        ids.iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    sub.transaction(&[
        format!("DELETE FROM orders WHERE id IN ({})", ids(&MISSING)),
        format!(
            "UPDATE orders SET amount = amount + 1 WHERE id IN ({})",
            ids(&CHANGED)
        ),
        format!(
            "INSERT INTO orders (id, customer, amount, status, note, updated_at) VALUES \
             ({}, 1, 1.00, 'new', 'injected', '2025-01-01 00:00:00'), \
             ({}, 2, 2.00, 'new', NULL, '2025-01-01 00:00:00')",
            EXTRA[0], EXTRA[1]
        ),
    ])
    .await
    .unwrap();
    let injected = Instant::now();
    let expected: BTreeSet<(String, String)> = MISSING
        .iter()
        .map(|k| (k.to_string(), "missing".to_string()))
        .chain(CHANGED.iter().map(|k| (k.to_string(), "changed".into())))
        .chain(EXTRA.iter().map(|k| (k.to_string(), "extra".into())))
        .collect();
    let mut confirmed_at: BTreeMap<String, Duration> = BTreeMap::new();
    while confirmed_at.len() < 2 {
        assert!(
            injected.elapsed() < Duration::from_secs(60),
            "{engine}: drift not confirmed within 60 s: {:?}",
            svc.pairs().await
        );
        for (name, p) in svc.pairs().await {
            let confirmed: BTreeSet<(String, String)> = p["sample"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["status"] == "confirmed")
                .map(|s| {
                    (
                        s["key"][0].as_str().unwrap().to_string(),
                        s["kind"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            assert!(
                confirmed.is_subset(&expected),
                "{engine}: {name} confirmed rows that are not drift: {:?}",
                confirmed.difference(&expected).collect::<Vec<_>>()
            );
            assert_eq!(
                total(&p, "confirmed") as usize,
                confirmed.len(),
                "{engine}: {name}: {p}"
            );
            if confirmed == expected && !confirmed_at.contains_key(&name) {
                confirmed_at.insert(name, injected.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics_after = svc.text("/metrics").await;
    let minutes = injected.elapsed().as_secs_f64() / 60.0;
    for (name, at) in &confirmed_at {
        let rechecks = metric_sum(&metrics_after, "driftwatch_rechecks_total", &[name])
            - metric_sum(&metrics_before, "driftwatch_rechecks_total", &[name]);
        println!(
            "{engine}: {name}: injected drift (5 missing, 3 changed, 2 extra) confirmed exactly in {:.1} s \
             (interval {INTERVAL}, confirm_after {CONFIRM_AFTER}); {:.0} rechecks/min meanwhile",
            at.as_secs_f64(),
            rechecks / minutes
        );
    }
    for db in ["pub", "sub_positions"] {
        let label = format!("database=\"{db}\"");
        let read = |m: &str| {
            metric_sum(m, "driftwatch_rows_scanned_total", &[&label])
                + metric_sum(m, "driftwatch_rows_fetched_total", &[&label])
        };
        println!(
            "{engine}: rows read on {db} from injection to confirmation: {:.0}",
            read(&metrics_after) - read(&metrics_before)
        );
    }

    // ---- a fix script fetched under the load -----------------------------------------------
    let script = svc
        .text("/api/v1/groups/live/tables/orders/script?subscriber=sub_positions")
        .await;
    assert!(
        script.contains("-- driftwatch: 5 missing, 2 extra, 3 changed; 10 statements."),
        "{engine}: the script writes the 10 real differences only:\n{script}"
    );
    println!(
        "{engine}: fix script under the load: 10 statements; in flight, not scripted: {}",
        script
            .lines()
            .find(|l| l.starts_with("-- In flight, not scripted:"))
            .unwrap_or("none")
    );
    for id in MISSING.iter().chain(&CHANGED).chain(&EXTRA) {
        assert!(
            script.contains(&id.to_string()),
            "{engine}: {id} not scripted:\n{script}"
        );
    }
    let file = dir.path().join("fix.sql");
    std::fs::write(&file, &script).unwrap();
    apply(&file);
    // Replication goes on; once the load ends the pair is converged, and says so.
    tokio::time::sleep(Duration::from_secs(3)).await;
    replication_ok().await.unwrap();
    load.stop().await.unwrap();
    caught_up().await.unwrap();
    replication_ok().await.unwrap();
    let mut p = Db::connect(publisher).await.unwrap();
    let (pd, sd) = (
        orders_digest(&mut p).await.unwrap(),
        orders_digest(&mut sub).await.unwrap(),
    );
    assert_eq!(
        pd, sd,
        "{engine}: publisher and subscriber differ after the fix"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pairs = svc.pairs().await;
        if pairs.values().all(|p| p["state"] == "converged") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{engine}: not converged after the fix: {pairs:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_logical_replication_under_a_lagged_load() {
    let pair = PgLogicalPair::start(LATENCY).await;
    let mut p = Db::connect(&pair.publisher_url()).await.unwrap();
    pair.execute_both(orders_ddl(&p)).await;
    seed_orders(&mut p, SEED_ROWS, 11).await.unwrap();
    pair.publish(&["orders"]).await;
    let url = pair.subscriber_url();
    let (host, port) = (
        pair.subscriber.addr().ip().to_string(),
        pair.subscriber.port().to_string(),
    );
    live_replication(
        "PostgreSQL",
        &pair.publisher_url(),
        &url,
        async || pair.replication_ok().await,
        async || pair.wait_caught_up(Duration::from_secs(60)).await,
        |file| {
            common::run_client(
                "psql",
                &[
                    "-X",
                    "-q",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-h",
                    &host,
                    "-p",
                    &port,
                    "-U",
                    "postgres",
                    "-d",
                    PAIR_DB,
                ],
                file,
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_gtid_replication_under_a_lagged_load() {
    let pair = MariaDbReplica::start(LATENCY).await;
    let mut p = Db::connect(&pair.primary_url(PAIR_DB)).await.unwrap();
    p.execute(orders_ddl(&p)).await.unwrap();
    seed_orders(&mut p, SEED_ROWS, 12).await.unwrap();
    pair.wait_caught_up(Duration::from_secs(60)).await.unwrap();
    let port = pair.replica.port().to_string();
    live_replication(
        "MariaDB",
        &pair.primary_url(PAIR_DB),
        &pair.replica_url(PAIR_DB),
        async || pair.replication_ok().await,
        async || pair.wait_caught_up(Duration::from_secs(60)).await,
        |file| {
            common::run_client(
                common::mysql_client(),
                &[
                    "--protocol=tcp",
                    "-h",
                    "127.0.0.1",
                    "-P",
                    &port,
                    "-u",
                    "root",
                    PAIR_DB,
                ],
                file,
            );
        },
    )
    .await;
}
