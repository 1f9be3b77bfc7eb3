//! Chunk digests in the two strategies behind one call: pushdown (the database hashes)
//! and streamed (rows travel, each is canonically encoded and hashed with xxh3-128 in
//! parallel batches on rayon, off the async runtime); and both sides' buckets lined up.

use tokio::sync::{mpsc, oneshot};

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
            for (bucket, hash) in hash_batch(batch, width).await {
                digests.add_hashed(bucket, hash);
            }
        }
        digests.digests
    };
    let (scanned, digests) = tokio::join!(db.scan_encoded(q, &spec.range, tx), hashing);
    scanned?;
    Ok(digests)
}

async fn hash_batch(batch: EncodedRows, width: Option<i64>) -> Vec<(i64, u128)> {
    use rayon::prelude::*;
    let (tx, rx) = oneshot::channel();
    rayon::spawn(move || {
        let hashed = (0..batch.len())
            .into_par_iter()
            .with_min_len(512)
            .map(|i| {
                let bucket = match (width, batch.lead[i]) {
                    (Some(w), Some(k1)) => bucket_of(k1, w),
                    _ => 0,
                };
                (bucket, xxhash_rust::xxh3::xxh3_128(batch.row(i)))
            })
            .collect();
        let _ = tx.send(hashed);
    });
    rx.await.expect("the rayon task always answers")
}
