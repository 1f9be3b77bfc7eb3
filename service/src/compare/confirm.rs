//! Confirmation: replication is asynchronous, so a difference may be a row in flight.
//!
//! A difference is confirmed only at a consistent point: either two rechecks proved it
//! against the subscriber's applied replication position (`consistent`, see
//! `crate::replication`), or two sightings at least `confirm_after` apart saw the same
//! publisher side of the row (its row hash, or its absence) and the subscriber still
//! differing. A row whose publisher side changed between two sightings, or during one,
//! starts over: it is in flight, however long it has differed, and keeps the time it was
//! first seen so that a row broken for hours while hot stays visible. A `confirm_after`
//! of zero opts out of all this (copies that are not replicated live): a difference is
//! confirmed when first seen, unless its publisher side moved while it was read.
//!
//! Kept rows are tracked by key. Rows past the keep cap are tracked by the leaf range they
//! were counted in, with the publisher's digest of that range as their publisher side.
//! This module decides statuses; it reads no database and publishes nothing.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use super::localize::{Findings, Kind, Leaf, Tally};
use crate::engine::BucketDigest;
use crate::table::KeyRange;
use crate::value::{key_bytes, Key, Value};

/// Where a difference stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Seen, the publisher's side unchanged so far, not yet re-checked at a consistent point.
    Pending,
    /// The publisher's side changed between sightings or during one: being written.
    InFlight,
    /// Proven at a consistent point.
    Confirmed,
}

impl Status {
    pub const ALL: [Status; 3] = [Status::Pending, Status::InFlight, Status::Confirmed];

    /// The `status` label of `driftwatch_table_divergent_rows`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::InFlight => "in_flight",
            Status::Confirmed => "confirmed",
        }
    }
}

/// One sighting of a difference: what the publisher's side was, and how it was seen.
#[derive(Debug, Clone, Copy)]
pub struct Sighting {
    pub at: SystemTime,
    /// The publisher's side (row hash, or digest of a range); `None`: no such row.
    pub publisher: Option<u128>,
    /// The publisher's side changed while it was being read.
    pub moved: bool,
    /// Proven against the subscriber's applied replication position.
    pub consistent: bool,
}

/// What confirmation knows of one difference: a row, or the rows of a range past the cap.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Evidence {
    /// The first sighting of a difference here (ages, "divergent since").
    pub first_seen: SystemTime,
    pub last_seen: SystemTime,
    /// The publisher's side at the last sighting.
    pub publisher: Option<u128>,
    /// The first sighting with this publisher side.
    pub stable_since: SystemTime,
    /// How often the publisher's side was seen changing while the difference lasted.
    pub moves: u32,
    /// Sightings proven at a replication position since the publisher side last changed.
    #[serde(default)]
    pub proofs: u32,
    pub status: Status,
}

impl Evidence {
    /// The evidence after a sighting, given what was known before (if anything).
    ///
    /// A proof at a replication position is needed twice, on two rechecks with the
    /// publisher's side unchanged at every sighting in between: reads alone
    /// cannot see a row that came and went between the publisher's two reads (inserted
    /// and deleted again, or changed and changed back), which the subscriber, applying
    /// in between, may show; twice is what such a passing row does not survive.
    pub fn sighted(prev: Option<&Evidence>, s: Sighting, confirm_after: Duration) -> Evidence {
        let proof = (s.consistent && !s.moved) as u32;
        let Some(prev) = prev else {
            return Evidence {
                first_seen: s.at,
                last_seen: s.at,
                publisher: s.publisher,
                stable_since: s.at,
                moves: s.moved as u32,
                proofs: proof,
                status: if s.moved {
                    Status::InFlight
                } else if confirm_after.is_zero() {
                    Status::Confirmed
                } else {
                    Status::Pending
                },
            };
        };
        let mut e = Evidence {
            last_seen: s.at,
            publisher: s.publisher,
            ..prev.clone()
        };
        if s.moved || prev.publisher != s.publisher {
            e.stable_since = s.at;
            e.moves = prev.moves.saturating_add(1);
            e.proofs = proof;
            e.status = Status::InFlight;
        } else {
            // A sighting without a position (a full pass) neither proves nor disproves.
            e.proofs = prev.proofs.saturating_add(proof);
            if e.proofs >= 2
                || prev.status == Status::Confirmed
                || s.at.duration_since(prev.stable_since).unwrap_or_default() >= confirm_after
            {
                e.status = Status::Confirmed;
            }
        }
        e
    }

    /// When this difference should be looked at again to move it on (none once confirmed):
    /// with positions as soon as the subscriber can have caught up, backing off while the
    /// row keeps changing; without, once `confirm_after` has passed since the publisher's
    /// side last changed.
    fn due(&self, confirm_after: Duration, positions: bool) -> Option<SystemTime> {
        if self.status == Status::Confirmed {
            return None;
        }
        let spacing = if positions {
            (MIN_RECHECK * 2u32.pow(self.moves.min(6))).min(confirm_after.max(MIN_RECHECK))
        } else {
            confirm_after
        };
        let from = if positions {
            self.last_seen
        } else {
            self.stable_since
        };
        Some((from + spacing).max(self.last_seen + MIN_RECHECK))
    }
}

/// The shortest time between two rechecks of one difference.
pub const MIN_RECHECK: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct TrackedRow {
    pub key: Key,
    pub kind: Kind,
    pub changed: Vec<usize>,
    pub evidence: Evidence,
}

#[derive(Debug, Clone)]
pub struct TrackedLeaf {
    pub range: KeyRange,
    pub counts: Tally,
    pub rows: Vec<TrackedRow>,
    /// The publisher's rows in the range when it was last localized.
    pub publisher_rows: u64,
    /// The rows past the cap (when the counts exceed the kept rows), as one.
    pub evidence: Evidence,
    pub missing_window: Option<(Value, Value)>,
}

impl TrackedLeaf {
    fn overflows(&self) -> bool {
        self.counts.total() > self.rows.len() as u64
    }

    /// When the earliest difference of this leaf that is not confirmed is due a recheck.
    pub fn due(&self, confirm_after: Duration, positions: bool) -> Option<SystemTime> {
        let overflow = self.overflows().then_some(&self.evidence);
        self.rows
            .iter()
            .map(|r| &r.evidence)
            .chain(overflow)
            .filter_map(|e| e.due(confirm_after, positions))
            .min()
    }
}

/// What a pair's differences were before a restart, by key, until a pass finds them again.
#[derive(Debug, Clone, Default)]
pub struct Carried {
    pub rows: HashMap<Vec<u8>, Evidence>,
    /// The rows that were past the cap, as one.
    pub overflow: Option<Evidence>,
}

#[derive(Debug, Clone, Default)]
pub struct DiffState {
    pub leaves: Vec<TrackedLeaf>,
    /// Counts of leaves dropped past the leaf cap.
    pub untracked: Tally,
    pub untracked_evidence: Option<Evidence>,
    /// Restored from the state store: carried into the next full pass.
    pub carried: Carried,
}

/// Divergent rows by status and kind, with the oldest first sighting of each status.
#[derive(Debug, Clone, Copy, Default)]
pub struct Divergence {
    pub pending: Tally,
    pub in_flight: Tally,
    pub confirmed: Tally,
    pub oldest_in_flight: Option<SystemTime>,
    /// When the oldest confirmed difference was first seen ("divergent since").
    pub oldest_confirmed: Option<SystemTime>,
}

impl Divergence {
    pub fn of(&self, s: Status) -> &Tally {
        match s {
            Status::Pending => &self.pending,
            Status::InFlight => &self.in_flight,
            Status::Confirmed => &self.confirmed,
        }
    }

    fn add(&mut self, kind: Kind, n: u64, e: &Evidence) {
        if n == 0 {
            return;
        }
        let (tally, oldest) = match e.status {
            Status::Pending => (&mut self.pending, None),
            Status::InFlight => (&mut self.in_flight, Some(&mut self.oldest_in_flight)),
            Status::Confirmed => (&mut self.confirmed, Some(&mut self.oldest_confirmed)),
        };
        tally[kind] += n;
        if let Some(o) = oldest {
            *o = Some(o.map_or(e.first_seen, |t| t.min(e.first_seen)));
        }
    }

    pub fn total(&self) -> u64 {
        self.pending.total() + self.in_flight.total() + self.confirmed.total()
    }
}

/// The publisher's side of a range past the cap, as one value.
fn digest_side(d: BucketDigest) -> Option<u128> {
    Some(d.sum ^ (d.count as u128).rotate_left(64))
}

/// The differences proven so far: which rows of a fresh diff a script may write.
#[derive(Debug, Default)]
pub struct Verified {
    /// Tracked rows by key: confirmed or not, and their publisher side.
    rows: HashMap<Vec<u8>, (bool, Option<u128>)>,
    /// Ranges whose rows past the cap are confirmed.
    ranges: Vec<KeyRange>,
}

impl Verified {
    /// Whether a row, with the publisher side a fresh diff saw, was proven: confirmed
    /// with that same publisher side, or (`ordered`: the value model orders keys as the
    /// databases do) within a range whose rows past the cap are confirmed.
    pub fn covers(&self, key: &[Value], publisher: Option<u128>, ordered: bool) -> bool {
        match self.rows.get(&key_bytes(key)) {
            Some(&(confirmed, p)) => confirmed && p == publisher,
            None => ordered && self.ranges.iter().any(|r| r.contains(key)),
        }
    }
}

/// A range as a map key (ranges compare by value, and values have no hash).
fn range_id(r: &KeyRange) -> RangeId {
    (
        r.lead_lo,
        r.lead_hi,
        r.after.as_deref().map(key_bytes),
        r.upto.as_deref().map(key_bytes),
    )
}

type RangeId = (Option<i64>, Option<i64>, Option<Vec<u8>>, Option<Vec<u8>>);

/// What a recheck found in one tracked range.
#[derive(Debug)]
pub struct Rechecked {
    pub range: KeyRange,
    pub findings: Findings,
}

impl DiffState {
    /// Replaces the whole state with a full pass's findings, carrying what was known of
    /// each difference seen before.
    pub fn replace(&mut self, findings: Findings, now: SystemTime, confirm_after: Duration) {
        let mut known = self.evidence_by_key();
        known.extend(std::mem::take(&mut self.carried.rows));
        let overflow = self.overflow_evidence();
        let old_leaves: HashMap<RangeId, (Evidence, bool)> = self
            .leaves
            .iter()
            .map(|l| (range_id(&l.range), (l.evidence.clone(), l.overflows())))
            .collect();
        self.leaves = findings
            .leaves
            .into_iter()
            .map(|l| {
                let prev = match old_leaves.get(&range_id(&l.range)) {
                    Some((e, overflowed)) => Some(LeafBefore::Same(e, *overflowed)),
                    None => overflow.as_ref().map(LeafBefore::Other),
                };
                track(l, &known, prev, now, confirm_after)
            })
            .collect();
        self.set_untracked(findings.counts, now, confirm_after);
    }

    /// Rechecks: each tracked leaf whose range was rechecked is replaced by what was
    /// found in that range now. A range no longer tracked (a full pass replaced the
    /// leaves meanwhile) is left alone: the full pass is newer.
    pub fn update_leaves(
        &mut self,
        rechecked: Vec<Rechecked>,
        now: SystemTime,
        confirm_after: Duration,
    ) {
        let known = self.evidence_by_key();
        let mut by_range: HashMap<RangeId, Findings> = rechecked
            .into_iter()
            .map(|r| (range_id(&r.range), r.findings))
            .collect();
        let old = std::mem::take(&mut self.leaves);
        for leaf in old {
            match by_range.remove(&range_id(&leaf.range)) {
                Some(f) => {
                    let prev = Some(LeafBefore::Same(&leaf.evidence, leaf.overflows()));
                    self.leaves.extend(
                        f.leaves
                            .into_iter()
                            .map(|l| track(l, &known, prev, now, confirm_after)),
                    );
                }
                None => self.leaves.push(leaf),
            }
        }
    }

    fn set_untracked(&mut self, total: Tally, now: SystemTime, confirm_after: Duration) {
        let mut tracked = Tally::default();
        for l in &self.leaves {
            tracked += l.counts;
        }
        for k in Kind::ALL {
            self.untracked[k] = total[k].saturating_sub(tracked[k]);
        }
        // Past the leaf cap nothing is known of the publisher's side: a second full pass
        // at least confirm_after later that still finds them confirms them.
        self.untracked_evidence = if self.untracked.total() > 0 {
            let s = Sighting {
                at: now,
                publisher: None,
                moved: false,
                consistent: false,
            };
            Some(Evidence::sighted(
                self.untracked_evidence.as_ref(),
                s,
                confirm_after,
            ))
        } else {
            None
        };
    }

    fn evidence_by_key(&self) -> HashMap<Vec<u8>, Evidence> {
        self.rows()
            .map(|r| (key_bytes(&r.key), r.evidence.clone()))
            .collect()
    }

    /// The oldest evidence of rows past the cap (a restart's, or a leaf's).
    fn overflow_evidence(&self) -> Option<Evidence> {
        self.leaves
            .iter()
            .filter(|l| l.overflows())
            .map(|l| l.evidence.clone())
            .chain(self.carried.overflow.clone())
            .min_by_key(|e| e.first_seen)
    }

    /// Divergent rows by status and kind.
    pub fn divergence(&self) -> Divergence {
        let mut d = Divergence::default();
        for l in &self.leaves {
            let mut kept = Tally::default();
            for r in &l.rows {
                kept[r.kind] += 1;
                d.add(r.kind, 1, &r.evidence);
            }
            for k in Kind::ALL {
                d.add(k, l.counts[k] - kept[k], &l.evidence);
            }
        }
        if let Some(e) = &self.untracked_evidence {
            for k in Kind::ALL {
                d.add(k, self.untracked[k], e);
            }
        }
        d
    }

    /// When the earliest difference that is not confirmed should be re-checked.
    pub fn next_recheck(&self, confirm_after: Duration, positions: bool) -> Option<SystemTime> {
        self.leaves
            .iter()
            .filter_map(|l| l.due(confirm_after, positions))
            .min()
    }

    pub fn missing_window(&self) -> Option<(Value, Value)> {
        self.leaves
            .iter()
            .filter_map(|l| l.missing_window.clone())
            .reduce(|(a, b), (c, d)| (a.min(c), b.max(d)))
    }

    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty() && self.untracked.total() == 0
    }

    pub fn rows(&self) -> impl Iterator<Item = &TrackedRow> {
        self.leaves.iter().flat_map(|l| l.rows.iter())
    }

    /// What is proven now (see [`Verified`]).
    pub fn verified(&self) -> Verified {
        Verified {
            rows: self
                .rows()
                .map(|r| {
                    let confirmed = r.evidence.status == Status::Confirmed;
                    (key_bytes(&r.key), (confirmed, r.evidence.publisher))
                })
                .collect(),
            ranges: self
                .leaves
                .iter()
                .filter(|l| l.overflows() && l.evidence.status == Status::Confirmed)
                .map(|l| l.range.clone())
                .collect(),
        }
    }

    /// The tracked row of a key, if any.
    pub fn row(&self, key: &[Value]) -> Option<&TrackedRow> {
        self.rows().find(|r| r.key.as_slice() == key)
    }
}

/// What was known of a leaf's rows past the cap before a sighting.
#[derive(Clone, Copy)]
enum LeafBefore<'a> {
    /// A leaf of the very same range: its publisher digest compares; and whether it had
    /// rows past the cap (a row first kept now was among them).
    Same(&'a Evidence, bool),
    /// Rows past the cap elsewhere (the chunk plan moved, or a restart): their age and
    /// status carry over, but digests of other ranges do not compare.
    Other(&'a Evidence),
}

fn track(
    leaf: Leaf,
    known: &HashMap<Vec<u8>, Evidence>,
    prev_leaf: Option<LeafBefore>,
    now: SystemTime,
    confirm_after: Duration,
) -> TrackedLeaf {
    let s = Sighting {
        at: now,
        publisher: digest_side(leaf.publisher_digest),
        moved: leaf.moved,
        consistent: leaf.consistent,
    };
    let overflows = leaf.counts.total() > leaf.rows.len() as u64;
    let mut evidence = match prev_leaf {
        Some(LeafBefore::Same(e, _)) => Evidence::sighted(Some(e), s, confirm_after),
        Some(LeafBefore::Other(e)) if !s.moved => Evidence {
            last_seen: now,
            publisher: s.publisher,
            ..e.clone()
        },
        Some(LeafBefore::Other(_)) | None => Evidence::sighted(None, s, confirm_after),
    };
    // A row kept now that was past the cap before was tracked with its range: it has the
    // range's standing, whose publisher digest covers it.
    let was_past_cap = matches!(prev_leaf, Some(LeafBefore::Same(_, true)));
    let rows: Vec<TrackedRow> = leaf
        .rows
        .into_iter()
        .map(|r| {
            let s = Sighting {
                at: now,
                publisher: r.publisher_hash,
                moved: r.moved,
                consistent: r.consistent,
            };
            let evidence = match known.get(&key_bytes(&r.key)) {
                Some(e) => Evidence::sighted(Some(e), s, confirm_after),
                None if was_past_cap && !r.moved => Evidence {
                    publisher: r.publisher_hash,
                    ..evidence.clone()
                },
                None => Evidence::sighted(None, s, confirm_after),
            };
            TrackedRow {
                evidence,
                key: r.key,
                kind: r.kind,
                changed: r.changed,
            }
        })
        .collect();
    if !overflows {
        // Without rows past the cap, the leaf stands for its rows: its age is theirs.
        if let Some(first) = rows.iter().map(|r| r.evidence.first_seen).min() {
            evidence.first_seen = first;
        }
    }
    TrackedLeaf {
        range: leaf.range,
        counts: leaf.counts,
        publisher_rows: leaf.publisher_digest.count,
        rows,
        evidence,
        missing_window: leaf.missing_window,
    }
}

#[cfg(test)]
mod tests {
    use super::super::localize::RowDiff;
    use super::*;

    const WAIT: Duration = Duration::from_secs(120);

    fn t(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + s)
    }

    /// Findings of one leaf: (key, kind, publisher hash, moved, consistent).
    fn findings(rows: &[(i128, Kind, Option<u128>, bool, bool)], extra_uncapped: u64) -> Findings {
        let mut f = Findings::new(usize::MAX);
        let mut counts = Tally::default();
        let rows: Vec<RowDiff> = rows
            .iter()
            .map(|&(k, kind, publisher_hash, moved, consistent)| {
                counts[kind] += 1;
                RowDiff {
                    key: vec![Value::Int(k)],
                    kind,
                    changed: vec![],
                    publisher_hash,
                    moved,
                    consistent,
                }
            })
            .collect();
        counts[Kind::Extra] += extra_uncapped;
        f.counts = counts;
        f.leaves.push(Leaf {
            range: KeyRange::default(),
            counts,
            rows,
            missing_window: None,
            publisher_digest: BucketDigest { count: 10, sum: 99 },
            moved: false,
            consistent: false,
        });
        f
    }

    fn status_of(s: &DiffState, k: i128) -> Option<Status> {
        s.row(&[Value::Int(k)]).map(|r| r.evidence.status)
    }

    #[test]
    fn a_row_whose_publisher_side_stood_still_for_confirm_after_is_confirmed() {
        let mut s = DiffState::default();
        s.replace(
            findings(&[(1, Kind::Missing, Some(7), false, false)], 0),
            t(0),
            WAIT,
        );
        assert_eq!(status_of(&s, 1), Some(Status::Pending));
        assert_eq!(s.next_recheck(WAIT, false), Some(t(0) + WAIT));
        // Too early: still pending.
        s.replace(
            findings(&[(1, Kind::Missing, Some(7), false, false)], 0),
            t(60),
            WAIT,
        );
        assert_eq!(status_of(&s, 1), Some(Status::Pending));
        s.replace(
            findings(&[(1, Kind::Changed, Some(7), false, false)], 0),
            t(120),
            WAIT,
        );
        assert_eq!(status_of(&s, 1), Some(Status::Confirmed));
        assert_eq!(s.divergence().confirmed.changed, 1);
        assert_eq!(s.next_recheck(WAIT, false), None);
    }

    #[test]
    fn a_hot_row_is_in_flight_however_long_it_differs() {
        let mut s = DiffState::default();
        for (i, at) in [0u64, 120, 240, 360, 480].into_iter().enumerate() {
            let hash = Some(100 + i as u128);
            s.replace(
                findings(&[(1, Kind::Changed, hash, false, false)], 0),
                t(at),
                WAIT,
            );
        }
        assert_eq!(status_of(&s, 1), Some(Status::InFlight));
        let d = s.divergence();
        assert_eq!((d.confirmed.total(), d.in_flight.changed), (0, 1));
        assert_eq!(d.oldest_in_flight, Some(t(0)), "keeps its first sighting");
        // Once it stands still for confirm_after and still differs, it is confirmed.
        s.replace(
            findings(&[(1, Kind::Changed, Some(104), false, false)], 0),
            t(600),
            WAIT,
        );
        assert_eq!(status_of(&s, 1), Some(Status::Confirmed));
    }

    #[test]
    fn a_row_written_during_the_diff_is_in_flight_even_with_positions() {
        let mut s = DiffState::default();
        let sight = |s: &mut DiffState, moved, at| {
            s.replace(
                findings(&[(1, Kind::Changed, Some(7), moved, true)], 0),
                t(at),
                WAIT,
            )
        };
        sight(&mut s, true, 0);
        assert_eq!(status_of(&s, 1), Some(Status::InFlight));
        // Proven at a replication position twice running: confirmed, whatever
        // confirm_after says; once is not enough (a passing row can fool one proof).
        sight(&mut s, false, 2);
        assert_eq!(status_of(&s, 1), Some(Status::InFlight));
        sight(&mut s, false, 3);
        assert_eq!(status_of(&s, 1), Some(Status::Confirmed));
    }

    #[test]
    fn a_confirmed_row_whose_publisher_side_changes_starts_over() {
        let mut s = DiffState::default();
        for at in [0, 1] {
            s.replace(
                findings(&[(1, Kind::Missing, Some(7), false, true)], 0),
                t(at),
                WAIT,
            );
        }
        assert_eq!(status_of(&s, 1), Some(Status::Confirmed));
        s.replace(
            findings(&[(1, Kind::Missing, Some(8), false, false)], 0),
            t(30),
            WAIT,
        );
        assert_eq!(status_of(&s, 1), Some(Status::InFlight));
        // Rechecks back off while it keeps changing (with positions).
        assert_eq!(s.next_recheck(WAIT, true), Some(t(30) + MIN_RECHECK * 2));
    }

    #[test]
    fn rows_past_the_cap_are_counted_exactly_and_confirmed_by_their_range() {
        let mut s = DiffState::default();
        s.replace(
            findings(&[(1, Kind::Extra, None, false, false)], 999),
            t(0),
            WAIT,
        );
        assert_eq!(s.divergence().pending.extra, 1000);
        let rechecked = Rechecked {
            range: KeyRange::default(),
            findings: findings(&[(1, Kind::Extra, None, false, false)], 999),
        };
        s.update_leaves(vec![rechecked], t(120), WAIT);
        assert_eq!(s.divergence().confirmed.extra, 1000);
    }

    #[test]
    fn rows_first_kept_by_a_recheck_have_the_standing_of_their_range() {
        // A pass kept one row of the leaf and counted 24 past the cap; a recheck of that
        // range keeps five: all 25 are confirmed together, none starts over as pending.
        let mut s = DiffState::default();
        s.replace(
            findings(&[(1, Kind::Missing, Some(1), false, false)], 24),
            t(0),
            WAIT,
        );
        let rows: Vec<(i128, Kind, Option<u128>, bool, bool)> = (1..=5)
            .map(|k| (k, Kind::Missing, Some(k as u128), false, false))
            .collect();
        let rechecked = Rechecked {
            range: KeyRange::default(),
            findings: findings(&rows, 20),
        };
        s.update_leaves(vec![rechecked], t(120), WAIT);
        let d = s.divergence();
        assert_eq!((d.confirmed.total(), d.pending.total()), (25, 0));
    }

    #[test]
    fn restored_evidence_carries_into_the_next_pass() {
        let mut before = DiffState::default();
        for at in [0, 120] {
            before.replace(
                findings(&[(1, Kind::Missing, Some(7), false, false)], 0),
                t(at),
                WAIT,
            );
        }
        let mut after = DiffState::default();
        after.carried.rows = before.evidence_by_key();
        after.replace(
            findings(&[(1, Kind::Missing, Some(7), false, false)], 0),
            t(125),
            WAIT,
        );
        assert_eq!(status_of(&after, 1), Some(Status::Confirmed));
        let r = after.row(&[Value::Int(1)]).unwrap();
        assert_eq!(r.evidence.first_seen, t(0));
    }
}
