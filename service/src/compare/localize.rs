//! Localizing a mismatched range down to rows: with pushdown digests, a range cut on an
//! integer first key column is digested again in sub-buckets and only the mismatched ones
//! go on; other large ranges are bisected; then a keyed diff of a small range's rows on
//! both sides: missing, extra, changed (with the columns).
//!
//! Memory stays bounded whatever the drift: both sides' rows are held only for ranges of
//! at most [`FETCH_ROWS`] rows; a range that exists on one side only is streamed; and at
//! most `cap` differing rows are kept per pass, while the counts stay exact.

use std::collections::HashMap;

use serde::Serialize;
use tokio::sync::mpsc;

use super::digest::{digest, paired};
use super::plan::{bucket_range, sub_bucket_width, SUB_BUCKETS};
use super::schema::{Comparison, Resolved};
use crate::database::Database;
use crate::engine::{BucketDigest, DigestSpec, Digests, Result};
use crate::table::{KeyRange, Row, TableQuery};
use crate::value::{key_bytes, row_hash, Key, Value};

/// Ranges larger than this are bisected before their rows are fetched.
pub const FETCH_ROWS: u64 = 2048;
/// A pushdown range of more rows than this is digested again in sub-buckets before its
/// rows are fetched: hashing its rows in the database costs less than reading them (the
/// publisher's side twice, the subscriber's once) to find one differing row.
const REFINE_ROWS: u64 = 64;
/// Leaf ranges kept for rechecks; past this a recheck is a full pass.
pub const MAX_LEAVES: usize = 10_000;

/// A mismatched sub-range of a range being localized, with both sides' digests of it.
pub type Part = (KeyRange, BucketDigest, BucketDigest);

/// A range digested whole, in one bucket.
fn whole(range: &KeyRange) -> DigestSpec {
    DigestSpec {
        range: range.clone(),
        bucket_width: None,
    }
}

/// The one bucket of a range digested whole.
fn total(d: &Digests) -> BucketDigest {
    d.get(&0).copied().unwrap_or_default()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// On the publisher, not on the subscriber.
    Missing,
    /// On the subscriber, not on the publisher.
    Extra,
    /// On both, with different values.
    Changed,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Missing, Kind::Extra, Kind::Changed];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Missing => "missing",
            Kind::Extra => "extra",
            Kind::Changed => "changed",
        }
    }
}

/// Rows by kind (missing, extra, changed): every count of differing rows is one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

    pub fn total(&self) -> u64 {
        self.missing + self.extra + self.changed
    }
}

impl std::ops::Index<Kind> for Tally {
    type Output = u64;

    fn index(&self, k: Kind) -> &u64 {
        match k {
            Kind::Missing => &self.missing,
            Kind::Extra => &self.extra,
            Kind::Changed => &self.changed,
        }
    }
}

impl std::ops::IndexMut<Kind> for Tally {
    fn index_mut(&mut self, k: Kind) -> &mut u64 {
        match k {
            Kind::Missing => &mut self.missing,
            Kind::Extra => &mut self.extra,
            Kind::Changed => &mut self.changed,
        }
    }
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
        for k in Kind::ALL {
            self[k] += other[k];
        }
    }
}

#[derive(Debug, Clone)]
pub struct RowDiff {
    pub key: Key,
    pub kind: Kind,
    /// Indexes of the changed columns in the comparison's column order.
    pub changed: Vec<usize>,
    /// The publisher's side of the row at the last read: its row hash, or `None` where
    /// the publisher has no such row. Confirmation compares it between sightings.
    pub publisher_hash: Option<u128>,
    /// The publisher's side changed between the read before the subscriber's and the
    /// read after it: the row is being written, so its difference may be in flight.
    pub moved: bool,
    /// Seen after the subscriber had applied the publisher's position of a read taken
    /// before, with the publisher's side the same at every read (see `compare::recheck`).
    pub consistent: bool,
}

/// The differences found in one smallest range.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub range: KeyRange,
    pub counts: Tally,
    /// Kept rows (a prefix, when the cap was reached).
    pub rows: Vec<RowDiff>,
    /// Earliest and latest time_column value among the missing rows.
    pub missing_window: Option<(Value, Value)>,
    /// The publisher's digest of the range when it was localized: the publisher's side
    /// of the rows past the cap, which are not tracked one by one.
    pub publisher_digest: BucketDigest,
    /// The publisher's side of the range changed across the diff.
    pub moved: bool,
    /// The rows past the cap were seen at a consistent point (see [`RowDiff::consistent`]).
    pub consistent: bool,
}

/// What localizing found, for a pass or a recheck.
#[derive(Debug, Default)]
pub struct Findings {
    pub leaves: Vec<Leaf>,
    /// Leaves were dropped past [`MAX_LEAVES`] (their counts are still in `counts`).
    pub leaves_truncated: bool,
    pub counts: Tally,
    kept: usize,
    cap: usize,
}

impl Findings {
    pub fn new(cap: usize) -> Findings {
        Findings {
            cap,
            ..Default::default()
        }
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Takes in what a separate localization found, keeping the cap on rows.
    pub fn absorb(&mut self, other: Findings) {
        self.leaves_truncated |= other.leaves_truncated;
        for k in Kind::ALL {
            // Counts of leaves `other` dropped are in its counts, not its leaves.
            let in_leaves: u64 = other.leaves.iter().map(|l| l.counts[k]).sum();
            self.counts[k] += other.counts[k] - in_leaves;
        }
        for mut leaf in other.leaves {
            let room = self.cap - self.kept;
            leaf.rows.truncate(room);
            self.kept += leaf.rows.len();
            self.push(leaf);
        }
    }

    fn push(&mut self, leaf: Leaf) {
        self.counts += leaf.counts;
        if self.leaves.len() < MAX_LEAVES {
            self.leaves.push(leaf);
        } else {
            self.leaves_truncated = true;
        }
    }
}

/// One subscriber compared with the publisher.
pub struct Pair<'a> {
    pub publisher: &'a Database,
    pub subscriber: &'a Database,
    pub cmp: &'a Comparison,
    /// Where every differing row goes, with both sides' values (scripts); `None` in the
    /// validation loop, which keeps keys only.
    pub changes: Option<&'a mpsc::Sender<RowChange>>,
}

/// A differing row with its values: the publisher's (missing, changed) and the
/// subscriber's as the diff saw them (extra, changed), in the comparison's column order.
#[derive(Debug, Clone)]
pub struct RowChange {
    pub key: Key,
    pub kind: Kind,
    pub changed: Vec<usize>,
    pub publisher: Option<Row>,
    pub subscriber: Option<Row>,
}

/// The publisher's side of a range at one moment, to compare with later reads.
#[derive(Debug)]
pub enum Snapshot {
    /// Row hashes by key, for a range small enough to hold.
    Rows(HashMap<Vec<u8>, u128>),
    /// The range's digest, for a larger one.
    Digest(BucketDigest),
}

impl Snapshot {
    /// Marks the differences a recheck of `range` found as proven where the publisher's
    /// side is what this snapshot, taken before the position the subscriber has since
    /// applied, saw, and did not move during the recheck.
    pub fn mark_consistent(&self, range: &KeyRange, found: &mut Findings) {
        for leaf in &mut found.leaves {
            let whole = match self {
                Snapshot::Digest(d) => {
                    !leaf.moved && leaf.range == *range && leaf.publisher_digest == *d
                }
                Snapshot::Rows(_) => false,
            };
            leaf.consistent = whole;
            for r in &mut leaf.rows {
                r.consistent = !r.moved
                    && match self {
                        Snapshot::Rows(before) => {
                            before.get(&key_bytes(&r.key)).copied() == r.publisher_hash
                        }
                        Snapshot::Digest(_) => whole,
                    };
            }
        }
    }
}

impl Pair<'_> {
    /// The publisher's side of `range` now: its rows' hashes when it holds at most
    /// [`FETCH_ROWS`] rows (as `rows_hint`, the count last seen, says), else its digest.
    pub async fn publisher_snapshot(&self, range: &KeyRange, rows_hint: u64) -> Result<Snapshot> {
        if rows_hint <= FETCH_ROWS {
            let rows = self.publisher.rows(&self.cmp.publisher, range).await?;
            return Ok(Snapshot::Rows(self.hashes(&rows)));
        }
        let d = self
            .range_digest(self.publisher, &self.cmp.publisher, range)
            .await?;
        Ok(Snapshot::Digest(d))
    }

    /// One side's digest of a whole range, unbucketed.
    async fn range_digest(
        &self,
        db: &Database,
        q: &TableQuery,
        range: &KeyRange,
    ) -> Result<BucketDigest> {
        let d = digest(db, q, &whole(range), self.cmp.strategy).await?;
        Ok(total(&d))
    }

    /// Both sides' digests of a range, read at once.
    async fn digests_both(&self, spec: &DigestSpec) -> Result<(Digests, Digests)> {
        let (p, s) = tokio::join!(
            digest(self.publisher, &self.cmp.publisher, spec, self.cmp.strategy),
            digest(
                self.subscriber,
                &self.cmp.subscriber,
                spec,
                self.cmp.strategy
            )
        );
        Ok((p?, s?))
    }

    async fn digest_both(&self, range: &KeyRange) -> Result<(BucketDigest, BucketDigest)> {
        let (p, s) = self.digests_both(&whole(range)).await?;
        Ok((total(&p), total(&s)))
    }

    /// Re-digests `range` and localizes whatever still differs (rechecks).
    pub async fn recheck(&self, range: &KeyRange, out: &mut Findings) -> Result<()> {
        let (p, s) = self.digest_both(range).await?;
        if p != s {
            self.localize(range.clone(), p, s, None, out).await?;
        }
        Ok(())
    }

    /// Finds the differing rows of a range whose digests differ. `parts` are its
    /// mismatched sub-buckets where the chunk's digests already told them (streamed);
    /// otherwise a pushdown range is digested again to find them.
    pub async fn localize(
        &self,
        range: KeyRange,
        p: BucketDigest,
        s: BucketDigest,
        mut parts: Option<Vec<Part>>,
        out: &mut Findings,
    ) -> Result<()> {
        let mut stack = vec![(range, p, s)];
        while let Some((range, p, s)) = stack.pop() {
            let (pc, sc) = (p.count, s.count);
            let rows = pc.max(sc);
            let parts = match parts.take() {
                Some(known) => Some(known),
                None if pc > 0 && sc > 0 => self.refine(&range, rows).await?,
                None => None,
            };
            if let Some(parts) = parts {
                // Where most of the range differs (more than a quarter of its sub-buckets,
                // or half its rows), one diff of it reads less than one per part.
                let part_rows: u64 = parts.iter().map(|(_, p, s)| p.count.max(s.count)).sum();
                let dense = parts.len() as i64 > SUB_BUCKETS / 4 || part_rows * 2 > rows;
                if !dense || rows > FETCH_ROWS {
                    stack.extend(parts);
                    continue;
                }
            }
            if pc == 0 || sc == 0 || rows <= FETCH_ROWS {
                self.diff_range(range, p, s, out).await?;
                continue;
            }
            // Split at the median key of the larger side; both halves are non-empty there.
            let (db, q, n) = if pc >= sc {
                (self.publisher, &self.cmp.publisher, pc)
            } else {
                (self.subscriber, &self.cmp.subscriber, sc)
            };
            // One bisection step: the median key, then both halves digested on both sides.
            let span =
                tracing::info_span!("bisect_step", database = %db.name, range = %range, rows = n);
            let step = async {
                let Some(mid) = db.key_at(q, &range, n / 2 - 1).await? else {
                    return Ok(None);
                };
                let left = KeyRange {
                    upto: Some(mid.clone()),
                    ..range.clone()
                };
                let right = KeyRange {
                    after: Some(mid),
                    ..range.clone()
                };
                let (l, r) = tokio::join!(self.digest_both(&left), self.digest_both(&right));
                Ok::<_, crate::engine::EngineError>(Some(((left, l?), (right, r?))))
            };
            let Some(((left, l), (right, r))) = tracing::Instrument::instrument(step, span).await?
            else {
                // The table shrank under us: diff what is there now.
                self.diff_range(range, p, s, out).await?;
                continue;
            };
            for (half, (p, s)) in [(right, r), (left, l)] {
                if p != s {
                    stack.push((half, p, s));
                }
            }
        }
        Ok(())
    }

    /// The mismatched sub-buckets of a range, digested again on both sides in
    /// [`SUB_BUCKETS`] buckets of its integer first key column; `None` where that saves
    /// nothing: a streamed digest reads the rows anyway (its chunk's digests come in
    /// sub-buckets already, see [`super::digest::chunk_spec`]), a range without both lead
    /// bounds or of one key value cannot be cut so, and a small one costs less to read.
    async fn refine(&self, range: &KeyRange, rows: u64) -> Result<Option<Vec<Part>>> {
        let (Some(lo), Some(hi)) = (range.lead_lo, range.lead_hi) else {
            return Ok(None);
        };
        let span = hi as i128 - lo as i128;
        if self.cmp.strategy != Resolved::Pushdown || rows <= REFINE_ROWS || span < 2 {
            return Ok(None);
        }
        let spec = DigestSpec {
            range: range.clone(),
            bucket_width: Some(sub_bucket_width(span)),
        };
        let (p, s) = self.digests_both(&spec).await?;
        Ok(Some(
            paired(&p, &s)
                .filter(|(_, p, s)| p != s)
                .map(|(b, p, s)| (bucket_range(&spec, b), p, s))
                .collect(),
        ))
    }

    /// Diffs one range whose digests differ: the publisher's rows are read before and
    /// after the subscriber's, so that a row written during the diff is told apart
    /// (`moved`) from one that stood still while the subscriber differed.
    async fn diff_range(
        &self,
        range: KeyRange,
        p: BucketDigest,
        s: BucketDigest,
        out: &mut Findings,
    ) -> Result<()> {
        let mut leaf = Leaf {
            range,
            counts: Tally::default(),
            rows: Vec::new(),
            missing_window: None,
            publisher_digest: p,
            moved: false,
            consistent: false,
        };
        let mut changes = Vec::new();
        // The publisher's row hashes at the first read, where the range is small enough
        // to read again.
        let mut before: Option<HashMap<Vec<u8>, u128>> = None;
        if s.count == 0 || p.count == 0 {
            let (db, q, kind) = if s.count == 0 {
                (self.publisher, &self.cmp.publisher, Kind::Missing)
            } else {
                (self.subscriber, &self.cmp.subscriber, Kind::Extra)
            };
            if kind == Kind::Extra || p.count <= FETCH_ROWS {
                before = Some(HashMap::new());
            }
            self.one_sided(db, q, kind, &mut leaf, out, before.as_mut())
                .await?;
        } else {
            let (pr, sr) = tokio::join!(
                self.publisher.rows(&self.cmp.publisher, &leaf.range),
                self.subscriber.rows(&self.cmp.subscriber, &leaf.range)
            );
            let pr = pr?;
            before = Some(self.hashes(&pr));
            changes = self.merge(pr, sr?, &mut leaf, out);
        }
        if leaf.counts.total() > 0 {
            self.read_again(&mut leaf, before.as_ref()).await?;
        }
        for change in changes {
            self.send(change).await;
        }
        if leaf.counts.total() > 0 {
            out.push(leaf);
        }
        Ok(())
    }

    /// The publisher's row hash of every row, by key.
    fn hashes(&self, rows: &[Row]) -> HashMap<Vec<u8>, u128> {
        let q = &self.cmp.publisher;
        let mut buf = Vec::new();
        rows.iter()
            .map(|r| (key_bytes(&q.key_of(r)), row_hash(r, &mut buf)))
            .collect()
    }

    /// Reads the publisher's side of a leaf again, after the subscriber's read: rows
    /// whose publisher side changed meanwhile are marked `moved`, and carry the newer
    /// hash. A range too large to hold is compared by its digest instead.
    async fn read_again(
        &self,
        leaf: &mut Leaf,
        before: Option<&HashMap<Vec<u8>, u128>>,
    ) -> Result<()> {
        match before {
            Some(before) => {
                let rows = self
                    .publisher
                    .rows(&self.cmp.publisher, &leaf.range)
                    .await?;
                let after = self.hashes(&rows);
                leaf.moved = *before != after;
                for r in &mut leaf.rows {
                    let now = after.get(&key_bytes(&r.key)).copied();
                    r.moved = now != r.publisher_hash;
                    r.publisher_hash = now;
                }
            }
            None => {
                let d = self
                    .range_digest(self.publisher, &self.cmp.publisher, &leaf.range)
                    .await?;
                leaf.moved = d != leaf.publisher_digest;
                for r in &mut leaf.rows {
                    r.moved = leaf.moved;
                }
            }
        }
        Ok(())
    }

    /// Every row of the range is on one side only: stream them, keeping up to the cap.
    async fn one_sided(
        &self,
        db: &Database,
        q: &TableQuery,
        kind: Kind,
        leaf: &mut Leaf,
        out: &mut Findings,
        mut publisher_hashes: Option<&mut HashMap<Vec<u8>, u128>>,
    ) -> Result<()> {
        let (tx, mut rx) = mpsc::channel::<Vec<Row>>(4);
        let range = leaf.range.clone();
        let consume = async {
            while let Some(batch) = rx.recv().await {
                if let (Kind::Missing, Some(h)) = (kind, publisher_hashes.as_deref_mut()) {
                    h.extend(self.hashes(&batch));
                }
                for row in batch {
                    let (publisher, subscriber) = match kind {
                        Kind::Missing => (Some(row), None),
                        _ => (None, Some(row)),
                    };
                    let change = RowChange {
                        key: q.key_of(publisher.as_ref().or(subscriber.as_ref()).unwrap()),
                        kind,
                        changed: Vec::new(),
                        publisher,
                        subscriber,
                    };
                    if let Some(change) = self.record(change, leaf, out) {
                        self.send(change).await;
                    }
                }
            }
        };
        let (n, ()) = tokio::join!(db.scan(q, &range, tx), consume);
        n.map(|_| ())
    }

    /// A keyed diff of both sides' rows of one small range; returns the changes to send.
    fn merge(
        &self,
        publisher: Vec<Row>,
        subscriber: Vec<Row>,
        leaf: &mut Leaf,
        out: &mut Findings,
    ) -> Vec<RowChange> {
        let q = &self.cmp.publisher;
        let mut theirs: HashMap<Vec<u8>, Row> = subscriber
            .into_iter()
            .map(|row| (key_bytes(&self.cmp.subscriber.key_of(&row)), row))
            .collect();
        let mut changes = Vec::new();
        let mut record = |change: RowChange, leaf: &mut Leaf, out: &mut Findings| {
            if let Some(c) = self.record(change, leaf, out) {
                changes.push(c);
            }
        };
        for row in publisher {
            let key = q.key_of(&row);
            match theirs.remove(&key_bytes(&key)) {
                None => record(
                    RowChange {
                        key,
                        kind: Kind::Missing,
                        changed: vec![],
                        publisher: Some(row),
                        subscriber: None,
                    },
                    leaf,
                    out,
                ),
                Some(other) => {
                    let changed: Vec<usize> =
                        (0..row.len()).filter(|&i| row[i] != other[i]).collect();
                    if !changed.is_empty() {
                        record(
                            RowChange {
                                key,
                                kind: Kind::Changed,
                                changed,
                                publisher: Some(row),
                                subscriber: Some(other),
                            },
                            leaf,
                            out,
                        );
                    }
                }
            }
        }
        let mut extra: Vec<Row> = theirs.into_values().collect();
        extra.sort_by_key(|row| self.cmp.subscriber.key_of(row));
        for row in extra {
            let key = self.cmp.subscriber.key_of(&row);
            record(
                RowChange {
                    key,
                    kind: Kind::Extra,
                    changed: vec![],
                    publisher: None,
                    subscriber: Some(row),
                },
                leaf,
                out,
            );
        }
        changes
    }

    async fn send(&self, change: RowChange) {
        if let Some(tx) = self.changes {
            // A receiver that went away (a client that hung up) stops nothing here: the
            // pass finishes its bookkeeping regardless.
            let _ = tx.send(change).await;
        }
    }

    /// Counts a difference (and keeps it, under the cap); hands it back when a
    /// receiver of changes wants it.
    fn record(&self, change: RowChange, leaf: &mut Leaf, out: &mut Findings) -> Option<RowChange> {
        leaf.counts[change.kind] += 1;
        if change.kind == Kind::Missing {
            let time = self
                .cmp
                .time_column
                .and_then(|i| change.publisher.as_ref().map(|r| &r[i]));
            if let Some(t) = time.filter(|v| !v.is_null()) {
                leaf.missing_window = Some(match leaf.missing_window.take() {
                    None => (t.clone(), t.clone()),
                    Some((lo, hi)) => (lo.min(t.clone()), hi.max(t.clone())),
                });
            }
        }
        if out.kept < out.cap {
            out.kept += 1;
            let publisher_hash = change
                .publisher
                .as_ref()
                .map(|r| row_hash(r, &mut Vec::new()));
            leaf.rows.push(RowDiff {
                key: change.key.clone(),
                kind: change.kind,
                changed: change.changed.clone(),
                publisher_hash,
                moved: false,
                consistent: false,
            });
        }
        self.changes.map(|_| change)
    }
}
