//! End to end: the real service (`driftwatch::serve` on port 0) over real databases with
//! known drift (the demo's SQLite pair, a PostgreSQL pair, a MariaDB pair); /metrics scraped
//! and its figures asserted; the HTTP surface's errors; a database that goes away under the
//! service and comes back; a fix script from the script endpoint applied with the server's
//! own client, after which the pair converges.

use driftwatch_tests as common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

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

    async fn start_on(addr: &str, config: driftwatch::config::Config) -> Service {
        Service(Served::start_on(addr, config).await)
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn post(&self, path: &str) -> (u16, String) {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Scrapes /metrics until `ready` holds (or fails after `secs`).
    async fn wait_for(&self, secs: u64, what: &str, ready: impl Fn(&Metrics) -> bool) -> Metrics {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let m = Metrics(self.get("/metrics").await.1);
            if ready(&m) {
                return m;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for {what}; last scrape:\n{}", m.0);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the service the way SIGTERM does, and waits for it to finish.
    async fn stop(self) {
        self.0.stop(Duration::from_secs(10)).await
    }
}

struct Metrics(String);

impl Metrics {
    /// The value of the sample `name{labels}`, labels given as `k="v"` pairs in any order.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
                if n != name {
                    return None;
                }
                let all = labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
                all.then(|| value.parse().unwrap())
            })
    }

    fn pair(&self, name: &str, table: &str, extra: &[(&str, &str)]) -> Option<f64> {
        let mut labels = vec![("table", table)];
        labels.extend_from_slice(extra);
        self.get(name, &labels)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_pair_is_served_with_its_exact_drift() {
    let dir = temp_dir();
    let setup = driftwatch::demo::create(dir.path(), "127.0.0.1:0").unwrap();
    let mut config = driftwatch::config::load(&setup.config_path).unwrap();
    for t in &mut config.groups[0].tables {
        t.confirm_after = Duration::from_millis(500);
    }
    let svc = Service::start(config).await;
    assert_eq!(svc.get("/healthz").await.0, 200);

    let m = svc
        .wait_for(60, "confirmed divergence on both tables", |m| {
            ["customers", "order_lines"].iter().all(|t| {
                m.pair(
                    "driftwatch_table_divergent_rows",
                    t,
                    &[("kind", "missing"), ("status", "confirmed")],
                )
                .unwrap_or(0.0)
                    > 0.0
            })
        })
        .await;
    for e in &setup.expected {
        let kinds = [
            ("missing", e.missing),
            ("extra", e.extra),
            ("changed", e.changed),
        ];
        for (kind, n) in kinds {
            let confirmed = m.pair(
                "driftwatch_table_divergent_rows",
                e.table,
                &[("kind", kind), ("status", "confirmed")],
            );
            let pending = m.pair(
                "driftwatch_table_divergent_rows",
                e.table,
                &[("kind", kind), ("status", "pending")],
            );
            // A problem series exists only while it counts something.
            assert_eq!(
                (confirmed, pending),
                (Some(n as f64), None),
                "{} {kind}",
                e.table
            );
        }
        assert_eq!(
            m.pair("driftwatch_table_rows", e.table, &[("role", "publisher")]),
            Some(e.publisher_rows as f64)
        );
        assert_eq!(
            m.pair("driftwatch_table_rows", e.table, &[("role", "subscriber")]),
            Some(e.subscriber_rows as f64)
        );
        let diff = e.publisher_rows as f64 - e.subscriber_rows as f64;
        assert_eq!(
            m.pair("driftwatch_table_row_count_difference", e.table, &[]),
            Some(diff)
        );
        assert_eq!(
            m.pair("driftwatch_table_converged", e.table, &[]),
            Some(0.0)
        );
        assert!(
            m.pair(
                "driftwatch_validation_last_success_timestamp_seconds",
                e.table,
                &[]
            )
            .unwrap()
                > 1.7e9
        );
        // The first pass saw the differences unconfirmed; a recheck confirmed them.
        assert!(
            m.pair(
                "driftwatch_validations_total",
                e.table,
                &[("result", "pending")]
            )
            .unwrap()
                >= 1.0
        );
        let confirmed_diff = e.missing as f64 - e.extra as f64;
        assert_eq!(
            m.pair(
                "driftwatch_table_confirmed_row_count_difference",
                e.table,
                &[]
            ),
            Some(confirmed_diff)
        );
        for kind in ["missing", "extra", "changed"] {
            assert_eq!(
                m.pair(
                    "driftwatch_table_divergent_rows",
                    e.table,
                    &[("kind", kind), ("status", "in_flight")],
                ),
                None,
                "{} {kind}",
                e.table
            );
        }
        assert!(
            m.pair(
                "driftwatch_table_chunks",
                e.table,
                &[("state", "mismatched")]
            )
            .unwrap()
                >= 1.0
        );
    }
    assert_eq!(
        m.pair("driftwatch_table_schema_mismatch", "customers", &[]),
        Some(1.0)
    );
    assert_eq!(
        m.pair("driftwatch_table_schema_mismatch", "order_lines", &[]),
        None
    );
    assert_eq!(
        m.get("driftwatch_up", &[("database", "publisher")]),
        Some(1.0)
    );
    assert_eq!(m.get("driftwatch_build_info", &[]), Some(1.0));
    assert!(
        m.get(
            "driftwatch_rows_scanned_total",
            &[("database", "subscriber")]
        )
        .unwrap()
            > 100_000.0
    );
    assert!(m
        .0
        .contains("driftwatch_validation_duration_seconds_bucket"));

    // The status JSON and the page tell the same story, with the gap's time window.
    let (code, body) = svc.get("/api/v1/status").await;
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    let lines = status["tables"].as_array().unwrap();
    let orders = lines.iter().find(|t| t["table"] == "order_lines").unwrap();
    let gap = setup
        .expected
        .iter()
        .find(|e| e.table == "order_lines")
        .unwrap()
        .gap
        .clone()
        .unwrap();
    assert_eq!(orders["missing_window"], serde_json::json!([gap.0, gap.1]));
    assert_eq!(orders["state"], "divergent");
    let customers = lines.iter().find(|t| t["table"] == "customers").unwrap();
    assert_eq!(
        customers["schema"]["publisher_only"],
        serde_json::json!(["loyalty_tier"])
    );
    // The page is served by the binary; its data comes from the API (the browser test
    // in tests/browser/ looks at what it shows).
    let (code, page) = svc.get("/").await;
    assert_eq!(code, 200);
    assert!(page.contains("/assets/status.js"), "{page}");
    assert_eq!(svc.get("/assets/status.js").await.0, 200);
    assert_eq!(svc.get("/tables/demo/order_lines").await.0, 200);
    assert_eq!(svc.get("/tables/demo/nope").await.0, 404);
    let (code, runbook) = svc.get("/runbook").await;
    assert_eq!(code, 200);
    assert!(runbook.contains("id=\"driftwatchconfirmeddivergence\""));
    // Where the mismatches lie, as fractions of the publisher's key order.
    let ranges = orders["mismatched_ranges"].as_array().unwrap();
    assert!(!ranges.is_empty() && ranges.len() <= 200);
    assert!(ranges.iter().all(|r| {
        let (from, to) = (r["from"].as_f64().unwrap(), r["to"].as_f64().unwrap());
        (0.0..=1.0).contains(&from) && from <= to && to <= 1.0
    }));
    assert!(orders["divergent_since"].is_string());
    assert!(!orders["history"].as_array().unwrap().is_empty());

    // The differing rows with their values, a page at a time: the last page of the
    // missing order lines, every one inside the gap.
    let rows_path = "/api/v1/groups/demo/tables/order_lines/rows";
    let (code, body) = svc
        .get(&format!("{rows_path}?kind=missing&offset=400&limit=200"))
        .await;
    assert_eq!(code, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    let expected = setup
        .expected
        .iter()
        .find(|e| e.table == "order_lines")
        .unwrap();
    assert_eq!(page["total"], expected.missing);
    let rows = page["rows"].as_array().unwrap();
    assert_eq!(rows.len() as u64, expected.missing - 400);
    let placed_at = page["columns"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c == "placed_at")
        .unwrap();
    for r in rows {
        assert_eq!(r["kind"], "missing");
        assert!(r["values"][placed_at]["subscriber"].is_null());
        let t = r["values"][placed_at]["publisher"]["text"]
            .as_str()
            .unwrap();
        let t = t.trim_matches('"');
        assert!(
            gap.0.as_str() <= t && t <= gap.1.as_str(),
            "{t} outside the gap"
        );
    }
    for bad in [
        "?kind=lost",
        "?limit=0",
        "?limit=201",
        "?offset=-1",
        "?dialect=tsql",
    ] {
        let (code, body) = svc.get(&format!("{rows_path}{bad}")).await;
        assert_eq!(code, 400, "{bad}: {body}");
    }
    assert_eq!(svc.get("/api/v1/groups/demo/tables/nope/rows").await.0, 404);

    // Only configured tables can be addressed; a pass on demand is accepted.
    assert_eq!(
        svc.post("/api/v1/groups/demo/tables/order_lines/validate")
            .await
            .0,
        202
    );
    let (code, body) = svc.post("/api/v1/groups/demo/tables/nope/validate").await;
    assert_eq!(code, 404);
    assert!(body.contains("nope"));
    assert_eq!(
        svc.post("/api/v1/groups/nope/tables/order_lines/validate")
            .await
            .0,
        404
    );
    assert_eq!(
        svc.get("/api/v1/groups/demo/tables/order_lines/validate")
            .await
            .0,
        405
    );
    assert_eq!(svc.get("/no/such/route").await.0, 404);
    assert_eq!(svc.get("/readyz").await.0, 200);
    svc.stop().await;
}

/// A loopback TCP proxy in front of a database: stopping it makes the database
/// unreachable (connections cut, connects refused), starting it again on the same port
/// brings it back.
struct Proxy {
    addr: SocketAddr,
    target: SocketAddr,
    tasks: Option<JoinSet<()>>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut p = Proxy {
            addr: listener.local_addr().unwrap(),
            target,
            tasks: None,
        };
        p.serve(listener);
        p
    }

    fn serve(&mut self, listener: TcpListener) {
        let target = self.target;
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                conns.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        self.tasks = Some(tasks);
    }

    async fn stop(&mut self) {
        if let Some(mut t) = self.tasks.take() {
            t.shutdown().await; // dropping the accept loop drops every connection too
        }
    }

    async fn restart(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }
}

/// The `orders` table of the PostgreSQL and MariaDB pairs: ids 1..=20000 on the publisher;
/// the subscriber lacks 7 of them, has 3 more and 5 changed (amounts, a trailing space, a
/// NULL), so it holds 4 rows fewer.
const ORDERS_ROWS: u64 = 20_000;
const ORDERS_DRIFT: [(&str, f64); 3] = [("missing", 7.0), ("extra", 3.0), ("changed", 5.0)];

/// The metrics of a pass over `orders` with its drift: every difference confirmed (the
/// configs confirm at once), none pending, and both databases up.
fn assert_orders_drift(m: &Metrics, group: &str, table: &str, databases: [&str; 2]) {
    for (kind, n) in ORDERS_DRIFT {
        for (status, want) in [("confirmed", Some(n)), ("pending", None)] {
            let labels = [("group", group), ("kind", kind), ("status", status)];
            assert_eq!(
                m.pair("driftwatch_table_divergent_rows", table, &labels),
                want,
                "{kind} {status}"
            );
        }
    }
    let g = [("group", group)];
    let difference = ORDERS_DRIFT[0].1 - ORDERS_DRIFT[1].1;
    let rows = ORDERS_ROWS as f64;
    assert_eq!(
        m.pair("driftwatch_table_row_count_difference", table, &g),
        Some(difference)
    );
    for (role, rows) in [("publisher", rows), ("subscriber", rows - difference)] {
        assert_eq!(
            m.pair(
                "driftwatch_table_rows",
                table,
                &[("group", group), ("role", role)]
            ),
            Some(rows),
            "{role}"
        );
    }
    assert_eq!(m.pair("driftwatch_table_converged", table, &g), Some(0.0));
    for db in databases {
        assert_eq!(
            m.get("driftwatch_up", &[("database", db)]),
            Some(1.0),
            "{db}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_pair_is_validated_and_survives_its_subscriber_going_away() {
    let pubc = pg_database("dw_e2e_pub").await;
    let subc = pg_database("dw_e2e_sub").await;
    let setup = "CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, amount numeric(12,2), placed_at timestamptz);
         INSERT INTO orders SELECT g, 'customer ' || (g % 97), (g % 1000) / 10.0, timestamptz '2025-01-01' + g * interval '1 minute'
           FROM generate_series(1, 20000) g;
         CREATE TABLE nokey (a int, b text); INSERT INTO nokey VALUES (1, 'x');";
    pubc.batch_execute(setup).await.unwrap();
    subc.batch_execute(setup).await.unwrap();
    // The drift: 7 missing, 3 extra, 5 changed.
    subc.batch_execute(
        "DELETE FROM orders WHERE id IN (5, 500, 5000, 9999, 10000, 15000, 20000);
         INSERT INTO orders VALUES (20001, 'late', 1, now()), (20002, 'late', 2, now()), (-1, 'early', 3, now());
         UPDATE orders SET amount = amount + 0.01 WHERE id IN (1, 2, 3);
         UPDATE orders SET customer = customer || ' ' WHERE id = 7777;
         UPDATE orders SET placed_at = NULL WHERE id = 12345;",
    )
    .await
    .unwrap();
    let pg: SocketAddr = {
        let u = pg_base();
        let hostport = u
            .rsplit('@')
            .next()
            .unwrap()
            .trim_end_matches('/')
            .to_string();
        let addr = tokio::net::lookup_host(hostport)
            .await
            .unwrap()
            .next()
            .unwrap();
        addr
    };
    let mut proxy = Proxy::start(pg).await;
    let user = pg_base()
        .split("://")
        .nth(1)
        .unwrap()
        .split('@')
        .next()
        .unwrap()
        .to_string();
    let dir = temp_dir();
    let toml = format!(
        r#"
[defaults]
interval = "1h"
confirm_after = "0s"
chunk_rows = 1000

[databases.hub]
url = "{pub_url}"
[databases.member]
url = "postgres://{user}@{proxy}/dw_e2e_sub?sslmode=disable&connect_timeout=2"

[[groups]]
name = "sales"
publisher = "hub"
subscribers = ["member"]

[[groups.tables]]
name = "public.orders"

[[groups.tables]]
name = "public.missing_table"

[[groups.tables]]
name = "public.nokey"

[[groups]]
name = "sales_eu"
publisher = "hub"
subscribers = ["member"]

[[groups.tables]]
name = "public.orders"
key = ["id"]
filter = "no_such_column > 0"
"#,
        pub_url = pg_url("dw_e2e_pub"),
        proxy = proxy.addr,
    );
    let svc = Service::start(load_config(dir.path(), &toml)).await;
    let orders = "public.orders";
    let m = svc
        .wait_for(60, "the first passes", |m| {
            [
                ("sales", "public.orders"),
                ("sales", "public.missing_table"),
                ("sales", "public.nokey"),
                ("sales_eu", "public.orders"),
            ]
            .iter()
            .all(|(g, t)| {
                m.pair("driftwatch_validations_total", t, &[("group", g)])
                    .unwrap_or(0.0)
                    >= 1.0
            })
        })
        .await;
    assert_orders_drift(&m, "sales", orders, ["hub", "member"]);
    // Bad tables are errors of their own; the good one is validated regardless.
    for (group, bad) in [
        ("sales", "public.missing_table"),
        ("sales", "public.nokey"),
        ("sales_eu", "public.orders"),
    ] {
        let g = [("group", group)];
        assert_eq!(
            m.pair(
                "driftwatch_validations_total",
                bad,
                &[("group", group), ("result", "error")]
            ),
            Some(1.0),
            "{bad}"
        );
        assert_eq!(
            m.pair("driftwatch_table_converged", bad, &g),
            Some(0.0),
            "{bad}"
        );
    }
    let status: serde_json::Value =
        serde_json::from_str(&svc.get("/api/v1/status").await.1).unwrap();
    let error_of = |g: &str, t: &str| {
        let line = status["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["group"] == g && l["table"] == t)
            .unwrap();
        line["error"].as_str().unwrap_or("").to_string()
    };
    assert!(
        error_of("sales", "public.missing_table").contains("does not exist"),
        "{}",
        error_of("sales", "public.missing_table")
    );
    assert!(
        error_of("sales", "public.nokey").contains("no primary key"),
        "{}",
        error_of("sales", "public.nokey")
    );
    assert!(
        error_of("sales_eu", "public.orders").contains("no_such_column"),
        "{}",
        error_of("sales_eu", "public.orders")
    );
    assert!(
        m.get(
            "driftwatch_errors_total",
            &[("database", "hub"), ("reason", "table_not_found")]
        )
        .unwrap()
            >= 1.0
    );

    // The subscriber goes away: its pass fails, nothing reports converged from stale data.
    proxy.stop().await;
    assert_eq!(
        svc.post("/api/v1/groups/sales/tables/public.orders/validate")
            .await
            .0,
        202
    );
    let m = svc
        .wait_for(60, "the subscriber to be seen down", |m| {
            m.get("driftwatch_up", &[("database", "member")]) == Some(0.0)
                && m.pair(
                    "driftwatch_validations_total",
                    orders,
                    &[("group", "sales"), ("result", "error")],
                )
                .unwrap_or(0.0)
                    >= 1.0
        })
        .await;
    assert_eq!(
        m.pair("driftwatch_table_converged", orders, &[("group", "sales")]),
        Some(0.0)
    );
    assert!(
        m.get(
            "driftwatch_errors_total",
            &[("database", "member"), ("reason", "connect")]
        )
        .unwrap()
            >= 1.0
    );

    // It comes back: validation resumes without a restart.
    proxy.restart().await;
    let before = m
        .pair(
            "driftwatch_validations_total",
            orders,
            &[("group", "sales"), ("result", "divergent")],
        )
        .unwrap();
    assert_eq!(
        svc.post("/api/v1/groups/sales/tables/public.orders/validate")
            .await
            .0,
        202
    );
    let m = svc
        .wait_for(60, "validation to resume", |m| {
            m.pair(
                "driftwatch_validations_total",
                orders,
                &[("group", "sales"), ("result", "divergent")],
            )
            .unwrap_or(0.0)
                > before
        })
        .await;
    assert_eq!(m.get("driftwatch_up", &[("database", "member")]), Some(1.0));
    let labels = [
        ("group", "sales"),
        ("kind", "missing"),
        ("status", "confirmed"),
    ];
    assert_eq!(
        m.pair("driftwatch_table_divergent_rows", orders, &labels),
        Some(7.0)
    );
    svc.stop().await;
    proxy.stop().await;
}

/// A MariaDB pair with the PostgreSQL pair's `orders` and drift, served: the metrics and
/// the status JSON report exactly that drift; the script endpoint's MySQL fix script,
/// applied to the subscriber with the `mariadb` client, makes the next pass converged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_pair_is_validated_and_converged_by_its_fix_script() {
    use mysql_async::prelude::Queryable;

    let (pub_db, sub_db) = ("dw_e2e_my_pub", "dw_e2e_my_sub");
    let create = "CREATE TABLE orders (id bigint PRIMARY KEY, customer varchar(64) NOT NULL, \
                  amount decimal(12,2), placed_at timestamp(6) NULL)";
    let rows: Vec<String> = (1..=ORDERS_ROWS)
        .map(|g| {
            format!(
                "({g}, 'customer {}', {} / 10.0, TIMESTAMP '2025-01-01 00:00:00' + INTERVAL {g} MINUTE)",
                g % 97,
                g % 1000
            )
        })
        .collect();
    // Held to the end of the test, which drops the databases.
    let mut databases = Vec::new();
    for db in [pub_db, sub_db] {
        let mut conn = mysql_database(db).await;
        conn.query_drop(create).await.unwrap();
        for chunk in rows.chunks(5000) {
            conn.query_drop(format!("INSERT INTO orders VALUES {}", chunk.join(", ")))
                .await
                .unwrap();
        }
        databases.push(conn);
    }
    mysql_connect(sub_db)
        .await
        .query_drop(
            "DELETE FROM orders WHERE id IN (5, 500, 5000, 9999, 10000, 15000, 20000);
             INSERT INTO orders VALUES (20001, 'late', 1, NOW()), (20002, 'late', 2, NOW()), (-1, 'early', 3, NOW());
             UPDATE orders SET amount = amount + 0.01 WHERE id IN (1, 2, 3);
             UPDATE orders SET customer = CONCAT(customer, ' ') WHERE id = 7777;
             UPDATE orders SET placed_at = NULL WHERE id = 12345;",
        )
        .await
        .unwrap();

    let dir = temp_dir();
    let toml = pair_config(
        &mysql_url(pub_db),
        &mysql_url(sub_db),
        "orders",
        "orders",
        "auto",
        1000,
    );
    let svc = Service::start(load_config(dir.path(), &toml)).await;
    let first_pass = |m: &Metrics| {
        m.pair("driftwatch_validations_total", "orders", &[])
            .unwrap_or(0.0)
            >= 1.0
    };
    let m = svc.wait_for(60, "the first pass", first_pass).await;
    assert_orders_drift(&m, "g", "orders", ["pub", "sub"]);

    let status: serde_json::Value =
        serde_json::from_str(&svc.get("/api/v1/status").await.1).unwrap();
    assert_eq!(status["converged"], false);
    let line = &status["tables"][0];
    assert_eq!(status["tables"].as_array().unwrap().len(), 1);
    for (key, want) in [
        ("group", serde_json::json!("g")),
        ("table", "orders".into()),
        ("subscriber", "sub".into()),
        ("state", "divergent".into()),
        ("error", serde_json::Value::Null),
        // auto streams between MySQL-family servers: hashing costs them more than sending.
        ("strategy", "streamed".into()),
        ("publisher_rows", ORDERS_ROWS.into()),
        ("subscriber_rows", (ORDERS_ROWS - 4).into()),
        (
            "confirmed",
            serde_json::json!({"missing": 7, "extra": 3, "changed": 5}),
        ),
        (
            "pending",
            serde_json::json!({"missing": 0, "extra": 0, "changed": 0}),
        ),
        (
            "script",
            "/api/v1/groups/g/tables/orders/script?subscriber=sub".into(),
        ),
    ] {
        assert_eq!(line[key], want, "{key}");
    }
    let sample: std::collections::BTreeSet<(String, String, String)> = line["sample"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"][0].as_str().unwrap().to_string(),
                r["kind"].as_str().unwrap().to_string(),
                r["changed_columns"].to_string(),
            )
        })
        .collect();
    let mut want = std::collections::BTreeSet::new();
    for id in [5, 500, 5000, 9999, 10000, 15000, 20000] {
        want.insert((id.to_string(), "missing".into(), "[]".into()));
    }
    for id in [20001, 20002, -1] {
        want.insert((id.to_string(), "extra".into(), "[]".into()));
    }
    for (id, column) in [
        (1, "amount"),
        (2, "amount"),
        (3, "amount"),
        (7777, "customer"),
        (12345, "placed_at"),
    ] {
        want.insert((id.to_string(), "changed".into(), format!("[\"{column}\"]")));
    }
    assert_eq!(sample, want);

    // The fix script, as a person would fetch and apply it.
    let response = reqwest::get(format!(
        "{}/api/v1/groups/g/tables/orders/script?dialect=mysql",
        svc.base
    ))
    .await
    .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("driftwatch-g-orders-sub-fix.mysql.sql"));
    let script = response.text().await.unwrap();
    assert!(
        script
            .trim_end()
            .ends_with("-- driftwatch: 7 missing, 3 extra, 5 changed; 15 statements."),
        "{script}"
    );
    mysql_apply(sub_db, &script, &dir.path().join("fix.sql"));

    assert_eq!(
        svc.post("/api/v1/groups/g/tables/orders/validate").await.0,
        202
    );
    let m = svc
        .wait_for(60, "a converged pass", |m| {
            m.pair(
                "driftwatch_validations_total",
                "orders",
                &[("result", "converged")],
            )
            .unwrap_or(0.0)
                >= 1.0
        })
        .await;
    assert_eq!(
        m.pair("driftwatch_table_converged", "orders", &[]),
        Some(1.0)
    );
    for (kind, _) in ORDERS_DRIFT {
        for status in ["confirmed", "pending"] {
            assert_eq!(
                m.pair(
                    "driftwatch_table_divergent_rows",
                    "orders",
                    &[("kind", kind), ("status", status)]
                ),
                None,
                "{kind} {status}"
            );
        }
    }
    assert_eq!(
        m.pair("driftwatch_table_row_count_difference", "orders", &[]),
        Some(0.0)
    );
    assert_eq!(
        m.pair("driftwatch_table_rows", "orders", &[("role", "subscriber")]),
        Some(ORDERS_ROWS as f64)
    );
    let status: serde_json::Value =
        serde_json::from_str(&svc.get("/api/v1/status").await.1).unwrap();
    assert_eq!(status["converged"], true);
    assert_eq!(status["tables"][0]["state"], "converged");
    assert_eq!(status["tables"][0]["script"], serde_json::Value::Null);
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_requires_its_token_when_one_is_configured() {
    let dir = temp_dir();
    let db = dir.path().join("a.db");
    sqlite_load(&db, "t", &text_key_schema(), &[]);
    std::fs::write(dir.path().join("token"), "s3cret\n").unwrap();
    let config = load_config(
        dir.path(),
        &format!(
            "[server]\napi_token_file = \"token\"\n[databases.a]\nurl = \"{0}\"\n[databases.b]\nurl = \"{0}\"\n\
             [[groups]]\nname = \"g\"\npublisher = \"a\"\nsubscribers = [\"b\"]\n[[groups.tables]]\nname = \"t\"\n",
            sqlite_url(&db)
        ),
    );
    let svc = Service::start(config).await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/status", svc.base);
    assert_eq!(
        client.get(&url).send().await.unwrap().status().as_u16(),
        401
    );
    assert_eq!(
        client
            .get(&url)
            .header("Authorization", "Bearer wrong")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    assert_eq!(
        client
            .get(&url)
            .header("Authorization", "Bearer s3cret")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    // The differing rows need it too; the page itself carries no data and stays open.
    assert_eq!(svc.get("/api/v1/groups/g/tables/t/rows").await.0, 401);
    assert_eq!(svc.get("/").await.0, 200);
    // Metrics and health stay open to scrapers and probes.
    assert_eq!(svc.get("/metrics").await.0, 200);
    assert_eq!(svc.get("/healthz").await.0, 200);
    svc.stop().await;
}

/// The script endpoint: bad input, a streamed script, the limit on concurrent requests,
/// and no row data off loopback without a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_are_served_streamed_and_limited() {
    let dir = temp_dir();
    let setup = driftwatch::demo::create(dir.path(), "127.0.0.1:0").unwrap();
    let mut config = driftwatch::config::load(&setup.config_path).unwrap();
    config.server.max_concurrent_scripts = 1;
    // Slow reads, so that a script takes a while to finish.
    config
        .databases
        .get_mut("publisher")
        .unwrap()
        .max_rows_per_second = 60_000;
    let svc = Service::start(config.clone()).await;
    let path = "/api/v1/groups/demo/tables/order_lines/script";
    for (query, code) in [
        ("?dialect=oracle", 400),
        ("?mode=undo", 400),
        ("?guards=maybe", 400),
        ("?batch=0", 400),
        ("?subscriber=nobody", 404),
    ] {
        let (got, body) = svc.get(&format!("{path}{query}")).await;
        assert_eq!(got, code, "{query}: {body}");
        assert!(body.contains("\"error\""), "{query}: a JSON error: {body}");
    }
    assert_eq!(
        svc.get("/api/v1/groups/demo/tables/nope/script").await.0,
        404
    );

    let started = std::time::Instant::now();
    let mut response = reqwest::get(format!("{}{path}?dialect=postgres", svc.base))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert!(headers["content-disposition"]
        .to_str()
        .unwrap()
        .contains("driftwatch-demo-order_lines-subscriber-fix.postgres.sql"));
    let first = response.chunk().await.unwrap().unwrap();
    let first_at = started.elapsed();
    assert!(String::from_utf8_lossy(&first)
        .starts_with("-- driftwatch convergence script: fix mode, postgres dialect"));
    // While it streams, the one allowed request is taken.
    let (busy, body) = svc.get(&format!("{path}?mode=redrive")).await;
    assert_eq!(busy, 429, "{body}");
    let mut text = String::from_utf8(first.to_vec()).unwrap();
    while let Some(chunk) = response.chunk().await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let total = started.elapsed();
    assert!(
        first_at * 2 < total,
        "the first bytes ({first_at:?}) came before the diff was done ({total:?})"
    );
    assert!(
        text.trim_end()
            .ends_with("-- driftwatch: 483 missing, 25 extra, 40 changed; 548 statements."),
        "{}",
        &text[text.len().saturating_sub(300)..]
    );
    assert_eq!(text.matches("INSERT INTO \"order_lines\"").count(), 483);
    // The permit is back.
    assert_eq!(
        svc.get(&format!("{path}?mode=redrive&dialect=tsql"))
            .await
            .0,
        200
    );
    // The status links to it.
    // The status links to it once a pass has found the differences (reads are slow here).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let line = loop {
        let status: serde_json::Value =
            serde_json::from_str(&svc.get("/api/v1/status").await.1).unwrap();
        let line = status["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == "order_lines")
            .unwrap()
            .clone();
        if !line["script"].is_null() || std::time::Instant::now() > deadline {
            break line;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        line["script"],
        "/api/v1/groups/demo/tables/order_lines/script?subscriber=subscriber"
    );
    svc.stop().await;

    // Beyond loopback without a token: no row data.
    let open = Service::start_on("0.0.0.0:0", config).await;
    let (code, body) = open.get(path).await;
    assert_eq!(code, 403, "{body}");
    let rows = "/api/v1/groups/demo/tables/order_lines/rows";
    let (code, body) = open.get(rows).await;
    assert_eq!(code, 403, "{body}");
    open.stop().await;
}

/// An edge copy refreshed the way edge copies are (a new file renamed over the old one)
/// is read again by the running service: its connections were on the old file. (One
/// connection to the subscriber, so that no query ever reads the new file by chance.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_file_replaced_under_the_service_is_read_again() {
    let dir = temp_dir();
    let (pub_db, sub_db) = (dir.path().join("pub.db"), dir.path().join("sub.db"));
    let write = |path: &std::path::Path, rows: std::ops::RangeInclusive<i64>| {
        let c = rusqlite::Connection::open(path).unwrap();
        c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            .unwrap();
        for i in rows {
            c.execute("INSERT INTO t VALUES (?1, ?2)", (i, format!("v{i}")))
                .unwrap();
        }
    };
    write(&pub_db, 1..=100);
    write(&sub_db, 1..=90);
    let config = load_config(
        dir.path(),
        &format!(
            "[defaults]\ninterval = \"1s\"\nconfirm_after = \"0s\"\n\
             [databases.a]\nurl = \"{}\"\n\
             [databases.b]\nurl = \"{}\"\nmax_concurrent_queries = 1\n\
             [[groups]]\nname = \"g\"\npublisher = \"a\"\nsubscribers = [\"b\"]\n\
             [[groups.tables]]\nname = \"t\"\n",
            sqlite_url(&pub_db),
            sqlite_url(&sub_db)
        ),
    );
    let svc = Service::start(config).await;
    let missing = |m: &Metrics| {
        m.pair(
            "driftwatch_table_divergent_rows",
            "t",
            &[("kind", "missing"), ("status", "confirmed")],
        )
    };
    svc.wait_for(30, "the 10 missing rows", |m| missing(m) == Some(10.0))
        .await;
    let fresh = dir.path().join("sub.db.new");
    write(&fresh, 1..=100);
    std::fs::rename(&fresh, &sub_db).unwrap();
    // The first pass after the rename: the new file's row count, and nothing missing.
    let m = svc
        .wait_for(30, "the refreshed copy read", |m| {
            m.pair("driftwatch_table_rows", "t", &[("role", "subscriber")]) == Some(100.0)
        })
        .await;
    assert_eq!(missing(&m), None);
    assert_eq!(m.pair("driftwatch_table_converged", "t", &[]), Some(1.0));
    svc.stop().await;
}

/// Reads a response body to its end, or to the error that cuts it.
async fn body_of(mut response: reqwest::Response) -> String {
    let mut text = String::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text
}

/// A script that stops at a value its dialect cannot hold (NaN for T-SQL) ends with its
/// error trailer on every try, over HTTP and on the CLI's standard output; with
/// skip_unrepresentable the other rows are written, and the script still ends with one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_that_stops_ends_with_its_error_every_time() {
    let pubc = pg_database("dw_trailer_pub").await;
    let subc = pg_database("dw_trailer_sub").await;
    let create = "CREATE TABLE t (id int PRIMARY KEY, ratio double precision, note text)";
    // 10,000 rows missing (the odd ids), the one at 15001 with a NaN: the script streams a
    // good part of itself before it stops.
    pubc.batch_execute(&format!(
        "{create}; INSERT INTO t SELECT g, g / 4.0, 'note ' || g FROM generate_series(1, 20000) g;
         UPDATE t SET ratio = 'NaN' WHERE id = 15001"
    ))
    .await
    .unwrap();
    subc.batch_execute(&format!(
        "{create}; INSERT INTO t SELECT g, g / 4.0, 'note ' || g FROM generate_series(2, 20000, 2) g"
    ))
    .await
    .unwrap();
    let dir = temp_dir();
    let toml = format!(
        "[defaults]\ninterval = \"1h\"\nconfirm_after = \"0s\"\n\
         [databases.a]\nurl = \"{}\"\n[databases.b]\nurl = \"{}\"\n\
         [[groups]]\nname = \"g\"\npublisher = \"a\"\nsubscribers = [\"b\"]\n\
         [[groups.tables]]\nname = \"public.t\"\n",
        pg_url("dw_trailer_pub"),
        pg_url("dw_trailer_sub")
    );
    let config_path = write_config(dir.path(), &toml);
    let svc = Service::start(load_config(dir.path(), &toml)).await;
    let url = format!("{}/api/v1/groups/g/tables/public.t/script", svc.base);
    let incomplete = "-- This script is INCOMPLETE: it does not converge the table.";
    for attempt in 0..10 {
        let response = reqwest::get(format!("{url}?dialect=tsql")).await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let text = body_of(response).await;
        assert!(text.contains("INSERT INTO [public].[t]"), "try {attempt}");
        assert!(
            text.trim_end().ends_with(incomplete)
                && text.contains("\n-- ERROR: table public.t, key (15001), column ratio"),
            "try {attempt}: {}",
            &text[text.len().saturating_sub(400)..]
        );
    }
    let text = body_of(
        reqwest::get(format!("{url}?dialect=tsql&skip_unrepresentable=true"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(text.matches("INSERT INTO [public].[t]").count(), 9_999);
    assert!(text.contains("===== NOT WRITTEN: 1 rows"), "{text:.2000}");
    assert!(text.contains("--   key (15001), column ratio: SQL Server cannot store NaN"));
    assert!(text.trim_end().ends_with(incomplete));
    assert!(text.contains("-- ERROR: 1 rows could not be written"));
    let (code, body) = svc
        .get("/api/v1/groups/g/tables/public.t/script?skip_unrepresentable=maybe")
        .await;
    assert_eq!(code, 400, "{body}");
    svc.stop().await;

    // The CLI: standard output ends the same way; the exit code says it.
    let diff = |extra: &[&str]| {
        let out = std::process::Command::new(driftwatch_tests::bin())
            .args([
                "diff",
                "--group",
                "g",
                "--table",
                "public.t",
                "--dialect",
                "tsql",
            ])
            .arg("--config")
            .arg(&config_path)
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = diff(&[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stdout.trim_end().ends_with(incomplete)
            && stdout.contains("-- ERROR: table public.t, key (15001)"),
        "{}",
        &stdout[stdout.len().saturating_sub(400)..]
    );
    let (code, stdout, stderr) = diff(&["--skip-unrepresentable"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stdout.matches("INSERT INTO [public].[t]").count(), 9_999);
    assert!(stdout.contains("--   key (15001), column ratio"));
    assert!(stdout.trim_end().ends_with(incomplete));
    let file = dir.path().join("fix.sql");
    let (code, _, stderr) = diff(&["--skip-unrepresentable", "-o", file.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    let written = std::fs::read_to_string(&file).unwrap();
    let header: String = written.lines().take(20).collect::<Vec<_>>().join("\n");
    assert!(
        header.contains("-- NOT WRITTEN: 1 rows")
            && header.contains("--   key (15001), column ratio"),
        "{header}"
    );
    assert!(written.trim_end().ends_with(incomplete));
}

/// Schema drift is not convergence: a column on one side only, or one skipped as
/// unsupported, keeps `table_converged` at 0, shows as "schema_differs" and makes `check`
/// exit 1; a column excluded on purpose does not. `check --json` carries the differing
/// rows (key, kind, changed columns), the schema differences by column and the gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_drift_is_not_converged_and_check_json_says_what_differs() {
    let dir = temp_dir();
    let (pub_db, sub_db) = (dir.path().join("pub.db"), dir.path().join("sub.db"));
    let sql = |path: &std::path::Path, sql: &str| {
        rusqlite::Connection::open(path)
            .unwrap()
            .execute_batch(sql)
            .unwrap()
    };
    let rows = "INSERT INTO {t} (id, v) VALUES (1, 'a'), (2, 'b'), (3, 'c');";
    for t in ["drift", "untyped", "excluded"] {
        let extra = match t {
            "untyped" => ", anything",
            "excluded" => ", local_note TEXT",
            _ => "",
        };
        sql(
            &sub_db,
            &format!(
                "CREATE TABLE {t} (id INTEGER PRIMARY KEY, v TEXT{extra}); {}",
                rows.replace("{t}", t)
            ),
        );
        let extra = if t == "untyped" {
            ", anything"
        } else {
            ", extra TEXT"
        };
        sql(
            &pub_db,
            &format!(
                "CREATE TABLE {t} (id INTEGER PRIMARY KEY, v TEXT{extra}); {}",
                rows.replace("{t}", t)
            ),
        );
    }
    let create = "CREATE TABLE orders (id INTEGER PRIMARY KEY, v TEXT, at DATETIME);";
    sql(
        &pub_db,
        &format!(
            "{create} INSERT INTO orders VALUES (1, 'a', '2025-06-14 02:00:00'), (2, 'b', '2025-06-14 03:00:00'), \
             (3, 'c', '2025-06-14 04:00:00'), (4, 'd', '2025-06-14 05:00:00');"
        ),
    );
    sql(
        &sub_db,
        &format!("{create} INSERT INTO orders VALUES (1, 'a', '2025-06-14 02:00:00'), (4, 'D', '2025-06-14 05:00:00');"),
    );
    let toml = format!(
        "[defaults]\ninterval = \"1h\"\nconfirm_after = \"0s\"\n\
         [databases.a]\nurl = \"{}\"\n[databases.b]\nurl = \"{}\"\n\
         [[groups]]\nname = \"g\"\npublisher = \"a\"\nsubscribers = [\"b\"]\n\
         [[groups.tables]]\nname = \"drift\"\n[[groups.tables]]\nname = \"untyped\"\n\
         [[groups.tables]]\nname = \"excluded\"\nexclude_columns = [\"extra\", \"local_note\"]\n\
         [[groups.tables]]\nname = \"orders\"\ntime_column = \"at\"\n",
        sqlite_url(&pub_db),
        sqlite_url(&sub_db)
    );

    let svc = Service::start(load_config(dir.path(), &toml)).await;
    let m = svc
        .wait_for(30, "every table's first pass", |m| {
            ["drift", "untyped", "excluded", "orders"].iter().all(|t| {
                m.pair(
                    "driftwatch_validation_last_success_timestamp_seconds",
                    t,
                    &[],
                )
                .unwrap_or(0.0)
                    > 0.0
            })
        })
        .await;
    for (table, converged, mismatch) in [
        ("drift", 0.0, Some(1.0)),
        ("untyped", 0.0, None),
        ("excluded", 1.0, None),
    ] {
        assert_eq!(
            m.pair("driftwatch_table_converged", table, &[]),
            Some(converged),
            "{table}"
        );
        assert_eq!(
            m.pair("driftwatch_table_schema_mismatch", table, &[]),
            mismatch,
            "{table}"
        );
    }
    let status: serde_json::Value =
        serde_json::from_str(&svc.get("/api/v1/status").await.1).unwrap();
    let state = |t: &str| {
        status["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["table"] == t)
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(state("drift"), "schema_differs");
    assert_eq!(state("untyped"), "schema_differs");
    assert_eq!(state("excluded"), "converged");
    assert_eq!(status["converged"], false);
    svc.stop().await;

    let check = |table: &'static str| {
        let config = load_config(dir.path(), &toml);
        async move {
            driftwatch::check::check(config, Some("g"), Some(table))
                .await
                .unwrap()
        }
    };
    assert_eq!(check("excluded").await.exit_code(), 0);
    let report = check("drift").await;
    assert_eq!(report.exit_code(), 1);
    assert!(
        report.human().contains("NOT CONVERGED (schema differs); rows publisher 3, subscriber 3; schema differs, publisher only: extra"),
        "{}",
        report.human()
    );
    let json = serde_json::to_value(driftwatch::api::CheckReport::from(&report)).unwrap();
    assert_eq!(json["tables"][0]["state"], "schema_differs");
    assert_eq!(
        json["tables"][0]["schema"]["publisher_only"],
        serde_json::json!(["extra"])
    );
    let report = check("untyped").await;
    assert_eq!(report.exit_code(), 1);
    let json = serde_json::to_value(driftwatch::api::CheckReport::from(&report)).unwrap();
    assert_eq!(
        json["tables"][0]["schema"]["unsupported"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let report = check("orders").await;
    assert_eq!(report.exit_code(), 1);
    let json = serde_json::to_value(driftwatch::api::CheckReport::from(&report)).unwrap();
    let line = &json["tables"][0];
    assert_eq!(line["state"], "divergent");
    assert_eq!(
        line["missing_window"],
        serde_json::json!(["2025-06-14 03:00:00", "2025-06-14 04:00:00"])
    );
    // Each row as the status shows it (its first sighting aside, which is a time).
    let sample: Vec<serde_json::Value> = line["sample"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.as_object_mut().unwrap().remove("first_seen");
            r
        })
        .collect();
    assert_eq!(
        serde_json::Value::Array(sample),
        serde_json::json!([
            {"key": ["2"], "kind": "missing", "changed_columns": [], "confirmed": true, "status": "confirmed"},
            {"key": ["3"], "kind": "missing", "changed_columns": [], "confirmed": true, "status": "confirmed"},
            {"key": ["4"], "kind": "changed", "changed_columns": ["v"], "confirmed": true, "status": "confirmed"},
        ])
    );
    assert_eq!(
        line["compared_columns"],
        serde_json::json!(["id", "v", "at"])
    );
}
