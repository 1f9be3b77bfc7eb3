//! `--peers`: other tools that compare the same pair, run in the same benchmark, so that
//! driftwatch's time can be given as a ratio of theirs, on the same server, data and load:
//! - [`Reladiff`] (PyPI `reladiff`, hashdiff between the two databases), on every engine;
//! - [`PtTableSync`] (Percona Toolkit's `pt-table-sync --print`), on MySQL-family pairs.
//!
//! The runs alternate, [`PEER_RUNS`] rounds of: driftwatch pushdown, driftwatch streamed,
//! then each peer; so a change in the machine's load falls on all of them alike, and the
//! ratios are of the fastest runs of the same rounds. Each peer's output is read back into
//! the ids it reports as missing, extra and changed, which must be exactly the known
//! difference set. A peer that is not installed, does not speak the engine, fails or
//! reports other differences is reported as such, and the run goes on: a peer never fails
//! the benchmark (only a wrong driftwatch does).
//!
//! What it must not do: write to the databases. The peers run in modes that only read
//! (pt-table-sync is a sync tool: it gets `--print`, never `--execute`), and every session
//! they open is read-only in the server too (the engine's targets say how), so a statement
//! that would write fails there instead. After the peers, the benchmark probes the pair
//! again and stops with an error if it no longer holds the loaded data. Nor does it install
//! anything but its own virtualenv, `bench/.peers-venv` (gitignored), which it creates only
//! with `--peers` and only when reladiff is missing from it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;
use serde_json::{json, Value};

use crate::{
    run_child, ChildRun, Counts, DiffSet, Engine, Exit, Pass, Samples, Strategy, PEER_RUNS,
};

/// How reladiff reaches one engine's pair: the publisher's and subscriber's database URLs,
/// in the form its drivers take, each making its session read-only.
pub(crate) struct ReladiffTarget {
    pub(crate) urls: [String; 2],
}

/// How pt-table-sync reaches a MySQL-family pair: the source (publisher) and destination
/// (subscriber) DSNs, `h=…,P=…,u=…,D=…,t=…`, and its `--set-vars` that make each of its
/// sessions read-only.
pub(crate) struct PtTableSyncTarget {
    pub(crate) dsns: [String; 2],
    pub(crate) read_only_vars: &'static str,
}

/// The reladiff release the virtualenv gets, with the drivers of both engines.
const RELADIFF_REQUIREMENT: &str = "reladiff[postgresql,mysql]==0.6.0";

/// What a peer says of one id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Missing,
    Extra,
    Changed,
    /// A statement that makes the subscriber's row whatever the publisher's is (REPLACE):
    /// right for a missing or a changed row alike.
    MissingOrChanged,
}

impl Kind {
    fn fits(self, truth: Kind) -> bool {
        self == truth || (self == Kind::MissingOrChanged && truth != Kind::Extra)
    }
}

/// The ids a peer reported and what it said of each; an id said twice is a problem.
#[derive(Default)]
struct Reported {
    ids: BTreeMap<i64, Kind>,
    twice: Vec<i64>,
}

impl Reported {
    fn add(&mut self, id: i64, kind: Kind) {
        if self.ids.insert(id, kind).is_some() {
            self.twice.push(id);
        }
    }

    /// The counts found (each reported id that is a known difference of the kind said,
    /// REPLACE counted as what the row was), and what is wrong against the known set.
    fn judge(&self, diffs: &DiffSet) -> (Counts, Vec<String>) {
        let mut truth = BTreeMap::new();
        truth.extend(diffs.missing.iter().map(|&id| (id, Kind::Missing)));
        truth.extend(diffs.extra.iter().map(|&id| (id, Kind::Extra)));
        truth.extend(diffs.changed.iter().map(|&(id, _)| (id, Kind::Changed)));

        let mut found = Counts {
            missing: 0,
            extra: 0,
            changed: 0,
        };
        let (mut unreported, mut wrong_kind) = (Vec::new(), Vec::new());
        for (&id, &kind) in &truth {
            match self.ids.get(&id) {
                None => unreported.push(id),
                Some(said) if !said.fits(kind) => wrong_kind.push(format!("{id} as {said:?}")),
                Some(_) => match kind {
                    Kind::Missing => found.missing += 1,
                    Kind::Extra => found.extra += 1,
                    _ => found.changed += 1,
                },
            }
        }
        let not_differences: Vec<i64> = self
            .ids
            .keys()
            .filter(|id| !truth.contains_key(id))
            .copied()
            .collect();

        let mut problems = Vec::new();
        let mut note = |what: &str, items: Vec<String>| {
            if !items.is_empty() {
                let shown = items.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
                let more = if items.len() > 5 { ", …" } else { "" };
                problems.push(format!("{} {what} ({shown}{more})", items.len()));
            }
        };
        let text = |ids: &[i64]| ids.iter().map(i64::to_string).collect::<Vec<_>>();
        note("differences not reported", text(&unreported));
        note("reported as the wrong kind", wrong_kind);
        note(
            "ids reported that are no difference",
            text(&not_differences),
        );
        note("ids reported twice", text(&self.twice));
        (found, problems)
    }
}

/// One peer tool, found and bound to the pair.
trait Peer {
    fn name(&self) -> &'static str;
    /// Its version as it reports it.
    fn version(&self) -> &str;
    /// The command that compares the pair (read-only).
    fn command(&self) -> Command;
    /// What one run reported, or why it failed (one line).
    fn read(&self, run: &ChildRun) -> Result<Reported, String>;
}

/// reladiff between the two databases (two URLs, so its hashdiff algorithm: checksums of
/// key ranges in each database, bisected down to the rows), every column compared.
struct Reladiff {
    exe: PathBuf,
    version: String,
    urls: [String; 2],
    table: &'static str,
}

impl Reladiff {
    const NAME: &'static str = "reladiff";

    fn venv() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(".peers-venv")
    }

    fn install_hint() -> String {
        let venv = Self::venv();
        format!(
            "python3 -m venv {venv} && {venv}/bin/pip install '{RELADIFF_REQUIREMENT}'; \
             --peers does this itself when python3 with venv and PyPI are there",
            venv = venv.display()
        )
    }

    /// reladiff from the bench's virtualenv, created and installed into first if missing.
    fn find(engine: &impl Engine) -> Result<Self, String> {
        let venv = Self::venv();
        let exe = venv.join("bin/reladiff");
        if !exe.is_file() {
            eprintln!(
                "peers: installing {RELADIFF_REQUIREMENT} into {} ...",
                venv.display()
            );
            let not_installed = |why: String| format!("{why}; {}", Self::install_hint());
            if !venv.join("bin/python").is_file() {
                let mut venv_cmd = Command::new("python3");
                venv_cmd.arg("-m").arg("venv").arg(&venv);
                setup_step(&mut venv_cmd).map_err(not_installed)?;
            }
            let mut pip = Command::new(venv.join("bin/python"));
            pip.args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg(RELADIFF_REQUIREMENT);
            setup_step(&mut pip).map_err(not_installed)?;
        }
        let version = tool_version(Command::new(&exe).arg("--version"))?;
        Ok(Reladiff {
            exe,
            version,
            urls: engine.reladiff_target().urls,
            table: engine.table(),
        })
    }
}

impl Peer for Reladiff {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn version(&self) -> &str {
        &self.version
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.exe);
        let [publisher, subscriber] = &self.urls;
        command
            // It prints through rich, which wraps lines at 80 columns when not on a terminal.
            .env("COLUMNS", "1000000")
            .arg(publisher)
            .arg(self.table)
            .arg(subscriber)
            .arg(self.table)
            // The key, and every column compared (by default only the key is).
            .args(["--key-columns", "id", "--columns", "%"])
            // Without it, reladiff 0.6.0 sorts each segment's differing rows by their
            // values and, on the MariaDB pair, stops with "TypeError: '<' not supported
            // between instances of 'NoneType' and 'str'" (a NULL note beside a text one).
            .arg("--skip-sort-results")
            .arg("--json");
        command
    }

    /// `--json` prints one `["-", [id, …]]` (in the publisher only) or `["+", [id, …]]`
    /// (in the subscriber only) per differing row: a changed row has both. reladiff logs
    /// an exception as an ERROR line on stderr and may still exit 0.
    fn read(&self, run: &ChildRun) -> Result<Reported, String> {
        if let Some(error) = run.stderr.lines().find_map(|l| l.split_once("ERROR - ")) {
            return Err(error.1.trim().to_owned());
        }
        if run.exit != Exit::Code(0) {
            return Err(exit_failure(run));
        }
        let mut sides: BTreeMap<i64, (bool, bool)> = BTreeMap::new();
        for line in run.stdout.lines().filter(|l| !l.trim().is_empty()) {
            let unreadable = || format!("unreadable output line: {line}");
            let entry: Value = serde_json::from_str(line).map_err(|_| unreadable())?;
            let id = match &entry[1][0] {
                Value::String(s) => s.parse().ok(),
                v => v.as_i64(),
            }
            .ok_or_else(unreadable)?;
            let side = sides.entry(id).or_default();
            match entry[0].as_str() {
                Some("-") => side.0 = true,
                Some("+") => side.1 = true,
                _ => return Err(unreadable()),
            }
        }
        let mut reported = Reported::default();
        for (id, side) in sides {
            let kind = match side {
                (true, true) => Kind::Changed,
                (true, false) => Kind::Missing,
                _ => Kind::Extra,
            };
            reported.add(id, kind);
        }
        Ok(reported)
    }
}

/// pt-table-sync from the source (publisher) to the destination (subscriber), printing
/// the statements that would sync them and executing none: the Chunk algorithm (checksums
/// of 1,000-row chunks of the key on both sides, then the rows of differing chunks), Nibble
/// where Chunk cannot be used.
struct PtTableSync {
    exe: PathBuf,
    version: String,
    target: PtTableSyncTarget,
}

impl PtTableSync {
    const NAME: &'static str = "pt-table-sync";
    const INSTALL_HINT: &'static str = "apt-get install percona-toolkit";

    /// `Ok(None)` when the engine is not one pt-table-sync speaks.
    fn find(engine: &impl Engine) -> Result<Option<Self>, String> {
        let Some(target) = engine.pt_table_sync_target() else {
            return Ok(None);
        };
        let exe = std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|dir| dir.join(Self::NAME))
            .find(|path| path.is_file())
            .ok_or_else(|| Self::INSTALL_HINT.to_owned())?;
        let version = tool_version(Command::new(&exe).arg("--version"))?;
        Ok(Some(PtTableSync {
            exe,
            version,
            target,
        }))
    }
}

impl Peer for PtTableSync {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn version(&self) -> &str {
        &self.version
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.exe);
        command
            // No call to Percona's version-check server (no network beyond the databases).
            .arg("--no-version-check")
            // Print the statements; never --execute them.
            .arg("--print")
            .args(["--algorithms", "Chunk,Nibble"])
            // Plain reads: no LOCK TABLES, and no transactions with locking reads (SELECT
            // … FOR UPDATE), its default on InnoDB, which a read-only session refuses.
            .args(["--no-transaction", "--lock", "0"])
            .args(["--set-vars", self.target.read_only_vars])
            .args(&self.target.dsns);
        command
    }

    /// One statement per line, each to be run on the destination: INSERT for a missing
    /// row, UPDATE for a changed one, DELETE for an extra one, REPLACE (when it uses it)
    /// for a missing or changed one. Exit code 2 means differences were found, 0 none.
    fn read(&self, run: &ChildRun) -> Result<Reported, String> {
        if !matches!(run.exit, Exit::Code(0 | 2)) {
            return Err(exit_failure(run));
        }
        let mut reported = Reported::default();
        for line in run.stdout.lines().filter(|l| !l.trim().is_empty()) {
            let unreadable = || format!("unreadable statement: {line}");
            let (kind, id) = if line.starts_with("DELETE FROM ") {
                (Kind::Extra, quoted_after(line, "WHERE `id`="))
            } else if line.starts_with("UPDATE ") {
                (Kind::Changed, quoted_after(line, "WHERE `id`="))
            } else if line.starts_with("INSERT INTO ") {
                (Kind::Missing, first_value(line))
            } else if line.starts_with("REPLACE INTO ") {
                (Kind::MissingOrChanged, first_value(line))
            } else {
                return Err(unreadable());
            };
            reported.add(id.ok_or_else(unreadable)?, kind);
        }
        Ok(reported)
    }
}

/// The id of `INSERT INTO t(`id`, …) VALUES ('7', …)`: `id` is the first column.
fn first_value(statement: &str) -> Option<i64> {
    let columns = statement.split_once('(')?.1;
    if !columns.starts_with("`id`") {
        return None;
    }
    quoted_after(statement, "VALUES (")
}

/// The integer in quotes right after `marker`: `WHERE `id`='7'` → 7.
fn quoted_after(statement: &str, marker: &str) -> Option<i64> {
    let rest = statement.split_once(marker)?.1.strip_prefix('\'')?;
    rest.split_once('\'')?.0.parse().ok()
}

/// A failed exit, with the first line of its stderr that says something.
fn exit_failure(run: &ChildRun) -> String {
    let line = run
        .stderr
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no stderr");
    format!("{}: {line}", run.exit)
}

/// Runs one step of setting a peer up; on failure, the first line it said.
fn setup_step(command: &mut Command) -> Result<(), String> {
    let program = command.get_program().to_string_lossy().into_owned();
    let run = run_child(command).map_err(|e| format!("{program}: {e:#}"))?;
    if run.exit == Exit::Code(0) {
        Ok(())
    } else {
        Err(format!("{program}: {}", exit_failure(&run)))
    }
}

/// A tool's first line of `--version` output.
fn tool_version(command: &mut Command) -> Result<String, String> {
    let run = run_child(command).map_err(|e| format!("cannot run it: {e:#}"))?;
    match run.stdout.lines().next() {
        Some(line) if run.exit == Exit::Code(0) => Ok(line.trim().to_owned()),
        _ => Err(format!("--version: {}", exit_failure(&run))),
    }
}

/// The shell-quoted command line, for the report and the README.
fn command_line(command: &Command) -> String {
    let quote = |s: &str| {
        if s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=,./:@".contains(c))
        {
            s.to_owned()
        } else {
            format!("'{}'", s.replace('\'', r"'\''"))
        }
    };
    let env = command.get_envs().filter_map(|(key, value)| {
        let value = value?.to_string_lossy();
        Some(format!("{}={}", key.to_string_lossy(), quote(&value)))
    });
    let words = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|s| quote(&s.to_string_lossy()));
    env.chain(words).collect::<Vec<_>>().join(" ")
}

/// What became of one peer.
enum Outcome {
    /// Not installed, with how to install it.
    NotInstalled(String),
    /// It does not speak this engine.
    NotApplicable,
    Ran(Runs),
}

/// The runs of a peer that could be run.
struct Runs {
    peer: Box<dyn Peer>,
    times: Samples,
    peak_rss_kib: u64,
    /// The counts of the first run that got them wrong, else of the first run.
    found: Option<Counts>,
    problems: Vec<String>,
    /// The first failed run's error; the peer is not run again after it.
    failed: Option<String>,
}

impl Runs {
    fn new(peer: Box<dyn Peer>) -> Self {
        Runs {
            peer,
            times: Samples(Vec::with_capacity(PEER_RUNS)),
            peak_rss_kib: 0,
            found: None,
            problems: Vec::new(),
            failed: None,
        }
    }

    async fn run_once(&mut self, diffs: &DiffSet, run_no: usize) -> Result<()> {
        eprintln!("peers: {} (run {run_no}) ...", self.peer.name());
        let mut command = self.peer.command();
        let run = tokio::task::spawn_blocking(move || run_child(&mut command)).await??;
        match self.peer.read(&run) {
            Err(error) => {
                eprintln!(
                    "peers: {} failed after {:.1} s: {error}",
                    self.peer.name(),
                    run.wall.as_secs_f64()
                );
                self.failed = Some(error);
            }
            Ok(reported) => {
                let (found, wrong) = reported.judge(diffs);
                if self.found.is_none() || (!wrong.is_empty() && self.problems.is_empty()) {
                    self.found = Some(found);
                }
                self.problems
                    .extend(wrong.into_iter().map(|w| format!("run {run_no}: {w}")));
                self.times.0.push(run.wall);
                self.peak_rss_kib = self.peak_rss_kib.max(run.max_rss_kib);
            }
        }
        Ok(())
    }
}

/// One peer's entry in the report.
struct Entry {
    name: &'static str,
    outcome: Outcome,
}

/// The alternated runs: driftwatch's passes and the peers'.
pub(crate) struct Report {
    pub(crate) passes: Vec<Pass>,
    entries: Vec<Entry>,
}

/// Finds the peers, then runs [`PEER_RUNS`] rounds of driftwatch (every strategy) and
/// every peer that can run, alternated. Errors only when a driftwatch run does.
pub(crate) async fn compare(
    engine: &impl Engine,
    driftwatch: &Path,
    configs: &[(Strategy, PathBuf)],
    diffs: &DiffSet,
) -> Result<Report> {
    let reladiff = match Reladiff::find(engine) {
        Ok(peer) => Outcome::Ran(Runs::new(Box::new(peer))),
        Err(hint) => Outcome::NotInstalled(hint),
    };
    let pt_table_sync = match PtTableSync::find(engine) {
        Ok(Some(peer)) => Outcome::Ran(Runs::new(Box::new(peer))),
        Ok(None) => Outcome::NotApplicable,
        Err(hint) => Outcome::NotInstalled(hint),
    };
    let mut entries = vec![
        Entry {
            name: Reladiff::NAME,
            outcome: reladiff,
        },
        Entry {
            name: PtTableSync::NAME,
            outcome: pt_table_sync,
        },
    ];
    for entry in &entries {
        if let Outcome::Ran(runs) = &entry.outcome {
            eprintln!(
                "peers: {} ({}): {}",
                entry.name,
                runs.peer.version(),
                command_line(&runs.peer.command())
            );
        }
    }

    let truth = diffs.expected();
    let mut passes: Vec<Pass> = configs
        .iter()
        .map(|(s, _)| Pass::new(*s, engine.target(*s)))
        .collect();
    eprintln!("peers: {PEER_RUNS} rounds, driftwatch and the peers alternated ...");
    for run_no in 1..=PEER_RUNS {
        for (pass, (_, config)) in passes.iter_mut().zip(configs) {
            pass.run_once(driftwatch, config, engine.table(), truth, run_no)
                .await?;
        }
        for entry in &mut entries {
            if let Outcome::Ran(runs) = &mut entry.outcome {
                if runs.failed.is_none() {
                    runs.run_once(diffs, run_no).await?;
                }
            }
        }
    }
    Ok(Report { passes, entries })
}

impl Report {
    /// Driftwatch's fastest run of a strategy over a peer's fastest run.
    fn ratio(&self, strategy_pass: &Pass, runs: &Runs) -> f64 {
        strategy_pass.times.min().as_secs_f64() / runs.times.min().as_secs_f64()
    }

    pub(crate) fn lines(&self, truth: Counts) -> Vec<String> {
        let mut lines = Vec::new();
        for pass in &self.passes {
            lines.push(format!(
                "peer   driftwatch {:<13}{:>7.3} s   alternated with the peers, {} runs   peak RSS {:.1} MB   found {} {}   (median {:.3} s)",
                pass.strategy.name(),
                pass.times.min().as_secs_f64(),
                pass.times.0.len(),
                mb(pass.peak_rss_kib),
                pass.found(),
                if pass.problems.is_empty() { "ok".to_owned() } else { format!("MISMATCH (expected {truth})") },
                pass.times.median().as_secs_f64(),
            ));
        }
        for entry in &self.entries {
            let runs = match &entry.outcome {
                Outcome::NotInstalled(hint) => {
                    lines.push(format!("peer {}: not installed ({hint})", entry.name));
                    continue;
                }
                Outcome::NotApplicable => {
                    lines.push(format!(
                        "peer {}: not run (it compares MySQL-family pairs only)",
                        entry.name
                    ));
                    continue;
                }
                Outcome::Ran(runs) => runs,
            };
            if runs.times.0.is_empty() {
                let error = runs.failed.as_deref().unwrap_or("no run");
                lines.push(format!("peer   {:<24}failed: {error}", entry.name));
                continue;
            }
            let ratios = self
                .passes
                .iter()
                .map(|p| format!("{} {:.2}x", p.strategy.name(), self.ratio(p, runs)))
                .collect::<Vec<_>>()
                .join(", ");
            let found = runs.found.expect("a run was recorded");
            let verdict = if runs.problems.is_empty() {
                "ok".to_owned()
            } else {
                format!("MISMATCH (expected {truth}): {}", runs.problems.join("; "))
            };
            let failed = match &runs.failed {
                Some(error) => format!("   then failed: {error}"),
                None => String::new(),
            };
            lines.push(format!(
                "peer   {:<24}{:>7.3} s   driftwatch {ratios}   peak RSS {:.1} MB   found {found} {verdict}   (median {:.3} s, {} runs, {}){failed}",
                entry.name,
                runs.times.min().as_secs_f64(),
                mb(runs.peak_rss_kib),
                runs.times.median().as_secs_f64(),
                runs.times.0.len(),
                runs.peer.version(),
            ));
        }
        lines
    }

    pub(crate) fn json(&self) -> Value {
        let entries = self.entries.iter().map(|entry| match &entry.outcome {
            Outcome::NotInstalled(hint) => {
                json!({ "name": entry.name, "status": "not installed", "install": hint })
            }
            Outcome::NotApplicable => json!({ "name": entry.name, "status": "not applicable" }),
            Outcome::Ran(runs) => {
                let status = match (&runs.failed, runs.problems.is_empty()) {
                    (Some(_), _) if runs.times.0.is_empty() => "failed",
                    (_, false) => "mismatch",
                    (Some(_), true) => "failed",
                    (None, true) => "ok",
                };
                let ratios: serde_json::Map<String, Value> = if runs.times.0.is_empty() {
                    serde_json::Map::new()
                } else {
                    self.passes
                        .iter()
                        .map(|p| (p.strategy.name().to_owned(), json!(self.ratio(p, runs))))
                        .collect()
                };
                json!({
                    "name": entry.name,
                    "version": runs.peer.version(),
                    "command": command_line(&runs.peer.command()),
                    "status": status,
                    "error": runs.failed,
                    "times": runs.times.json(),
                    "peak_rss_kib": runs.peak_rss_kib,
                    "found": runs.found.map(|f| f.json()),
                    "problems": runs.problems,
                    "driftwatch_ratio": ratios,
                })
            }
        });
        json!({
            "rounds": PEER_RUNS,
            "driftwatch": self.passes.iter().map(|p| json!({
                "strategy": p.strategy.name(),
                "times": p.times.json(),
                "peak_rss_kib": p.peak_rss_kib,
                "found": p.found().json(),
                "correct": p.problems.is_empty(),
                "problems": p.problems,
            })).collect::<Vec<_>>(),
            "tools": entries.collect::<Vec<_>>(),
        })
    }
}

fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}
