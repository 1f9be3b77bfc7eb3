//! How a convergence script's statements are put together in any dialect: NULL, plain
//! (unguarded) statements, a table's name from its parts, transactions, the count of
//! guarded statements whose row changed since the diff, and the range of values a column
//! compared at a coarser precision matches. What one dialect spells its own way (quoting,
//! exact literals, the guarded forms) is its engine's [`ScriptDialect`], reached through
//! [`Dialect::spelling`].
//!
//! Must not: spell anything for one dialect in particular, or use `engine`. A value a
//! dialect cannot represent exactly is an error naming why, never an approximate literal.

use std::fmt::Write;

pub use crate::dialect::Dialect;
use crate::table::{QueryColumn, TableRef};
use crate::value::Value;

/// What a guarded script reports at its end, after the count.
const SKIPPED: &str = "statements skipped because their row changed since the diff";

impl Dialect {
    pub fn ident(self, name: &str) -> String {
        self.spelling().quote_ident(name)
    }

    pub fn table(self, t: &TableRef) -> String {
        match &t.schema {
            Some(s) => format!("{}.{}", self.ident(s), self.ident(&t.name)),
            None => self.ident(&t.name),
        }
    }

    pub fn begin(self) -> &'static str {
        self.spelling().begin()
    }

    pub fn commit(self) -> &'static str {
        self.spelling().commit()
    }

    /// Statements before the first batch.
    pub fn prologue(self, guards: bool) -> String {
        self.spelling().prologue(guards)
    }

    /// Statements after the last batch: the count of statements whose row had changed.
    pub fn epilogue(self, guards: bool) -> String {
        if guards {
            self.spelling().epilogue(SKIPPED)
        } else {
            String::new()
        }
    }

    /// `statement` (an UPDATE or DELETE), counted in dw_skipped when it touched no row.
    pub fn counted(self, statement: &str, guards: bool) -> String {
        if guards {
            self.spelling().counted(statement)
        } else {
            format!("{statement};\n")
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
        let spelling = self.spelling();
        let overriding = if overriding {
            spelling.overriding_identity()
        } else {
            ""
        };
        if !guards {
            return format!("INSERT INTO {table} ({columns}){overriding} VALUES ({values});\n");
        }
        let absent = format!("NOT EXISTS (SELECT 1 FROM {table} WHERE {key_match})");
        spelling.insert_absent(table, columns, overriding, values, &absent)
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
        Ok(self.spelling().equals(column, &c, value, &lit))
    }

    /// The exact literal of `value` for `column` (the destination's column).
    pub fn literal(self, column: &QueryColumn, value: &Value) -> Result<String, String> {
        if value.is_null() {
            return Ok("NULL".into());
        }
        self.spelling().literal(column, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{Decimal, LogicalType, Timestamp};

    fn column(t: LogicalType, db_type: &str) -> QueryColumn {
        QueryColumn::new("c", db_type, t)
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
