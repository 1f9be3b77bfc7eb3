//! Passes asked for on demand (POST …/validate): each request gets the id of the pass
//! that will answer it, and can follow it from queued to running to completed.
//!
//! Requests coalesce: while a requested pass of a table waits to start, every further
//! request for that table joins it (same id). A pass already running does not take new
//! requests: it read some of the tables before they were made, and the usual reason to
//! ask is a change just made (a fix script applied), so they queue the next pass instead.
//! A table thus has at most one requested pass running and one waiting, whatever the
//! number of requests. Ids count up per table from 1; the last [`KEPT`] completed passes
//! keep their times. This module runs no pass itself: the table's loop in `scheduler.rs`
//! starts and finishes them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::Notify;

/// Completed passes whose times are kept, per table.
pub const KEPT: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PassState {
    Queued,
    Running,
    Completed,
}

/// One requested pass, as shown.
#[derive(Debug, Clone, Serialize)]
pub struct PassInfo {
    pub id: u64,
    pub state: PassState,
    /// When the first request for it came.
    pub requested_at: String,
    /// Requests answered by this pass.
    pub requests: u64,
    pub started_at: Option<String>,
    /// Its results are published from this time on (in the status and the metrics).
    pub completed_at: Option<String>,
}

#[derive(Debug, Clone)]
struct Pass {
    id: u64,
    requested_at: SystemTime,
    requests: u64,
    started_at: Option<SystemTime>,
    completed_at: Option<SystemTime>,
}

impl Pass {
    fn info(&self) -> PassInfo {
        PassInfo {
            id: self.id,
            state: match (self.started_at, self.completed_at) {
                (_, Some(_)) => PassState::Completed,
                (Some(_), None) => PassState::Running,
                (None, None) => PassState::Queued,
            },
            requested_at: crate::status::rfc3339(self.requested_at),
            requests: self.requests,
            started_at: self.started_at.map(crate::status::rfc3339),
            completed_at: self.completed_at.map(crate::status::rfc3339),
        }
    }
}

#[derive(Default)]
struct Table {
    last_id: u64,
    queued: Option<Pass>,
    running: Option<Pass>,
    completed: VecDeque<Pass>,
}

/// What is known of a pass id.
#[derive(Debug, Clone)]
pub enum Lookup {
    Known(PassInfo),
    /// Completed, but too long ago for its times to be kept.
    Forgotten,
    /// Never handed out for this table.
    Unknown,
}

/// The requested passes of every configured table.
pub struct PassRequests {
    tables: HashMap<(String, String), (Mutex<Table>, Arc<Notify>)>,
}

impl PassRequests {
    pub fn new(config: &crate::config::Config) -> PassRequests {
        let mut tables = HashMap::new();
        for g in &config.groups {
            for t in &g.tables {
                tables.insert(
                    (g.name.clone(), t.name.clone()),
                    (Mutex::new(Table::default()), Arc::new(Notify::new())),
                );
            }
        }
        PassRequests { tables }
    }

    fn table(&self, group: &str, table: &str) -> Option<&(Mutex<Table>, Arc<Notify>)> {
        self.tables.get(&(group.to_string(), table.to_string()))
    }

    /// Asks for a pass of a table: the waiting one if there is one, else a new one.
    /// `None` when the config names no such table.
    pub fn request(&self, group: &str, table: &str) -> Option<PassInfo> {
        let (state, notify) = self.table(group, table)?;
        let mut t = state.lock().unwrap();
        let info = match &mut t.queued {
            Some(p) => {
                p.requests += 1;
                p.info()
            }
            None => {
                t.last_id += 1;
                let p = Pass {
                    id: t.last_id,
                    requested_at: SystemTime::now(),
                    requests: 1,
                    started_at: None,
                    completed_at: None,
                };
                let info = p.info();
                t.queued = Some(p);
                notify.notify_one();
                info
            }
        };
        Some(info)
    }

    /// Wakes when a pass of the table has been requested (the loop then checks
    /// [`PassRequests::queued`]: a pass started meanwhile may have taken it).
    pub fn notifier(&self, group: &str, table: &str) -> Option<Arc<Notify>> {
        self.table(group, table).map(|(_, n)| n.clone())
    }

    pub fn queued(&self, group: &str, table: &str) -> bool {
        self.table(group, table)
            .is_some_and(|(t, _)| t.lock().unwrap().queued.is_some())
    }

    /// A full pass of the table starts now: it answers the waiting requests, if any.
    pub fn start(&self, group: &str, table: &str) {
        if let Some((t, _)) = self.table(group, table) {
            let mut t = t.lock().unwrap();
            if let Some(mut p) = t.queued.take() {
                p.started_at = Some(SystemTime::now());
                t.running = Some(p);
            }
        }
    }

    /// The full pass of the table that started last has published its results.
    pub fn finish(&self, group: &str, table: &str) {
        if let Some((t, _)) = self.table(group, table) {
            let mut t = t.lock().unwrap();
            if let Some(mut p) = t.running.take() {
                p.completed_at = Some(SystemTime::now());
                if t.completed.len() == KEPT {
                    t.completed.pop_front();
                }
                t.completed.push_back(p);
            }
        }
    }

    /// What is known of pass `id` of a table; `None` when the config names no such table.
    pub fn get(&self, group: &str, table: &str, id: u64) -> Option<Lookup> {
        let (t, _) = self.table(group, table)?;
        let t = t.lock().unwrap();
        let found = [t.queued.as_ref(), t.running.as_ref()]
            .into_iter()
            .flatten()
            .chain(&t.completed)
            .find(|p| p.id == id);
        Some(match found {
            Some(p) => Lookup::Known(p.info()),
            None if id >= 1 && id <= t.last_id => Lookup::Forgotten,
            None => Lookup::Unknown,
        })
    }

    /// The requested pass of a table that completed last.
    pub fn last_completed(&self, group: &str, table: &str) -> Option<PassInfo> {
        let (t, _) = self.table(group, table)?;
        let t = t.lock().unwrap();
        t.completed.back().map(Pass::info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requests() -> PassRequests {
        let toml = "[databases.a]\nurl = \"sqlite:///nonexistent-a.db\"\n\
                    [databases.b]\nurl = \"sqlite:///nonexistent-b.db\"\n\
                    [[groups]]\nname = \"g\"\npublisher = \"a\"\nsubscribers = [\"b\"]\n\
                    [[groups.tables]]\nname = \"t\"\n";
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, toml.as_bytes()).unwrap();
        PassRequests::new(&crate::config::load(file.path()).unwrap())
    }

    #[test]
    fn requests_join_the_waiting_pass_not_the_running_one() {
        let r = requests();
        let first = r.request("g", "t").unwrap();
        assert_eq!((first.id, first.state), (1, PassState::Queued));
        assert_eq!(r.request("g", "t").unwrap().id, 1);
        r.start("g", "t");
        assert!(!r.queued("g", "t"));
        // Running: the next request waits for the next pass.
        let second = r.request("g", "t").unwrap();
        assert_eq!(second.id, 2);
        assert_eq!(r.request("g", "t").unwrap().requests, 2);
        let Some(Lookup::Known(running)) = r.get("g", "t", 1) else {
            panic!()
        };
        assert_eq!((running.state, running.requests), (PassState::Running, 2));
        r.finish("g", "t");
        let Some(Lookup::Known(done)) = r.get("g", "t", 1) else {
            panic!()
        };
        assert_eq!(done.state, PassState::Completed);
        assert!(done.completed_at.is_some());
        assert_eq!(r.last_completed("g", "t").unwrap().id, 1);
        assert!(matches!(r.get("g", "t", 3), Some(Lookup::Unknown)));
        assert!(r.request("g", "nope").is_none());
    }

    #[test]
    fn old_passes_are_forgotten_but_still_known_as_handed_out() {
        let r = requests();
        for _ in 0..KEPT + 1 {
            r.request("g", "t");
            r.start("g", "t");
            r.finish("g", "t");
        }
        assert!(matches!(r.get("g", "t", 1), Some(Lookup::Forgotten)));
        assert!(matches!(r.get("g", "t", 2), Some(Lookup::Known(_))));
    }
}
