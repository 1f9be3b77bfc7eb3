//! The connections of one database: idle ones to reuse, and the ones in use with the
//! handle that cancels their statement (shutdown). Every engine keeps its connections here.
//!
//! It must not decide whether an idle connection is still good: the engine checks that
//! when it takes one (a closed client, a long idle time), as only it knows how.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Pool<C, H> {
    idle: Mutex<Vec<(C, Instant)>>,
    active: Mutex<Vec<(u64, H)>>,
    next_id: AtomicU64,
}

impl<C, H: Clone> Pool<C, H> {
    pub fn new() -> Self {
        Pool {
            idle: Mutex::new(Vec::new()),
            active: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
        }
    }

    /// The most recently used idle connection, and how long it has been idle.
    pub fn idle(&self) -> Option<(C, Duration)> {
        self.idle
            .lock()
            .unwrap()
            .pop()
            .map(|(c, since)| (c, since.elapsed()))
    }

    /// Marks `conn` in use; `cancel` is what stops its statement.
    pub fn lease(&self, conn: C, cancel: H) -> Lease<'_, C, H> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.active.lock().unwrap().push((id, cancel));
        Lease {
            pool: self,
            id,
            conn: Some(conn),
        }
    }

    /// The cancel handles of every connection in use.
    pub fn in_use(&self) -> Vec<H> {
        self.active
            .lock()
            .unwrap()
            .iter()
            .map(|(_, h)| h.clone())
            .collect()
    }
}

impl<C, H: Clone> Default for Pool<C, H> {
    fn default() -> Self {
        Pool::new()
    }
}

/// A connection in use. It goes back to the idle list only through [`Lease::release`],
/// after a statement completed cleanly; a lease dropped otherwise drops its connection.
pub struct Lease<'a, C, H> {
    pool: &'a Pool<C, H>,
    id: u64,
    conn: Option<C>,
}

impl<C, H> Lease<'_, C, H> {
    pub fn get(&self) -> &C {
        self.conn.as_ref().expect("the lease holds its connection")
    }

    pub fn get_mut(&mut self) -> &mut C {
        self.conn.as_mut().expect("the lease holds its connection")
    }

    /// Lends the connection out (to a blocking thread) while the lease stays in use.
    pub fn take(&mut self) -> C {
        self.conn.take().expect("the lease holds its connection")
    }

    pub fn put(&mut self, conn: C) {
        self.conn = Some(conn);
    }

    pub fn release(mut self) {
        if let Some(c) = self.conn.take() {
            self.pool.idle.lock().unwrap().push((c, Instant::now()));
        }
    }

    /// Drops the connection (one left mid-statement is never reused).
    pub fn discard(mut self) {
        self.conn.take();
    }
}

impl<C, H> Drop for Lease<'_, C, H> {
    fn drop(&mut self) {
        self.pool
            .active
            .lock()
            .unwrap()
            .retain(|(id, _)| *id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_connections_are_reused_and_others_are_not() {
        let pool: Pool<&str, u32> = Pool::new();
        let a = pool.lease("a", 1);
        let b = pool.lease("b", 2);
        assert_eq!(pool.in_use(), [1, 2]);
        a.release();
        b.discard();
        assert!(pool.in_use().is_empty());
        assert_eq!(pool.idle().map(|(c, _)| c), Some("a"));
        assert!(pool.idle().is_none());
        let mut c = pool.lease("c", 3);
        let conn = c.take();
        c.put(conn);
        drop(c); // neither released nor discarded: dropped
        assert!(pool.idle().is_none() && pool.in_use().is_empty());
    }
}
