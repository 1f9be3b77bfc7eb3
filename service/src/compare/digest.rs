//! Chunk digests in the two strategies behind one call: pushdown (the database hashes)
//! and streamed (rows travel, each is canonically encoded and hashed with xxh3-128 in
//! parallel batches on rayon, off the async runtime); and both sides' buckets lined up.

use tokio::sync::{mpsc, oneshot};

use super::plan::SUB_BUCKETS;
use super::schema::Resolved;
use crate::database::Database;
use crate::engine::{bucket_of, BucketDigest, DigestAccumulator, DigestSpec, Digests, Result};
use crate::table::TableQuery;
use crate::value::EncodedRows;

pub async fn digest(
    db: &Database,
    q: &TableQuery,
    spec: &DigestSpec,
    strategy: Resolved,
) -> Result<Digests> {
    match strategy {
        Resolved::Pushdown => db.pushdown_digest(q, spec).await,
        Resolved::Streamed => streamed(db, q, spec).await,
    }
}

/// The buckets a chunk is digested in with `strategy`: the plan's, or for a streamed
/// digest the plan's cut in [`SUB_BUCKETS`] each. A streamed digest hashes every row in
/// driftwatch anyway, so finer sums cost no database anything, and localization then reads
/// only the sub-buckets that differ (a pushdown's localization digests a mismatched
/// bucket again to find them).
pub fn chunk_spec(spec: &DigestSpec, strategy: Resolved) -> DigestSpec {
    let bucket_width = match (strategy, spec.bucket_width) {
        (Resolved::Streamed, Some(w)) => Some((w - 1) / SUB_BUCKETS + 1),
        (_, w) => w,
    };
    DigestSpec {
        range: spec.range.clone(),
        bucket_width,
    }
}

/// Every bucket either side has, in bucket order, with both sides' digests of it (a
/// bucket one side lacks is empty there).
pub fn paired(ours: &Digests, theirs: &Digests) -> Vec<(i64, BucketDigest, BucketDigest)> {
    let mut buckets: Vec<i64> = ours.keys().chain(theirs.keys()).copied().collect();
    buckets.sort_unstable();
    buckets.dedup();
    let side = |d: &Digests, b| d.get(&b).copied().unwrap_or_default();
    buckets
        .into_iter()
        .map(|b| (b, side(ours, b), side(theirs, b)))
        .collect()
}

async fn streamed(db: &Database, q: &TableQuery, spec: &DigestSpec) -> Result<Digests> {
    // A few batches in flight: the database keeps streaming while a batch is hashed.
    let (tx, mut rx) = mpsc::channel::<EncodedRows>(2);
    let width = spec.bucket_width;
    let mut digests = DigestAccumulator::new(q.key[0], width);
    let hashing = async move {
        while let Some(batch) = rx.recv().await {
            for (bucket, digest) in hash_batch(batch, width).await {
                digests.add_digest(bucket, digest);
            }
        }
        digests.digests
    };
    let (scanned, digests) = tokio::join!(db.scan_encoded(q, &spec.range, tx), hashing);
    scanned?;
    Ok(digests)
}

/// A batch's rows hashed and summed by bucket: a sum per run of rows in one bucket (rows
/// come mostly in key order), so that few sums reach the bucket map.
async fn hash_batch(batch: EncodedRows, width: Option<i64>) -> Vec<(i64, BucketDigest)> {
    use rayon::prelude::*;
    let (tx, rx) = oneshot::channel();
    rayon::spawn(move || {
        let runs = (0..batch.len())
            .into_par_iter()
            .with_min_len(512)
            .fold(Vec::new, |mut runs: Vec<(i64, BucketDigest)>, i| {
                let bucket = match (width, batch.lead[i]) {
                    (Some(w), Some(k1)) => bucket_of(k1, w),
                    _ => 0,
                };
                let row = BucketDigest {
                    count: 1,
                    sum: xxhash_rust::xxh3::xxh3_128(batch.row(i)),
                };
                match runs.last_mut() {
                    Some((b, sum)) if *b == bucket => *sum += row,
                    _ => runs.push((bucket, row)),
                }
                runs
            })
            .reduce(Vec::new, |mut a, b| {
                a.extend(b);
                a
            });
        batch.recycle();
        let _ = tx.send(runs);
    });
    rx.await.expect("the rayon task always answers")
}
