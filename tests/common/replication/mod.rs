//! Test support for real replication: throwaway PostgreSQL clusters and mariadbd instances
//! started by the test itself, replicating through a TCP proxy that adds a fixed latency
//! each way, and a bounded write load of the shape the live-replication tests compare.
//!
//! Nothing here mocks a database or replication: the publisher, the subscriber and the
//! replication between them are the servers' own. The servers run in directories under
//! [`CLUSTERS_DIR`] and are stopped when their handle drops (also when a test fails); a run
//! that was killed leaves them behind, and the next start stops them (`sweep`).
//! These servers never touch the shared servers on 5432 and 3306.
//!
//! Here: the server directories, their sweep and what every part shares; proxy.rs the
//! delaying proxy, postgres.rs and mariadb.rs the servers and their replication, load.rs
//! either engine's connection, the digests and the write load (all re-exported here).

use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use mysql_async::prelude::Queryable;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{sleep, sleep_until, Instant};
use tokio_util::sync::CancellationToken;

mod load;
mod mariadb;
mod postgres;
mod proxy;

pub use load::*;
pub use mariadb::*;
pub use postgres::*;
pub use proxy::*;

/// Where the test servers live, one directory each, with an `owner` file holding the pid
/// of the test process that started them (what the sweep goes by).
pub const CLUSTERS_DIR: &str = "/tmp/driftwatch-test-clusters";

/// The database the pairs create on both sides (the servers are the test's own, so the
/// name need not be unique).
pub const PAIR_DB: &str = "driftwatch";

/// A free TCP port on 127.0.0.1 (the kernel's choice; free when returned, so a server
/// started on it may still lose a race, which the starters below retry).
pub fn free_port() -> u16 {
    StdListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

// ---- server directories and the sweep ----------------------------------------------------

/// A directory for one server under [`CLUSTERS_DIR`], owned by this process; the first call
/// in a process first stops what killed runs left behind.
fn server_dir(prefix: &str) -> tempfile::TempDir {
    static SWEEP: Once = Once::new();
    let parent = Path::new(CLUSTERS_DIR);
    if !parent.exists() {
        std::fs::create_dir_all(parent).unwrap();
        // Sticky and world-writable like /tmp: any user's tests may start servers here,
        // and the postgres user must reach its cluster's directory.
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o1777));
    }
    SWEEP.call_once(|| sweep(parent));
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(parent)
        .unwrap_or_else(|e| panic!("create a server directory in {CLUSTERS_DIR}: {e}"));
    std::fs::write(dir.path().join("owner"), std::process::id().to_string()).unwrap();
    dir
}

fn process_alive(pid: &str) -> bool {
    !pid.is_empty() && Path::new(&format!("/proc/{pid}")).exists()
}

/// Stops the servers of directories whose owning test process is gone (killed before its
/// handles dropped) and removes the directories. A server is signalled only if its command
/// line names its directory, so a recycled pid is never hit.
fn sweep(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let owner = read_lossy(&dir.join("owner")).trim().to_string();
        if owner.is_empty() {
            // Being created right now by another process, or a crash before the owner was
            // written: only the latter is old.
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(600))
                .unwrap_or(false);
            if !old {
                continue;
            }
        } else if process_alive(&owner) {
            continue;
        }
        // PostgreSQL: SIGQUIT is its immediate shutdown. mariadbd: SIGKILL.
        for (pid_file, signal) in [("data/postmaster.pid", "-QUIT"), ("mariadbd.pid", "-KILL")] {
            let text = read_lossy(&dir.join(pid_file));
            let pid = text.lines().next().unwrap_or("").trim();
            if !process_alive(pid) {
                continue;
            }
            let cmdline = read_lossy(Path::new(&format!("/proc/{pid}/cmdline")));
            if cmdline.contains(dir.to_str().unwrap_or("\u{0}")) {
                let _ = Command::new("kill").args([signal, pid]).status();
                for _ in 0..100 {
                    if !process_alive(pid) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

async fn run(mut cmd: Command, what: &str) -> anyhow::Result<()> {
    let shown = format!("{what} ({cmd:?})");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await?
        .with_context(|| format!("{shown}: could not run"))?;
    if !out.status.success() {
        bail!(
            "{shown}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
