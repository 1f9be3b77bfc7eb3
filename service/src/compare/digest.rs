//! Chunk digests in the two strategies behind one call: pushdown (the database hashes)
//! and streamed (rows travel, each is canonically encoded and hashed with xxh3-128 in
//! parallel batches on rayon, off the async runtime).

use tokio::sync::{mpsc, oneshot};

use super::schema::Resolved;
use crate::database::Database;
use crate::engine::{row_bucket, DigestAccumulator, Digests, DigestSpec, Result, Row, TableQuery};
use crate::value::row_hash;

pub async fn digest(db: &Database, q: &TableQuery, spec: &DigestSpec, strategy: Resolved) -> Result<Digests> {
    match strategy {
        Resolved::Pushdown => db.pushdown_digest(q, spec).await,
        Resolved::Streamed => streamed(db, q, spec).await,
    }
}

async fn streamed(db: &Database, q: &TableQuery, spec: &DigestSpec) -> Result<Digests> {
    // A few batches in flight: the database keeps streaming while a batch is hashed.
    let (tx, mut rx) = mpsc::channel::<Vec<Row>>(4);
    let (key0, width) = (q.key[0], spec.bucket_width);
    let hashing = async move {
        let mut acc = DigestAccumulator::new(key0, width);
        while let Some(batch) = rx.recv().await {
            for (bucket, hash) in hash_batch(batch, key0, width).await {
                acc.add_hashed(bucket, hash);
            }
        }
        acc.digests
    };
    let (scanned, digests) = tokio::join!(db.scan(q, &spec.range, None, tx, true), hashing);
    scanned?;
    Ok(digests)
}

async fn hash_batch(batch: Vec<Row>, key0: usize, width: Option<i64>) -> Vec<(i64, u128)> {
    use rayon::prelude::*;
    let (tx, rx) = oneshot::channel();
    rayon::spawn(move || {
        let hashed = batch
            .par_iter()
            .map_init(|| Vec::with_capacity(256), |buf, row| (row_bucket(row, key0, width), row_hash(row, buf)))
            .collect();
        let _ = tx.send(hashed);
    });
    rx.await.expect("the rayon task always answers")
}
