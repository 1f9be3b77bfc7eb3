//! The comparison of one table between its publisher and each subscriber: schema
//! reconciliation, the chunk plan, chunk digests on all sides in parallel, localization
//! of mismatched buckets, and rechecks for confirmation.
//!
//! It reads through [`Database`] only, and publishes nothing itself: it returns what a
//! pass found, and the scheduler decides what becomes visible, all at once.

pub mod confirm;
pub mod digest;
pub mod localize;
pub mod plan;
pub mod schema;

use std::collections::HashMap;
use std::time::Instant;

use futures::future::join_all;
use futures::StreamExt;

use crate::config::TableConfig;
use crate::database::Database;
use crate::engine::{BucketDigest, Digests, TableRef};
use localize::{Findings, Pair};
use plan::Planner;
use schema::{Comparison, Resolved, Side};

/// What one full pass found for one subscriber.
#[derive(Debug)]
pub struct PairPass {
    pub comparison: Comparison,
    pub publisher_rows: u64,
    pub subscriber_rows: u64,
    pub chunks_matched: u64,
    pub chunks_mismatched: u64,
    pub findings: Findings,
}

/// One table, its publisher and its subscribers, as a pass sees them.
pub struct TableTarget<'a> {
    pub config: &'a TableConfig,
    pub publisher: &'a Database,
    pub subscribers: Vec<&'a Database>,
}

impl TableTarget<'_> {
    pub fn publisher_table(&self) -> TableRef {
        TableRef::parse(&self.config.name)
    }

    pub fn subscriber_table(&self) -> TableRef {
        TableRef::parse(self.config.subscriber_name.as_deref().unwrap_or(&self.config.name))
    }

    /// Reconciles both sides' schemas for every subscriber.
    pub async fn compare_schemas(&self) -> Vec<Result<Comparison, String>> {
        let (pt, st) = (self.publisher_table(), self.subscriber_table());
        let pschema = match self.publisher.introspect(&pt).await {
            Ok(s) => s,
            Err(e) => return self.subscribers.iter().map(|_| Err(e.to_string())).collect(),
        };
        let sschemas = join_all(self.subscribers.iter().map(|s| s.introspect(&st))).await;
        let mut out: Vec<Result<Comparison, String>> = self
            .subscribers
            .iter()
            .zip(sschemas)
            .map(|(sub, schema)| {
                let schema = schema.map_err(|e| e.to_string())?;
                let p = Side { database: &self.publisher.name, family: self.publisher.family(), table: pt.clone(), schema: &pschema };
                let s = Side { database: &sub.name, family: sub.family(), table: st.clone(), schema: &schema };
                schema::reconcile(self.config, &p, &s).map_err(|e| format!("table {}: {e}", self.config.name))
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
    pub async fn full_pass(&self, comparisons: Vec<Result<Comparison, String>>) -> Vec<Result<PairPass, String>> {
        let cfg = self.config;
        let mut passes: Vec<Result<PairPass, String>> = comparisons
            .into_iter()
            .map(|c| {
                c.map(|comparison| PairPass {
                    comparison,
                    publisher_rows: 0,
                    subscriber_rows: 0,
                    chunks_matched: 0,
                    chunks_mismatched: 0,
                    findings: Findings::new(cfg.max_diff_rows),
                })
            })
            .collect();
        let Some(first) = passes.iter().flatten().next() else { return passes };
        let plan_query = first.comparison.publisher.clone();
        let mut planner = match Planner::start(self.publisher, &plan_query, cfg.chunk_rows, cfg.target_query_time).await {
            Ok(p) => p,
            Err(e) => return fail_all(passes, &e.to_string()),
        };
        // Subscribers compared on the same columns with the same strategy share one
        // publisher digest per chunk: the publisher is read once, not once per subscriber.
        let mut profiles: Vec<(Resolved, Vec<String>, usize)> = Vec::new();
        let mut profile_of = HashMap::new();
        for (i, p) in passes.iter().enumerate() {
            if let Ok(p) = p {
                let key = (p.comparison.strategy, p.comparison.column_names());
                let idx = match profiles.iter().position(|(s, c, _)| (s, c) == (&key.0, &key.1)) {
                    Some(idx) => idx,
                    None => {
                        profiles.push((key.0, key.1, i));
                        profiles.len() - 1
                    }
                };
                profile_of.insert(i, idx);
            }
        }
        loop {
            let spec = match planner.next(self.publisher, &plan_query).await {
                Ok(Some(spec)) => spec,
                Ok(None) => break,
                Err(e) => return fail_all(passes, &e.to_string()),
            };
            let spec = &spec;
            let started = Instant::now();
            let pub_digests = join_all(profiles.iter().map(|(strategy, _, owner)| {
                let q = &passes[*owner].as_ref().expect("profile owners are valid").comparison.publisher;
                digest::digest(self.publisher, q, spec, *strategy)
            }));
            let sub_digests = join_all(passes.iter().zip(&self.subscribers).map(|(p, db)| async move {
                match p {
                    Ok(p) => Some(digest::digest(db, &p.comparison.subscriber, spec, p.comparison.strategy).await),
                    Err(_) => None,
                }
            }));
            let (pub_digests, sub_digests) = tokio::join!(pub_digests, sub_digests);
            let elapsed = started.elapsed();
            let pub_digests: Vec<Digests> = match pub_digests.into_iter().collect() {
                Ok(d) => d,
                Err(e) => return fail_all(passes, &e.to_string()),
            };
            let rows: u64 = pub_digests[0].values().map(|b| b.count).sum();
            planner.observe(rows, elapsed);
            let localize_started = Instant::now();
            let localized = join_all(passes.iter_mut().zip(sub_digests).zip(&self.subscribers).enumerate().map(
                |(i, ((pass, sub), db))| {
                    let theirs = pub_digests.get(profile_of.get(&i).copied().unwrap_or(0));
                    async move {
                        let (Ok(p), Some(sub), Some(ours)) = (pass.as_mut(), sub, theirs) else { return };
                        let result = match sub {
                            Ok(sub) => chunk(p, self.publisher, db, spec, ours, &sub).await,
                            Err(e) => Err(e.to_string()),
                        };
                        if let Err(e) = result {
                            *pass = Err(e);
                        }
                    }
                },
            ));
            localized.await;
            tracing::debug!(range = %spec.range, rows, digest_ms = elapsed.as_millis() as u64, localize_ms = localize_started.elapsed().as_millis() as u64, "chunk");
            if passes.iter().all(|p| p.is_err()) {
                break;
            }
        }
        passes
    }

    /// Re-digests the given leaf ranges of one subscriber and localizes what still differs.
    pub async fn recheck(&self, cmp: &Comparison, subscriber: &Database, ranges: &[(usize, crate::engine::KeyRange)]) -> Result<Vec<(usize, Findings)>, String> {
        let pair = Pair { publisher: self.publisher, subscriber, cmp };
        let mut out = Vec::with_capacity(ranges.len());
        for (i, range) in ranges {
            let mut f = Findings::new(self.config.max_diff_rows);
            pair.recheck(range, &mut f).await.map_err(|e| e.to_string())?;
            out.push((*i, f));
        }
        Ok(out)
    }
}

/// Mismatched buckets localized at once per subscriber (each database's own limit on
/// concurrent queries still applies).
const LOCALIZE_CONCURRENCY: usize = 4;

/// Compares one chunk's digests for one subscriber and localizes the mismatched buckets.
async fn chunk(p: &mut PairPass, publisher: &Database, subscriber: &Database, spec: &crate::engine::DigestSpec, ours: &Digests, theirs: &Digests) -> Result<(), String> {
    let count = |d: &Digests| d.values().map(|b| b.count).sum::<u64>();
    p.publisher_rows += count(ours);
    p.subscriber_rows += count(theirs);
    let mut buckets: Vec<i64> = ours.keys().chain(theirs.keys()).copied().collect();
    buckets.sort_unstable();
    buckets.dedup();
    let mismatched: Vec<(i64, BucketDigest, BucketDigest)> = buckets
        .into_iter()
        .map(|b| (b, ours.get(&b).copied().unwrap_or_default(), theirs.get(&b).copied().unwrap_or_default()))
        .filter(|(_, o, t)| o != t)
        .collect();
    if mismatched.is_empty() {
        p.chunks_matched += 1;
        return Ok(());
    }
    p.chunks_mismatched += 1;
    let pair = Pair { publisher, subscriber, cmp: &p.comparison };
    let cap = p.findings.cap();
    let found: Vec<Result<Findings, String>> = futures::stream::iter(mismatched)
        .map(|(b, o, t)| {
            let pair = &pair;
            async move {
                let mut f = Findings::new(cap);
                pair.localize(plan::bucket_range(spec, b), o, t, &mut f).await.map_err(|e| e.to_string())?;
                Ok(f)
            }
        })
        .buffered(LOCALIZE_CONCURRENCY)
        .collect()
        .await;
    for f in found {
        p.findings.absorb(f?);
    }
    Ok(())
}

fn fail_all(passes: Vec<Result<PairPass, String>>, message: &str) -> Vec<Result<PairPass, String>> {
    passes.into_iter().map(|p| p.and(Err(message.to_string()))).collect()
}
