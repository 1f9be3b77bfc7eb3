//! SQLite (rusqlite, bundled): the embedded default, and edge replicas.
//!
//! SQLite runs in-process, so its "pushdown" digest is computed next to the data on a
//! blocking thread, with the same canonical row hash the streamed strategy uses: the
//! rows never leave that thread. Connections are opened read-only (`SQLITE_OPEN_READ_ONLY`
//! and `PRAGMA query_only`), so a missing file is an error, never a new empty database.
//!
//! A connection reads the file it opened, even after another file is renamed over its
//! path (the way edge copies are refreshed): each connection remembers which file that
//! was, and one whose path now names another file is dropped for a fresh one.
//!
//! Values are decoded by the column's declared type (SQLite's type affinity), and a
//! stored value that does not fit its declared type is kept as stored, so that it
//! compares unequal instead of being guessed.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, InterruptHandle, OpenFlags};

use super::pool::Pool;
use super::{DigestAccumulator, DigestSpec, Digests, Engine, EngineError, Result, RowSender, ROW_BATCH};
use crate::table::{Column, Family, KeyRange, Row, TableQuery, TableRef, TableSchema};
use crate::config::DatabaseConfig;
use crate::value::{
    format_date, format_time, format_timestamp, format_uuid, parse_date, parse_time,
    parse_timestamp, parse_uuid, Decimal, Key, LogicalType, Value,
};

pub struct Sqlite {
    name: String,
    path: PathBuf,
    /// Idle connections, and the interrupt handles of those in use (shutdown).
    pool: Pool<Opened, Arc<InterruptHandle>>,
}

/// A connection and the file it was opened on.
struct Opened {
    conn: Connection,
    file: Option<FileId>,
}

/// Which file a path names: a file renamed over the path is another file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    device: u64,
    inode: u64,
}

#[cfg(unix)]
fn file_id(path: &std::path::Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| FileId {
        device: m.dev(),
        inode: m.ino(),
    })
}

/// Elsewhere there is no inode to compare: every connection is taken as current (a file
/// that is open cannot be renamed over on Windows anyway).
#[cfg(not(unix))]
fn file_id(_path: &std::path::Path) -> Option<FileId> {
    None
}

impl Sqlite {
    pub fn new(name: &str, db: &DatabaseConfig) -> Result<Sqlite> {
        let path = db
            .url
            .strip_prefix("sqlite://")
            .or_else(|| db.url.strip_prefix("sqlite:"))
            .unwrap_or_default();
        if path.is_empty() {
            return Err(EngineError::Config {
                database: name.to_string(),
                message: format!(
                    "{:?} names no file (expected sqlite:///absolute/path.db)",
                    db.url
                ),
            });
        }
        Ok(Sqlite {
            name: name.to_string(),
            path: PathBuf::from(path),
            pool: Pool::new(),
        })
    }

    /// A connection on the file the path names now. The path is looked at before the file
    /// is opened: a rename in between then costs one needless reopen, never a stale read.
    fn open(&self) -> Result<Opened> {
        let file = file_id(&self.path);
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .and_then(|c| {
            c.pragma_update(None, "query_only", true)?;
            c.busy_timeout(std::time::Duration::from_secs(10))?;
            Ok(c)
        })
        .map_err(|e| EngineError::Connect {
            database: self.name.clone(),
            message: format!("{}: {e}", self.path.display()),
        })?;
        Ok(Opened { conn, file })
    }

    /// An idle connection still on the file the path names, else a new one.
    fn connection(&self) -> Result<Opened> {
        let current = file_id(&self.path);
        while let Some((c, _)) = self.pool.idle() {
            if c.file == current {
                return Ok(c);
            }
            // Its file was replaced or removed: dropped.
        }
        self.open()
    }

    /// Runs `f` on a pooled connection on a blocking thread.
    async fn run<T: Send + 'static>(
        &self,
        table: &TableRef,
        f: impl FnOnce(&Connection) -> std::result::Result<T, Failure> + Send + 'static,
    ) -> Result<T> {
        let opened = self.connection()?;
        let interrupt = Arc::new(opened.conn.get_interrupt_handle());
        let mut lease = self.pool.lease(opened, interrupt);
        let opened = lease.take();
        let joined = tokio::task::spawn_blocking(move || {
            let r = f(&opened.conn);
            (opened, r)
        })
        .await;
        let (opened, r) = joined.map_err(|e| EngineError::Query {
            database: self.name.clone(),
            table: table.to_string(),
            message: format!("query thread failed: {e}"),
        })?;
        lease.put(opened);
        lease.release();
        r.map_err(|f| match f {
            Failure::Sql(e) => match &e {
                rusqlite::Error::SqliteFailure(code, _)
                    if matches!(
                        code.code,
                        rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::NotADatabase
                    ) =>
                {
                    EngineError::Connect {
                        database: self.name.clone(),
                        message: e.to_string(),
                    }
                }
                _ => EngineError::Query {
                    database: self.name.clone(),
                    table: table.to_string(),
                    message: e.to_string(),
                },
            },
            Failure::NotFound => EngineError::TableNotFound {
                database: self.name.clone(),
                table: table.to_string(),
            },
        })
    }
}

enum Failure {
    Sql(rusqlite::Error),
    NotFound,
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Failure::Sql(e)
    }
}

// ---- SQL -------------------------------------------------------------------------------

pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn table_sql(t: &TableRef) -> String {
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
fn select(
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

/// Streams decoded rows of a SELECT to `f` until it returns false.
fn each_row(
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

// ---- Engine ----------------------------------------------------------------------------

#[async_trait]
impl Engine for Sqlite {
    fn family(&self) -> Family {
        Family::Sqlite
    }

    async fn introspect(&self, table: &TableRef) -> Result<TableSchema> {
        let t = table.clone();
        self.run(table, move |conn| {
            let schema = quote_ident(t.schema.as_deref().unwrap_or("main"));
            let mut stmt = conn.prepare(&format!(
                "PRAGMA {schema}.table_xinfo({})",
                quote_ident(&t.name)
            ))?;
            let mut columns = Vec::new();
            let mut pk: Vec<(i64, String)> = Vec::new();
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let name: String = r.get(1)?;
                let decl: String = r.get::<_, Option<String>>(2)?.unwrap_or_default();
                let pk_pos: i64 = r.get(5)?;
                let hidden: i64 = r.get(6)?;
                if hidden == 1 {
                    continue; // virtual-table hidden columns are not data
                }
                if pk_pos > 0 {
                    pk.push((pk_pos, name.clone()));
                }
                columns.push(Column {
                    logical: logical_type(&decl),
                    name,
                    db_type: decl,
                    collation: None,
                    identity: false,
                    // Timestamps are text (or numbers) of any precision: none is declared.
                    fraction_digits: None,
                });
            }
            if columns.is_empty() {
                return Err(Failure::NotFound);
            }
            pk.sort();
            Ok(TableSchema {
                columns,
                primary_key: pk.into_iter().map(|(_, n)| n).collect(),
                pushdown_unavailable: None,
            })
        })
        .await
    }

    async fn lead_bounds(&self, q: &TableQuery) -> Result<Option<(i64, i64)>> {
        let q2 = q.clone();
        self.run(&q.table, move |conn| {
            let k1 = quote_ident(&q2.columns[q2.key[0]].name);
            let filter = q2
                .filter
                .as_ref()
                .map(|f| format!(" WHERE ({f})"))
                .unwrap_or_default();
            // Only integer-stored keys count: a stray text key sorts above every integer.
            let sql = format!(
                "SELECT min({k1}), max({k1}) FROM {}{filter}{} typeof({k1}) = 'integer'",
                table_sql(&q2.table),
                if filter.is_empty() { " WHERE" } else { " AND" }
            );
            let r: (Option<i64>, Option<i64>) =
                conn.query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(match r {
                (Some(lo), Some(hi)) => Some((lo, hi)),
                _ => None,
            })
        })
        .await
    }

    async fn key_at(&self, q: &TableQuery, range: &KeyRange, offset: u64) -> Result<Option<Key>> {
        let (q2, range) = (q.clone(), range.clone());
        self.run(&q.table, move |conn| {
            let (sql, params) = select(&q2, &q2.key, &range, &format!(" LIMIT 1 OFFSET {offset}"));
            let mut key = None;
            each_row(conn, &q2, &q2.key, &sql, &params, |row| {
                key = Some(row);
                false
            })?;
            Ok(key)
        })
        .await
    }

    async fn pushdown_digest(&self, q: &TableQuery, spec: &DigestSpec) -> Result<Digests> {
        let (q2, spec) = (q.clone(), spec.clone());
        self.run(&q.table, move |conn| {
            let all: Vec<usize> = (0..q2.columns.len()).collect();
            let (sql, params) = select(&q2, &all, &spec.range, "");
            let mut acc = DigestAccumulator::new(q2.key[0], spec.bucket_width);
            each_row(conn, &q2, &all, &sql, &params, |row| {
                acc.add(&row);
                true
            })?;
            Ok(acc.digests)
        })
        .await
    }

    async fn scan(&self, q: &TableQuery, range: &KeyRange, tx: RowSender) -> Result<u64> {
        let (q2, range) = (q.clone(), range.clone());
        self.run(&q.table, move |conn| {
            let all: Vec<usize> = (0..q2.columns.len()).collect();
            let (sql, params) = select(&q2, &all, &range, "");
            let mut batch = Vec::with_capacity(ROW_BATCH);
            let mut open = true;
            let n = each_row(conn, &q2, &all, &sql, &params, |row| {
                batch.push(row);
                if batch.len() >= ROW_BATCH {
                    open = tx.blocking_send(std::mem::take(&mut batch)).is_ok();
                }
                open
            })?;
            if open && !batch.is_empty() {
                let _ = tx.blocking_send(batch);
            }
            Ok(n)
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        let t = TableRef {
            schema: None,
            name: "-".into(),
        };
        self.run(&t, |conn| {
            Ok(
                conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                    r.get::<_, i64>(0)
                })?,
            )
        })
        .await
        .map(|_| ())
    }

    async fn cancel_all(&self) {
        for handle in self.pool.in_use() {
            handle.interrupt();
        }
    }
}

/// The logical type of a declared type, following SQLite's affinity rules, with the
/// common temporal, boolean, uuid and json spellings recognized first.
fn logical_type(decl: &str) -> Option<LogicalType> {
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
fn decode(v: ValueRef<'_>, t: LogicalType) -> Value {
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
