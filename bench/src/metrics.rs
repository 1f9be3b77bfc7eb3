//! `--metrics-tables N`: how long a /metrics scrape takes, and how much it weighs, when
//! the service watches N tables. It builds a SQLite hub and edge with N identical small
//! tables (`driftwatch::demo::many_tables`, in a fresh directory of the system's
//! temporary directory, removed afterwards), serves them in this process with
//! `driftwatch::serve` on a loopback port, waits until every table's first pass is
//! published (so every per-table series exists), then times [`RUNS`] GETs of /metrics,
//! plain and gzip, each over a fresh connection, from the request's first byte to the
//! response's last, and says whether the medians meet the target (10 ms at 1,000 tables).
//! It touches no database server and no file outside its directory.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Scrapes timed, per encoding.
const RUNS: usize = 20;
/// What the median scrape of each encoding may take, at [`TARGET_TABLES`] tables.
const TARGET: Duration = Duration::from_millis(10);
const TARGET_TABLES: usize = 1_000;

pub async fn run(tables: usize, as_json: bool) -> Result<bool> {
    let dir = std::env::temp_dir().join(format!("driftwatch-bench-metrics-{}", std::process::id()));
    let outcome = measure(&dir, tables, as_json).await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

async fn measure(dir: &Path, tables: usize, as_json: bool) -> Result<bool> {
    let loaded = Instant::now();
    let config = driftwatch::demo::many_tables(dir, tables)?;
    let config = driftwatch::config::load(&config)?;
    eprintln!(
        "{tables} tables written in {:.1} s",
        loaded.elapsed().as_secs_f64()
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(driftwatch::serve(config, listener, async {
        let _ = stopped.await;
    }));

    let started = Instant::now();
    loop {
        let (_, body) = get(addr, false).await?;
        let text = String::from_utf8_lossy(&body);
        let passed = text
            .lines()
            .filter(|l| l.starts_with("driftwatch_validations_total{"))
            .count();
        if passed >= tables {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("only {passed} of {tables} tables passed within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "first passes of every table in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut figures = Vec::new();
    for gzip in [false, true] {
        let mut times = Vec::with_capacity(RUNS);
        let mut bytes = 0;
        for _ in 0..RUNS {
            let (took, body) = get(addr, gzip).await?;
            times.push(took);
            bytes = body.len();
        }
        times.sort();
        figures.push((gzip, bytes, times[0], times[RUNS / 2]));
    }
    let _ = stop.send(());
    server.await.context("the service task")??;
    let met = (tables == TARGET_TABLES)
        .then(|| figures.iter().all(|&(_, _, _, median)| median <= TARGET));

    if as_json {
        let runs: Vec<_> = figures
            .iter()
            .map(|(gzip, bytes, min, median)| {
                json!({ "gzip": gzip, "bytes": bytes, "min_seconds": min.as_secs_f64(), "median_seconds": median.as_secs_f64() })
            })
            .collect();
        println!(
            "{}",
            json!({ "tables": tables, "runs": RUNS, "scrapes": runs, "target_median_seconds": TARGET.as_secs_f64(), "target_met": met })
        );
    } else {
        println!("/metrics of {tables} tables, {RUNS} scrapes each (min / median):");
        for (gzip, bytes, min, median) in &figures {
            println!(
                "  {:<5} {:>9} bytes  {:>7.2} ms / {:>7.2} ms",
                if *gzip { "gzip" } else { "plain" },
                bytes,
                min.as_secs_f64() * 1e3,
                median.as_secs_f64() * 1e3
            );
        }
        let target = format!(
            "median <= {} ms in both encodings at {TARGET_TABLES} tables",
            TARGET.as_millis()
        );
        match met {
            Some(true) => println!("target: {target}: met"),
            Some(false) => println!("target: {target}: MISSED"),
            None => println!("target: none for {tables} tables ({target})"),
        }
    }
    Ok(true)
}

/// One GET /metrics over a fresh connection: the time to the last byte, and the body.
async fn get(addr: std::net::SocketAddr, gzip: bool) -> Result<(Duration, Vec<u8>)> {
    let started = Instant::now();
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let encoding = if gzip {
        "Accept-Encoding: gzip\r\n"
    } else {
        ""
    };
    s.write_all(
        format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n{encoding}Connection: close\r\n\r\n")
            .as_bytes(),
    )
    .await?;
    let mut response = Vec::new();
    s.read_to_end(&mut response).await?;
    let took = started.elapsed();
    let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        bail!("no HTTP response from {addr}");
    };
    let head = String::from_utf8_lossy(&response[..end]);
    if !head.starts_with("HTTP/1.1 200") {
        bail!("GET /metrics: {}", head.lines().next().unwrap_or(""));
    }
    Ok((took, response[end + 4..].to_vec()))
}
