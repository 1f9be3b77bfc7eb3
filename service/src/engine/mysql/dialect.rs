//! MySQL's and MariaDB's spelling of SQL: backquoted identifiers, values as bound
//! parameters ([`param`]) for the range SQL the engine sends ([`MyDialect`], over
//! `engine::sql`), and exact literals for convergence scripts.
//!
//! Must not: build a statement of its own, or put a value into a statement's text other
//! than as a bound parameter (scripts: an exact literal that reads the same in any
//! sql_mode).

use mysql_async::Value as My;

use crate::engine::sql::{Dialect, Sql};
use crate::table::{QueryColumn, TableQuery};
use crate::value::Value;

pub fn quote_ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
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

impl Dialect for MyDialect {
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
