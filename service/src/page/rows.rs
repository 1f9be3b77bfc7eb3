//! The differing rows of one table and subscriber, with both sides' values, a page at a
//! time, for the table page.
//!
//! Rows are read now, from both databases, through the same localization a recheck
//! uses, and only for the leaf ranges the last pass found: the ranges before the page are
//! skipped by their counts, and reading stops as soon as the page is full. So a page
//! costs the few ranges it lies in, never the table; what it shows is how those rows
//! differ now (a row fixed since the pass is no longer listed). Rows counted past the
//! leaf cap have no range kept and cannot be listed. Nothing here writes anywhere.

use serde::Serialize;
use tokio::sync::mpsc;

use crate::compare::localize::{Findings, Kind, Pair, RowChange, Tally};
use crate::compare::schema::Comparison;
use crate::config::LookupError;
use crate::database::Database;
use crate::engine::EngineError;
use crate::runtime::Runtime;
use crate::table::KeyRange;
use crate::value::Value;

/// Rows per page at most.
pub const MAX_PAGE_ROWS: usize = 200;
/// Characters of a value shown; longer values are cut, with their length shown.
pub const CELL_CHARS: usize = 120;

#[derive(Debug, thiserror::Error)]
pub enum RowsError {
    #[error(transparent)]
    Lookup(#[from] LookupError),
    #[error("no pass of {0}/{1} → {2} has completed yet: there are no rows to list")]
    NoPass(String, String, String),
    #[error("reading the rows: {0}")]
    Engine(#[from] EngineError),
}

/// What page to read.
#[derive(Debug, Clone)]
pub struct RowsQuery {
    pub subscriber: Option<String>,
    pub kind: Option<Kind>,
    pub offset: u64,
    pub limit: usize,
}

#[derive(Debug, Serialize)]
pub struct RowsPage {
    pub group: String,
    pub table: String,
    pub subscriber: String,
    pub columns: Vec<String>,
    pub key_columns: Vec<String>,
    pub kind: Option<Kind>,
    /// Rows of the kind asked for in the ranges the last pass found (the pages' total).
    pub total: u64,
    /// Rows counted past the leaf cap: in the counts, not listable.
    pub unlisted: u64,
    pub offset: u64,
    pub limit: usize,
    pub rows: Vec<RowView>,
}

#[derive(Debug, Serialize)]
pub struct RowView {
    pub kind: Kind,
    pub key: Vec<String>,
    pub changed: Vec<String>,
    /// Every compared column, in the comparison's order.
    pub values: Vec<ColumnValues>,
}

#[derive(Debug, Serialize)]
pub struct ColumnValues {
    pub column: String,
    pub changed: bool,
    pub publisher: Option<Cell>,
    pub subscriber: Option<Cell>,
}

/// A value as shown: its text (cut at [`CELL_CHARS`]) and its full length.
#[derive(Debug, Serialize, PartialEq)]
pub struct Cell {
    pub text: String,
    pub null: bool,
    pub length: usize,
    /// "characters" or "bytes".
    pub unit: &'static str,
    pub cut: bool,
}

impl Cell {
    pub fn of(v: &Value) -> Cell {
        let (length, unit) = match v {
            Value::Text(s) | Value::Json(s) => (s.chars().count(), "characters"),
            Value::Bytes(b) => (b.len(), "bytes"),
            other => (other.to_string().chars().count(), "characters"),
        };
        let full = v.to_string();
        let cut = full.chars().count() > CELL_CHARS;
        let text = if cut {
            full.chars().take(CELL_CHARS).collect::<String>() + "…"
        } else {
            full
        };
        Cell {
            text,
            null: v.is_null(),
            length,
            unit,
            cut,
        }
    }
}

/// Reads one page of the differing rows of `group`/`table` on a subscriber.
pub async fn read(
    rt: &Runtime,
    group: &str,
    table: &str,
    q: &RowsQuery,
) -> Result<RowsPage, RowsError> {
    let (g, _) = rt.config.find(group, table)?;
    let subscriber = g.subscriber(q.subscriber.as_deref())?.to_string();
    let id = crate::status::PairId::new(group, table, &subscriber);
    let (comparison, leaves, untracked) = rt
        .status
        .with(&id, |e| {
            let leaves: Vec<(KeyRange, Tally)> = e
                .diff
                .leaves
                .iter()
                .map(|l| (l.range.clone(), l.counts))
                .collect();
            (e.comparison.clone(), leaves, e.diff.untracked)
        })
        .expect("every configured pair has a status");
    let cmp = comparison.ok_or_else(|| {
        RowsError::NoPass(id.group.clone(), id.table.clone(), id.subscriber.clone())
    })?;
    let of_kind = |counts: &Tally| match q.kind {
        Some(k) => counts[k],
        None => counts.total(),
    };
    let total: u64 = leaves.iter().map(|(_, c)| of_kind(c)).sum();
    let (ranges, skip) = ranges_of_page(&leaves, of_kind, q.offset, q.limit as u64);

    let changes = read_page(
        &rt.databases[&g.publisher],
        &rt.databases[&subscriber],
        &cmp,
        &ranges,
        skip,
        q,
    )
    .await?;
    let cmp = &cmp;
    let columns = cmp.column_names();
    let key_columns = cmp
        .publisher
        .key
        .iter()
        .map(|&i| columns[i].clone())
        .collect();
    let rows = changes.iter().map(|c| view(c, &columns)).collect();
    Ok(RowsPage {
        group: group.into(),
        table: table.into(),
        subscriber,
        columns,
        key_columns,
        kind: q.kind,
        total,
        unlisted: match q.kind {
            Some(k) => untracked[k],
            None => untracked.total(),
        },
        offset: q.offset,
        limit: q.limit,
        rows,
    })
}

/// The changes of one page, read range by range from both databases: the reading stops
/// once the page is full, so that a page costs the few ranges it lies in.
async fn read_page(
    publisher_db: &Database,
    subscriber_db: &Database,
    cmp: &Comparison,
    ranges: &[KeyRange],
    skip: u64,
    q: &RowsQuery,
) -> Result<Vec<RowChange>, EngineError> {
    let (tx, mut rx) = mpsc::channel::<RowChange>(64);
    let produce = async move {
        let pair = Pair {
            publisher: publisher_db,
            subscriber: subscriber_db,
            cmp,
            changes: Some(&tx),
        };
        for range in ranges {
            pair.recheck(range, &mut Findings::new(0)).await?;
        }
        Ok::<_, EngineError>(())
    };
    let kind = q.kind;
    let limit = q.limit;
    let consume = async {
        let mut rows = Vec::new();
        let mut skip = skip;
        while let Some(c) = rx.recv().await {
            if kind.is_some_and(|k| k != c.kind) {
                continue;
            }
            if skip > 0 {
                skip -= 1;
                continue;
            }
            rows.push(c);
            if rows.len() == limit {
                break;
            }
        }
        rows
    };
    // The reading stops once the page is full: the rest of the ranges is never read.
    tokio::pin!(produce, consume);
    let mut produced = false;
    loop {
        tokio::select! {
            rows = &mut consume => break Ok(rows),
            r = &mut produce, if !produced => {
                r?;
                produced = true;
            }
        }
    }
}

/// The leaf ranges a page of `limit` rows from `offset` lies in, and how many of the
/// first range's rows come before the page.
fn ranges_of_page(
    leaves: &[(KeyRange, Tally)],
    of_kind: impl Fn(&Tally) -> u64,
    offset: u64,
    limit: u64,
) -> (Vec<KeyRange>, u64) {
    let mut before = 0u64;
    let mut ranges = Vec::new();
    let mut skip = 0;
    for (range, counts) in leaves {
        let n = of_kind(counts);
        if n == 0 {
            continue;
        }
        if before + n <= offset {
            before += n;
            continue;
        }
        if ranges.is_empty() {
            skip = offset - before;
        }
        ranges.push(range.clone());
        before += n;
        if before >= offset + limit {
            break;
        }
    }
    (ranges, skip)
}

fn view(c: &RowChange, columns: &[String]) -> RowView {
    let cell = |row: &Option<Vec<Value>>, i: usize| row.as_ref().map(|r| Cell::of(&r[i]));
    RowView {
        kind: c.kind,
        key: c.key.iter().map(|v| v.to_string()).collect(),
        changed: c.changed.iter().map(|&i| columns[i].clone()).collect(),
        values: columns
            .iter()
            .enumerate()
            .map(|(i, name)| ColumnValues {
                column: name.clone(),
                changed: c.changed.contains(&i),
                publisher: cell(&c.publisher, i),
                subscriber: cell(&c.subscriber, i),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(lo: i64, [missing, extra, changed]: [u64; 3]) -> (KeyRange, Tally) {
        let counts = Tally {
            missing,
            extra,
            changed,
        };
        let range = KeyRange {
            lead_lo: Some(lo),
            lead_hi: Some(lo + 10),
            ..Default::default()
        };
        (range, counts)
    }

    #[test]
    fn a_page_reads_only_the_ranges_it_lies_in() {
        let leaves = [
            leaf(0, [5, 0, 0]),
            leaf(10, [0, 3, 0]),
            leaf(20, [5, 0, 1]),
            leaf(30, [4, 0, 0]),
        ];
        let all = |c: &Tally| c.total();
        let lo = |r: &[KeyRange]| r.iter().map(|r| r.lead_lo.unwrap()).collect::<Vec<_>>();
        let (r, skip) = ranges_of_page(&leaves, all, 0, 5);
        assert_eq!((lo(&r), skip), (vec![0], 0));
        let (r, skip) = ranges_of_page(&leaves, all, 6, 5);
        assert_eq!((lo(&r), skip), (vec![10, 20], 1));
        // Missing rows only: the leaf of extra rows is not read at all.
        let missing = |c: &Tally| c.missing;
        let (r, skip) = ranges_of_page(&leaves, missing, 5, 6);
        assert_eq!((lo(&r), skip), (vec![20, 30], 0));
        let (r, _) = ranges_of_page(&leaves, missing, 14, 5);
        assert!(r.is_empty(), "past the end");
    }

    #[test]
    fn long_values_are_cut_with_their_length() {
        let long = Value::Text("é".repeat(500));
        let c = Cell::of(&long);
        assert!(c.cut);
        assert_eq!((c.length, c.unit), (500, "characters"));
        assert_eq!(c.text.chars().count(), CELL_CHARS + 1);
        let b = Cell::of(&Value::Bytes(vec![0xab; 3]));
        assert_eq!(
            (b.text.as_str(), b.length, b.unit, b.cut),
            ("0xababab", 3, "bytes", false)
        );
        assert!(Cell::of(&Value::Null).null);
    }
}
