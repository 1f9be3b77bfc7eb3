//! The chunk plan: the publisher's key space cut into ranges that every side evaluates
//! alike, sized so that each digest query takes about `target_query_time`.
//!
//! An integer first key column is cut arithmetically (no scan to find boundaries), and
//! each chunk's digest comes back in fine buckets of about [`BUCKET_ROWS`] rows from the
//! same scan, so a difference is localized without a second pass. Other keys are cut at
//! boundaries read from the publisher's key order, one bucket per chunk.
//!
//! The first chunk is unbounded below and the last unbounded above: rows a subscriber
//! holds outside the publisher's key span are still seen.

use std::time::Duration;

use crate::database::Database;
use crate::engine::{DigestSpec, Result};
use crate::table::{KeyRange, TableQuery};
use crate::value::{Key, LogicalType};

/// Rows per bucket an integer-keyed digest aims for: what localizing one difference costs.
pub const BUCKET_ROWS: f64 = 512.0;

/// Sub-buckets a bucket is cut in to find which of its rows differ (a 512-row bucket: 16
/// rows each): localization reads only the sub-buckets that differ.
pub const SUB_BUCKETS: i64 = 32;

/// The width of a sub-bucket of a bucket (or range) `span` keys wide: rounded up, so
/// that `SUB_BUCKETS` of them cover it.
pub fn sub_bucket_width(span: i128) -> i64 {
    let sub = SUB_BUCKETS as i128;
    ((span + sub - 1) / sub) as i64
}

pub struct Planner {
    mode: Mode,
    rows_target: f64,
    min_rows: f64,
    max_rows: f64,
    target_time: Duration,
}

enum Mode {
    /// Arithmetic ranges on the integer first key column: a head chunk below the
    /// publisher's min, bounded chunks from min to max, a tail chunk above max.
    Lead {
        next_lo: Option<i64>,
        min: i64,
        max: i64,
        density: f64,
        last_width: f64,
        done: bool,
    },
    /// Ranges between keys read from the publisher.
    Boundaries { after: Option<Key>, done: bool },
    /// An empty publisher: one chunk over everything.
    Whole { done: bool },
}

impl Planner {
    pub async fn start(
        publisher: &Database,
        q: &TableQuery,
        chunk_rows: u64,
        target_time: Duration,
    ) -> Result<Planner> {
        let integer_lead = q.columns[q.key[0]].compare_as == LogicalType::Int;
        let mode = if integer_lead {
            match publisher.lead_bounds(q).await? {
                Some((min, max)) => Mode::Lead {
                    next_lo: None,
                    min,
                    max,
                    density: 1.0,
                    last_width: 1.0,
                    done: false,
                },
                None => Mode::Whole { done: false },
            }
        } else {
            Mode::Boundaries {
                after: None,
                done: false,
            }
        };
        let rows = chunk_rows as f64;
        Ok(Planner {
            mode,
            rows_target: rows,
            min_rows: 100.0,
            max_rows: rows * 1000.0,
            target_time,
        })
    }

    pub async fn next(
        &mut self,
        publisher: &Database,
        q: &TableQuery,
    ) -> Result<Option<DigestSpec>> {
        let rows_target = self.rows_target;
        match &mut self.mode {
            Mode::Whole { done } | Mode::Boundaries { done, .. } | Mode::Lead { done, .. }
                if *done =>
            {
                Ok(None)
            }
            Mode::Whole { done } => {
                *done = true;
                Ok(Some(DigestSpec {
                    range: KeyRange::default(),
                    bucket_width: None,
                }))
            }
            Mode::Boundaries { after, done } => {
                let range = KeyRange {
                    after: after.clone(),
                    ..Default::default()
                };
                let upto = publisher.key_at(q, &range, rows_target as u64 - 1).await?;
                *done = upto.is_none();
                *after = upto.clone();
                Ok(Some(DigestSpec {
                    range: KeyRange { upto, ..range },
                    bucket_width: None,
                }))
            }
            Mode::Lead {
                next_lo,
                min,
                max,
                density,
                last_width,
                done,
            } => {
                let bucket = (BUCKET_ROWS / *density).clamp(1.0, 1e15).round() as i128;
                let Some(lo) = *next_lo else {
                    // The head: whatever a subscriber holds below the publisher's first key.
                    *next_lo = Some(*min);
                    *last_width = 0.0;
                    let range = KeyRange {
                        lead_hi: Some(*min),
                        ..Default::default()
                    };
                    return Ok(Some(DigestSpec {
                        range,
                        bucket_width: None,
                    }));
                };
                if lo as i128 > *max as i128 {
                    // The tail: whatever a subscriber holds above the publisher's last key.
                    *done = true;
                    *last_width = 0.0;
                    let range = KeyRange {
                        lead_lo: Some(lo),
                        ..Default::default()
                    };
                    return Ok(Some(DigestSpec {
                        range,
                        bucket_width: None,
                    }));
                }
                let width = ((rows_target / *density) as i128).max(bucket);
                // Chunk ends fall on bucket boundaries, so no bucket straddles two chunks.
                let end = (((lo as i128 + width) / bucket + 1) * bucket).min(*max as i128 + 1);
                let hi = i64::try_from(end).unwrap_or(i64::MAX);
                *last_width = (hi as i128 - lo as i128) as f64;
                *next_lo = Some(hi);
                if hi == i64::MAX {
                    // The key space ends here: this chunk is the tail too.
                    *done = true;
                    let range = KeyRange {
                        lead_lo: Some(lo),
                        ..Default::default()
                    };
                    return Ok(Some(DigestSpec {
                        range,
                        bucket_width: Some(bucket as i64),
                    }));
                }
                let range = KeyRange {
                    lead_lo: Some(lo),
                    lead_hi: Some(hi),
                    ..Default::default()
                };
                Ok(Some(DigestSpec {
                    range,
                    bucket_width: Some(bucket as i64),
                }))
            }
        }
    }

    /// Adapts the next chunk to what the last one cost: `rows` publisher rows in `elapsed`.
    pub fn observe(&mut self, rows: u64, elapsed: Duration) {
        let factor = if elapsed.is_zero() {
            2.0
        } else {
            (self.target_time.as_secs_f64() / elapsed.as_secs_f64()).clamp(0.5, 2.0)
        };
        // A sparse chunk says little about cost: only grow on it.
        let factor = if (rows as f64) < self.rows_target / 2.0 {
            factor.max(1.0)
        } else {
            factor
        };
        self.rows_target = (self.rows_target * factor).clamp(self.min_rows, self.max_rows);
        if let Mode::Lead {
            density,
            last_width,
            ..
        } = &mut self.mode
        {
            if *last_width > 0.0 {
                *density = if rows == 0 {
                    *density / 4.0
                } else {
                    rows as f64 / *last_width
                }
                .max(1e-15);
            }
        }
    }
}

/// The key range of bucket `b` of a chunk: the chunk's range narrowed to
/// `b * width <= k1 < (b + 1) * width`.
pub fn bucket_range(spec: &DigestSpec, b: i64) -> KeyRange {
    let Some(w) = spec.bucket_width else {
        return spec.range.clone();
    };
    let clamp = |v: i128| i64::try_from(v).ok();
    let lo = clamp(b as i128 * w as i128);
    let hi = clamp((b as i128 + 1) * w as i128);
    let lead_lo = match (spec.range.lead_lo, lo) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let lead_hi = match (spec.range.lead_hi, hi) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    KeyRange {
        lead_lo,
        lead_hi,
        ..spec.range.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_ranges_stay_inside_their_chunk() {
        let spec = DigestSpec {
            range: KeyRange {
                lead_lo: Some(1000),
                lead_hi: Some(2000),
                ..Default::default()
            },
            bucket_width: Some(256),
        };
        let r = bucket_range(&spec, 3);
        assert_eq!((r.lead_lo, r.lead_hi), (Some(1000), Some(1024)));
        let r = bucket_range(&spec, 7);
        assert_eq!((r.lead_lo, r.lead_hi), (Some(1792), Some(2000)));
        let open = DigestSpec {
            range: KeyRange::default(),
            bucket_width: Some(10),
        };
        let r = bucket_range(&open, -1);
        assert_eq!((r.lead_lo, r.lead_hi), (Some(-10), Some(0)));
        let huge = DigestSpec {
            range: KeyRange::default(),
            bucket_width: Some(i64::MAX / 2),
        };
        assert_eq!(bucket_range(&huge, 2).lead_hi, None);
    }
}
