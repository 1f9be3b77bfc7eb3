//! The service's own state across restarts: each pair's differences (keys, kinds, status,
//! first-seen times, the publisher's row hash at the last sighting) and its last results,
//! in one SQLite file under `state_dir`.
//!
//! Saved crash-safely: every save is one SQLite transaction in WAL mode with full sync,
//! written by a thread of its own so that no pass waits on the disk; a kill at any moment
//! leaves the last complete save. A file that is not driftwatch's, is damaged, or was
//! written by a newer driftwatch is an error naming it, never silently reset. It holds
//! keys and hashes as the status shows them, never other row values, and it never
//! touches a monitored database.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::compare::confirm::Evidence;
use crate::compare::localize::Kind;
use crate::compare::localize::Tally;
use crate::status::{PairId, State};

/// The file's name in `state_dir`.
pub const FILE_NAME: &str = "driftwatch-state.sqlite3";
/// `PRAGMA application_id` of a driftwatch state file ("DWST").
const APPLICATION_ID: i32 = 0x4457_5354;
/// `PRAGMA user_version`: the layout of the file.
const LAYOUT: i32 = 1;

#[derive(Debug, thiserror::Error)]
#[error("state file {}: {message}", path.display())]
pub struct StateError {
    pub path: PathBuf,
    pub message: String,
}

/// One tracked row, as kept across a restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedRow {
    /// The key's canonical encoding (hex), to find the row again.
    pub key_bytes: String,
    /// The key as the status shows it.
    pub key: Vec<String>,
    pub kind: Kind,
    pub changed_columns: Vec<String>,
    pub evidence: Evidence,
}

/// One pair (group, table, subscriber), as kept across a restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedPair {
    pub state: State,
    pub rows: Vec<SavedRow>,
    /// The rows past the cap, as one.
    pub overflow: Option<Evidence>,
    pub pending: Tally,
    pub in_flight: Tally,
    pub confirmed: Tally,
    pub oldest_in_flight: Option<SystemTime>,
    pub oldest_confirmed: Option<SystemTime>,
    pub publisher_rows: Option<u64>,
    pub subscriber_rows: Option<u64>,
    pub missing_window: Option<(String, String)>,
    pub last_success: Option<String>,
    pub last_pass_end: Option<String>,
    pub error: Option<String>,
}

enum Message {
    Save(PairId, String),
    Flush(mpsc::Sender<()>),
}

/// The open state file and its writer thread.
pub struct StateStore {
    path: PathBuf,
    tx: mpsc::Sender<Message>,
    writer: Option<JoinHandle<()>>,
}

impl StateStore {
    /// Opens (or creates) the state file in `dir`, and returns what it holds.
    pub fn open(dir: &Path) -> Result<(StateStore, HashMap<PairId, SavedPair>), StateError> {
        let path = dir.join(FILE_NAME);
        let err = |message: String| StateError {
            path: path.clone(),
            message,
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
        let conn = open_checked(&path)?;
        let saved = read_all(&conn).map_err(err)?;
        let (tx, rx) = mpsc::channel();
        let writer_path = path.clone();
        let writer = std::thread::Builder::new()
            .name("driftwatch-state".into())
            .spawn(move || write_loop(conn, rx, &writer_path))
            .map_err(|e| err(format!("cannot start its writer: {e}")))?;
        Ok((
            StateStore {
                path,
                tx,
                writer: Some(writer),
            },
            saved,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues a pair's state to be saved (the latest of several queued saves wins).
    pub fn save(&self, id: &PairId, pair: &SavedPair) {
        match serde_json::to_string(pair) {
            Ok(json) => {
                let _ = self.tx.send(Message::Save(id.clone(), json));
            }
            Err(e) => {
                tracing::error!(file = %self.path.display(), error = %e, "cannot encode a pair's state")
            }
        }
    }

    /// Waits until everything queued so far is on disk (shutdown).
    pub fn flush(&self) {
        let (done, wait) = mpsc::channel();
        if self.tx.send(Message::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }
}

impl Drop for StateStore {
    fn drop(&mut self) {
        self.flush();
        // The writer ends when the channel closes.
        let (tx, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// Opens the file, refusing one that is not a driftwatch state file of a known layout.
fn open_checked(path: &Path) -> Result<rusqlite::Connection, StateError> {
    let err = |message: String| StateError {
        path: path.to_path_buf(),
        message,
    };
    let existing = std::fs::metadata(path)
        .map(|m| m.len() > 0)
        .unwrap_or(false);
    if existing {
        let mut header = [0u8; 16];
        let n = std::io::Read::read(
            &mut std::fs::File::open(path).map_err(|e| err(format!("cannot read it: {e}")))?,
            &mut header,
        )
        .map_err(|e| err(format!("cannot read it: {e}")))?;
        if n < 16 || &header != b"SQLite format 3\0" {
            return Err(err(
                "is not a driftwatch state file (not an SQLite database); move it away or set another state_dir".into(),
            ));
        }
    }
    let conn = rusqlite::Connection::open(path).map_err(|e| err(format!("cannot open it: {e}")))?;
    let q = |sql: &str| -> Result<i64, StateError> {
        conn.query_row(sql, [], |r| r.get::<_, i64>(0))
            .map_err(|e| err(format!("cannot read it ({sql}): {e}")))
    };
    if existing {
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| err(format!("is damaged: {e}")))?;
        if check != "ok" {
            return Err(err(format!("is damaged: {check}")));
        }
        let app = q("PRAGMA application_id")?;
        if app != APPLICATION_ID as i64 {
            return Err(err(format!(
                "is not a driftwatch state file (application_id {app:#x}); move it away or set another state_dir"
            )));
        }
        let layout = q("PRAGMA user_version")?;
        if layout > LAYOUT as i64 {
            return Err(err(format!(
                "was written by a newer driftwatch (layout {layout}, this one reads {LAYOUT})"
            )));
        }
    }
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA application_id = {APPLICATION_ID};
         PRAGMA user_version = {LAYOUT};
         CREATE TABLE IF NOT EXISTS pairs (
             group_name TEXT NOT NULL,
             table_name TEXT NOT NULL,
             subscriber TEXT NOT NULL,
             state TEXT NOT NULL,
             saved_at REAL NOT NULL,
             PRIMARY KEY (group_name, table_name, subscriber)
         );"
    ))
    .map_err(|e| err(format!("cannot set it up: {e}")))?;
    Ok(conn)
}

fn read_all(conn: &rusqlite::Connection) -> Result<HashMap<PairId, SavedPair>, String> {
    let mut stmt = conn
        .prepare("SELECT group_name, table_name, subscriber, state FROM pairs")
        .map_err(|e| format!("cannot read it: {e}"))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                PairId {
                    group: r.get(0)?,
                    table: r.get(1)?,
                    subscriber: r.get(2)?,
                },
                r.get::<_, String>(3)?,
            ))
        })
        .map_err(|e| format!("cannot read it: {e}"))?;
    let mut out = HashMap::new();
    for row in rows {
        let (id, json) = row.map_err(|e| format!("cannot read it: {e}"))?;
        let pair: SavedPair = serde_json::from_str(&json).map_err(|e| {
            format!(
                "the entry of group {:?}, table {:?}, subscriber {:?} is damaged: {e}",
                id.group, id.table, id.subscriber
            )
        })?;
        out.insert(id, pair);
    }
    Ok(out)
}

fn write_loop(mut conn: rusqlite::Connection, rx: mpsc::Receiver<Message>, path: &Path) {
    while let Ok(first) = rx.recv() {
        let mut pending: HashMap<PairId, String> = HashMap::new();
        let mut flushed = Vec::new();
        let mut take = |m: Message| match m {
            Message::Save(id, json) => {
                pending.insert(id, json);
            }
            Message::Flush(done) => flushed.push(done),
        };
        take(first);
        while let Ok(m) = rx.try_recv() {
            take(m);
        }
        if !pending.is_empty() {
            if let Err(e) = write(&mut conn, &pending) {
                tracing::error!(file = %path.display(), error = %e, "cannot save the state; the next save retries");
            }
        }
        for done in flushed {
            let _ = done.send(());
        }
    }
}

fn write(conn: &mut rusqlite::Connection, pairs: &HashMap<PairId, String>) -> rusqlite::Result<()> {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO pairs (group_name, table_name, subscriber, state, saved_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (group_name, table_name, subscriber) DO UPDATE SET state = excluded.state, saved_at = excluded.saved_at",
        )?;
        for (id, json) in pairs {
            stmt.execute(rusqlite::params![
                id.group,
                id.table,
                id.subscriber,
                json,
                now
            ])?;
        }
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> SavedPair {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        SavedPair {
            state: State::Divergent,
            rows: vec![SavedRow {
                key_bytes: "0a0b".into(),
                key: vec!["7".into()],
                kind: Kind::Missing,
                changed_columns: vec![],
                evidence: Evidence {
                    first_seen: t,
                    last_seen: t,
                    publisher: Some(u128::MAX - 1),
                    stable_since: t,
                    moves: 0,
                    proofs: 2,
                    status: crate::compare::confirm::Status::Confirmed,
                },
            }],
            overflow: None,
            pending: Tally::default(),
            in_flight: Tally::default(),
            confirmed: Tally {
                missing: 1,
                extra: 0,
                changed: 0,
            },
            oldest_in_flight: None,
            oldest_confirmed: Some(t),
            publisher_rows: Some(10),
            subscriber_rows: Some(9),
            missing_window: None,
            last_success: None,
            last_pass_end: None,
            error: None,
        }
    }

    fn id() -> PairId {
        PairId {
            group: "g".into(),
            table: "t".into(),
            subscriber: "s".into(),
        }
    }

    #[test]
    fn what_is_saved_is_read_back_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (store, saved) = StateStore::open(dir.path()).unwrap();
        assert!(saved.is_empty());
        store.save(&id(), &pair());
        drop(store);
        let (_store, saved) = StateStore::open(dir.path()).unwrap();
        let p = &saved[&id()];
        assert_eq!(p.rows[0].evidence, pair().rows[0].evidence);
        assert_eq!(p.confirmed.missing, 1);
    }

    #[test]
    fn a_foreign_or_damaged_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(FILE_NAME);
        std::fs::write(&file, b"not a database at all, just text").unwrap();
        let e = StateStore::open(dir.path()).err().unwrap().to_string();
        assert!(
            e.contains(FILE_NAME) && e.contains("not a driftwatch state file"),
            "{e}"
        );

        std::fs::remove_file(&file).unwrap();
        let other = rusqlite::Connection::open(&file).unwrap();
        other.execute_batch("CREATE TABLE x (y)").unwrap();
        drop(other);
        let e = StateStore::open(dir.path()).err().unwrap().to_string();
        assert!(e.contains("application_id"), "{e}");

        // A damaged entry is named.
        std::fs::remove_file(&file).unwrap();
        let (store, _) = StateStore::open(dir.path()).unwrap();
        drop(store);
        let c = rusqlite::Connection::open(&file).unwrap();
        c.execute(
            "INSERT INTO pairs VALUES ('g', 't', 's', '{not json', 0)",
            [],
        )
        .unwrap();
        drop(c);
        let e = StateStore::open(dir.path()).err().unwrap().to_string();
        assert!(
            e.contains("group \"g\", table \"t\", subscriber \"s\""),
            "{e}"
        );
    }
}
