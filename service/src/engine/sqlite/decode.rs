//! SQLite's stored values → the value model, by the column's declared type (SQLite's type
//! affinity).
//!
//! Must not: guess. A stored value that does not fit its declared type is kept as stored,
//! so that it compares unequal.

use rusqlite::types::ValueRef;
use rusqlite::Connection;

use super::Failure;
use crate::table::{Row, TableQuery};
use crate::value::{
    parse_date, parse_time, parse_timestamp, parse_uuid, Decimal, LogicalType, Value,
};

/// Streams decoded rows of a SELECT to `f` until it returns false.
pub(super) fn each_row(
    conn: &Connection,
    q: &TableQuery,
    columns: &[usize],
    sql: &str,
    params: &[rusqlite::types::Value],
    mut f: impl FnMut(Row) -> bool,
) -> std::result::Result<u64, Failure> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
    let mut n = 0;
    while let Some(r) = rows.next()? {
        let mut row = Vec::with_capacity(columns.len());
        for (pos, &i) in columns.iter().enumerate() {
            let c = &q.columns[i];
            row.push(decode(r.get_ref(pos)?, c.logical).coerce(c.compare_as, c.compare_fraction));
        }
        n += 1;
        if !f(row) {
            break;
        }
    }
    Ok(n)
}

/// The logical type of a declared type, following SQLite's affinity rules, with the
/// common temporal, boolean, uuid and json spellings recognized first.
pub(super) fn logical_type(decl: &str) -> Option<LogicalType> {
    let u = decl.to_ascii_uppercase();
    let base = u.split('(').next().unwrap_or("").trim();
    Some(if base.is_empty() {
        return None; // no affinity: values of any class, nothing to compare them as
    } else if base.contains("BOOL") {
        LogicalType::Bool
    } else if base.contains("TIMESTAMPTZ")
        || (base.contains("TIMESTAMP") || base.contains("DATETIME")) && u.contains("TIME ZONE")
    {
        LogicalType::TimestampTz
    } else if base.starts_with("DATETIME") || base.starts_with("TIMESTAMP") {
        LogicalType::Timestamp
    } else if base == "DATE" {
        LogicalType::Date
    } else if base == "TIME" {
        LogicalType::Time
    } else if base.contains("UUID") || base.contains("GUID") {
        LogicalType::Uuid
    } else if base.contains("JSON") {
        LogicalType::Json
    } else if base.contains("INT") {
        LogicalType::Int
    } else if base.contains("CHAR") || base.contains("CLOB") || base.contains("TEXT") {
        LogicalType::Text
    } else if base.contains("BLOB") {
        LogicalType::Bytes
    } else if base.contains("REAL") || base.contains("FLOA") || base.contains("DOUB") {
        LogicalType::Float
    } else if base.contains("NUMERIC")
        || base.contains("DECIMAL")
        || base.contains("NUMBER")
        || base.contains("MONEY")
    {
        LogicalType::Decimal
    } else {
        return None;
    })
}

/// Decodes a stored value as its column's logical type, or keeps it as stored.
pub(super) fn decode(v: ValueRef<'_>, t: LogicalType) -> Value {
    let text = |b: &[u8]| match std::str::from_utf8(b) {
        Ok(s) => Value::Text(s.to_string()),
        Err(_) => Value::Bytes(b.to_vec()),
    };
    match (v, t) {
        (ValueRef::Null, _) => Value::Null,
        (ValueRef::Integer(i), LogicalType::Bool) if i == 0 || i == 1 => Value::Bool(i == 1),
        (ValueRef::Integer(i), LogicalType::Decimal) => {
            Value::Decimal(Decimal::from_i128(i as i128))
        }
        (ValueRef::Integer(i), LogicalType::Float) => Value::float(i as f64),
        (ValueRef::Integer(i), _) => Value::Int(i as i128),
        // A REAL in a DECIMAL column has already lost anything past ~15 digits; its
        // shortest round-trip form is the value it was written as.
        (ValueRef::Real(f), LogicalType::Decimal) => Decimal::parse(&format!("{f:?}"))
            .map(Value::Decimal)
            .unwrap_or(Value::float(f)),
        (ValueRef::Real(f), _) => Value::float(f),
        (ValueRef::Blob(b), LogicalType::Uuid) if b.len() == 16 => {
            Value::Uuid(b.try_into().unwrap())
        }
        (ValueRef::Blob(b), _) => Value::Bytes(b.to_vec()),
        (ValueRef::Text(b), t) => {
            let Ok(s) = std::str::from_utf8(b) else {
                return Value::Bytes(b.to_vec());
            };
            let parsed = match t {
                LogicalType::Decimal => Decimal::parse(s).map(Value::Decimal),
                LogicalType::Date => parse_date(s).map(Value::Date),
                LogicalType::Time => parse_time(s).map(Value::Time),
                LogicalType::Timestamp => parse_timestamp(s)
                    .filter(|(_, tz)| !tz)
                    .map(|(t, _)| Value::Timestamp(t)),
                // SQLite's own date functions write UTC without an offset.
                LogicalType::TimestampTz => parse_timestamp(s).map(|(t, _)| Value::instant(t)),
                LogicalType::Uuid => parse_uuid(s).map(Value::Uuid),
                LogicalType::Json => Some(Value::Json(s.to_string())),
                _ => None,
            };
            parsed.unwrap_or_else(|| text(b))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_map_by_affinity() {
        assert_eq!(logical_type("INTEGER"), Some(LogicalType::Int));
        assert_eq!(logical_type("DECIMAL(12,2)"), Some(LogicalType::Decimal));
        assert_eq!(logical_type("varchar(20)"), Some(LogicalType::Text));
        assert_eq!(logical_type("TIMESTAMP"), Some(LogicalType::Timestamp));
        assert_eq!(
            logical_type("timestamp with time zone"),
            Some(LogicalType::TimestampTz)
        );
        assert_eq!(logical_type("DOUBLE PRECISION"), Some(LogicalType::Float));
        assert_eq!(logical_type(""), None);
    }

    #[test]
    fn values_decode_as_declared_or_as_stored() {
        assert_eq!(
            decode(ValueRef::Real(10.5), LogicalType::Decimal),
            Value::Decimal(Decimal::parse("10.50").unwrap())
        );
        assert_eq!(
            decode(ValueRef::Text(b"10.50"), LogicalType::Decimal),
            Value::Decimal(Decimal::parse("10.5").unwrap())
        );
        assert_eq!(
            decode(ValueRef::Text(b"abc"), LogicalType::Decimal),
            Value::Text("abc".into())
        );
        assert_eq!(
            decode(ValueRef::Text(b""), LogicalType::Text),
            Value::Text(String::new())
        );
        assert_eq!(decode(ValueRef::Null, LogicalType::Text), Value::Null);
        assert_eq!(
            decode(ValueRef::Integer(1), LogicalType::Bool),
            Value::Bool(true)
        );
        assert_eq!(
            decode(ValueRef::Integer(2), LogicalType::Bool),
            Value::Int(2)
        );
        assert!(matches!(
            decode(
                ValueRef::Text(b"2025-01-01 10:00:00"),
                LogicalType::Timestamp
            ),
            Value::Timestamp(_)
        ));
    }
}
