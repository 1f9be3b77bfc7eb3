//! SQLite's spelling of SQL: double-quoted identifiers, values as bound parameters
//! ([`bind_value`]) in the SELECT of a range the engine runs, and exact literals for
//! convergence scripts.
//!
//! Must not: build anything but a SELECT, or put a value into a statement's text other
//! than as a bound parameter (scripts: an exact literal).

use crate::dialect::{float_text, hex, ScriptDialect};
use crate::engine::sql::quoted;
use crate::table::{KeyRange, QueryColumn, TableQuery, TableRef};
use crate::value::{
    format_date, format_time, format_timestamp, format_uuid, Decimal, LogicalType, Value,
};

// ---- SQL -------------------------------------------------------------------------------

/// An identifier as SQLite quotes it, in the statements the engine sends and in scripts
/// alike.
pub(super) fn quote_ident(s: &str) -> String {
    quoted(s, '"', '"')
}

pub(super) fn table_sql(t: &TableRef) -> String {
    format!(
        "{}.{}",
        quote_ident(t.schema.as_deref().unwrap_or("main")),
        quote_ident(&t.name)
    )
}

/// A key bound as SQLite stores it: temporal values as ISO text, the form SQLite's own
/// date functions write.
pub fn bind_value(v: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as S;
    match v {
        Value::Null => S::Null,
        Value::Bool(b) => S::Integer(*b as i64),
        Value::Int(i) => match i64::try_from(*i) {
            Ok(i) => S::Integer(i),
            Err(_) => S::Text(i.to_string()),
        },
        Value::Float(f) => S::Real(*f),
        Value::Decimal(d) => S::Text(d.to_string()),
        Value::Text(s) | Value::Json(s) => S::Text(s.clone()),
        Value::Bytes(b) => S::Blob(b.clone()),
        Value::Date(d) => S::Text(format_date(*d)),
        Value::Time(t) => S::Text(format_time(*t)),
        Value::Timestamp(t) | Value::TimestampTz(t, _) => S::Text(format_timestamp(*t)),
        Value::Uuid(u) => S::Text(format_uuid(u)),
        Value::Interval { .. } => S::Text(v.to_string()),
    }
}

/// The SELECT of a range, with its bound parameters.
pub(super) fn select(
    q: &TableQuery,
    columns: &[usize],
    range: &KeyRange,
    tail: &str,
) -> (String, Vec<rusqlite::types::Value>) {
    let col = |i: usize| quote_ident(&q.columns[i].name);
    let key_col = |i: usize| {
        if q.binary_collation && q.columns[i].logical == LogicalType::Text {
            format!("{} COLLATE BINARY", col(i))
        } else {
            col(i)
        }
    };
    let mut conds = Vec::new();
    let mut params = Vec::new();
    if let Some(f) = &q.filter {
        conds.push(format!("({f})"));
    }
    let k1 = col(q.key[0]);
    if let Some(lo) = range.lead_lo {
        conds.push(format!("{k1} >= ?"));
        params.push(rusqlite::types::Value::Integer(lo));
    }
    if let Some(hi) = range.lead_hi {
        conds.push(format!("{k1} < ?"));
        params.push(rusqlite::types::Value::Integer(hi));
    }
    let keys: Vec<String> = q.key.iter().map(|&i| key_col(i)).collect();
    let tuple = |n: usize| {
        if n == 1 {
            (keys[0].clone(), "?".to_string())
        } else {
            (
                format!("({})", keys.join(", ")),
                format!("({})", vec!["?"; n].join(", ")),
            )
        }
    };
    for (bound, op) in [(&range.after, ">"), (&range.upto, "<=")] {
        if let Some(k) = bound {
            let (c, p) = tuple(k.len());
            conds.push(format!("{c} {op} {p}"));
            params.extend(k.iter().map(bind_value));
        }
    }
    let cols: Vec<String> = columns.iter().map(|&i| col(i)).collect();
    let where_sql = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    (
        format!(
            "SELECT {} FROM {}{where_sql} ORDER BY {}{tail}",
            cols.join(", "),
            table_sql(&q.table),
            keys.join(", ")
        ),
        params,
    )
}

// ---- scripts ---------------------------------------------------------------------------

/// SQLite's spelling of convergence scripts: literals as its type affinity keeps them,
/// guarded statements counted with `changes()`.
pub(crate) struct SqliteScript;

impl ScriptDialect for SqliteScript {
    fn quote_ident(&self, name: &str) -> String {
        quote_ident(name)
    }

    fn literal(&self, _column: &QueryColumn, v: &Value) -> Result<String, String> {
        Ok(match v {
            Value::Null => "NULL".into(),
            Value::Bool(b) => (*b as u8).to_string(),
            Value::Int(i) if i64::try_from(*i).is_ok() => i.to_string(),
            Value::Int(i) => return Err(format!("{i} does not fit SQLite's 64-bit integers")),
            Value::Decimal(d @ Decimal::Finite { .. }) => {
                // A DECIMAL column has NUMERIC affinity: SQLite keeps 15 significant digits
                // of anything that is not a 64-bit integer.
                let integral = d.to_i128().is_some_and(|i| i64::try_from(i).is_ok());
                let significant = match d {
                    Decimal::Finite { digits, .. } => digits.len(),
                    _ => 0,
                };
                if !integral && significant > 15 {
                    return Err(format!(
                        "{d} has {significant} significant digits; SQLite's NUMERIC affinity keeps 15"
                    ));
                }
                d.to_string()
            }
            Value::Decimal(d) => return Err(format!("SQLite has no decimal {d}")),
            Value::Float(f) if f.is_nan() => return Err("SQLite stores NaN as NULL".into()),
            Value::Float(f) if f.is_infinite() => if *f > 0.0 { "9e999" } else { "-9e999" }.into(),
            Value::Float(f) => float_text(*f),
            Value::Text(s) | Value::Json(s) if s.contains('\0') => {
                format!("CAST(X'{}' AS TEXT)", hex(s.as_bytes()))
            }
            Value::Text(s) | Value::Json(s) => format!("'{}'", s.replace('\'', "''")),
            Value::Bytes(b) => format!("X'{}'", hex(b)),
            Value::Date(d) if *d == i32::MAX || *d == i32::MIN => {
                return Err("SQLite has no infinite date".into())
            }
            Value::Date(d) => format!("'{}'", format_date(*d)),
            Value::Time(t) => format!("'{}'", format_time(*t)),
            Value::Timestamp(t) | Value::TimestampTz(t, _) if t.is_infinite() => {
                return Err("SQLite has no infinite timestamp".into())
            }
            Value::Timestamp(t) => format!("'{}'", format_timestamp(*t)),
            // SQLite's date functions read and write UTC: the instant, without its offset.
            Value::TimestampTz(t, _) => format!("'{}Z'", format_timestamp(*t)),
            Value::Uuid(u) => format!("'{}'", format_uuid(u)),
            Value::Interval { .. } => return Err("SQLite has no interval type".into()),
        })
    }

    fn begin(&self) -> &'static str {
        "BEGIN;\n"
    }

    fn prologue(&self, guards: bool) -> String {
        if guards {
            "CREATE TEMPORARY TABLE IF NOT EXISTS dw_skipped (n INTEGER);\n".into()
        } else {
            String::new()
        }
    }

    fn counted(&self, statement: &str) -> String {
        format!("{statement};\nINSERT INTO dw_skipped SELECT 1 WHERE changes() = 0;\n")
    }

    fn insert_absent(
        &self,
        table: &str,
        columns: &str,
        _overriding: &str,
        values: &str,
        absent: &str,
    ) -> String {
        format!(
            "INSERT INTO {table} ({columns}) SELECT {values} WHERE {absent};\nINSERT INTO dw_skipped SELECT 1 WHERE changes() = 0;\n"
        )
    }
}
