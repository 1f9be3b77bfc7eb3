//! `driftwatch-bench`: how fast is one full `driftwatch check` pass over a publisher/subscriber
//! pair on one engine (`--engine postgres`, the default, or `mariadb`), compared with floors
//! measured in the same run on the same data?
//!
//! It loads one `orders` table of `--rows` rows into two databases with 100 known
//! differences on the subscriber (40 missing, 30 extra, 30 changed rows, spread over the key
//! range), the same rows and differences on either engine, then measures, in five rounds
//! that alternate them (so that a change in the machine's load falls on a ratio's both
//! sides alike), the minimum and median of:
//! - the md5 floor: the publisher hashes every row of the table in one query (what a
//!   pushdown pass cannot beat by much, since it has to read and hash every row too);
//! - the transfer floor: the whole table from both sides in parallel into a sink that only
//!   counts bytes (`COPY orders TO STDOUT` on PostgreSQL, `SELECT * FROM orders` on
//!   MariaDB): what a streamed pass cannot beat by much, since every row crosses the wire;
//! - `driftwatch check --json` as a child process, once with `strategy = "pushdown"` and
//!   once with `"streamed"`: wall time, the child's own peak RSS (from `wait4`), and whether
//!   it found exactly the differences that were made. A pass that reports other counts fails
//!   the benchmark, whatever its speed.
//!
//! The load is timed and printed but is not part of the figures.
//!
//! What it must not do: touch anything but its own two databases, `dw_bench_pub` and
//! `dw_bench_sub`, which it creates, loads and, without `--keep`, drops. The server URL
//! (`--pg-url`, `--mysql-url`) serves only to create and drop those two; no other database
//! on the server is read or written. Kept databases carry a marker of what was loaded, so
//! that a rerun with the same `--rows` skips the load (`--fresh` forces it).
//!
//! `--peers` also runs other comparison tools on the same pair, alternated with driftwatch,
//! and gives driftwatch's time as a ratio of theirs (`peers.rs`; they only ever read).
//!
//! `--metrics-tables N` measures a /metrics scrape of N served tables instead (`metrics.rs`).
//!
//! Everything engine-specific (all SQL) is behind [`Engine`]: the PostgreSQL pair is in
//! `postgres.rs`, the MariaDB pair in `mariadb.rs`. What the engines share (the difference
//! set, verifying a load, the runs, the report) lives here and knows no engine.

mod breakdown;
mod mariadb;
mod metrics;
mod peers;
mod postgres;

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use serde_json::{json, Value};

use crate::breakdown::Breakdown;
use crate::mariadb::Mariadb;
use crate::peers::{PtTableSyncTarget, ReladiffTarget};
use crate::postgres::Postgres;

/// Every floor and every pass is measured this many times.
const RUNS: usize = 5;
/// With `--peers`: rounds of driftwatch and every peer, alternated.
const PEER_RUNS: usize = 3;
/// Bump whenever the generated data or the difference set changes, so that databases kept
/// by an earlier version are reloaded instead of reused.
const DATA_VERSION: u32 = 1;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Benchmark a full `driftwatch check` pass on a PostgreSQL or MariaDB pair against floors measured in the same run"
)]
struct Args {
    /// The engine holding the pair.
    #[arg(long, value_enum, default_value_t = EngineKind::Postgres)]
    engine: EngineKind,
    /// Key range 1..=ROWS of the generated table (the publisher lacks 30 ids of it, the extra rows).
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// PostgreSQL server, with a maintenance database (only dw_bench_pub and dw_bench_sub are touched).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    pg_url: String,
    /// MariaDB server, with no database or a maintenance one (only dw_bench_pub and dw_bench_sub are touched).
    #[arg(long, default_value = "mysql://root@127.0.0.1:3306")]
    mysql_url: String,
    /// The driftwatch binary [default: $CARGO_TARGET_DIR/release/driftwatch, else <workspace>/target/release/driftwatch].
    #[arg(long)]
    driftwatch: Option<PathBuf>,
    /// Keep the databases and config files afterwards (a rerun with the same --rows reuses them).
    #[arg(long)]
    keep: bool,
    /// Reload the databases even if they already hold the requested data.
    #[arg(long)]
    fresh: bool,
    /// Also run the peers (reladiff; pt-table-sync on MariaDB) on the pair, alternated with
    /// driftwatch, and report driftwatch's time as a ratio of theirs. reladiff is installed
    /// into bench/.peers-venv when missing; a peer that is not installed is reported and skipped.
    #[arg(long)]
    peers: bool,
    /// Print the figures as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Instead of a pass: time /metrics when the service watches this many tables
    /// (SQLite, in a temporary directory; no database server is touched).
    #[arg(long)]
    metrics_tables: Option<usize>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum EngineKind {
    Postgres,
    Mariadb,
}

/// One of the two databases of the pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Publisher,
    Subscriber,
}

/// The side whose database this is, if either's.
fn side_of(database: &str) -> Option<Side> {
    [Side::Publisher, Side::Subscriber]
        .into_iter()
        .find(|s| s.database() == database)
}

impl Side {
    fn database(self) -> &'static str {
        match self {
            Side::Publisher => "dw_bench_pub",
            Side::Subscriber => "dw_bench_sub",
        }
    }

    /// Its name in the driftwatch config.
    fn config_name(self) -> &'static str {
        match self {
            Side::Publisher => "pub",
            Side::Subscriber => "sub",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.database())
    }
}

/// How a changed row differs on the subscriber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    Amount,
    Note,
    Status,
}

impl Change {
    const ALL: [Change; 3] = [Change::Amount, Change::Note, Change::Status];
}

/// Counts of differences, as made or as found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Counts {
    missing: u64,
    extra: u64,
    changed: u64,
}

impl Counts {
    fn json(&self) -> Value {
        json!({ "missing": self.missing, "extra": self.extra, "changed": self.changed })
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.missing, self.extra, self.changed)
    }
}

/// The known differences of the subscriber, by id, spread over the whole key range.
#[derive(Debug)]
struct DiffSet {
    /// On the publisher, deleted from the subscriber.
    missing: Vec<i64>,
    /// Left out of the publisher's ids (gaps inside its key range), present on the subscriber.
    extra: Vec<i64>,
    /// On both, updated on the subscriber.
    changed: Vec<(i64, Change)>,
}

impl DiffSet {
    fn spread(rows: u64) -> Result<Self> {
        ensure!(rows >= 1000, "--rows must be at least 1000");
        let n = i64::try_from(rows)?;
        let set = DiffSet {
            missing: (1..=40).map(|k| k * n / 40 - 7).collect(),
            extra: (1..=30).map(|k| k * n / 30 - 13).collect(),
            changed: (1..=30)
                .map(|k| (k * n / 30 - n / 60 - 3, Change::ALL[k as usize % 3]))
                .collect(),
        };
        let mut ids = set.ids();
        ensure!(
            ids.iter().all(|id| (1..=n).contains(id)),
            "difference ids out of range"
        );
        ids.sort_unstable();
        ids.dedup();
        ensure!(ids.len() == 100, "difference ids overlap for --rows {rows}");
        Ok(set)
    }

    fn ids(&self) -> Vec<i64> {
        let changed = self.changed.iter().map(|(id, _)| *id);
        self.missing
            .iter()
            .chain(&self.extra)
            .copied()
            .chain(changed)
            .collect()
    }

    fn expected(&self) -> Counts {
        Counts {
            missing: self.missing.len() as u64,
            extra: self.extra.len() as u64,
            changed: self.changed.len() as u64,
        }
    }

    /// What a loaded pair records, to be recognized by a rerun.
    fn marker(&self, rows: u64) -> String {
        format!(
            "v{DATA_VERSION} rows={rows} missing={:?} extra={:?} changed={:?}",
            self.missing, self.extra, self.changed
        )
    }
}

/// What to load into one side: ids 1..=rows except `skip`, then delete and change rows.
struct LoadPlan<'a> {
    rows: u64,
    skip: &'a [i64],
    delete: &'a [i64],
    change: &'a [(i64, Change)],
    marker: &'a str,
}

/// One side's row count and the canonical text of those of the asked rows it has.
struct Probe {
    count: u64,
    rows: HashMap<i64, String>,
}

/// A database engine holding the pair. All of its SQL lives in its own module.
trait Engine {
    /// For the report, e.g. "PostgreSQL".
    fn name(&self) -> &'static str;
    /// The URL of one side's database, as written into the driftwatch config.
    fn url(&self, side: Side) -> String;
    /// The table's name in the driftwatch config (and so in its report).
    fn table(&self) -> &'static str;
    /// How the transfer floor reads a table, for the report, e.g. "COPY".
    fn transfer_method(&self) -> &'static str;
    /// The marker of an earlier complete load, if the side's database has one.
    async fn marker(&self, side: Side) -> Result<Option<String>>;
    /// Drops and creates both databases, empty.
    async fn recreate(&self) -> Result<()>;
    /// Creates and fills `orders` (ids and columns as functions of the id, the same on every
    /// engine) on one side, applies the plan's differences, refreshes the statistics (and on
    /// PostgreSQL the visibility map, for index-only scans) and writes the marker last.
    async fn load(&self, side: Side, plan: &LoadPlan<'_>) -> Result<()>;
    /// The side's row count and the rows with the given ids.
    async fn probe(&self, side: Side, ids: &[i64]) -> Result<Probe>;
    /// The OS processes or threads serving the two bench databases, each with its side
    /// (see `breakdown.rs`).
    async fn server_tasks(&self) -> Result<Vec<(Side, u32)>>;
    /// The largest acceptable ratio of a pass's time to its floor, per strategy.
    fn target(&self, strategy: Strategy) -> f64;
    /// One run of the md5 floor on the publisher, timed without the connection.
    async fn digest_floor(&self) -> Result<Duration>;
    /// One run of the transfer floor: both sides' tables to a byte counter, in parallel.
    async fn transfer_floor(&self) -> Result<(Duration, u64)>;
    async fn drop_databases(&self) -> Result<()>;
    /// How reladiff reaches the pair, in read-only sessions.
    fn reladiff_target(&self) -> ReladiffTarget;
    /// How pt-table-sync reaches the pair, in read-only sessions; None for an engine it
    /// does not speak (it is MySQL-family only).
    fn pt_table_sync_target(&self) -> Option<PtTableSyncTarget>;
}

/// The pair as loaded and checked, before anything is measured.
#[derive(Debug)]
struct Setup {
    /// None when kept databases were reused.
    load: Option<Duration>,
    publisher_rows: u64,
    subscriber_rows: u64,
    /// The differences as measured in the databases, not as intended.
    truth: Counts,
}

#[derive(Clone, Copy, Debug)]
enum Strategy {
    Pushdown,
    Streamed,
}

impl Strategy {
    const ALL: [Strategy; 2] = [Strategy::Pushdown, Strategy::Streamed];

    fn name(self) -> &'static str {
        match self {
            Strategy::Pushdown => "pushdown",
            Strategy::Streamed => "streamed",
        }
    }

    fn floor_name(self) -> &'static str {
        match self {
            Strategy::Pushdown => "md5 floor",
            Strategy::Streamed => "transfer floor",
        }
    }

    fn config_path(self) -> PathBuf {
        std::env::temp_dir().join(format!(
            "driftwatch-bench-{}-{}.toml",
            std::process::id(),
            self.name()
        ))
    }
}

/// Repeated timings of one thing.
struct Samples(Vec<Duration>);

impl Samples {
    fn min(&self) -> Duration {
        self.0.iter().copied().min().unwrap_or_default()
    }

    fn median(&self) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        sorted.get(sorted.len() / 2).copied().unwrap_or_default()
    }

    fn json(&self) -> Value {
        json!({
            "min_s": self.min().as_secs_f64(),
            "median_s": self.median().as_secs_f64(),
            "runs_s": self.0.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
        })
    }
}

struct Floors {
    md5: Samples,
    transfer: Samples,
    transfer_bytes: u64,
}

impl Floors {
    fn of(&self, strategy: Strategy) -> &Samples {
        match strategy {
            Strategy::Pushdown => &self.md5,
            Strategy::Streamed => &self.transfer,
        }
    }
}

/// The runs of one strategy.
struct Pass {
    strategy: Strategy,
    /// The largest acceptable ratio of the pass's time to its floor.
    target: f64,
    /// The sampled run's wall time and where it went.
    breakdown: Option<(Duration, Breakdown)>,
    times: Samples,
    peak_rss_kib: u64,
    rows_fetched: u64,
    /// The counts of the first run that got them wrong, else of the first run (None before
    /// the first run).
    found: Option<Counts>,
    /// Everything that was wrong in any run; empty when all runs were correct.
    problems: Vec<String>,
}

impl Pass {
    fn ratio(&self, floors: &Floors) -> f64 {
        self.times.min().as_secs_f64() / floors.of(self.strategy).min().as_secs_f64()
    }

    fn meets_target(&self, floors: &Floors) -> bool {
        self.ratio(floors) <= self.target
    }
}

/// The part of `driftwatch check --json` output the benchmark checks.
struct Report {
    converged: Option<bool>,
    state: Option<String>,
    strategy: Option<String>,
    found: Counts,
    rows_fetched: u64,
}

fn parse_report(stdout: &str, table_name: &str) -> Result<Report> {
    let doc: Value = serde_json::from_str(stdout).context("not JSON")?;
    let tables = doc["tables"].as_array().context("no \"tables\" array")?;
    let table = tables
        .iter()
        .find(|t| t["group"] == "bench" && t["table"] == table_name && t["subscriber"] == "sub")
        .with_context(|| format!("no entry for group bench, table {table_name}, subscriber sub"))?;
    if !table["error"].is_null() {
        bail!("the table reports an error: {}", table["error"]);
    }
    let count = |key: &str| {
        table[key]
            .as_u64()
            .with_context(|| format!("no count \"{key}\" in the table entry"))
    };
    let rows_fetched = doc["databases"]
        .as_array()
        .context("no \"databases\" array")?
        .iter()
        .map(|d| {
            d["rows_fetched"]
                .as_u64()
                .context("a database without rows_fetched")
        })
        .sum::<Result<u64>>()?;
    Ok(Report {
        converged: doc["converged"].as_bool(),
        state: table["state"].as_str().map(str::to_owned),
        strategy: table["strategy"].as_str().map(str::to_owned),
        found: Counts {
            missing: count("missing")?,
            extra: count("extra")?,
            changed: count("changed")?,
        },
        rows_fetched,
    })
}

#[derive(Debug, PartialEq, Eq)]
enum Exit {
    Code(i32),
    Signal(i32),
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exit code {code}"),
            Exit::Signal(signal) => write!(f, "signal {signal}"),
        }
    }
}

/// One child process, run to its end.
struct ChildRun {
    wall: Duration,
    /// The child's own CPU, user and system.
    cpu: Duration,
    /// The child's own peak resident set size (Linux reports KiB).
    max_rss_kib: u64,
    exit: Exit,
    stdout: String,
    stderr: String,
}

/// Runs `driftwatch check --config FILE --json`.
/// With `log`, driftwatch also writes its chunk digest and localization times, and the
/// line that closes the pass, to stderr (see `breakdown.rs`).
fn run_check(bin: &Path, config: &Path, log: bool) -> Result<ChildRun> {
    let mut command = Command::new(bin);
    command
        .arg("check")
        .arg("--config")
        .arg(config)
        .arg("--json");
    if log {
        command.env(
            "RUST_LOG",
            "warn,driftwatch::compare=debug,driftwatch::runtime=info",
        );
    }
    run_child(&mut command).with_context(|| format!("running {}", bin.display()))
}

/// Runs a command to its end, with no stdin, both outputs captured, and reaps it with
/// `wait4`, which gives the rusage of that child alone (`RUSAGE_CHILDREN` would accumulate
/// over all children). The wall time runs from the spawn to the reaping.
fn run_child(command: &mut Command) -> Result<ChildRun> {
    let start = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", command.get_program().to_string_lossy()))?;
    let mut stderr_pipe = child.stderr.take().expect("stderr is piped");
    let stderr_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        stderr_pipe.read_to_end(&mut buf).map(|_| buf)
    });
    let mut stdout = Vec::new();
    child
        .stdout
        .take()
        .expect("stdout is piped")
        .read_to_end(&mut stdout)?;
    let (status, usage) = wait4(child.id())?;
    let wall = start.elapsed();
    let stderr = stderr_reader.join().expect("stderr reader panicked")?;

    let exit = if libc::WIFEXITED(status) {
        Exit::Code(libc::WEXITSTATUS(status))
    } else {
        Exit::Signal(libc::WTERMSIG(status))
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(ChildRun {
        wall,
        cpu: time(usage.ru_utime) + time(usage.ru_stime),
        max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        exit,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

fn wait4(pid: u32) -> io::Result<(libc::c_int, libc::rusage)> {
    let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    let mut status = 0;
    // SAFETY: rusage is plain old data, for which all-zero bytes are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers point to live locals, and `pid` is our own child, not yet reaped.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            return Ok((status, usage));
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// A server URL with its path (a maintenance database, if any) replaced by `/database`,
/// and its query string apart, for the engine to complete: `scheme://auth@host:port/database`.
fn url_for_database<'a>(url: &'a str, database: &str) -> (String, Option<&'a str>) {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    (format!("{base}/{database}"), query)
}

/// A TOML basic string: a JSON string literal is one.
fn toml_string(s: &str) -> String {
    Value::from(s).to_string()
}

fn write_config(engine: &impl Engine, strategy: Strategy) -> Result<PathBuf> {
    let path = strategy.config_path();
    let (publisher, subscriber) = (Side::Publisher, Side::Subscriber);
    let text = format!(
        r#"[defaults]
confirm_after = "0s"
chunk_rows = 10000

[databases.{pub_name}]
url = {pub_url}

[databases.{sub_name}]
url = {sub_url}

[[groups]]
name = "bench"
publisher = "{pub_name}"
subscribers = ["{sub_name}"]

[[groups.tables]]
name = {table}
strategy = "{strategy}"
"#,
        pub_name = publisher.config_name(),
        pub_url = toml_string(&engine.url(publisher)),
        sub_name = subscriber.config_name(),
        sub_url = toml_string(&engine.url(subscriber)),
        table = toml_string(engine.table()),
        strategy = strategy.name(),
    );
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

impl Pass {
    /// One more run, sampled (the sampling would slow the timed runs a little): where the
    /// pass spends its time.
    async fn sample(&mut self, engine: &impl Engine, bin: &Path, config: &Path) -> Result<()> {
        let (run, server_cpu) = breakdown::sample_during(engine, {
            let (bin, config) = (bin.to_owned(), config.to_owned());
            tokio::task::spawn_blocking(move || run_check(&bin, &config, true))
        })
        .await?;
        let run = run??;
        let mut breakdown = Breakdown {
            server_cpu,
            client_cpu: run.cpu,
            ..Breakdown::default()
        };
        breakdown.read_log(&run.stderr);
        self.breakdown = Some((run.wall, breakdown));
        Ok(())
    }

    /// No runs yet.
    fn new(strategy: Strategy, target: f64) -> Self {
        Pass {
            strategy,
            target,
            breakdown: None,
            times: Samples(Vec::with_capacity(RUNS)),
            peak_rss_kib: 0,
            rows_fetched: 0,
            found: None,
            problems: Vec::new(),
        }
    }

    /// One more run of `driftwatch check` with this pass's config, recorded. An exit code
    /// other than 1 (divergent) or output that is not its report stops the benchmark;
    /// wrong differences are recorded as problems.
    async fn run_once(
        &mut self,
        bin: &Path,
        config: &Path,
        table: &str,
        truth: Counts,
        run_no: usize,
    ) -> Result<()> {
        let strategy = self.strategy;
        let (bin, config) = (bin.to_owned(), config.to_owned());
        let run = tokio::task::spawn_blocking(move || run_check(&bin, &config, false)).await??;
        let label = format!("driftwatch check ({}, run {run_no})", strategy.name());
        if run.exit != Exit::Code(1) {
            let stderr = match run.stderr.trim() {
                "" => "(empty)",
                text => text,
            };
            eprintln!(
                "{label} ended with {} (expected 1: divergent). Its stderr:\n{stderr}",
                run.exit
            );
            if !run.stdout.trim().is_empty() {
                eprintln!("Its stdout:\n{}", run.stdout);
            }
            bail!("{label} failed");
        }
        let report = parse_report(&run.stdout, table).with_context(|| {
            format!(
                "{label}: unexpected --json output:\n{}\nstderr:\n{}",
                run.stdout, run.stderr
            )
        })?;

        let mut wrong = Vec::new();
        if report.found != truth {
            wrong.push(format!("found {} (expected {truth})", report.found));
        }
        if report.converged == Some(true) {
            wrong.push("reported converged".to_owned());
        }
        if let Some(state) = report.state.as_deref().filter(|s| *s != "divergent") {
            wrong.push(format!("state {state} (expected divergent)"));
        }
        if let Some(ran) = report.strategy.as_deref().filter(|s| *s != strategy.name()) {
            wrong.push(format!("ran strategy {ran}"));
        }
        if self.found.is_none() || (!wrong.is_empty() && self.problems.is_empty()) {
            self.found = Some(report.found);
        }
        self.problems
            .extend(wrong.into_iter().map(|w| format!("run {run_no}: {w}")));

        // Report the fetch count of the fastest run; it should not vary between runs.
        if self.times.0.iter().all(|t| run.wall < *t) {
            self.rows_fetched = report.rows_fetched;
        }
        self.times.0.push(run.wall);
        self.peak_rss_kib = self.peak_rss_kib.max(run.max_rss_kib);
        Ok(())
    }

    /// The counts of the first run that got them wrong, else of the first run.
    fn found(&self) -> Counts {
        self.found
            .expect("a pass is reported after at least one run")
    }
}

/// Measures the differences actually present in the loaded pair.
async fn verify(engine: &impl Engine, diffs: &DiffSet) -> Result<Setup> {
    let ids = diffs.ids();
    let (publisher, subscriber) = tokio::try_join!(
        engine.probe(Side::Publisher, &ids),
        engine.probe(Side::Subscriber, &ids)
    )?;
    let on_pub = |id: &i64| publisher.rows.contains_key(id);
    let on_sub = |id: &i64| subscriber.rows.contains_key(id);
    let truth = Counts {
        missing: diffs
            .missing
            .iter()
            .filter(|id| on_pub(id) && !on_sub(id))
            .count() as u64,
        extra: diffs
            .extra
            .iter()
            .filter(|id| !on_pub(id) && on_sub(id))
            .count() as u64,
        changed: diffs
            .changed
            .iter()
            .filter(
                |(id, _)| match (publisher.rows.get(id), subscriber.rows.get(id)) {
                    (Some(p), Some(s)) => p != s,
                    _ => false,
                },
            )
            .count() as u64,
    };
    Ok(Setup {
        load: None,
        publisher_rows: publisher.count,
        subscriber_rows: subscriber.count,
        truth,
    })
}

impl Setup {
    /// Whether the pair holds exactly the intended rows and differences.
    fn is_intended(&self, rows: u64, diffs: &DiffSet) -> bool {
        let expected = diffs.expected();
        self.truth == expected
            && self.publisher_rows == rows - expected.extra
            && self.subscriber_rows == rows - expected.missing
    }
}

/// Loads the pair, or reuses a kept one that holds the same rows and differences.
async fn prepare(engine: &impl Engine, rows: u64, diffs: &DiffSet, fresh: bool) -> Result<Setup> {
    let marker = diffs.marker(rows);
    if !fresh {
        let (p, s) = tokio::try_join!(
            engine.marker(Side::Publisher),
            engine.marker(Side::Subscriber)
        )?;
        if p.as_deref() == Some(marker.as_str()) && s.as_deref() == Some(marker.as_str()) {
            let setup = verify(engine, diffs).await?;
            if setup.is_intended(rows, diffs) {
                eprintln!("reusing the kept databases (--fresh reloads them)");
                return Ok(setup);
            }
            eprintln!("the kept databases no longer hold the intended data; reloading");
        }
    }

    eprintln!(
        "loading {} rows into {} and {} ...",
        thousands(rows),
        Side::Publisher,
        Side::Subscriber
    );
    let start = Instant::now();
    engine.recreate().await?;
    let publisher = LoadPlan {
        rows,
        skip: &diffs.extra,
        delete: &[],
        change: &[],
        marker: &marker,
    };
    let subscriber = LoadPlan {
        rows,
        skip: &[],
        delete: &diffs.missing,
        change: &diffs.changed,
        marker: &marker,
    };
    tokio::try_join!(
        engine.load(Side::Publisher, &publisher),
        engine.load(Side::Subscriber, &subscriber)
    )?;
    let load = start.elapsed();
    eprintln!(
        "load: {:.1} s (both sides in parallel, with the key and fresh statistics; not part of the figures)",
        load.as_secs_f64()
    );
    let setup = verify(engine, diffs).await?;
    ensure!(
        setup.is_intended(rows, diffs),
        "the loaded pair does not hold the intended differences: {setup:?}"
    );
    Ok(Setup {
        load: Some(load),
        ..setup
    })
}

/// 1234567 → "1,234,567".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `release/driftwatch` in `$CARGO_TARGET_DIR` when it is set (an exported one reaches us
/// through `cargo run`), else in the workspace's `target`.
fn default_driftwatch() -> PathBuf {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the bench crate is inside the workspace")
            .join("target"),
    };
    target.join("release/driftwatch")
}

fn floor_line(name: &str, samples: &Samples) -> String {
    format!(
        "floor  {name:<31}{:>7.3} s   (median {:.3} s)",
        samples.min().as_secs_f64(),
        samples.median().as_secs_f64()
    )
}

fn pass_line(pass: &Pass, floors: &Floors, truth: Counts) -> String {
    let verdict = if pass.problems.is_empty() {
        "ok".to_owned()
    } else if pass.found() != truth {
        format!("MISMATCH (expected {truth})")
    } else {
        "WRONG".to_owned()
    };
    format!(
        "pass   {:<10}{:>6.3} s   {:.2}x {:<15}target <= {:.2}x   rows fetched {:<11}peak RSS {:.1} MB   found {} {verdict}   (median {:.3} s)",
        pass.strategy.name(),
        pass.times.min().as_secs_f64(),
        pass.ratio(floors),
        pass.strategy.floor_name(),
        pass.target,
        thousands(pass.rows_fetched),
        pass.peak_rss_kib as f64 * 1024.0 / 1e6,
        pass.found(),
        pass.times.median().as_secs_f64(),
    )
}

/// The whole benchmark; `Ok(false)` when driftwatch reported wrong differences.
async fn bench(engine: &impl Engine, args: &Args) -> Result<bool> {
    let diffs = DiffSet::spread(args.rows)?;
    let driftwatch = args.driftwatch.clone().unwrap_or_else(default_driftwatch);
    let build_hint = format!(
        "driftwatch binary not found at {}: run `cargo build --release -p driftwatch` first (or pass --driftwatch PATH)",
        driftwatch.display()
    );
    if !driftwatch.is_file() {
        eprintln!("note: {build_hint}; the floors are measured anyway");
    }

    let setup = prepare(engine, args.rows, &diffs, args.fresh).await?;
    let per_kind = |kind| diffs.changed.iter().filter(|(_, k)| *k == kind).count();
    eprintln!(
        "publisher {} rows, subscriber {} rows; differences on the subscriber, verified: \
         {} missing, {} extra, {} changed ({} amount, {} note, {} status)",
        thousands(setup.publisher_rows),
        thousands(setup.subscriber_rows),
        setup.truth.missing,
        setup.truth.extra,
        setup.truth.changed,
        per_kind(Change::Amount),
        per_kind(Change::Note),
        per_kind(Change::Status),
    );

    // Floors and passes alternate, round by round, so that a change in the machine's
    // load (a neighbour, a checkpoint) falls on both sides of every ratio alike.
    let runnable = driftwatch.is_file();
    let mut configs = Vec::new();
    let mut passes = Vec::new();
    if runnable {
        for strategy in Strategy::ALL {
            configs.push((strategy, write_config(engine, strategy)?));
            passes.push(Pass::new(strategy, engine.target(strategy)));
        }
    }
    eprintln!(
        "measuring the floors{}, alternated, {RUNS} rounds ...",
        if runnable { " and the passes" } else { "" }
    );
    let mut md5 = Vec::with_capacity(RUNS);
    let mut transfer = Vec::with_capacity(RUNS);
    let mut transfer_bytes = 0;
    let truth = setup.truth;
    for round in 1..=RUNS {
        md5.push(engine.digest_floor().await?);
        let (time, bytes) = engine.transfer_floor().await?;
        transfer.push(time);
        transfer_bytes = bytes;
        for (pass, (_, config)) in passes.iter_mut().zip(&configs) {
            pass.run_once(&driftwatch, config, engine.table(), truth, round)
                .await?;
        }
    }
    let floors = Floors {
        md5: Samples(md5),
        transfer: Samples(transfer),
        transfer_bytes,
    };
    if !args.json {
        println!(
            "driftwatch benchmark: {} pair, {} rows, {} differences ({} missing, {} extra, {} changed)",
            engine.name(),
            thousands(args.rows),
            truth.missing + truth.extra + truth.changed,
            truth.missing,
            truth.extra,
            truth.changed,
        );
        println!("{}", floor_line("md5 scan (one side)", &floors.md5));
        let transfer = format!("{} transfer (both sides)", engine.transfer_method());
        println!("{}", floor_line(&transfer, &floors.transfer));
    }

    ensure!(runnable, "{build_hint}");
    for (pass, (_, config)) in passes.iter_mut().zip(&configs) {
        eprintln!(
            "one more driftwatch check ({}), sampled ...",
            pass.strategy.name()
        );
        pass.sample(engine, &driftwatch, config).await?;
        if !args.json {
            println!("{}", pass_line(pass, &floors, truth));
            if let Some((wall, breakdown)) = &pass.breakdown {
                println!(
                    "time   {:<10}one more run, sampled: {:.3} s; {}",
                    pass.strategy.name(),
                    wall.as_secs_f64(),
                    breakdown.line()
                );
            }
        }
    }

    let peers = if args.peers {
        let report = peers::compare(engine, &driftwatch, &configs, &diffs).await?;
        // The peers only read, in read-only sessions; make sure the pair is as loaded.
        let after = verify(engine, &diffs).await?;
        ensure!(
            after.is_intended(args.rows, &diffs),
            "after the peers the pair no longer holds the loaded data ({after:?}): something wrote to it"
        );
        if !args.json {
            for line in report.lines(truth) {
                println!("{line}");
            }
        }
        Some(report)
    } else {
        None
    };

    let missed: Vec<String> = passes
        .iter()
        .filter(|p| !p.meets_target(&floors))
        .map(|p| {
            format!(
                "{} {:.2}x > {:.2}x",
                p.strategy.name(),
                p.ratio(&floors),
                p.target
            )
        })
        .collect();
    let alternated = peers.iter().flat_map(|r| &r.passes);
    let problems: Vec<String> = passes
        .iter()
        .map(|p| (p, ""))
        .chain(alternated.map(|p| (p, " (alternated with the peers)")))
        .flat_map(|(p, when)| {
            p.problems
                .iter()
                .map(move |w| format!("{}{when}: {w}", p.strategy.name()))
        })
        .collect();

    if args.json {
        let report = json!({
            "engine": engine.name(),
            "rows": args.rows,
            "publisher_rows": setup.publisher_rows,
            "subscriber_rows": setup.subscriber_rows,
            "differences": truth.json(),
            "load_s": setup.load.map(|d| d.as_secs_f64()),
            "floors": {
                "md5_scan": floors.md5.json(),
                "transfer": {
                    "method": engine.transfer_method(),
                    "bytes": floors.transfer_bytes,
                    "times": floors.transfer.json(),
                },
            },
            "passes": passes.iter().map(|p| json!({
                "strategy": p.strategy.name(),
                "times": p.times.json(),
                "floor": p.strategy.floor_name(),
                "ratio": p.ratio(&floors),
                "target": p.target,
                "sampled_run": p.breakdown.as_ref().map(|(wall, b)| json!({
                    "wall_s": wall.as_secs_f64(),
                    "breakdown": b.json(),
                })),
                "target_met": p.meets_target(&floors),
                "rows_fetched": p.rows_fetched,
                "peak_rss_kib": p.peak_rss_kib,
                "found": p.found().json(),
                "correct": p.problems.is_empty(),
                "problems": p.problems,
            })).collect::<Vec<_>>(),
            "peers": peers.as_ref().map(peers::Report::json),
            "targets_met": missed.is_empty(),
            "targets_missed": missed,
            "correct": problems.is_empty(),
        });
        println!("{report:#}");
    } else if missed.is_empty() {
        println!("targets: met");
    } else {
        println!("targets: MISSED ({})", missed.join(", "));
    }

    if !problems.is_empty() {
        eprintln!();
        eprintln!("!!! BENCHMARK FAILED: driftwatch did not report the known differences !!!");
        for problem in &problems {
            eprintln!("!!!   {problem}");
        }
        eprintln!("!!! Speed without correctness is meaningless; these figures do not count.");
    }
    Ok(problems.is_empty())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let outcome = match (args.metrics_tables, args.engine) {
        (Some(tables), _) => metrics::run(tables, args.json).await,
        (None, EngineKind::Postgres) => match Postgres::new(&args.pg_url) {
            Ok(engine) => run(&engine, &args).await,
            Err(e) => Err(e),
        },
        (None, EngineKind::Mariadb) => match Mariadb::new(&args.mysql_url) {
            Ok(engine) => run(&engine, &args).await,
            Err(e) => Err(e),
        },
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("driftwatch-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The benchmark on one engine, then its databases and configs dropped unless `--keep`.
async fn run(engine: &impl Engine, args: &Args) -> Result<bool> {
    let outcome = bench(engine, args).await;

    let configs = Strategy::ALL.map(Strategy::config_path);
    if args.keep {
        eprintln!(
            "kept databases {} and {}",
            Side::Publisher,
            Side::Subscriber
        );
        for config in configs.iter().filter(|c| c.exists()) {
            eprintln!("kept {}", config.display());
        }
    } else {
        for config in &configs {
            // Absent when the run stopped before writing it.
            let _ = std::fs::remove_file(config);
        }
        if let Err(e) = engine.drop_databases().await {
            eprintln!("driftwatch-bench: could not drop the benchmark databases: {e:#}");
        }
    }
    outcome
}
