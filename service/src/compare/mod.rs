//! The comparison of one table between its publisher and each subscriber: schema
//! reconciliation, the chunk plan, chunk digests on all sides in parallel, localization
//! of mismatched buckets, and rechecks for confirmation.
//!
//! It reads through [`Database`] only, and publishes nothing itself: it returns what a
//! pass found, and the scheduler decides what becomes visible, all at once.

pub mod confirm;
pub mod digest;
pub mod keyspace;
pub mod localize;
pub mod plan;
pub mod schema;

use std::sync::Arc;
use std::time::Instant;

use futures::future::join_all;
use futures::StreamExt;
use tracing::{info_span, Instrument};

use crate::config::TableConfig;
use crate::database::Database;
use crate::engine::{BucketDigest, Digests, EngineError};
use localize::{Findings, Pair};
use plan::Planner;
use schema::{Comparison, Resolved, SchemaError, Side};

/// Why a pair's pass, its schema comparison or a recheck could not complete: what a
/// database answered, or why the table cannot be compared. One error is shared by every
/// subscriber it stopped (hence the `Arc`); its text is what the status shows.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Engine(Arc<EngineError>),
    #[error("table {table}: {error}")]
    Schema { table: String, error: SchemaError },
}

impl From<EngineError> for PassError {
    fn from(e: EngineError) -> PassError {
        PassError::Engine(Arc::new(e))
    }
}

/// What one full pass found for one subscriber.
#[derive(Debug)]
pub struct PairPass {
    pub comparison: Comparison,
    pub publisher_rows: u64,
    pub subscriber_rows: u64,
    pub chunks_matched: u64,
    pub chunks_mismatched: u64,
    pub findings: Findings,
    /// Where the mismatched chunks and buckets lie in the publisher's key order.
    pub mismatched_ranges: Vec<keyspace::KeySpan>,
}

/// One table, its publisher and its subscribers, as a pass sees them.
pub struct TableTarget<'a> {
    pub group: &'a str,
    pub config: &'a TableConfig,
    pub publisher: &'a Database,
    pub subscribers: Vec<&'a Database>,
    /// Every differing row, with its values, as it is found (scripts).
    pub changes: Option<tokio::sync::mpsc::Sender<localize::RowChange>>,
}

impl TableTarget<'_> {
    /// The span of one side's digest of a chunk (`subscriber` is "publisher" for the
    /// publisher's).
    fn chunk_span(
        &self,
        subscriber: &str,
        db: &Database,
        spec: &crate::engine::DigestSpec,
    ) -> tracing::Span {
        info_span!(
            "chunk_digest",
            group = %self.group,
            table = %self.config.name,
            subscriber,
            database = %db.name,
            range = %spec.range
        )
    }

    /// Reconciles both sides' schemas for every subscriber.
    pub async fn compare_schemas(&self) -> Vec<Result<Comparison, PassError>> {
        let (pt, st) = (&self.config.publisher_table, &self.config.subscriber_table);
        // Every side at once: each introspection is a few catalog round trips.
        let (pschema, sschemas) = tokio::join!(
            self.publisher.introspect(pt),
            join_all(self.subscribers.iter().map(|s| s.introspect(st)))
        );
        let pschema = match pschema {
            Ok(s) => s,
            Err(e) => {
                let e = PassError::from(e);
                return self.subscribers.iter().map(|_| Err(e.clone())).collect();
            }
        };
        let mut out: Vec<Result<Comparison, PassError>> = self
            .subscribers
            .iter()
            .zip(sschemas)
            .map(|(sub, schema)| {
                let schema = schema?;
                let p = Side {
                    database: &self.publisher.name,
                    family: self.publisher.family(),
                    table: pt.clone(),
                    schema: &pschema,
                };
                let s = Side {
                    database: &sub.name,
                    family: sub.family(),
                    table: st.clone(),
                    schema: &schema,
                };
                schema::reconcile(self.config, &p, &s).map_err(|error| PassError::Schema {
                    table: self.config.name.clone(),
                    error,
                })
            })
            .collect();
        // One chunk plan serves every subscriber, so all must order keys alike.
        let binary = out.iter().flatten().any(|c| c.publisher.binary_collation);
        for c in out.iter_mut().flatten() {
            c.publisher.binary_collation = binary;
            c.subscriber.binary_collation = binary;
        }
        out
    }

    /// One full pass over every subscriber whose schema reconciled.
    ///
    /// Chunks are pipelined: while every side digests chunk i + 1, the mismatched
    /// buckets of chunk i are localized, so localizing adds little to a pass's time.
    pub async fn full_pass(
        &self,
        comparisons: Vec<Result<Comparison, PassError>>,
    ) -> Vec<Result<PairPass, PassError>> {
        let cfg = self.config;
        let mut lanes: Vec<Lane> = comparisons
            .iter()
            .zip(&self.subscribers)
            .map(|(c, db)| Lane {
                target: c.as_ref().ok().map(|c| (*db, c)),
                profile: 0,
                error: c.as_ref().err().cloned(),
                publisher_rows: 0,
                subscriber_rows: 0,
                chunks_matched: 0,
                chunks_mismatched: 0,
                findings: Findings::new(cfg.max_diff_rows),
                spans: keyspace::KeySpans::default(),
                work: Vec::new(),
            })
            .collect();
        if let Err(e) = self.run_chunks(&mut lanes).await {
            for l in &mut lanes {
                l.error.get_or_insert(e.clone());
            }
        }
        lanes.into_iter().map(Lane::finish).collect()
    }

    async fn run_chunks(&self, lanes: &mut [Lane<'_>]) -> Result<(), PassError> {
        let cfg = self.config;
        let Some((_, first)) = lanes.iter().find_map(|l| l.target) else {
            return Ok(());
        };
        let plan_query = &first.publisher;
        let mut planner = Planner::start(
            self.publisher,
            plan_query,
            cfg.chunk_rows,
            cfg.target_query_time,
        )
        .await?;
        // Subscribers compared on the same columns with the same strategy share one
        // publisher digest per chunk: the publisher is read once, not once per subscriber.
        let mut profiles: Vec<(Resolved, Vec<String>, &Comparison)> = Vec::new();
        for lane in lanes.iter_mut() {
            let Some((_, cmp)) = lane.target else {
                continue;
            };
            let key = (cmp.strategy, cmp.column_names());
            lane.profile = profiles
                .iter()
                .position(|(s, c, _)| (s, c) == (&key.0, &key.1))
                .unwrap_or_else(|| {
                    profiles.push((key.0, key.1, cmp));
                    profiles.len() - 1
                });
        }
        // What each subscriber digests, apart from the lanes that localization updates
        // meanwhile.
        let targets: Vec<_> = lanes.iter().map(|l| l.target).collect();
        loop {
            let spec = planner.next(self.publisher, plan_query).await?;
            let digests = async {
                let Some(spec) = &spec else { return Ok(None) };
                let started = Instant::now();
                let ours = join_all(profiles.iter().map(|(strategy, _, cmp)| {
                    let spec = digest::chunk_spec(spec, *strategy);
                    let span = self.chunk_span("publisher", self.publisher, &spec);
                    async move {
                        digest::digest(self.publisher, &cmp.publisher, &spec, *strategy)
                            .instrument(span)
                            .await
                    }
                }));
                let theirs = join_all(targets.iter().map(|c| async move {
                    let (db, cmp) = c.as_ref()?;
                    let spec = digest::chunk_spec(spec, cmp.strategy);
                    let span = self.chunk_span(&db.name, db, &spec);
                    let digests = digest::digest(db, &cmp.subscriber, &spec, cmp.strategy)
                        .instrument(span)
                        .await;
                    // With the buckets digested, which the comparison must read them by.
                    Some((spec, digests))
                }));
                let (ours, theirs) = tokio::join!(ours, theirs);
                let ours: Vec<Digests> = ours.into_iter().collect::<Result<_, EngineError>>()?;
                Ok::<_, PassError>(Some((spec.clone(), ours, theirs, started.elapsed())))
            };
            let localized = async {
                let started = Instant::now();
                if self.localize_all(lanes).await {
                    // Overlaps the next chunk's digests: the benchmark adds both up.
                    tracing::debug!(
                        localize_ms = started.elapsed().as_millis() as u64,
                        "localized"
                    );
                }
            };
            let (digests, ()) = tokio::join!(digests, localized);
            let Some((spec, ours, theirs, elapsed)) = digests? else {
                return Ok(());
            };
            let rows: u64 = ours[0].values().map(|b| b.count).sum();
            planner.observe(rows, elapsed);
            tracing::debug!(range = %spec.range, rows, digest_ms = elapsed.as_millis() as u64, "chunk");
            for (lane, theirs) in lanes.iter_mut().zip(theirs) {
                match theirs {
                    _ if lane.error.is_some() => {}
                    None => {}
                    Some((_, Err(e))) => lane.error = Some(e.into()),
                    Some((digested, Ok(theirs))) => {
                        let ours = &ours[lane.profile];
                        lane.work = lane.compare(&spec, &digested, ours, &theirs);
                    }
                }
            }
        }
    }

    /// Localizes each lane's mismatched buckets of the last chunk, a few at a time; whether
    /// there were any.
    async fn localize_all(&self, lanes: &mut [Lane<'_>]) -> bool {
        let any = lanes
            .iter()
            .any(|l| l.target.is_some() && !l.work.is_empty());
        join_all(lanes.iter_mut().map(|lane| async move {
            let work = std::mem::take(&mut lane.work);
            let (Some((db, cmp)), false) = (lane.target, work.is_empty()) else {
                return;
            };
            let pair = Pair {
                publisher: self.publisher,
                subscriber: db,
                cmp,
                changes: self.changes.as_ref(),
            };
            let cap = lane.findings.cap();
            let found: Vec<Result<Findings, PassError>> = futures::stream::iter(work)
                .map(|w| {
                    let pair = &pair;
                    let span = info_span!("bisect", database = %db.name, range = %w.range);
                    async move {
                        let mut f = Findings::new(cap);
                        pair.localize(w.range, w.ours, w.theirs, w.parts, &mut f)
                            .await?;
                        Ok(f)
                    }
                    .instrument(span)
                })
                .buffered(LOCALIZE_CONCURRENCY)
                .collect()
                .await;
            for f in found {
                match f {
                    Ok(f) => lane.findings.absorb(f),
                    Err(e) => {
                        lane.error.get_or_insert(e);
                    }
                }
            }
        }))
        .await;
        any
    }

    /// Re-checks tracked ranges of one subscriber (each with the publisher's row count
    /// last seen in it). With `positions`, the publisher's side of every range is read
    /// first, then its replication position, and the ranges are compared again only once
    /// the subscriber has applied that position (waiting at most `wait`): a difference
    /// whose publisher side stood still through all those reads is then proven. Without,
    /// or when the subscriber does not get there in time, what is found is one more
    /// sighting for confirmation by time.
    pub async fn recheck(
        &self,
        cmp: &Comparison,
        subscriber: &Database,
        ranges: &[(crate::table::KeyRange, u64)],
        positions: Option<&crate::replication::Positions<'_>>,
        wait: std::time::Duration,
    ) -> Result<Vec<confirm::Rechecked>, PassError> {
        let pair = Pair {
            publisher: self.publisher,
            subscriber,
            cmp,
            changes: None,
        };
        let mut before = None;
        if let Some(p) = positions {
            let mut snapshots = Vec::with_capacity(ranges.len());
            for (range, rows) in ranges {
                snapshots.push(pair.publisher_snapshot(range, *rows).await?);
            }
            match self.reach_position(p, wait).await {
                Ok(true) => before = Some(snapshots),
                Ok(false) => tracing::info!(
                    group = %self.group, table = %self.config.name, subscriber = %subscriber.name,
                    wait_seconds = wait.as_secs_f64(),
                    "the subscriber did not apply the publisher's position in time: confirming by time"
                ),
                Err(e) => tracing::warn!(
                    group = %self.group, table = %self.config.name, subscriber = %subscriber.name,
                    error = %e, "cannot read replication positions: confirming by time"
                ),
            }
        }
        let mut out = Vec::with_capacity(ranges.len());
        for (i, (range, _)) in ranges.iter().enumerate() {
            let mut f = Findings::new(self.config.max_diff_rows);
            pair.recheck(range, &mut f)
                .instrument(info_span!("bisect", database = %subscriber.name, range = %range))
                .await?;
            if let Some(snapshots) = &before {
                snapshots[i].mark_consistent(range, &mut f);
            }
            out.push(confirm::Rechecked {
                range: range.clone(),
                findings: f,
            });
        }
        Ok(out)
    }

    /// Reads the publisher's position and waits until the subscriber has applied it.
    async fn reach_position(
        &self,
        p: &crate::replication::Positions<'_>,
        wait: std::time::Duration,
    ) -> crate::engine::Result<bool> {
        match p.mark().await? {
            Some(position) => p.wait(&position, wait).await,
            None => Ok(false),
        }
    }
}

/// Mismatched buckets localized at once per subscriber (each database's own limit on
/// concurrent queries still applies).
const LOCALIZE_CONCURRENCY: usize = 4;

/// One subscriber's progress through a pass: what it compares, and what it found so far.
struct Lane<'a> {
    /// The subscriber and its comparison (`None`: its schemas did not reconcile).
    target: Option<(&'a Database, &'a Comparison)>,
    /// Which of the publisher's digests of a chunk it is compared with.
    profile: usize,
    error: Option<PassError>,
    publisher_rows: u64,
    subscriber_rows: u64,
    chunks_matched: u64,
    chunks_mismatched: u64,
    findings: Findings,
    spans: keyspace::KeySpans,
    /// The mismatched buckets of the last chunk, localized while the next is digested.
    work: Vec<Work>,
}

/// A mismatched bucket, to localize.
struct Work {
    range: crate::table::KeyRange,
    ours: BucketDigest,
    theirs: BucketDigest,
    /// Its mismatched sub-buckets, where the chunk was digested in them (streamed).
    parts: Option<Vec<localize::Part>>,
}

impl Lane<'_> {
    /// What the pass found, or why it failed.
    fn finish(self) -> Result<PairPass, PassError> {
        match (self.error, self.target) {
            (Some(e), _) => Err(e),
            (None, Some((_, comparison))) => Ok(PairPass {
                comparison: comparison.clone(),
                publisher_rows: self.publisher_rows,
                subscriber_rows: self.subscriber_rows,
                chunks_matched: self.chunks_matched,
                chunks_mismatched: self.chunks_mismatched,
                mismatched_ranges: self.spans.finish(self.publisher_rows),
                findings: self.findings,
            }),
            (None, None) => unreachable!("a lane without a comparison starts with its error"),
        }
    }

    /// Counts a chunk's rows and lists its mismatched buckets (of the plan's `spec`),
    /// each with its mismatched sub-buckets where the chunk was digested in them
    /// (`digested`, the buckets both sides' digests are in).
    fn compare(
        &mut self,
        spec: &crate::engine::DigestSpec,
        digested: &crate::engine::DigestSpec,
        ours: &Digests,
        theirs: &Digests,
    ) -> Vec<Work> {
        let count = |d: &Digests| d.values().map(|b| b.count).sum::<u64>();
        let mut before = self.publisher_rows;
        self.publisher_rows += count(ours);
        self.subscriber_rows += count(theirs);
        // Digested in sub-buckets, a chunk's mismatches are localized by groups of
        // SUB_BUCKETS consecutive sub-buckets (about a bucket of the plan's), so that the
        // localization's rule for a mostly differing range sees each group whole.
        let cut = digested.bucket_width != spec.bucket_width;
        let sub = if cut { plan::SUB_BUCKETS } else { 1 };
        let bucket = crate::engine::DigestSpec {
            range: spec.range.clone(),
            bucket_width: digested.bucket_width.map(|w| w.saturating_mul(sub)),
        };
        let mut work = Vec::new();
        // The bucket being summed: its number, the publisher rows before it, and its work.
        let mut open: Option<(i64, u64, Work)> = None;
        let mut close = |open: Option<(i64, u64, Work)>, work: &mut Vec<Work>| {
            if let Some((_, rows_before, w)) = open {
                let mismatched = match &w.parts {
                    Some(parts) => !parts.is_empty(),
                    None => w.ours != w.theirs,
                };
                if mismatched {
                    self.spans
                        .push(rows_before, w.ours.count, w.theirs.count, w.range.clone());
                    work.push(w);
                }
            }
        };
        for (b, ours, theirs) in digest::paired(ours, theirs) {
            let of = b.div_euclid(sub);
            if open.as_ref().is_none_or(|(o, _, _)| *o != of) {
                close(open.take(), &mut work);
                let w = Work {
                    range: plan::bucket_range(&bucket, of),
                    ours: BucketDigest::default(),
                    theirs: BucketDigest::default(),
                    parts: cut.then(Vec::new),
                };
                open = Some((of, before, w));
            }
            before += ours.count;
            let (_, _, w) = open.as_mut().expect("opened above");
            w.ours += ours;
            w.theirs += theirs;
            if let Some(parts) = &mut w.parts {
                if ours != theirs {
                    parts.push((plan::bucket_range(digested, b), ours, theirs));
                }
            }
        }
        close(open, &mut work);
        if work.is_empty() {
            self.chunks_matched += 1;
        } else {
            self.chunks_mismatched += 1;
        }
        work
    }
}
