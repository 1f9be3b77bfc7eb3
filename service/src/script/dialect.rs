//! What differs between the SQL dialects a script can be written in: identifier quoting,
//! exact literals, transactions, and how a guarded statement counts a row that changed
//! since the diff.
//!
//! A value a dialect cannot represent exactly is an error naming why, never an
//! approximate literal.

use std::fmt::Write;

use crate::table::{QueryColumn, TableRef};
use crate::value::{
    format_date, format_time, format_timestamp, format_uuid, Decimal, LogicalType, Timestamp, Value,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    Tsql,
    Postgres,
    Mysql,
    Sqlite,
}

impl Dialect {
    pub fn parse(s: &str) -> Option<Dialect> {
        Some(match s {
            "tsql" => Dialect::Tsql,
            "postgres" => Dialect::Postgres,
            "mysql" => Dialect::Mysql,
            "sqlite" => Dialect::Sqlite,
            _ => return None,
        })
    }

    /// The dialect of an engine family.
    pub fn of(family: crate::table::Family) -> Dialect {
        use crate::table::Family;
        match family {
            Family::Postgres => Dialect::Postgres,
            Family::Sqlite => Dialect::Sqlite,
            Family::Mysql => Dialect::Mysql,
            Family::Mssql => Dialect::Tsql,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dialect::Tsql => "tsql",
            Dialect::Postgres => "postgres",
            Dialect::Mysql => "mysql",
            Dialect::Sqlite => "sqlite",
        }
    }

    pub fn ident(self, name: &str) -> String {
        match self {
            Dialect::Tsql => format!("[{}]", name.replace(']', "]]")),
            Dialect::Mysql => format!("`{}`", name.replace('`', "``")),
            Dialect::Postgres | Dialect::Sqlite => format!("\"{}\"", name.replace('"', "\"\"")),
        }
    }

    pub fn table(self, t: &TableRef) -> String {
        match &t.schema {
            Some(s) => format!("{}.{}", self.ident(s), self.ident(&t.name)),
            None => self.ident(&t.name),
        }
    }

    pub fn begin(self) -> &'static str {
        match self {
            Dialect::Tsql => "BEGIN TRANSACTION;\n",
            Dialect::Mysql => "START TRANSACTION;\n",
            Dialect::Postgres | Dialect::Sqlite => "BEGIN;\n",
        }
    }

    pub fn commit(self) -> &'static str {
        match self {
            // GO ends the batch: each transaction is sent on its own.
            Dialect::Tsql => "COMMIT TRANSACTION;\nGO\n",
            _ => "COMMIT;\n",
        }
    }

    /// Statements before the first batch.
    pub fn prologue(self, guards: bool) -> String {
        let mut s = String::new();
        match self {
            Dialect::Tsql => {
                s.push_str("SET XACT_ABORT ON;\nSET NOCOUNT ON;\n");
                if guards {
                    s.push_str("IF OBJECT_ID('tempdb..#dw_skipped') IS NOT NULL DROP TABLE #dw_skipped;\nCREATE TABLE #dw_skipped (n int);\n");
                }
                s.push_str("GO\n");
            }
            Dialect::Postgres => {
                // The literals below are standard strings: make sure they are read so.
                s.push_str("SET standard_conforming_strings = on;\n");
                if guards {
                    s.push_str("CREATE TEMPORARY TABLE IF NOT EXISTS dw_skipped (n int);\n");
                }
            }
            Dialect::Sqlite if guards => {
                s.push_str("CREATE TEMPORARY TABLE IF NOT EXISTS dw_skipped (n INTEGER);\n")
            }
            Dialect::Mysql => {
                // Literals are utf8mb4 (emoji included), timestamps UTC.
                s.push_str("SET NAMES utf8mb4;\nSET time_zone = '+00:00';\n");
                if guards {
                    s.push_str("CREATE TEMPORARY TABLE IF NOT EXISTS dw_skipped (n int);\n");
                }
            }
            _ => {}
        }
        s
    }

    /// Statements after the last batch: the count of statements whose row had changed.
    pub fn epilogue(self, guards: bool) -> String {
        if !guards {
            return String::new();
        }
        let msg = "statements skipped because their row changed since the diff";
        match self {
            Dialect::Tsql => format!(
                "DECLARE @dw_skipped int = (SELECT COUNT(*) FROM #dw_skipped);\n\
                 RAISERROR('driftwatch: %d {msg}', 0, 1, @dw_skipped) WITH NOWAIT;\nDROP TABLE #dw_skipped;\nGO\n"
            ),
            Dialect::Postgres | Dialect::Sqlite | Dialect::Mysql => {
                let concat = match self {
                    Dialect::Mysql => format!("CONCAT('driftwatch: ', COUNT(*), ' {msg}')"),
                    _ => format!("'driftwatch: ' || COUNT(*) || ' {msg}'"),
                };
                format!("SELECT {concat} AS driftwatch FROM dw_skipped;\nDROP TABLE dw_skipped;\n")
            }
        }
    }

    /// `statement` (an UPDATE or DELETE), counted in dw_skipped when it touched no row.
    pub fn counted(self, statement: &str, guards: bool) -> String {
        if !guards {
            return format!("{statement};\n");
        }
        match self {
            Dialect::Tsql => format!("{statement};\nIF @@ROWCOUNT = 0 INSERT INTO #dw_skipped VALUES (1);\n"),
            Dialect::Postgres => format!(
                "WITH dw AS ({statement} RETURNING 1) INSERT INTO dw_skipped SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM dw);\n"
            ),
            Dialect::Sqlite => format!("{statement};\nINSERT INTO dw_skipped SELECT 1 WHERE changes() = 0;\n"),
            Dialect::Mysql => format!("{statement};\nINSERT INTO dw_skipped SELECT 1 FROM DUAL WHERE ROW_COUNT() = 0;\n"),
        }
    }

    /// An INSERT of `values` into `columns`, only while the key is absent when guarded.
    pub fn insert(
        self,
        table: &str,
        columns: &str,
        values: &str,
        key_match: &str,
        guards: bool,
        overriding: bool,
    ) -> String {
        let overriding = if overriding && self == Dialect::Postgres {
            " OVERRIDING SYSTEM VALUE"
        } else {
            ""
        };
        if !guards {
            return format!("INSERT INTO {table} ({columns}){overriding} VALUES ({values});\n");
        }
        let absent = format!("NOT EXISTS (SELECT 1 FROM {table} WHERE {key_match})");
        match self {
            Dialect::Tsql => format!(
                "IF {absent} INSERT INTO {table} ({columns}) VALUES ({values}) ELSE INSERT INTO #dw_skipped VALUES (1);\n"
            ),
            Dialect::Postgres => format!(
                "WITH dw AS (INSERT INTO {table} ({columns}){overriding} SELECT {values} WHERE {absent} RETURNING 1) \
                 INSERT INTO dw_skipped SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM dw);\n"
            ),
            Dialect::Sqlite => format!(
                "INSERT INTO {table} ({columns}) SELECT {values} WHERE {absent};\nINSERT INTO dw_skipped SELECT 1 WHERE changes() = 0;\n"
            ),
            Dialect::Mysql => format!(
                "INSERT INTO {table} ({columns}) SELECT {values} FROM DUAL WHERE {absent};\n\
                 INSERT INTO dw_skipped SELECT 1 FROM DUAL WHERE ROW_COUNT() = 0;\n"
            ),
        }
    }

    /// `column = value` as a condition; NULL matches NULL. A column finer than the
    /// precision it was compared at (`compare_fraction`) matches every value that compares
    /// equal: the diff saw only the coarser value, not the one the row holds.
    pub fn matches(self, column: &QueryColumn, value: &Value) -> Result<String, String> {
        let c = self.ident(&column.name);
        if value.is_null() {
            return Ok(format!("{c} IS NULL"));
        }
        let coarsened = column
            .compare_fraction
            .filter(|f| column.fraction_digits.is_some_and(|d| d > f.digits));
        if let Some((lower, upper)) = coarsened.and_then(|f| f.preimage(value)) {
            let mut cond = format!("{c} >= {}", self.literal(column, &lower)?);
            if let Some(upper) = upper {
                write!(cond, " AND {c} < {}", self.literal(column, &upper)?).unwrap();
            }
            return Ok(cond);
        }
        let lit = self.literal(column, value)?;
        Ok(match (self, column.logical) {
            // json has no equality operator; its text is what was compared.
            (Dialect::Postgres, LogicalType::Json) => format!("{c}::text = {}", pg_text(value)),
            // MariaDB's json is text and has no CAST AS JSON; MySQL's prints its normal form.
            (Dialect::Mysql, LogicalType::Json) => format!("CAST({c} AS CHAR) = {lit}"),
            _ => format!("{c} = {lit}"),
        })
    }

    /// The exact literal of `value` for `column` (the destination's column).
    pub fn literal(self, column: &QueryColumn, value: &Value) -> Result<String, String> {
        if value.is_null() {
            return Ok("NULL".into());
        }
        match self {
            Dialect::Postgres => Ok(match crate::engine::postgres::input_text(value) {
                // A column of another engine's written as the type of its logical type,
                // which keeps microseconds: a finer value would be rounded.
                Some(_) if column.db_type.is_empty() && finer_than_micros(value) => {
                    return Err("PostgreSQL keeps microseconds at most".into())
                }
                Some(text)
                    if column.logical == LogicalType::Int && matches!(value, Value::Int(_)) =>
                {
                    text
                }
                Some(text) => format!(
                    "{}::{}",
                    crate::engine::postgres::quote_text(&text),
                    pg_type(column)
                ),
                None => "NULL".into(),
            }),
            Dialect::Sqlite => sqlite_literal(value),
            Dialect::Mysql => mysql_literal(value),
            Dialect::Tsql => tsql_literal(value),
        }
    }
}

/// The destination column's PostgreSQL type, modifiers kept (char(5) must not become
/// char(1)); for a column without one (of another engine, see `script::types_for`) the
/// type of its logical type, which PostgreSQL assigns to any column of that kind.
fn pg_type(column: &QueryColumn) -> String {
    if !column.db_type.is_empty() {
        return column.db_type.clone();
    }
    match column.logical {
        LogicalType::Bool => "boolean",
        LogicalType::Int => "bigint",
        LogicalType::Decimal => "numeric",
        LogicalType::Float => "double precision",
        LogicalType::Text => "text",
        LogicalType::Bytes => "bytea",
        LogicalType::Date => "date",
        LogicalType::Time => "time",
        LogicalType::Timestamp => "timestamp",
        LogicalType::TimestampTz => "timestamptz",
        LogicalType::Uuid => "uuid",
        LogicalType::Json => "json",
        LogicalType::Interval => "interval",
    }
    .into()
}

fn finer_than_micros(v: &Value) -> bool {
    match v {
        Value::Time(t) => t % 1000 != 0,
        Value::Timestamp(t) | Value::TimestampTz(t, _) => {
            !t.is_infinite() && !t.nanos.is_multiple_of(1000)
        }
        _ => false,
    }
}

fn pg_text(v: &Value) -> String {
    crate::engine::postgres::quote_text(&crate::engine::postgres::input_text(v).unwrap_or_default())
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

fn float_text(f: f64) -> String {
    // Rust's shortest round-trip form: the literal reads back as exactly this double.
    format!("{f:?}")
}

fn decimal_digits(d: &Decimal) -> usize {
    match d {
        Decimal::Finite { digits, exp, .. } => digits.len() + (*exp).max(0) as usize,
        _ => 0,
    }
}

fn sqlite_literal(v: &Value) -> Result<String, String> {
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

fn mysql_literal(v: &Value) -> Result<String, String> {
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
        Value::Time(t) if t % 1000 != 0 => return Err("MySQL keeps microseconds at most".into()),
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

fn tsql_literal(v: &Value) -> Result<String, String> {
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
        Value::Float(f) if !f.is_finite() => return Err(format!("SQL Server cannot store {f}")),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn column(t: LogicalType, db_type: &str) -> QueryColumn {
        QueryColumn {
            name: "c".into(),
            db_type: db_type.into(),
            logical: t,
            compare_as: t,
            identity: false,
            fraction_digits: None,
            compare_fraction: None,
        }
    }

    #[test]
    fn literals_are_exact_or_refused() {
        let text = column(LogicalType::Text, "text");
        let quote = Value::Text("it's \\ a;--test".into());
        assert_eq!(
            Dialect::Tsql.literal(&text, &quote).unwrap(),
            "N'it''s \\ a;--test'"
        );
        assert_eq!(
            Dialect::Postgres.literal(&text, &quote).unwrap(),
            "'it''s \\ a;--test'::text"
        );
        assert_eq!(
            Dialect::Sqlite.literal(&text, &quote).unwrap(),
            "'it''s \\ a;--test'"
        );
        assert_eq!(
            Dialect::Mysql.literal(&text, &quote).unwrap(),
            "_utf8mb4 X'69742773205c20613b2d2d74657374'"
        );
        assert_eq!(
            Dialect::Mysql
                .literal(&text, &Value::Text("plain 'x'".into()))
                .unwrap(),
            "'plain ''x'''"
        );

        let float = column(LogicalType::Float, "double precision");
        assert_eq!(
            Dialect::Postgres
                .literal(&float, &Value::float(f64::NAN))
                .unwrap(),
            "'NaN'::double precision"
        );
        assert_eq!(
            Dialect::Tsql.literal(&float, &Value::float(0.1)).unwrap(),
            "0.1E0"
        );
        assert_eq!(
            Dialect::Sqlite
                .literal(&float, &Value::float(f64::NEG_INFINITY))
                .unwrap(),
            "-9e999"
        );
        assert!(Dialect::Tsql
            .literal(&float, &Value::float(f64::INFINITY))
            .is_err());
        assert!(Dialect::Sqlite
            .literal(&float, &Value::float(f64::NAN))
            .is_err());

        let ts = column(LogicalType::Timestamp, "datetime2(7)");
        let t = Value::Timestamp(Timestamp {
            secs: 1_750_000_000,
            nanos: 123_456_700,
        });
        assert_eq!(
            Dialect::Tsql.literal(&ts, &t).unwrap(),
            "'2025-06-15T15:06:40.1234567'"
        );
        let too_fine = Value::Timestamp(Timestamp { secs: 0, nanos: 1 });
        assert!(Dialect::Tsql.literal(&ts, &too_fine).is_err());
        assert!(Dialect::Mysql.literal(&ts, &too_fine).is_err());

        let bytes = column(LogicalType::Bytes, "bytea");
        assert_eq!(
            Dialect::Tsql
                .literal(&bytes, &Value::Bytes(vec![]))
                .unwrap(),
            "0x"
        );
        assert_eq!(
            Dialect::Postgres
                .literal(&bytes, &Value::Bytes(vec![0, 255]))
                .unwrap(),
            "'\\x00ff'::bytea"
        );

        let dec = column(LogicalType::Decimal, "DECIMAL");
        let long = Value::Decimal(Decimal::parse("1.1000000000000000001").unwrap());
        assert!(Dialect::Sqlite.literal(&dec, &long).is_err());
        assert_eq!(
            Dialect::Postgres
                .literal(&column(LogicalType::Decimal, "numeric"), &long)
                .unwrap(),
            "'1.1000000000000000001'::numeric"
        );
        assert_eq!(
            Dialect::Tsql
                .literal(&dec, &Value::Text("a\0b".into()))
                .unwrap(),
            "N'a' + NCHAR(0) + N'b'"
        );
    }

    #[test]
    fn a_finer_column_compared_coarser_is_matched_by_every_value_that_compares_equal() {
        use crate::value::{parse_timestamp, Fraction, Rounding};
        let mut at = column(LogicalType::Timestamp, "timestamp(6) without time zone");
        at.fraction_digits = Some(6);
        at.compare_fraction = Some(Fraction {
            digits: 3,
            rounding: Rounding::Round,
        });
        let seen = Value::Timestamp(parse_timestamp("2025-06-14 02:00:00.124").unwrap().0);
        assert_eq!(
            Dialect::Postgres.matches(&at, &seen).unwrap(),
            "\"c\" >= '2025-06-14 02:00:00.1235'::timestamp(6) without time zone \
             AND \"c\" < '2025-06-14 02:00:00.1245'::timestamp(6) without time zone"
        );
        assert_eq!(
            Dialect::Mysql.matches(&at, &seen).unwrap(),
            "`c` >= '2025-06-14 02:00:00.1235' AND `c` < '2025-06-14 02:00:00.1245'"
        );
        assert_eq!(
            Dialect::Tsql.matches(&at, &Value::Null).unwrap(),
            "[c] IS NULL"
        );
        // The coarser side holds the compared value itself: matched exactly.
        at.fraction_digits = Some(3);
        assert_eq!(
            Dialect::Mysql.matches(&at, &seen).unwrap(),
            "`c` = '2025-06-14 02:00:00.124'"
        );
        // A time at the end of the day has no upper bound.
        let mut opens = column(LogicalType::Time, "time(6)");
        opens.fraction_digits = Some(6);
        opens.compare_fraction = Some(Fraction {
            digits: 0,
            rounding: Rounding::Truncate,
        });
        assert_eq!(
            Dialect::Tsql
                .matches(&opens, &Value::Time(86_399_000_000_000))
                .unwrap(),
            "[c] >= '23:59:59'"
        );
    }

    #[test]
    fn identifiers_are_quoted_whatever_they_hold() {
        let t = TableRef::parse("dbo.Order Details");
        assert_eq!(Dialect::Tsql.table(&t), "[dbo].[Order Details]");
        assert_eq!(Dialect::Tsql.ident("a]b"), "[a]]b]");
        assert_eq!(Dialect::Postgres.ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(Dialect::Mysql.ident("a`b"), "`a``b`");
    }
}
