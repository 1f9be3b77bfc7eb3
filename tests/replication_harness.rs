//! The live-replication harness against itself: PostgreSQL logical replication and MariaDB
//! GTID replication between servers the test starts, through the 250 ms delay proxy, under
//! the bounded write load. After the load both sides must be identical, replication must
//! report healthy, the observed lag must show the proxy's delay (and not grow without
//! bound), and both the digest and `replication_ok` must notice what they exist to notice.

use driftwatch_tests as common;

use std::time::{Duration, Instant};

use common::replication::*;

const LATENCY: Duration = Duration::from_millis(250);
const SEED_ROWS: i64 = 20_000;
const LOAD_FOR: Duration = Duration::from_secs(20);

/// Marker lags measured every half second until `until`.
async fn probe_lags(publisher: &str, subscriber: &str, until: Instant) -> Vec<Duration> {
    let mut p = Db::connect(publisher).await.unwrap();
    let mut s = Db::connect(subscriber).await.unwrap();
    let mut lags = Vec::new();
    let mut id = 1;
    while Instant::now() < until {
        let lag = marker_lag(&mut p, &mut s, id, Duration::from_secs(30))
            .await
            .unwrap();
        lags.push(lag);
        id += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    lags.sort();
    lags
}

/// What every engine's run must show, with the figures printed.
fn check_run(engine: &str, spec: &LoadSpec, counts: LoadCounts, lags: &[Duration]) {
    let median = lags[lags.len() / 2];
    println!(
        "{engine}: load {counts:?} in {:?} (asked {} tx/s); marker lag over {} probes: \
         min {:?}, median {median:?}, max {:?}",
        spec.duration,
        spec.rate,
        lags.len(),
        lags[0],
        lags[lags.len() - 1]
    );
    // The load ran near its rate and did every kind of write.
    let asked = spec.rate as f64 * spec.duration.as_secs_f64();
    assert!(
        counts.transactions as f64 >= asked * 0.5,
        "{engine}: {} transactions of {asked} asked",
        counts.transactions
    );
    assert_eq!(
        counts.hot_updates, counts.transactions,
        "{engine}: hot rows are never deleted"
    );
    assert!(counts.random_updates > 0 && counts.inserts > 0 && counts.deletes > 0);
    // Every write crosses the proxy once on its way to the subscriber; with throughput
    // preserved the lag stays near the delay instead of growing with the load.
    assert!(lags.len() >= 10, "{engine}: {} lag probes", lags.len());
    assert!(
        lags[0] >= LATENCY,
        "{engine}: a write arrived in {:?}, under the proxy's {LATENCY:?}",
        lags[0]
    );
    assert!(
        median < LATENCY + Duration::from_secs(2),
        "{engine}: median lag {median:?} for a {LATENCY:?} delay"
    );
}

/// Polls `ok` until it reports an error containing `expected`.
async fn expect_broken<F, Fut>(engine: &str, expected: &str, ok: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match ok().await {
            Err(e) if format!("{e:#}").contains(expected) => {
                println!("{engine}: replication_ok reported: {e:#}");
                return;
            }
            other => assert!(
                Instant::now() < deadline,
                "{engine}: replication_ok gave {other:?} 30 s after a conflicting insert"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_logical_replication_converges_through_the_delay_proxy() {
    let t0 = Instant::now();
    let pair = PgLogicalPair::start(LATENCY).await;
    let mut p = Db::connect(&pair.publisher_url()).await.unwrap();
    pair.execute_both(&format!("{}; {MARKER_DDL}", orders_ddl(&p)))
        .await;
    seed_orders(&mut p, SEED_ROWS, 7).await.unwrap();
    pair.publish(&["orders", "dw_marker"]).await;
    let ready = t0.elapsed();

    let spec = LoadSpec {
        duration: LOAD_FOR,
        ..LoadSpec::default()
    };
    let load = Load::start(&pair.publisher_url(), spec.clone())
        .await
        .unwrap();
    let lags = probe_lags(
        &pair.publisher_url(),
        &pair.subscriber_url(),
        Instant::now() + LOAD_FOR,
    )
    .await;
    let counts = load.wait().await.unwrap();
    let caught_up = pair.wait_caught_up(Duration::from_secs(30)).await.unwrap();
    pair.replication_ok().await.unwrap();
    let mut s = Db::connect(&pair.subscriber_url()).await.unwrap();
    let (pd, sd) = (
        orders_digest(&mut p).await.unwrap(),
        orders_digest(&mut s).await.unwrap(),
    );
    assert_eq!(pd, sd, "publisher and subscriber differ after catching up");
    assert_eq!(
        pd.0,
        SEED_ROWS + counts.inserts as i64 - counts.deletes as i64
    );
    check_run("postgres", &spec, counts, &lags);
    println!(
        "postgres: ready in {ready:?}, caught up {caught_up:?} after the load, {:?} in all",
        t0.elapsed()
    );

    // The digest sees one changed value.
    s.execute("UPDATE orders SET note = 'drift' WHERE id = 100")
        .await
        .unwrap();
    assert_ne!(orders_digest(&mut s).await.unwrap(), pd);
    // A row inserted on the subscriber, then on the publisher, stops the apply worker.
    s.execute("INSERT INTO dw_marker (id) VALUES (999999)")
        .await
        .unwrap();
    p.execute("INSERT INTO dw_marker (id) VALUES (999999)")
        .await
        .unwrap();
    expect_broken("postgres", "duplicate key", || pair.replication_ok()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_gtid_replication_converges_through_the_delay_proxy() {
    let t0 = Instant::now();
    let pair = MariaDbReplica::start(LATENCY).await;
    let (primary, replica) = (pair.primary_url(PAIR_DB), pair.replica_url(PAIR_DB));
    let mut p = Db::connect(&primary).await.unwrap();
    // DDL replicates.
    p.execute(orders_ddl(&p)).await.unwrap();
    p.execute(MARKER_DDL).await.unwrap();
    seed_orders(&mut p, SEED_ROWS, 7).await.unwrap();
    pair.wait_caught_up(Duration::from_secs(60)).await.unwrap();
    let ready = t0.elapsed();

    let spec = LoadSpec {
        duration: LOAD_FOR,
        ..LoadSpec::default()
    };
    let load = Load::start(&primary, spec.clone()).await.unwrap();
    let lags = probe_lags(&primary, &replica, Instant::now() + LOAD_FOR).await;
    let counts = load.wait().await.unwrap();
    let caught_up = pair.wait_caught_up(Duration::from_secs(30)).await.unwrap();
    pair.replication_ok().await.unwrap();
    let mut r = Db::connect(&replica).await.unwrap();
    let (pd, rd) = (
        orders_digest(&mut p).await.unwrap(),
        orders_digest(&mut r).await.unwrap(),
    );
    assert_eq!(pd, rd, "primary and replica differ after catching up");
    assert_eq!(
        pd.0,
        SEED_ROWS + counts.inserts as i64 - counts.deletes as i64
    );
    check_run("mariadb", &spec, counts, &lags);
    println!(
        "mariadb: ready in {ready:?}, caught up {caught_up:?} after the load, {:?} in all",
        t0.elapsed()
    );

    r.execute("UPDATE orders SET note = 'drift' WHERE id = 100")
        .await
        .unwrap();
    assert_ne!(orders_digest(&mut r).await.unwrap(), pd);
    r.execute("INSERT INTO dw_marker (id) VALUES (999999)")
        .await
        .unwrap();
    p.execute("INSERT INTO dw_marker (id) VALUES (999999)")
        .await
        .unwrap();
    expect_broken("mariadb", "Duplicate entry", || pair.replication_ok()).await;
}
