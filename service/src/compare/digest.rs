//! Chunk digests in the two strategies behind one call: pushdown (the database hashes)
//! and streamed (rows travel, each is canonically encoded and hashed with xxh3-128 in
//! parallel batches on rayon, off the async runtime); and both sides' buckets lined up.

use tokio::sync::{mpsc, oneshot};

use super::plan::sub_bucket_width;
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

/// The most sub-buckets a streamed chunk is summed in: their sums are held for both sides
/// until the chunk is compared (about 48 bytes each), so that memory stays bounded
/// whatever size the planner grows a chunk to (131,072: about two million rows at 16 a
/// sub-bucket, about 6 MB a side).
const MAX_CHUNK_SUB_BUCKETS: i128 = 131_072;

/// The buckets a chunk is digested in with `strategy`: the plan's, or for a streamed
/// digest the plan's cut in [`super::plan::SUB_BUCKETS`] each. A streamed digest hashes
/// every row in driftwatch anyway, so finer sums cost no database anything, and
/// localization then reads only the sub-buckets that differ (a pushdown's localization digests a mismatched
/// bucket again to find them). A chunk without both lead bounds, or that would need more
/// than [`MAX_CHUNK_SUB_BUCKETS`], keeps the plan's buckets.
pub fn chunk_spec(spec: &DigestSpec, strategy: Resolved) -> DigestSpec {
    let bucket_width = match (
        strategy,
        spec.bucket_width,
        spec.range.lead_lo,
        spec.range.lead_hi,
    ) {
        (Resolved::Streamed, Some(w), Some(lo), Some(hi)) => {
            let fine = sub_bucket_width(w as i128);
            let subs = (hi as i128 - lo as i128) / fine as i128 + 2;
            Some(if subs <= MAX_CHUNK_SUB_BUCKETS {
                fine
            } else {
                w
            })
        }
        (_, w, _, _) => w,
    };
    DigestSpec {
        range: spec.range.clone(),
        bucket_width,
    }
}

type Side<'a> = std::iter::Peekable<std::collections::btree_map::Iter<'a, i64, BucketDigest>>;

/// Every bucket either side has, in bucket order, with both sides' digests of it (a
/// bucket one side lacks is empty there): both maps walked together, nothing copied.
pub fn paired<'a>(
    ours: &'a Digests,
    theirs: &'a Digests,
) -> impl Iterator<Item = (i64, BucketDigest, BucketDigest)> + 'a {
    let mut ours = ours.iter().peekable();
    let mut theirs = theirs.iter().peekable();
    std::iter::from_fn(move || {
        let next = match (ours.peek(), theirs.peek()) {
            (None, None) => return None,
            (Some((a, _)), Some((b, _))) => (**a).min(**b),
            (Some((a, _)), None) => **a,
            (None, Some((b, _))) => **b,
        };
        let side = |d: &mut Side<'a>| d.next_if(|(b, _)| **b == next).map(|(_, d)| *d);
        let (o, t) = (side(&mut ours), side(&mut theirs));
        Some((next, o.unwrap_or_default(), t.unwrap_or_default()))
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::KeyRange;

    fn chunk(lo: i64, hi: Option<i64>, width: i64) -> DigestSpec {
        DigestSpec {
            range: KeyRange {
                lead_lo: Some(lo),
                lead_hi: hi,
                ..Default::default()
            },
            bucket_width: Some(width),
        }
    }

    #[test]
    fn paired_walks_both_sides_buckets_in_order_with_an_empty_one_where_a_side_has_none() {
        let d = |count, sum| BucketDigest { count, sum };
        let ours = Digests::from([(-3, d(1, 10)), (0, d(2, 20)), (7, d(3, 30))]);
        let theirs = Digests::from([(0, d(2, 21)), (5, d(1, 50)), (7, d(3, 30))]);
        let got: Vec<_> = paired(&ours, &theirs).collect();
        let none = BucketDigest::default();
        assert_eq!(
            got,
            vec![
                (-3, d(1, 10), none),
                (0, d(2, 20), d(2, 21)),
                (5, none, d(1, 50)),
                (7, d(3, 30), d(3, 30)),
            ]
        );
        assert_eq!(paired(&Digests::new(), &Digests::new()).count(), 0);
    }

    #[test]
    fn a_streamed_chunk_is_summed_in_sub_buckets_while_they_stay_few() {
        let width = |spec: &DigestSpec, s| chunk_spec(spec, s).bucket_width;
        let small = chunk(0, Some(10_240), 512);
        assert_eq!(width(&small, Resolved::Streamed), Some(16));
        assert_eq!(width(&small, Resolved::Pushdown), Some(512));
        // A width that SUB_BUCKETS does not divide rounds up: never wider than the plan's.
        assert_eq!(
            width(&chunk(0, Some(10_000), 100), Resolved::Streamed),
            Some(4)
        );
        assert_eq!(
            width(&chunk(0, Some(10_000), 1), Resolved::Streamed),
            Some(1)
        );
        // Too many sub-buckets, or no upper bound to count them by: the plan's buckets.
        let huge = chunk(0, Some(16 * 140_000), 512);
        assert_eq!(width(&huge, Resolved::Streamed), Some(512));
        assert_eq!(width(&chunk(0, None, 512), Resolved::Streamed), Some(512));
    }
}
