//! The HTTP surface under hostile and careless use, against the real served service
//! (`driftwatch::serve` on port 0, SQLite files): query parameters refused by name, 405
//! and 429 that say what to do, passes on demand that coalesce and report completion,
//! row keys behind the token (with the page's login cookie), slow and idle connections
//! closed, connections beyond the cap kept waiting, and script requests and refusals
//! counted.

use driftwatch_tests as common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// The service, with the requests these tests make of it.
struct Service(Served);

impl std::ops::Deref for Service {
    type Target = Served;

    fn deref(&self) -> &Served {
        &self.0
    }
}

impl Service {
    async fn start(config: driftwatch::config::Config) -> Service {
        Service(Served::start(config).await)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::get(format!("{}{path}", self.base)).await.unwrap()
    }

    async fn text(&self, path: &str) -> (u16, String) {
        let r = self.get(path).await;
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn stop(self) {
        self.0.stop(Duration::from_secs(15)).await
    }
}

/// The value of `name{labels…}` in a scrape (labels as `k="v"`, in any order); absent: 0.
fn sample(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            series.split('{').next() == Some(name) && labels.iter().all(|l| series.contains(l))
        })
        .map(|(_, v)| v.parse::<f64>().unwrap())
        .sum()
}

async fn demo(dir: &std::path::Path) -> driftwatch::config::Config {
    let setup = driftwatch::demo::create(dir, "127.0.0.1:0").unwrap();
    driftwatch::config::load(&setup.config_path).unwrap()
}

const SCRIPT: &str = "/api/v1/groups/demo/tables/order_lines/script";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_methods_and_busy_scripts_say_what_to_do() {
    let dir = temp_dir();
    let mut config = demo(dir.path()).await;
    config.server.max_concurrent_scripts = 1;
    // Slow reads, so that one script holds the only slot for a while.
    config
        .databases
        .get_mut("publisher")
        .unwrap()
        .max_rows_per_second = 30_000;
    let svc = Service::start(config).await;

    let (code, body) = svc.text(&format!("{SCRIPT}?dialekt=tsql")).await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("\\\"dialekt\\\""),
        "names the parameter: {body}"
    );
    for accepted in ["subscriber", "dialect", "mode", "guards", "batch", "keys"] {
        assert!(body.contains(accepted), "lists {accepted}: {body}");
    }
    let (code, body) = svc
        .text(&format!("{SCRIPT}?dialect=tsql&dialect=sqlite"))
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("more than once"), "{body}");

    // A GET of the POST-only route, a POST of a GET-only one.
    let r = svc
        .get("/api/v1/groups/demo/tables/order_lines/validate")
        .await;
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    let body = r.text().await.unwrap();
    assert!(body.contains("allowed: POST"), "{body}");
    let r = reqwest::Client::new()
        .post(format!("{}/metrics", svc.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let body = r.text().await.unwrap();
    assert!(body.contains("allowed: GET,HEAD"), "{body}");

    let mut first = svc.get(SCRIPT).await;
    assert_eq!(first.status().as_u16(), 200);
    first.chunk().await.unwrap().expect("the script starts");
    let busy = svc.get(&format!("{SCRIPT}?mode=redrive")).await;
    assert_eq!(busy.status().as_u16(), 429);
    let wait: u64 = busy.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0);
    drop(first);
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requested_passes_coalesce_and_report_when_they_complete() {
    let dir = temp_dir();
    let mut config = demo(dir.path()).await;
    // No scheduled pass during the test: only requested ones.
    for t in &mut config.groups[0].tables {
        t.interval = Duration::from_secs(3600);
    }
    let svc = Service::start(config).await;
    let path = "/api/v1/groups/demo/tables/order_lines/validate";
    let passes = |m: &str| {
        sample(
            m,
            "driftwatch_validations_total",
            &["table=\"order_lines\""],
        )
    };
    // The scheduled first pass (within 2 s of the start) is done before counting.
    let deadline = Instant::now() + Duration::from_secs(60);
    while passes(&svc.text("/metrics").await.1) < 1.0 {
        assert!(Instant::now() < deadline, "the first pass never completed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = passes(&svc.text("/metrics").await.1);

    let client = reqwest::Client::new();
    let mut posts = tokio::task::JoinSet::new();
    for _ in 0..300 {
        let (client, url) = (client.clone(), format!("{}{path}", svc.base));
        posts.spawn(async move {
            let r = client.post(url).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 202);
            serde_json::from_str::<serde_json::Value>(&r.text().await.unwrap()).unwrap()
        });
    }
    let mut ids = std::collections::BTreeMap::new();
    while let Some(answer) = posts.join_next().await {
        let answer = answer.unwrap();
        let id = answer["pass"]["id"]
            .as_u64()
            .expect("every answer has a pass id");
        ids.insert(id, answer["url"].as_str().unwrap().to_string());
    }
    assert!(
        ids.len() <= 4,
        "300 requests coalesce into a handful of passes, not {}",
        ids.len()
    );
    let mut last_completed = String::new();
    for (id, url) in &ids {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (code, body) = svc.text(url).await;
            assert_eq!(code, 200, "{body}");
            let pass: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(pass["id"], *id);
            if pass["state"] == "completed" {
                last_completed = pass["completed_at"].as_str().unwrap().to_string();
                break;
            }
            assert!(Instant::now() < deadline, "pass {id} never completed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let after = passes(&svc.text("/metrics").await.1);
    assert_eq!(
        after - before,
        ids.len() as f64,
        "one pass per id handed out"
    );
    let status: serde_json::Value =
        serde_json::from_str(&svc.text("/api/v1/status").await.1).unwrap();
    let line = status["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "order_lines")
        .unwrap();
    assert_eq!(
        line["last_requested_pass"]["id"],
        *ids.keys().last().unwrap()
    );
    assert_eq!(line["last_requested_pass"]["completed_at"], last_completed);
    let (code, _) = svc
        .text("/api/v1/groups/demo/tables/order_lines/passes/999")
        .await;
    assert_eq!(code, 404);
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_row_keys_need_it_and_the_page_signs_in_with_a_cookie() {
    let dir = temp_dir();
    let mut config = demo(dir.path()).await;
    config.server.api_token = Some("s3cret".into());
    for t in &mut config.groups[0].tables {
        t.confirm_after = Duration::from_millis(200);
    }
    let svc = Service::start(config).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // Wait for confirmed differences (with the token: the status is behind it): a script
    // writes only verified rows.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = client
            .get(format!("{}/api/v1/status", svc.base))
            .bearer_auth("s3cret")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let status: serde_json::Value = serde_json::from_str(&text).unwrap();
        let with_keys = status["tables"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| !t["sample"].as_array().unwrap().is_empty() && t["state"] == "divergent");
        if with_keys {
            break;
        }
        assert!(Instant::now() < deadline, "no differences found: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The page itself carries no status and no row data; its data is behind the token.
    let page = svc.text("/").await.1;
    assert!(page.contains("driftwatch"), "the page: {page}");
    assert!(!page.contains("/script?"), "no script links: {page}");
    assert!(!page.contains("2025-06-14"), "no row values: {page}");
    assert_eq!(svc.get("/api/v1/status").await.status().as_u16(), 401);

    let wrong = client
        .post(format!("{}/login", svc.base))
        .form(&[("token", "guess")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());

    let login = client
        .post(format!("{}/login", svc.base))
        .form(&[("token", "s3cret")])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status().as_u16(), 303);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(
        !cookie.contains("s3cret"),
        "the token is not the cookie: {cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();

    let status: serde_json::Value = serde_json::from_str(
        &client
            .get(format!("{}/api/v1/status", svc.base))
            .header("cookie", &pair)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let link = status["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|t| t["script"].as_str())
        .expect("a script link")
        .to_string();
    assert!(link.contains("/script?"), "{link}");
    // The link works in the browser that signed in, and only there.
    assert_eq!(svc.get(&link).await.status().as_u16(), 401);
    let script = client
        .get(format!("{}{link}", svc.base))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(script.status().as_u16(), 200);
    let text = script.text().await.unwrap();
    assert!(text.contains("INSERT INTO"), "{link}\n{text}");
    // The status JSON and validate take the cookie as they take the header.
    let status = client
        .get(format!("{}/api/v1/status", svc.base))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(status.status().as_u16(), 200);
    // Metrics and health stay open.
    assert_eq!(svc.text("/metrics").await.0, 200);
    assert_eq!(svc.text("/healthz").await.0, 200);
    svc.stop().await;
}

/// A config of one tiny converged table, with these `[server]` lines.
fn tiny(dir: &std::path::Path, server: &str) -> driftwatch::config::Config {
    let db = dir.join("a.db");
    sqlite_load(&db, "t", &text_key_schema(), &[]);
    load_config(
        dir,
        &format!(
            "[server]\n{server}\n[databases.a]\nurl = \"{0}\"\n[databases.b]\nurl = \"{0}\"\n\
             [[groups]]\nname = \"g\"\npublisher = \"a\"\nsubscribers = [\"b\"]\n[[groups.tables]]\nname = \"t\"\n",
            sqlite_url(&db)
        ),
    )
}

/// Reads until the server closes the connection; the time it took.
fn time_to_close(mut s: TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return started.elapsed(),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return started.elapsed(),
            Err(e) => panic!("still open after {limit:?}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed_and_those_beyond_the_cap_wait() {
    let dir = temp_dir();
    let config = tiny(
        dir.path(),
        "header_read_timeout = \"1s\"\nmax_connections = 20",
    );
    let svc = Service::start(config).await;
    let addr = svc.addr;
    let checked = tokio::task::spawn_blocking(move || {
        // 100 half-open connections: silent, or a request head never finished.
        let mut idle: Vec<TcpStream> = (0..100)
            .map(|i| {
                let mut s = TcpStream::connect(addr).unwrap();
                if i % 2 == 1 {
                    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                        .unwrap();
                }
                s
            })
            .collect();
        // The first 20 are served (and their timers run); the rest wait to be accepted,
        // and a complete request among them is answered only once a slot frees.
        let mut late = TcpStream::connect(addr).unwrap();
        let asked = Instant::now();
        late.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        late.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        late.read_to_string(&mut answer).unwrap();
        let waited = asked.elapsed();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            waited >= Duration::from_millis(800),
            "beyond the cap, a connection waits for a free slot (answered after {waited:?})"
        );
        // Every half-open connection is closed within a few header timeouts (the later
        // ones are accepted only as the earlier ones close).
        let started = Instant::now();
        for s in idle.drain(..) {
            time_to_close(s, Duration::from_secs(20));
        }
        let all_closed = started.elapsed();
        assert!(
            all_closed < Duration::from_secs(15),
            "100 half-open connections closed after {all_closed:?}"
        );
        // A kept-alive connection idle after its response is closed too.
        let mut kept = TcpStream::connect(addr).unwrap();
        kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let idle_for = time_to_close(kept, Duration::from_secs(10));
        assert!(idle_for < Duration::from_secs(5), "{idle_for:?}");
    })
    .await;
    svc.stop().await;
    checked.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_requests_and_refusals_are_counted() {
    let dir = temp_dir();
    std::fs::write(dir.path().join("token"), "s3cret\n").unwrap();
    let config = tiny(dir.path(), "api_token_file = \"token\"");
    let svc = Service::start(config).await;
    let client = reqwest::Client::new();
    let script = format!("{}/api/v1/groups/g/tables/t/script", svc.base);
    assert_eq!(
        client.get(&script).send().await.unwrap().status().as_u16(),
        401
    );
    let r = client
        .get(format!("{script}?dialekt=x"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = client
        .get(&script)
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.text().await.unwrap();
    let m = svc.text("/metrics").await.1;
    let route = "route=\"/api/v1/groups/{group}/tables/{table}/script\"";
    let audited = "driftwatch_http_audited_requests_total";
    assert_eq!(
        sample(&m, audited, &[route, "outcome=\"unauthorized\""]),
        1.0,
        "{m}"
    );
    assert_eq!(
        sample(&m, audited, &[route, "outcome=\"bad_request\""]),
        1.0,
        "{m}"
    );
    // The served one is counted once its script ended.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sample(
        &svc.text("/metrics").await.1,
        audited,
        &[route, "outcome=\"served\""],
    ) < 1.0
    {
        assert!(
            Instant::now() < deadline,
            "the served script is never counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    svc.stop().await;
}
