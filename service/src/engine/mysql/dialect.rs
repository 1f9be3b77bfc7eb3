//! MySQL's and MariaDB's spelling of SQL: backquoted identifiers, values as bound
//! parameters ([`param`]) for the range SQL the engine sends ([`MyDialect`], over
//! `engine::sql`), and exact literals for convergence scripts.
//!
//! Must not: build a statement of its own, or put a value into a statement's text other
//! than as a bound parameter (scripts: an exact literal that reads the same in any
//! sql_mode).

use mysql_async::Value as My;

use crate::dialect::{decimal_digits, float_text, hex, ScriptDialect};
use crate::engine::sql::{quoted, Sql, SqlDialect};
use crate::table::{QueryColumn, TableQuery};
use crate::value::{
    format_date, format_time, format_timestamp, format_uuid, Decimal, LogicalType, Timestamp, Value,
};

/// An identifier as MySQL quotes it, in the statements the engine sends and in scripts
/// alike.
pub fn quote_ident(s: &str) -> String {
    quoted(s, '`', '`')
}

/// A key bound or value as a bound parameter.
pub fn param(v: &Value) -> My {
    match v {
        Value::Null => My::NULL,
        Value::Bool(b) => My::Int(*b as i64),
        Value::Int(i) => match (i64::try_from(*i), u64::try_from(*i)) {
            (Ok(i), _) => My::Int(i),
            (_, Ok(u)) => My::UInt(u),
            _ => My::Bytes(i.to_string().into_bytes()),
        },
        Value::Decimal(d) => My::Bytes(d.to_string().into_bytes()),
        Value::Float(f) => My::Double(*f),
        Value::Text(s) | Value::Json(s) => My::Bytes(s.clone().into_bytes()),
        Value::Bytes(b) => My::Bytes(b.clone()),
        Value::Date(d) => {
            let (y, m, day) = civil(*d);
            My::Date(y, m, day, 0, 0, 0, 0)
        }
        Value::Time(t) => {
            let secs = t / 1_000_000_000;
            My::Time(
                false,
                (secs / 86_400) as u32,
                (secs / 3600 % 24) as u8,
                (secs / 60 % 60) as u8,
                (secs % 60) as u8,
                (t % 1_000_000_000 / 1000) as u32,
            )
        }
        Value::Timestamp(t) | Value::TimestampTz(t, _) => {
            let days = t.secs.div_euclid(86_400);
            let s = t.secs.rem_euclid(86_400);
            let (y, m, d) = civil(i32::try_from(days).unwrap_or(i32::MAX));
            My::Date(
                y,
                m,
                d,
                (s / 3600) as u8,
                (s / 60 % 60) as u8,
                (s % 60) as u8,
                t.nanos / 1000,
            )
        }
        Value::Uuid(u) => My::Bytes(crate::value::format_uuid(u).into_bytes()),
        Value::Interval { .. } => My::Bytes(v.to_string().into_bytes()),
    }
}

/// (year, month, day) of days since 1970-01-01 (year 0 for dates MySQL cannot hold).
fn civil(days: i32) -> (u16, u8, u8) {
    use chrono::Datelike;
    match chrono::NaiveDate::from_num_days_from_ce_opt(days.saturating_add(719_163)) {
        Some(d) if (0..=9999).contains(&d.year()) => {
            (d.year() as u16, d.month() as u8, d.day() as u8)
        }
        _ => (0, 0, 0),
    }
}

/// MySQL's spelling of the shared range SQL: bound parameters, and `CAST(… AS BINARY)`
/// for bytewise text.
#[derive(Default)]
pub(super) struct MyDialect {
    pub(super) params: Vec<My>,
}

impl SqlDialect for MyDialect {
    fn quote_ident(&self, name: &str) -> String {
        quote_ident(name)
    }

    fn key_col(&self, c: &QueryColumn, bytewise: bool) -> String {
        if bytewise {
            format!("CAST({} AS BINARY)", quote_ident(&c.name))
        } else {
            quote_ident(&c.name)
        }
    }

    fn value(&mut self, _c: &QueryColumn, v: &Value, _bytewise: bool) -> String {
        // A parameter compared with CAST(… AS BINARY) is compared as bytes too.
        self.params.push(param(v));
        "?".into()
    }

    fn int_bound(&mut self, b: i64) -> String {
        self.params.push(My::Int(b));
        "?".into()
    }

    fn row_values(&self) -> bool {
        true
    }
}

pub(super) fn sql(q: &TableQuery) -> Sql<'_, MyDialect> {
    Sql::new(q, MyDialect::default())
}

// ---- scripts ---------------------------------------------------------------------------

/// MySQL's and MariaDB's spelling of convergence scripts: literals that read the same in
/// any sql_mode, guarded statements counted with `ROW_COUNT()`.
pub(crate) struct MysqlScript;

impl ScriptDialect for MysqlScript {
    fn quote_ident(&self, name: &str) -> String {
        quote_ident(name)
    }

    fn literal(&self, _column: &QueryColumn, v: &Value) -> Result<String, String> {
        let micro = |t: &Timestamp| -> Result<(), String> {
            if t.is_infinite() {
                Err("MySQL has no infinite timestamp".into())
            } else if !t.nanos.is_multiple_of(1000) {
                Err("MySQL keeps microseconds at most".into())
            } else {
                Ok(())
            }
        };
        Ok(match v {
            Value::Null => "NULL".into(),
            Value::Bool(b) => if *b { "TRUE" } else { "FALSE" }.into(),
            Value::Int(i) => i.to_string(),
            Value::Decimal(d @ Decimal::Finite { .. }) if decimal_digits(d) <= 65 => d.to_string(),
            Value::Decimal(d) => return Err(format!("MySQL's DECIMAL cannot hold {d}")),
            Value::Float(f) if !f.is_finite() => return Err(format!("MySQL cannot store {f}")),
            Value::Float(f) => float_text(*f),
            // A backslash means an escape or itself depending on sql_mode: such strings are
            // written as hex, which reads the same either way.
            Value::Text(s) | Value::Json(s) if s.contains(['\\', '\0']) => {
                format!("_utf8mb4 X'{}'", hex(s.as_bytes()))
            }
            Value::Text(s) | Value::Json(s) => format!("'{}'", s.replace('\'', "''")),
            Value::Bytes(b) => format!("X'{}'", hex(b)),
            Value::Date(d) if *d == i32::MAX || *d == i32::MIN => {
                return Err("MySQL has no infinite date".into())
            }
            Value::Date(d) => format!("'{}'", format_date(*d)),
            Value::Time(t) if t % 1000 != 0 => {
                return Err("MySQL keeps microseconds at most".into())
            }
            Value::Time(t) => format!("'{}'", format_time(*t)),
            // The session's time zone is UTC: the instant, without its offset.
            Value::Timestamp(t) | Value::TimestampTz(t, _) => {
                micro(t)?;
                format!("'{}'", format_timestamp(*t))
            }
            Value::Uuid(u) => format!("'{}'", format_uuid(u)),
            Value::Interval { .. } => return Err("MySQL has no interval type".into()),
        })
    }

    fn equals(&self, column: &QueryColumn, quoted: &str, _value: &Value, literal: &str) -> String {
        if column.logical == LogicalType::Json {
            // MariaDB's json is text and has no CAST AS JSON; MySQL's prints its normal form.
            format!("CAST({quoted} AS CHAR) = {literal}")
        } else {
            format!("{quoted} = {literal}")
        }
    }

    fn begin(&self) -> &'static str {
        "START TRANSACTION;\n"
    }

    fn prologue(&self, guards: bool) -> String {
        // Literals are utf8mb4 (emoji included), timestamps UTC.
        let mut s = String::from("SET NAMES utf8mb4;\nSET time_zone = '+00:00';\n");
        if guards {
            s.push_str("CREATE TEMPORARY TABLE IF NOT EXISTS dw_skipped (n int);\n");
        }
        s
    }

    fn concat(&self, parts: &[&str]) -> String {
        format!("CONCAT({})", parts.join(", "))
    }

    fn counted(&self, statement: &str) -> String {
        format!("{statement};\nINSERT INTO dw_skipped SELECT 1 FROM DUAL WHERE ROW_COUNT() = 0;\n")
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
            "INSERT INTO {table} ({columns}) SELECT {values} FROM DUAL WHERE {absent};\n\
             INSERT INTO dw_skipped SELECT 1 FROM DUAL WHERE ROW_COUNT() = 0;\n"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_round_trip_temporal_values() {
        let (t, _) = crate::value::parse_timestamp("1969-12-31 23:59:59.5").unwrap();
        assert_eq!(
            param(&Value::Timestamp(t)),
            My::Date(1969, 12, 31, 23, 59, 59, 500_000)
        );
        assert_eq!(param(&Value::Int(u64::MAX as i128)), My::UInt(u64::MAX));
        assert_eq!(quote_ident("a`b"), "`a``b`");
    }
}
