//! driftwatch under test: in process (a config written to a directory, one pass of every
//! table, or the service served on a loopback port, [`Served`]) and as the binary a user
//! runs ([`bin`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::gen::key_strings;

/// The `driftwatch` binary, for the tests that run it as a user would.
///
/// DRIFTWATCH_BIN names it when set (scripts/test.sh builds it before `cargo test` and sets
/// it; a relative path is taken from the workspace's root). Otherwise the first call in a
/// test process builds it, `cargo build -p driftwatch --bin driftwatch` with the cargo that
/// runs the tests (`CARGO`), and returns the executable cargo reports, wherever the target
/// directory is (CARGO_TARGET_DIR, build.target-dir). Parallel tests wait for that one build
/// (the OnceLock); test processes at once wait for each other on cargo's own lock.
pub fn bin() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let bin = match std::env::var_os("DRIFTWATCH_BIN") {
            Some(bin) if !bin.is_empty() => root.join(bin),
            _ => build_bin(&root),
        };
        assert!(
            bin.is_file(),
            "no driftwatch binary at {} (DRIFTWATCH_BIN)",
            bin.display()
        );
        bin
    })
}

fn build_bin(root: &Path) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = std::process::Command::new(&cargo)
        .current_dir(root)
        .args(["build", "-p", "driftwatch", "--bin", "driftwatch"])
        .arg("--message-format=json-render-diagnostics")
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", Path::new(&cargo).display()));
    assert!(
        out.status.success(),
        "cargo build -p driftwatch --bin driftwatch failed (its errors are above)"
    );
    // The last line about the binary: {"reason":"compiler-artifact", ..., "executable": ...}
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "driftwatch")
        .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
        .next_back()
        .expect("cargo build named no driftwatch executable")
}

pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

pub fn write_config(dir: &Path, toml: &str) -> PathBuf {
    let p = dir.join("driftwatch.toml");
    std::fs::write(&p, toml).unwrap();
    p
}

pub fn load_config(dir: &Path, toml: &str) -> driftwatch::config::Config {
    driftwatch::config::load(&write_config(dir, toml)).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs one full pass of every table and returns what each pair reported:
/// (group, table, subscriber) → set of (key, kind, changed columns), plus the status.
pub async fn run_pass(
    config: driftwatch::config::Config,
) -> Vec<(
    driftwatch::status::PairStatus,
    BTreeSet<(Vec<String>, String, Vec<String>)>,
)> {
    let rt = driftwatch::runtime::Runtime::new(config).unwrap();
    for g in &rt.config.groups {
        for t in &g.tables {
            rt.pass(g, t).await;
        }
    }
    let mut out = Vec::new();
    for status in rt.status.snapshot() {
        let id = driftwatch::status::PairId::new(&status.group, &status.table, &status.subscriber);
        let rows = rt
            .status
            .with(&id, |e| {
                let names = e
                    .comparison
                    .as_ref()
                    .map(|c| c.column_names())
                    .unwrap_or_default();
                e.diff
                    .rows()
                    .map(|r| {
                        let mut changed: Vec<String> =
                            r.changed.iter().map(|&i| names[i].clone()).collect();
                        changed.sort();
                        (key_strings(&r.key), r.kind.as_str().to_string(), changed)
                    })
                    .collect::<BTreeSet<_>>()
            })
            .unwrap();
        out.push((status, rows));
    }
    out
}

pub fn sorted(
    mut expected: BTreeSet<(Vec<String>, String, Vec<String>)>,
) -> BTreeSet<(Vec<String>, String, Vec<String>)> {
    expected = expected
        .into_iter()
        .map(|(k, kind, mut c)| {
            c.sort();
            (k, kind, c)
        })
        .collect();
    expected
}

/// driftwatch served in process (`driftwatch::serve`) on a loopback port of its own, as the
/// tests that speak HTTP to it start it.
pub struct Served {
    /// `http://127.0.0.1:PORT`, whatever address it listens on.
    pub base: String,
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Served {
    pub async fn start(config: driftwatch::config::Config) -> Served {
        Served::start_on("127.0.0.1:0", config).await
    }

    pub async fn start_on(addr: &str, config: driftwatch::config::Config) -> Served {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            driftwatch::serve(config, listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Served {
            base: format!("http://127.0.0.1:{}", addr.port()),
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// Stops it the way SIGTERM does; it must have finished within `within`.
    pub async fn stop(mut self, within: std::time::Duration) {
        self.stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(within, self.task)
            .await
            .expect("the service stops promptly")
            .unwrap();
    }

    /// Stops it without asking how it ended (a test's cleanup after its own assertions).
    pub async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let _ = self.task.await;
    }
}
