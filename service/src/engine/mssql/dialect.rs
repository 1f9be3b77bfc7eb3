//! T-SQL's spelling: bracketed identifiers, values as bound parameters cast to their
//! column's type ([`param`], [`Tsql`] over `engine::sql`), and exact literals for
//! convergence scripts.
//!
//! Must not: build a statement of its own (that is `statements.rs`), or put a value into
//! a statement's text other than as a bound parameter (scripts: an exact literal).

use tiberius::ColumnData;

use super::DAYS_0001_TO_1970;
use crate::dialect::{decimal_digits, float_text, hex, ScriptDialect};
use crate::engine::sql::{quoted, SqlDialect};
use crate::table::{QueryColumn, TableRef};
use crate::value::{
    format_date, format_time, format_timestamp, format_uuid, Decimal, LogicalType, Timestamp, Value,
};

/// An identifier as T-SQL quotes it, in the statements the engine sends and in scripts
/// alike.
pub fn quote_ident(s: &str) -> String {
    quoted(s, '[', ']')
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

impl SqlDialect for Tsql {
    fn quote_ident(&self, name: &str) -> String {
        quote_ident(name)
    }

    fn select_col(&self, c: &QueryColumn) -> String {
        super::statements::select_col(c)
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

// ---- scripts ---------------------------------------------------------------------------

/// T-SQL's spelling of convergence scripts: Unicode literals, ISO 8601 instants, batches
/// ended with GO, guarded statements counted with `@@ROWCOUNT` in a temporary table.
pub(crate) struct TsqlScript;

impl ScriptDialect for TsqlScript {
    fn quote_ident(&self, name: &str) -> String {
        quote_ident(name)
    }

    fn literal(&self, _column: &QueryColumn, v: &Value) -> Result<String, String> {
        let iso = |t: &Timestamp| -> Result<String, String> {
            if t.is_infinite() {
                return Err("SQL Server has no infinite timestamp".into());
            }
            if !t.nanos.is_multiple_of(100) {
                return Err("SQL Server keeps 100-nanosecond precision at most".into());
            }
            // The ISO 8601 form with a T reads the same whatever the session's language or
            // DATEFORMAT.
            Ok(format_timestamp(*t).replacen(' ', "T", 1))
        };
        Ok(match v {
            Value::Null => "NULL".into(),
            Value::Bool(b) => (*b as u8).to_string(),
            Value::Int(i) if i64::try_from(*i).is_ok() => i.to_string(),
            Value::Int(i) => format!("CAST({i} AS decimal(38,0))"),
            Value::Decimal(d @ Decimal::Finite { .. }) if decimal_digits(d) <= 38 => d.to_string(),
            Value::Decimal(d) => return Err(format!("SQL Server's decimal(38) cannot hold {d}")),
            Value::Float(f) if !f.is_finite() => {
                return Err(format!("SQL Server cannot store {f}"))
            }
            Value::Float(f) => {
                let t = float_text(*f);
                // A literal with an exponent is a float; without one it would be a decimal.
                if t.contains('e') {
                    t.replace('e', "E")
                } else {
                    format!("{t}E0")
                }
            }
            Value::Text(s) | Value::Json(s) => {
                let parts: Vec<String> = s
                    .split('\0')
                    .map(|p| format!("N'{}'", p.replace('\'', "''")))
                    .collect();
                parts.join(" + NCHAR(0) + ")
            }
            Value::Bytes(b) => format!("0x{}", hex(b)),
            Value::Date(d) if *d == i32::MAX || *d == i32::MIN => {
                return Err("SQL Server has no infinite date".into())
            }
            Value::Date(d) => format!("'{}'", format_date(*d)),
            Value::Time(t) if t % 100 != 0 => {
                return Err("SQL Server keeps 100-nanosecond precision at most".into())
            }
            Value::Time(t) => format!("'{}'", format_time(*t)),
            Value::Timestamp(t) => format!("'{}'", iso(t)?),
            // The publisher's own offset beside its wall clock: '2025-06-14T11:45:00+09:45'
            // is the instant 02:00:00 UTC, written as datetimeoffset holds it.
            Value::TimestampTz(t, o) => format!("'{}{o}'", iso(&o.local(*t))?),
            Value::Uuid(u) => format!("'{}'", format_uuid(u)),
            Value::Interval { .. } => return Err("SQL Server has no interval type".into()),
        })
    }

    fn begin(&self) -> &'static str {
        "BEGIN TRANSACTION;\n"
    }

    fn commit(&self) -> &'static str {
        // GO ends the batch: each transaction is sent on its own.
        "COMMIT TRANSACTION;\nGO\n"
    }

    fn prologue(&self, guards: bool) -> String {
        let mut s = String::from("SET XACT_ABORT ON;\nSET NOCOUNT ON;\n");
        if guards {
            s.push_str("IF OBJECT_ID('tempdb..#dw_skipped') IS NOT NULL DROP TABLE #dw_skipped;\nCREATE TABLE #dw_skipped (n int);\n");
        }
        s.push_str("GO\n");
        s
    }

    fn epilogue(&self, message: &str) -> String {
        format!(
            "DECLARE @dw_skipped int = (SELECT COUNT(*) FROM #dw_skipped);\n\
             RAISERROR('driftwatch: %d {message}', 0, 1, @dw_skipped) WITH NOWAIT;\nDROP TABLE #dw_skipped;\nGO\n"
        )
    }

    fn counted(&self, statement: &str) -> String {
        format!("{statement};\nIF @@ROWCOUNT = 0 INSERT INTO #dw_skipped VALUES (1);\n")
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
            "IF {absent} INSERT INTO {table} ({columns}) VALUES ({values}) ELSE INSERT INTO #dw_skipped VALUES (1);\n"
        )
    }
}
