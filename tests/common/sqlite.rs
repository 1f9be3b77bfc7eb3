//! SQLite files: generated tables written as an application would, and respelled.

use std::path::Path;

use driftwatch::value::Value;

use crate::gen::{Gen, Schema};

pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

pub fn sqlite_load(path: &Path, table: &str, schema: &Schema, rows: &[Vec<Value>]) {
    let mut conn = rusqlite::Connection::open(path).unwrap();
    let cols: Vec<String> = schema
        .cols
        .iter()
        .map(|c| format!("{} {}", c.name, c.sqlite))
        .collect();
    let key: Vec<&str> = schema.cols[..schema.key].iter().map(|c| c.name).collect();
    conn.execute_batch(&format!(
        "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} ({}, PRIMARY KEY ({}))",
        cols.join(", "),
        key.join(", ")
    ))
    .unwrap();
    let tx = conn.transaction().unwrap();
    {
        let marks = vec!["?"; schema.cols.len()].join(", ");
        let mut stmt = tx
            .prepare(&format!("INSERT INTO {table} VALUES ({marks})"))
            .unwrap();
        for row in rows {
            let params: Vec<rusqlite::types::Value> = row.iter().map(sqlite_param).collect();
            stmt.execute(rusqlite::params_from_iter(params)).unwrap();
        }
    }
    tx.commit().unwrap();
}

/// How the tests store a value in SQLite: as an application would, temporal values and
/// decimals as text (ISO, plain), instants with a `Z`.
pub fn sqlite_param(v: &Value) -> rusqlite::types::Value {
    match v {
        Value::TimestampTz(t, _) => {
            rusqlite::types::Value::Text(format!("{}Z", driftwatch::value::format_timestamp(*t)))
        }
        Value::Decimal(d) => rusqlite::types::Value::Text(d.to_string()),
        other => driftwatch::engine::sqlite::bind_value(other),
    }
}

pub fn sqlite_rewrite(
    path: &Path,
    table: &str,
    schema: &Schema,
    rewrites: &[(Vec<Value>, &'static str)],
) {
    let conn = rusqlite::Connection::open(path).unwrap();
    for (key, column) in rewrites {
        let cond: Vec<String> = schema.cols[..schema.key]
            .iter()
            .map(|c| format!("{} = ?", c.name))
            .collect();
        let params: Vec<rusqlite::types::Value> = key.iter().map(sqlite_param).collect();
        let set = if schema
            .cols
            .iter()
            .any(|x| x.name == *column && x.gen == Gen::Numeric)
        {
            // The same number as text with trailing zeros: still equal by value.
            format!("{column} = CASE WHEN typeof({column}) = 'text' AND instr({column}, '.') > 0 THEN {column} || '00' ELSE {column} END")
        } else {
            format!("{column} = -{column}")
        };
        conn.execute(
            &format!("UPDATE {table} SET {set} WHERE {}", cond.join(" AND ")),
            rusqlite::params_from_iter(params),
        )
        .unwrap();
    }
}
