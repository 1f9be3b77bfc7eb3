//! T-SQL's spelling: bracketed identifiers, values as bound parameters cast to their
//! column's type ([`param`], [`Tsql`] over `engine::sql`), and exact literals for
//! convergence scripts.
//!
//! Must not: build a statement of its own (that is `statements.rs`), or put a value into
//! a statement's text other than as a bound parameter (scripts: an exact literal).

use tiberius::ColumnData;

use super::DAYS_0001_TO_1970;
use crate::engine::sql::Dialect;
use crate::table::{QueryColumn, TableRef};
use crate::value::{Decimal, LogicalType, Timestamp, Value};

pub fn quote_ident(s: &str) -> String {
    format!("[{}]", s.replace(']', "]]"))
}

pub fn table_sql(t: &TableRef) -> String {
    match &t.schema {
        Some(s) => format!("{}.{}", quote_ident(s), quote_ident(&t.name)),
        None => quote_ident(&t.name),
    }
}

/// T-SQL's spelling of the shared range SQL: parameters cast to the column's type, and a
/// binary collation over nvarchar for bytewise text.
#[derive(Default)]
pub(super) struct Tsql {
    pub(super) params: Vec<ColumnData<'static>>,
}

/// The collation that orders nvarchar by UTF-16 code unit, which is code point order for
/// every character of the Basic Multilingual Plane.
const BYTEWISE: &str = "Latin1_General_100_BIN2";

impl Dialect for Tsql {
    fn quote_ident(&self, name: &str) -> String {
        quote_ident(name)
    }

    fn key_col(&self, c: &QueryColumn, bytewise: bool) -> String {
        if bytewise && c.logical == LogicalType::Uuid {
            // Its text is in RFC 4122 byte order; the value orders by its last group first.
            format!(
                "CONVERT(char(36), {}) COLLATE {BYTEWISE}",
                quote_ident(&c.name)
            )
        } else if bytewise {
            // Through nvarchar, so that varchar in any code page orders by characters.
            format!(
                "CAST({} AS nvarchar(max)) COLLATE {BYTEWISE}",
                quote_ident(&c.name)
            )
        } else {
            quote_ident(&c.name)
        }
    }

    fn value(&mut self, c: &QueryColumn, v: &Value, bytewise: bool) -> String {
        self.params.push(param(v));
        let n = self.params.len();
        if bytewise && c.logical == LogicalType::Uuid {
            format!("CONVERT(char(36), CAST(@P{n} AS uniqueidentifier)) COLLATE {BYTEWISE}")
        } else if bytewise {
            format!("CAST(@P{n} AS nvarchar(max)) COLLATE {BYTEWISE}")
        } else {
            // The column's own type: a parameter of another type would convert the column
            // instead, and the index could not be used.
            format!("CAST(@P{n} AS {})", c.db_type)
        }
    }

    fn int_bound(&mut self, b: i64) -> String {
        // A bigint parameter: SQL Server still seeks an int column's index with it.
        self.params.push(ColumnData::I64(Some(b)));
        format!("@P{}", self.params.len())
    }

    fn row_values(&self) -> bool {
        false
    }
}

/// A key bound as a parameter.
pub fn param(v: &Value) -> ColumnData<'static> {
    use tiberius::time::{Date, DateTime2, DateTimeOffset, Time};
    let time = |nanos: u64| Time::new(nanos / 100, 7);
    let date = |days: i64| Date::new((days + DAYS_0001_TO_1970).clamp(0, u32::MAX as i64) as u32);
    let datetime2 = |t: &Timestamp| {
        DateTime2::new(
            date(t.secs.div_euclid(86_400)),
            time(t.secs.rem_euclid(86_400) as u64 * 1_000_000_000 + t.nanos as u64),
        )
    };
    match v {
        Value::Null => ColumnData::String(None),
        Value::Bool(b) => ColumnData::Bit(Some(*b)),
        Value::Int(i) => match i64::try_from(*i) {
            Ok(i) => ColumnData::I64(Some(i)),
            Err(_) => ColumnData::Numeric(Some(tiberius::numeric::Numeric::new_with_scale(*i, 0))),
        },
        Value::Decimal(d) => match numeric(d) {
            Some(n) => ColumnData::Numeric(Some(n)),
            None => ColumnData::String(Some(d.to_string().into())),
        },
        Value::Float(f) => ColumnData::F64(Some(*f)),
        Value::Text(s) | Value::Json(s) => ColumnData::String(Some(s.clone().into())),
        Value::Bytes(b) => ColumnData::Binary(Some(b.clone().into())),
        Value::Uuid(u) => ColumnData::Guid(Some(tiberius::Uuid::from_bytes(*u))),
        Value::Date(d) => ColumnData::Date(Some(date(*d as i64))),
        Value::Time(t) => ColumnData::Time(Some(time(*t))),
        Value::Timestamp(t) => ColumnData::DateTime2(Some(datetime2(t))),
        // The instant in UTC, and the offset beside it, as the wire holds them.
        Value::TimestampTz(t, offset) => {
            ColumnData::DateTimeOffset(Some(DateTimeOffset::new(datetime2(t), offset.0)))
        }
        Value::Interval { .. } => ColumnData::String(Some(v.to_string().into())),
    }
}

/// A decimal as SQL Server's numeric, when it fits 38 digits.
fn numeric(d: &Decimal) -> Option<tiberius::numeric::Numeric> {
    let Decimal::Finite {
        negative,
        digits,
        exp,
    } = d
    else {
        return None;
    };
    let (digits, scale) = if *exp >= 0 {
        (format!("{digits}{}", "0".repeat(*exp as usize)), 0)
    } else {
        (digits.clone(), u8::try_from(-exp).ok()?)
    };
    if digits.len() > 38 || scale > 38 {
        return None;
    }
    let v: i128 = digits.parse().ok()?;
    Some(tiberius::numeric::Numeric::new_with_scale(
        if *negative { -v } else { v },
        scale,
    ))
}
