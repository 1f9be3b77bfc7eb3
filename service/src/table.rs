//! The names and shapes of a table that every layer speaks of; knows no engine and no
//! database.
//!
//! A table as the config names it ([`TableRef`]), its columns as an engine describes them
//! ([`Column`], [`TableSchema`]), one side's view of a comparison ([`TableQuery`],
//! [`QueryColumn`]), a set of keys ([`KeyRange`]) and a decoded row ([`Row`]). `compare`,
//! `script` and the engines all speak of tables in these words.
//!
//! Must not: know how any engine reads, quotes or decodes; nothing here connects, builds
//! SQL or depends on `engine`.

use crate::value::{Fraction, Key, LogicalType, Value};

/// Engines whose pushdown digests agree with each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Postgres,
    Sqlite,
    Mysql,
    Mssql,
}

/// A table name as the config spells it: `schema.table` or `table`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableRef {
    pub schema: Option<String>,
    pub name: String,
}

impl TableRef {
    pub fn parse(s: &str) -> TableRef {
        match s.split_once('.') {
            Some((schema, name)) => TableRef {
                schema: Some(schema.to_string()),
                name: name.to_string(),
            },
            None => TableRef {
                schema: None,
                name: s.to_string(),
            },
        }
    }
}

impl std::fmt::Display for TableRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// One column as the engine describes it.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    /// The type as the database spells it, e.g. `numeric(12,2)`.
    pub db_type: String,
    /// `None` when driftwatch cannot compare this type exactly.
    pub logical: Option<LogicalType>,
    /// The collation of a text column, when the engine names one (PostgreSQL: one that is
    /// not binary).
    pub collation: Option<String>,
    /// An identity column (inserting an explicit value needs the engine's override).
    pub identity: bool,
    /// Digits after the second that a time, timestamp or timestamptz column holds
    /// (PostgreSQL timestamp(3) → 3, MySQL datetime → 0, SQL Server datetime2(7) → 7,
    /// datetime → 3); `None` for other types, or where the engine does not say (SQLite's
    /// text timestamps).
    pub fraction_digits: Option<u8>,
    /// Whether the column may hold NULL (true where the engine does not say).
    pub nullable: bool,
}

#[derive(Debug, Clone)]
pub struct TableSchema {
    pub columns: Vec<Column>,
    /// The primary key's columns in key order; empty when the table has none.
    pub primary_key: Vec<String>,
    /// Why this database cannot compute the pushdown digest, when it cannot (a server
    /// too old, or one that only speaks the dialect): `auto` then streams.
    pub pushdown_unavailable: Option<String>,
}

/// One side's view of a comparison: the table and the columns to read, in compare order.
#[derive(Debug, Clone)]
pub struct TableQuery {
    pub table: TableRef,
    pub columns: Vec<QueryColumn>,
    /// Indexes into `columns` of the key columns, in key order.
    pub key: Vec<usize>,
    pub filter: Option<String>,
    /// Order and bound text keys bytewise, so that two engines agree on every range.
    pub binary_collation: bool,
}

#[derive(Debug, Clone)]
pub struct QueryColumn {
    pub name: String,
    pub db_type: String,
    /// This side's type, which decides how values are decoded.
    pub logical: LogicalType,
    /// The type both sides are compared as (differs only for exact widenings).
    pub compare_as: LogicalType,
    pub identity: bool,
    /// This side's fractional-second digits (see [`Column::fraction_digits`]).
    pub fraction_digits: Option<u8>,
    /// The coarser precision both sides' temporal values are brought to before they are
    /// hashed or compared, where the two columns' precisions differ and the config's
    /// `temporal_precision` allows it. Engines apply it, with `compare_as`, through
    /// [`Value::coerce`]; a pushdown digest cannot, so such a table is streamed.
    pub compare_fraction: Option<Fraction>,
    /// Whether this side's column may hold NULL.
    pub nullable: bool,
    /// This side's collation of a text column (see [`Column::collation`]).
    pub collation: Option<String>,
    /// Both sides declare the column with the same type, so that a value's text as the
    /// server spells it is the same on both: a digest needs no canonical form for
    /// differences of scale or precision (1.10 against 1.1).
    pub declared_alike: bool,
}

impl QueryColumn {
    /// A column read as its own type, with nothing known of another side: nullable, no
    /// collation, not declared alike (what a digest assumes least of), no identity, no
    /// declared fractional digits.
    pub fn new(name: &str, db_type: &str, logical: LogicalType) -> QueryColumn {
        QueryColumn {
            name: name.to_string(),
            db_type: db_type.to_string(),
            logical,
            compare_as: logical,
            identity: false,
            fraction_digits: None,
            compare_fraction: None,
            nullable: true,
            collation: None,
            declared_alike: false,
        }
    }
}

impl TableQuery {
    pub fn key_of(&self, row: &[Value]) -> Key {
        self.key.iter().map(|&i| row[i].clone()).collect()
    }
}

/// A set of keys: `lead_lo <= k1 < lead_hi` on the first key column (integer keys), and
/// `after < (k1..kn) <= upto` on the whole key. Absent bounds are unbounded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyRange {
    pub lead_lo: Option<i64>,
    pub lead_hi: Option<i64>,
    pub after: Option<Key>,
    pub upto: Option<Key>,
}

impl KeyRange {
    /// Whether `key` lies in the range, by the value model's order: exact wherever that
    /// is the database's order too (integers, dates, uuids, binary-collated text), which
    /// the caller must know.
    pub fn contains(&self, key: &[Value]) -> bool {
        let lead = key.first().and_then(Value::as_i64);
        let lead_ok = match (self.lead_lo, self.lead_hi, lead) {
            (None, None, _) => true,
            (lo, hi, Some(k)) => lo.is_none_or(|lo| k >= lo) && hi.is_none_or(|hi| k < hi),
            (_, _, None) => false,
        };
        lead_ok
            && self.after.as_deref().is_none_or(|a| key > a)
            && self.upto.as_deref().is_none_or(|u| key <= u)
    }
}

impl std::fmt::Display for KeyRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = |k: &Key| {
            k.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        if let Some(lo) = self.lead_lo {
            parts.push(format!("k1 >= {lo}"));
        }
        if let Some(hi) = self.lead_hi {
            parts.push(format!("k1 < {hi}"));
        }
        if let Some(a) = &self.after {
            parts.push(format!("key > ({})", key(a)));
        }
        if let Some(u) = &self.upto {
            parts.push(format!("key <= ({})", key(u)));
        }
        if parts.is_empty() {
            f.write_str("all keys")
        } else {
            f.write_str(&parts.join(" and "))
        }
    }
}

/// A decoded row: the query's columns, in its order.
pub type Row = Vec<Value>;
