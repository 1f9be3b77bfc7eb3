//! The SQL that every server engine builds alike: a key range as a WHERE clause, the key
//! order, the column list. What differs between dialects (quoting, bytewise collation,
//! literals or bound parameters, row-value comparisons) is behind [`SqlDialect`].
//!
//! It must not build anything but conditions on the key and the table's configured
//! filter: values reach the SQL only through the dialect's `value`, which quotes or binds.

use crate::table::{KeyRange, QueryColumn, TableQuery};
use crate::value::{Key, LogicalType, Value};

/// `name` between `open` and `close`, every `close` in it doubled: the one quoting rule
/// of every dialect, so that an identifier reads as itself whatever it holds.
pub fn quoted(name: &str, open: char, close: char) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push(open);
    for c in name.chars() {
        if c == close {
            out.push(close);
        }
        out.push(c);
    }
    out.push(close);
    out
}

/// What one SQL dialect spells its own way.
pub trait SqlDialect {
    fn quote_ident(&self, name: &str) -> String;

    /// A column as a SELECT reads it: by name, unless the dialect must convert it to read
    /// it exactly.
    fn select_col(&self, c: &QueryColumn) -> String {
        self.quote_ident(&c.name)
    }

    /// A column as ranges and ORDER BY compare it: `bytewise` asks text to compare by
    /// bytes (code points), whatever the column's collation, and a uuid in RFC 4122 byte
    /// order.
    fn key_col(&self, c: &QueryColumn, bytewise: bool) -> String;

    /// A value compared with column `c` (a literal, or a placeholder whose parameter the
    /// dialect keeps), as `key_col` compares it.
    fn value(&mut self, c: &QueryColumn, v: &Value, bytewise: bool) -> String;

    /// A bound of the integer first key column, as a 64-bit integer whatever the column's
    /// width: a chunk's bounds may lie one past the column's range (its tail).
    fn int_bound(&mut self, b: i64) -> String;

    /// Whether `(a, b) > (x, y)` compares rows lexicographically; without it, ranges are
    /// spelled as `a > x OR (a = x AND b > y)`.
    fn row_values(&self) -> bool;
}

/// Whether key column `c` must compare bytewise: text (collations differ) and uuids
/// (SQL Server orders uniqueidentifier by its last group first), when the pair asks.
fn bytewise(q: &TableQuery, c: &QueryColumn) -> bool {
    q.binary_collation && matches!(c.logical, LogicalType::Text | LogicalType::Uuid)
}

/// A table query's SQL pieces in one dialect.
pub struct Sql<'a, D> {
    pub q: &'a TableQuery,
    pub dialect: D,
}

impl<'a, D: SqlDialect> Sql<'a, D> {
    pub fn new(q: &'a TableQuery, dialect: D) -> Self {
        Sql { q, dialect }
    }

    pub fn col(&self, i: usize) -> String {
        self.dialect.quote_ident(&self.q.columns[i].name)
    }

    fn bytewise(&self, c: &QueryColumn) -> bool {
        bytewise(self.q, c)
    }

    fn key_col(&self, i: usize) -> String {
        let c = &self.q.columns[i];
        self.dialect.key_col(c, self.bytewise(c))
    }

    /// ` WHERE …` for the filter and the range, or nothing when neither restricts.
    pub fn where_clause(&mut self, r: &KeyRange) -> String {
        let mut conds = Vec::new();
        if let Some(f) = &self.q.filter {
            conds.push(format!("({f})"));
        }
        let k1 = self.q.key[0];
        for (bound, op) in [(r.lead_lo, ">="), (r.lead_hi, "<")] {
            if let Some(b) = bound {
                let v = self.dialect.int_bound(b);
                conds.push(format!("{} {op} {v}", self.col(k1)));
            }
        }
        if let Some(a) = &r.after {
            conds.push(self.compare(a, ">", ">"));
        }
        if let Some(u) = &r.upto {
            conds.push(self.compare(u, "<", "<="));
        }
        if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        }
    }

    /// The whole key compared with `key`: `strict` on every column but the last, `last`
    /// on the last (`>`,`>` for "after"; `<`,`<=` for "up to").
    fn compare(&mut self, key: &Key, strict: &str, last: &str) -> String {
        let q = self.q;
        let cols: Vec<String> = q.key.iter().map(|&i| self.key_col(i)).collect();
        let value = |n: usize, d: &mut D| {
            let c = &q.columns[q.key[n]];
            d.value(c, &key[n], bytewise(q, c))
        };
        if cols.len() == 1 {
            let v = value(0, &mut self.dialect);
            return format!("{} {last} {v}", cols[0]);
        }
        if self.dialect.row_values() {
            let vals: Vec<String> = (0..cols.len())
                .map(|n| value(n, &mut self.dialect))
                .collect();
            return format!("({}) {last} ({})", cols.join(", "), vals.join(", "));
        }
        // (k1 op x1) OR (k1 = x1 AND k2 op x2) OR …, the last term with `last`.
        let mut terms = Vec::new();
        for n in 0..cols.len() {
            let mut parts = Vec::new();
            for (m, col) in cols.iter().enumerate().take(n) {
                parts.push(format!("{col} = {}", value(m, &mut self.dialect)));
            }
            let op = if n + 1 == cols.len() { last } else { strict };
            parts.push(format!("{} {op} {}", cols[n], value(n, &mut self.dialect)));
            terms.push(format!("({})", parts.join(" AND ")));
        }
        format!("({})", terms.join(" OR "))
    }

    /// `SELECT` the columns at `columns` of the rows of `range` in `table`: in key order
    /// when `ordered`; else in whatever order the database finds cheapest (a digest does
    /// not depend on row order).
    pub fn select(
        &mut self,
        table: &str,
        columns: &[usize],
        range: &KeyRange,
        ordered: bool,
    ) -> String {
        let cols: Vec<String> = columns
            .iter()
            .map(|&i| self.dialect.select_col(&self.q.columns[i]))
            .collect();
        let mut text = format!(
            "SELECT {} FROM {table}{}",
            cols.join(", "),
            self.where_clause(range)
        );
        if ordered {
            text.push_str(&self.order_by());
        }
        text
    }

    /// Every column of the query, in its order.
    pub fn all(&self) -> Vec<usize> {
        (0..self.q.columns.len()).collect()
    }

    /// ` ORDER BY` the key, as ranges compare it.
    pub fn order_by(&self) -> String {
        let cols: Vec<String> = self.q.key.iter().map(|&i| self.key_col(i)).collect();
        format!(" ORDER BY {}", cols.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dialect without row values that shows what it was asked.
    struct Plain(Vec<String>);

    impl SqlDialect for Plain {
        fn quote_ident(&self, name: &str) -> String {
            format!("[{name}]")
        }
        fn key_col(&self, c: &QueryColumn, bytewise: bool) -> String {
            if bytewise {
                format!("[{}] BIN", c.name)
            } else {
                format!("[{}]", c.name)
            }
        }
        fn value(&mut self, _c: &QueryColumn, v: &Value, _bytewise: bool) -> String {
            self.0.push(v.to_string());
            format!("@P{}", self.0.len())
        }
        fn int_bound(&mut self, b: i64) -> String {
            self.0.push(b.to_string());
            format!("@P{}", self.0.len())
        }
        fn row_values(&self) -> bool {
            false
        }
    }

    fn query(keys: &[(&str, LogicalType)]) -> TableQuery {
        TableQuery {
            table: crate::table::TableRef::parse("t"),
            columns: keys
                .iter()
                .map(|(n, t)| QueryColumn::new(n, "-", *t))
                .collect(),
            key: (0..keys.len()).collect(),
            filter: Some("x = 1".into()),
            binary_collation: true,
        }
    }

    #[test]
    fn composite_ranges_expand_without_row_values() {
        let q = query(&[("a", LogicalType::Int), ("b", LogicalType::Text)]);
        let mut sql = Sql::new(&q, Plain(vec![]));
        let r = KeyRange {
            lead_lo: Some(10),
            lead_hi: None,
            after: Some(vec![Value::Int(10), Value::Text("m".into())]),
            upto: Some(vec![Value::Int(20), Value::Text("z".into())]),
        };
        assert_eq!(
            sql.where_clause(&r),
            " WHERE (x = 1) AND [a] >= @P1 \
             AND (([a] > @P2) OR ([a] = @P3 AND [b] BIN > @P4)) \
             AND (([a] < @P5) OR ([a] = @P6 AND [b] BIN <= @P7))"
        );
        assert_eq!(
            sql.dialect.0,
            ["10", "10", "10", "\"m\"", "20", "20", "\"z\""]
        );
        assert_eq!(sql.order_by(), " ORDER BY [a], [b] BIN");
    }

    #[test]
    fn single_keys_compare_directly() {
        let mut q = query(&[("id", LogicalType::Int)]);
        q.filter = None;
        let mut sql = Sql::new(&q, Plain(vec![]));
        assert_eq!(sql.where_clause(&KeyRange::default()), "");
        let r = KeyRange {
            after: Some(vec![Value::Int(5)]),
            ..KeyRange::default()
        };
        assert_eq!(sql.where_clause(&r), " WHERE [id] > @P1");
    }
}
