//! PostgreSQL's spelling of SQL: quoted identifiers, typed literals and cast types, for
//! the range SQL the engine sends ([`Pg`], over `engine::sql`) and for convergence scripts.
//!
//! Must not: build a statement of its own, or spell a value other than as an exact typed
//! literal (standard strings: only quotes are doubled).

use crate::dialect::ScriptDialect;
use crate::engine::sql::{quoted, Sql, SqlDialect};
use crate::table::{QueryColumn, TableQuery, TableRef};
use crate::value::{format_date, format_time, format_timestamp, format_uuid, LogicalType, Value};

// ---- SQL -------------------------------------------------------------------------------

/// An identifier as PostgreSQL quotes it, in the statements the engine sends and in scripts
/// alike.
pub fn quote_ident(s: &str) -> String {
    quoted(s, '"', '"')
}

pub(super) fn table_sql(t: &TableRef) -> String {
    format!(
        "{}.{}",
        quote_ident(t.schema.as_deref().unwrap_or("public")),
        quote_ident(&t.name)
    )
}

/// The type to cast a literal to: the declared type without its modifiers, so that a
/// bound is never rounded or truncated by a typmod.
pub(super) fn cast_type(db_type: &str) -> String {
    let mut out = String::with_capacity(db_type.len());
    let mut depth = 0;
    for c in db_type.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A PostgreSQL literal of `v`, typed as `db_type`. Text goes through a standard string
/// (standard_conforming_strings is on for every session), so only quotes need doubling.
pub fn literal(v: &Value, db_type: &str) -> String {
    match input_text(v) {
        None => "NULL".into(),
        Some(text) => format!("{}::{}", quote_text(&text), cast_type(db_type)),
    }
}

/// The text PostgreSQL's input function of the value's type reads back as the value, or
/// `None` for NULL.
fn input_text(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Decimal(d) => d.to_string(),
        Value::Float(f) if f.is_nan() => "NaN".into(),
        Value::Float(f) if f.is_infinite() => {
            if *f > 0.0 { "Infinity" } else { "-Infinity" }.into()
        }
        Value::Float(f) => format!("{f:?}"),
        Value::Text(s) | Value::Json(s) => s.clone(),
        Value::Bytes(b) => format!(
            "\\x{}",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        ),
        Value::Date(d) => format_date(*d),
        Value::Time(t) => format_time(*t),
        Value::Timestamp(t) => format_timestamp(*t),
        Value::TimestampTz(t, _) => format!("{}+00", format_timestamp(*t)),
        Value::Uuid(u) => format_uuid(u),
        Value::Interval {
            months,
            days,
            micros,
        } => format!("{months} mons {days} days {micros} microseconds"),
    })
}

/// A string literal: standard_conforming_strings is on, so only quotes need doubling.
fn quote_text(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// PostgreSQL's spelling of the shared range SQL: literals typed as their column, and
/// `COLLATE "C"` for bytewise text.
pub(super) struct Pg;

impl SqlDialect for Pg {
    fn quote_ident(&self, name: &str) -> String {
        quote_ident(name)
    }

    fn key_col(&self, c: &QueryColumn, bytewise: bool) -> String {
        // A uuid already orders by its bytes.
        if bytewise && c.logical == LogicalType::Text {
            format!("{} COLLATE \"C\"", quote_ident(&c.name))
        } else {
            quote_ident(&c.name)
        }
    }

    fn value(&mut self, c: &QueryColumn, v: &Value, bytewise: bool) -> String {
        let lit = literal(v, &c.db_type);
        if bytewise && c.logical == LogicalType::Text {
            format!("{lit} COLLATE \"C\"")
        } else {
            lit
        }
    }

    fn int_bound(&mut self, b: i64) -> String {
        // int8; PostgreSQL compares it with any integer column through the index.
        b.to_string()
    }

    fn row_values(&self) -> bool {
        true
    }
}

pub(super) fn sql(q: &TableQuery) -> Sql<'_, Pg> {
    Sql::new(q, Pg)
}

// ---- scripts ---------------------------------------------------------------------------

/// PostgreSQL's spelling of convergence scripts: typed literals, json compared by its
/// text, guarded statements as data-modifying CTEs.
pub(crate) struct PostgresScript;

impl ScriptDialect for PostgresScript {
    fn quote_ident(&self, name: &str) -> String {
        quote_ident(name)
    }

    fn literal(&self, column: &QueryColumn, value: &Value) -> Result<String, String> {
        Ok(match input_text(value) {
            // A column of another engine's written as the type of its logical type,
            // which keeps microseconds: a finer value would be rounded.
            Some(_) if column.db_type.is_empty() && finer_than_micros(value) => {
                return Err("PostgreSQL keeps microseconds at most".into())
            }
            Some(text) if column.logical == LogicalType::Int && matches!(value, Value::Int(_)) => {
                text
            }
            Some(text) => format!("{}::{}", quote_text(&text), script_type(column)),
            None => "NULL".into(),
        })
    }

    fn equals(&self, column: &QueryColumn, quoted: &str, value: &Value, literal: &str) -> String {
        if column.logical == LogicalType::Json {
            // json has no equality operator; its text is what was compared.
            let text = quote_text(&input_text(value).unwrap_or_default());
            format!("{quoted}::text = {text}")
        } else {
            format!("{quoted} = {literal}")
        }
    }

    fn begin(&self) -> &'static str {
        "BEGIN;\n"
    }

    fn prologue(&self, guards: bool) -> String {
        // The literals are standard strings: make sure they are read so.
        let mut s = String::from("SET standard_conforming_strings = on;\n");
        if guards {
            s.push_str("CREATE TEMPORARY TABLE IF NOT EXISTS dw_skipped (n int);\n");
        }
        s
    }

    fn counted(&self, statement: &str) -> String {
        format!(
            "WITH dw AS ({statement} RETURNING 1) INSERT INTO dw_skipped SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM dw);\n"
        )
    }

    fn overriding_identity(&self) -> &'static str {
        " OVERRIDING SYSTEM VALUE"
    }

    fn insert_absent(
        &self,
        table: &str,
        columns: &str,
        overriding: &str,
        values: &str,
        absent: &str,
    ) -> String {
        format!(
            "WITH dw AS (INSERT INTO {table} ({columns}){overriding} SELECT {values} WHERE {absent} RETURNING 1) \
             INSERT INTO dw_skipped SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM dw);\n"
        )
    }
}

/// The destination column's PostgreSQL type, modifiers kept (char(5) must not become
/// char(1)); for a column without one (of another engine, see `script::types_for`) the
/// type of its logical type, which PostgreSQL assigns to any column of that kind.
fn script_type(column: &QueryColumn) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_quoted_and_typed() {
        assert_eq!(
            literal(&Value::Text("O'Brien".into()), "character varying(20)"),
            "'O''Brien'::character varying"
        );
        assert_eq!(literal(&Value::Int(-5), "bigint"), "'-5'::bigint");
        assert_eq!(
            literal(&Value::Bytes(vec![0, 255]), "bytea"),
            "'\\x00ff'::bytea"
        );
        assert_eq!(
            cast_type("timestamp(3) with time zone"),
            "timestamp with time zone"
        );
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }
}
