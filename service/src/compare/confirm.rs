//! Confirmation: replication is asynchronous, so a fresh difference may be in flight.
//! A difference is pending until a check at least `confirm_after` after it was first
//! seen still finds it; then it is confirmed.
//!
//! Kept rows are tracked by key. Rows past the keep cap are tracked by the leaf range
//! they were counted in (their counts stay exact; their confirmation is per range).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::localize::{Findings, Kind, Leaf};
use crate::engine::KeyRange;
use crate::value::{key_bytes, Key, Value};

#[derive(Debug, Clone)]
pub struct TrackedRow {
    pub key: Key,
    pub kind: Kind,
    pub changed: Vec<usize>,
    pub first_seen: SystemTime,
}

#[derive(Debug, Clone)]
pub struct TrackedLeaf {
    pub range: KeyRange,
    pub counts: [u64; 3],
    pub rows: Vec<TrackedRow>,
    /// When this range was first seen diverging: the age of its rows past the cap.
    pub first_seen: SystemTime,
    pub missing_window: Option<(Value, Value)>,
}

#[derive(Debug, Clone, Default)]
pub struct DiffState {
    pub leaves: Vec<TrackedLeaf>,
    /// Counts of leaves dropped past the leaf cap (confirmed by the pass that saw them).
    pub untracked: [u64; 3],
    pub untracked_first_seen: Option<SystemTime>,
}

/// Divergent rows by kind and status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub missing: u64,
    pub extra: u64,
    pub changed: u64,
}

impl Tally {
    pub fn get(&self, k: Kind) -> u64 {
        match k {
            Kind::Missing => self.missing,
            Kind::Extra => self.extra,
            Kind::Changed => self.changed,
        }
    }

    fn add(&mut self, k: Kind, n: u64) {
        match k {
            Kind::Missing => self.missing += n,
            Kind::Extra => self.extra += n,
            Kind::Changed => self.changed += n,
        }
    }

    pub fn total(&self) -> u64 {
        self.missing + self.extra + self.changed
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Divergence {
    pub pending: Tally,
    pub confirmed: Tally,
    /// First seen of the oldest confirmed difference ("divergent since").
    pub confirmed_since: Option<SystemTime>,
}

impl DiffState {
    /// Replaces the whole state with a full pass's findings, carrying first-seen times
    /// over for differences seen before.
    pub fn replace(&mut self, findings: Findings, now: SystemTime) {
        let known = self.first_seen_by_key();
        let overflow_since = self.earliest_overflow();
        self.leaves = findings
            .leaves
            .into_iter()
            .map(|l| track(l, &known, overflow_since, now))
            .collect();
        self.set_untracked(findings.counts, now, overflow_since);
    }

    /// Re-checks: each old leaf is replaced by what a fresh localization of its range found.
    pub fn update_leaves(&mut self, rechecked: Vec<(usize, Findings)>, now: SystemTime) {
        let known = self.first_seen_by_key();
        let mut by_index: HashMap<usize, Findings> = rechecked.into_iter().collect();
        let old = std::mem::take(&mut self.leaves);
        for (i, leaf) in old.into_iter().enumerate() {
            match by_index.remove(&i) {
                Some(f) => {
                    let since = Some(leaf.first_seen);
                    self.leaves
                        .extend(f.leaves.into_iter().map(|l| track(l, &known, since, now)));
                }
                None => self.leaves.push(leaf),
            }
        }
    }

    fn set_untracked(&mut self, total: [u64; 3], now: SystemTime, since: Option<SystemTime>) {
        let mut tracked = [0u64; 3];
        for l in &self.leaves {
            for (k, c) in l.counts.iter().enumerate() {
                tracked[k] += c;
            }
        }
        self.untracked = [0, 1, 2].map(|k| total[k].saturating_sub(tracked[k]));
        self.untracked_first_seen = if self.untracked.iter().any(|&c| c > 0) {
            Some(since.unwrap_or(now))
        } else {
            None
        };
    }

    fn first_seen_by_key(&self) -> HashMap<(Vec<u8>, Kind), SystemTime> {
        self.leaves
            .iter()
            .flat_map(|l| l.rows.iter())
            .map(|r| ((key_bytes(&r.key), r.kind), r.first_seen))
            .collect()
    }

    fn earliest_overflow(&self) -> Option<SystemTime> {
        let leaves = self
            .leaves
            .iter()
            .filter(|l| l.counts.iter().sum::<u64>() > l.rows.len() as u64)
            .map(|l| l.first_seen);
        leaves.chain(self.untracked_first_seen).min()
    }

    /// Pending and confirmed rows by kind, as of `now`.
    pub fn divergence(&self, now: SystemTime, confirm_after: Duration) -> Divergence {
        let confirmed =
            |since: SystemTime| now.duration_since(since).unwrap_or_default() >= confirm_after;
        let mut d = Divergence::default();
        let mut put = |k: Kind, n: u64, since: SystemTime| {
            if n > 0 && confirmed(since) {
                d.confirmed.add(k, n);
                d.confirmed_since = Some(d.confirmed_since.map_or(since, |s| s.min(since)));
            } else {
                d.pending.add(k, n)
            }
        };
        for l in &self.leaves {
            let mut kept = [0u64; 3];
            for r in &l.rows {
                kept[r.kind as usize] += 1;
                put(r.kind, 1, r.first_seen);
            }
            for k in Kind::ALL {
                put(k, l.counts[k as usize] - kept[k as usize], l.first_seen);
            }
        }
        if let Some(since) = self.untracked_first_seen {
            for k in Kind::ALL {
                put(k, self.untracked[k as usize], since);
            }
        }
        d
    }

    /// When the oldest pending difference becomes due for confirmation.
    pub fn next_confirmation(
        &self,
        now: SystemTime,
        confirm_after: Duration,
    ) -> Option<SystemTime> {
        let due = |since: SystemTime| since + confirm_after;
        self.leaves
            .iter()
            .flat_map(|l| {
                l.rows
                    .iter()
                    .map(|r| r.first_seen)
                    .chain(std::iter::once(l.first_seen))
            })
            .map(due)
            .filter(|&t| t > now)
            .min()
    }

    pub fn missing_window(&self) -> Option<(Value, Value)> {
        self.leaves
            .iter()
            .filter_map(|l| l.missing_window.clone())
            .reduce(|(a, b), (c, d)| (a.min(c), b.max(d)))
    }

    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty() && self.untracked.iter().all(|&c| c == 0)
    }

    pub fn rows(&self) -> impl Iterator<Item = &TrackedRow> {
        self.leaves.iter().flat_map(|l| l.rows.iter())
    }
}

fn track(
    leaf: Leaf,
    known: &HashMap<(Vec<u8>, Kind), SystemTime>,
    overflow_since: Option<SystemTime>,
    now: SystemTime,
) -> TrackedLeaf {
    let rows: Vec<TrackedRow> = leaf
        .rows
        .into_iter()
        .map(|r| {
            let first_seen = known
                .get(&(key_bytes(&r.key), r.kind))
                .copied()
                .unwrap_or(now);
            TrackedRow {
                key: r.key,
                kind: r.kind,
                changed: r.changed,
                first_seen,
            }
        })
        .collect();
    let overflows = leaf.counts.iter().sum::<u64>() > rows.len() as u64;
    let first_seen = match (overflows, overflow_since) {
        (true, Some(since)) => since,
        _ => rows.iter().map(|r| r.first_seen).min().unwrap_or(now),
    };
    TrackedLeaf {
        range: leaf.range,
        counts: leaf.counts,
        rows,
        first_seen,
        missing_window: leaf.missing_window,
    }
}

#[cfg(test)]
mod tests {
    use super::super::localize::RowDiff;
    use super::*;

    fn findings(keys: &[(i128, Kind)], extra_uncapped: u64) -> Findings {
        let mut f = Findings::new(usize::MAX);
        let mut counts = [0u64; 3];
        let rows: Vec<RowDiff> = keys
            .iter()
            .map(|&(k, kind)| {
                counts[kind as usize] += 1;
                RowDiff {
                    key: vec![Value::Int(k)],
                    kind,
                    changed: vec![],
                }
            })
            .collect();
        counts[Kind::Extra as usize] += extra_uncapped;
        f.counts = counts;
        f.leaves.push(Leaf {
            range: KeyRange::default(),
            counts,
            rows,
            missing_window: None,
        });
        f
    }

    #[test]
    fn differences_confirm_only_when_seen_again_after_the_delay() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let wait = Duration::from_secs(120);
        let mut s = DiffState::default();
        s.replace(findings(&[(1, Kind::Missing), (2, Kind::Changed)], 0), t0);
        let d = s.divergence(t0, wait);
        assert_eq!((d.pending.total(), d.confirmed.total()), (2, 0));
        assert_eq!(s.next_confirmation(t0, wait), Some(t0 + wait));

        // Re-checked later: key 1 still missing, key 2 fixed, key 3 new.
        let t1 = t0 + wait;
        s.replace(findings(&[(1, Kind::Missing), (3, Kind::Extra)], 0), t1);
        let d = s.divergence(t1, wait);
        assert_eq!(
            d.confirmed,
            Tally {
                missing: 1,
                extra: 0,
                changed: 0
            }
        );
        assert_eq!(
            d.pending,
            Tally {
                missing: 0,
                extra: 1,
                changed: 0
            }
        );

        assert_eq!(d.confirmed_since, Some(t0), "key 1, first seen at t0");

        // With no delay, everything is confirmed at once.
        assert_eq!(s.divergence(t1, Duration::ZERO).confirmed.total(), 2);
    }

    #[test]
    fn rows_past_the_cap_are_counted_exactly_and_confirmed_by_range() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let wait = Duration::from_secs(60);
        let mut s = DiffState::default();
        s.replace(findings(&[(1, Kind::Extra)], 999), t0);
        assert_eq!(s.divergence(t0, wait).pending.extra, 1000);
        let t1 = t0 + wait;
        s.update_leaves(vec![(0, findings(&[(1, Kind::Extra)], 999))], t1);
        assert_eq!(s.divergence(t1, wait).confirmed.extra, 1000);
    }
}
