//! Where in the key space a pass found mismatched chunks and buckets, for the status
//! page's key-space strip: positions in the publisher's key order (rows before the range,
//! rows in it), turned into fractions of the publisher's rows at the end of the pass.
//!
//! Bounded whatever the drift: at most [`MAX_SPANS`] spans are kept; past that the two
//! closest neighbours are merged, so the picture only ever widens a mark, never drops one.

use crate::table::KeyRange;

/// Spans kept per pair and pass.
pub const MAX_SPANS: usize = 200;

/// One mismatched stretch of the key space.
#[derive(Debug, Clone, PartialEq)]
pub struct KeySpan {
    /// Where it starts and ends, as fractions (0..=1) of the publisher's rows in key
    /// order. Rows a subscriber holds outside the publisher's keys sit at 0 or 1.
    pub from: f64,
    pub to: f64,
    /// Rows in the stretch on each side.
    pub publisher_rows: u64,
    pub subscriber_rows: u64,
    /// The stretch's key bounds, as a range is written in logs (key values: row data).
    pub range: String,
}

#[derive(Debug, Clone)]
struct Span {
    start: u64,
    end: u64,
    publisher_rows: u64,
    subscriber_rows: u64,
    range: KeyRange,
}

/// The mismatched stretches of one pass, in key order, as they are found.
#[derive(Debug, Default)]
pub struct KeySpans {
    spans: Vec<Span>,
}

impl KeySpans {
    /// A mismatched range: `before` publisher rows precede it in key order, and it holds
    /// `publisher_rows` and `subscriber_rows`. Ranges come in key order.
    pub fn push(
        &mut self,
        before: u64,
        publisher_rows: u64,
        subscriber_rows: u64,
        range: KeyRange,
    ) {
        let span = Span {
            start: before,
            end: before + publisher_rows,
            publisher_rows,
            subscriber_rows,
            range,
        };
        match self.spans.last_mut() {
            Some(last)
                if last.end == span.start && publisher_rows > 0 && last.publisher_rows > 0 =>
            {
                merge(last, span)
            }
            _ => self.spans.push(span),
        }
        if self.spans.len() > MAX_SPANS {
            let closest = (1..self.spans.len())
                .min_by_key(|&i| self.spans[i].start - self.spans[i - 1].end)
                .expect("more than one span");
            let next = self.spans.remove(closest);
            merge(&mut self.spans[closest - 1], next);
        }
    }

    /// The spans as fractions of the publisher's `total` rows.
    pub fn finish(self, total: u64) -> Vec<KeySpan> {
        let fraction = |n: u64| {
            if total == 0 {
                0.0
            } else {
                (n as f64 / total as f64).min(1.0)
            }
        };
        self.spans
            .into_iter()
            .map(|s| KeySpan {
                from: fraction(s.start),
                to: fraction(s.end),
                publisher_rows: s.publisher_rows,
                subscriber_rows: s.subscriber_rows,
                range: s.range.to_string(),
            })
            .collect()
    }
}

/// Joins `next` (later in key order) onto `span`.
fn merge(span: &mut Span, next: Span) {
    span.end = next.end;
    span.publisher_rows += next.publisher_rows;
    span.subscriber_rows += next.subscriber_rows;
    span.range.lead_hi = next.range.lead_hi;
    span.range.upto = next.range.upto;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(lo: i64, hi: i64) -> KeyRange {
        KeyRange {
            lead_lo: Some(lo),
            lead_hi: Some(hi),
            ..Default::default()
        }
    }

    #[test]
    fn adjacent_ranges_join_and_fractions_follow_the_publisher_rows() {
        let mut s = KeySpans::default();
        s.push(400, 100, 0, range(40, 50));
        s.push(500, 100, 20, range(50, 60));
        s.push(900, 0, 3, range(200, 210));
        let spans = s.finish(1000);
        assert_eq!(spans.len(), 2);
        assert_eq!((spans[0].from, spans[0].to), (0.4, 0.6));
        assert_eq!(
            (spans[0].publisher_rows, spans[0].subscriber_rows),
            (200, 20)
        );
        assert_eq!(spans[0].range, "k1 >= 40 and k1 < 60");
        // Rows only the subscriber holds: a mark of no width where they lie.
        assert_eq!((spans[1].from, spans[1].to), (0.9, 0.9));
    }

    #[test]
    fn past_the_cap_the_closest_neighbours_merge_and_nothing_is_dropped() {
        let mut s = KeySpans::default();
        // Every tenth row mismatched, except one stretch packed closer together.
        for i in 0..MAX_SPANS as u64 {
            s.push(i * 10, 1, 1, range(i as i64 * 10, i as i64 * 10 + 1));
        }
        s.push(MAX_SPANS as u64 * 10 - 8, 1, 1, range(0, 1));
        let spans = s.finish(MAX_SPANS as u64 * 10);
        assert_eq!(spans.len(), MAX_SPANS);
        let rows: u64 = spans.iter().map(|s| s.publisher_rows).sum();
        assert_eq!(rows, MAX_SPANS as u64 + 1);
        let last = spans.last().unwrap();
        assert_eq!(last.publisher_rows, 2, "the closest pair is the one merged");
    }
}
