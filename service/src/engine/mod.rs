//! Database engines behind one trait: introspection, key boundaries, chunk digests and
//! rows in a key range, each in the engine's own SQL dialect.
//!
//! An engine only reads. It must never issue a statement that writes, and it must not
//! decide what is compared or how: it answers the questions the `compare` module asks,
//! for the columns and ranges it is given.

pub mod mssql;
pub mod mysql;
pub(crate) mod pool;
pub mod postgres;
pub(crate) mod sql;
pub mod sqlite;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::config::DatabaseConfig;
use crate::dialect::{Dialect, ScriptDialect};
use crate::table::{Family, KeyRange, QueryColumn, Row, TableQuery, TableRef, TableSchema};
use crate::value::{row_hash, EncodedRows, Key, Value};

/// Where a subscriber's applied replication position is read (see `crate::replication`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feed {
    /// PostgreSQL logical replication: the subscription's slot on the publisher.
    PostgresSlot(String),
    /// MySQL or MariaDB replication with global transaction ids.
    Gtid,
}

impl std::fmt::Display for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Feed::PostgresSlot(slot) => write!(f, "replication slot {slot:?}"),
            Feed::Gtid => f.write_str("GTID replication"),
        }
    }
}

/// What to digest: a range, optionally grouped into buckets of `bucket_width` consecutive
/// values of the integer first key column (bucket = floor(k1 / width)).
#[derive(Debug, Clone)]
pub struct DigestSpec {
    pub range: KeyRange,
    pub bucket_width: Option<i64>,
}

/// Row count and an order-independent digest (wrapping sum of per-row hashes) of the rows
/// of one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BucketDigest {
    pub count: u64,
    pub sum: u128,
}

/// Digests add up: the digest of two disjoint sets of rows is the sum of theirs.
impl std::ops::AddAssign for BucketDigest {
    fn add_assign(&mut self, other: BucketDigest) {
        self.count += other.count;
        self.sum = self.sum.wrapping_add(other.sum);
    }
}

/// Per-bucket digests of one range, keyed by bucket number (0 when not bucketed).
pub type Digests = BTreeMap<i64, BucketDigest>;

/// Records a bucket whose digest a database summed as two 64-bit words per row (the
/// words' sums, in any sign, fold into the 128-bit wrapping sum of the rows' hashes).
pub(crate) fn insert_words(out: &mut Digests, bucket: i64, count: u64, hi: i128, lo: i128) {
    if count > 0 {
        let sum = ((hi as u128) << 64).wrapping_add(lo as u128);
        out.insert(bucket, BucketDigest { count, sum });
    }
}

/// In a pushdown digest's row text, a text value of at most this many characters (UTF-16
/// code units on SQL Server) is spelled as itself behind its length, a longer one as a
/// hash of it: a hash per column and row costs the server more than the row's own hash
/// (measured on MySQL: a quarter of a chunk digest's time on a table of short texts), and
/// varchar(255) and shorter, the most common declarations, then need no per-row test.
pub(crate) const INLINE_TEXT: usize = 255;

/// Floor division, as SQL's truncating `/` is not.
pub(crate) fn bucket_of(k1: i64, width: i64) -> i64 {
    k1.div_euclid(width)
}

/// The bucket of a row: floor(k1 / width) for an integer first key column, else 0.
pub(crate) fn row_bucket(row: &[Value], key0: usize, width: Option<i64>) -> i64 {
    match (width, row[key0].as_i64()) {
        (Some(w), Some(k1)) => bucket_of(k1, w),
        _ => 0,
    }
}

/// Folds rows into per-bucket digests the same way on every side and in every engine
/// (the streamed strategy, and SQLite's in-process pushdown).
pub(crate) struct DigestAccumulator {
    key0: usize,
    width: Option<i64>,
    pub digests: Digests,
    buf: Vec<u8>,
}

impl DigestAccumulator {
    pub fn new(key0: usize, width: Option<i64>) -> Self {
        DigestAccumulator {
            key0,
            width,
            digests: Digests::new(),
            buf: Vec::with_capacity(256),
        }
    }

    pub fn add(&mut self, row: &[Value]) {
        let h = row_hash(row, &mut self.buf);
        self.add_hashed(row_bucket(row, self.key0, self.width), h);
    }

    pub fn add_hashed(&mut self, bucket: i64, hash: u128) {
        self.add_digest(
            bucket,
            BucketDigest {
                count: 1,
                sum: hash,
            },
        );
    }

    /// Adds the digest of rows of one bucket, summed already.
    pub fn add_digest(&mut self, bucket: i64, digest: BucketDigest) {
        *self.digests.entry(bucket).or_default() += digest;
    }
}

/// Decodes one column's values from an engine's wire form into the value model.
pub(crate) trait FieldDecoder {
    type Field;

    /// The column decoded, as the query reads and compares it.
    fn column(&self) -> &QueryColumn;

    fn decode(&self, field: Self::Field) -> std::result::Result<Value, String>;
}

/// A row of the wrong width is an error naming the table, not a silently shorter row.
pub(crate) fn field_count(
    database: &str,
    q: &TableQuery,
    expected: usize,
    got: usize,
) -> Result<()> {
    if got == expected {
        return Ok(());
    }
    Err(EngineError::Decode {
        database: database.to_string(),
        table: q.table.to_string(),
        column: "-".into(),
        db_type: "-".into(),
        message: format!("expected {expected} fields, got {got}"),
    })
}

/// A row's fields, one decoder each, every value brought to the type and precision both
/// sides compare it at; an error names the database, table and column.
pub(crate) fn decode_row<D: FieldDecoder>(
    database: &str,
    q: &TableQuery,
    decoders: &[D],
    fields: impl ExactSizeIterator<Item = D::Field>,
) -> Result<Row> {
    let err = |column: &str, db_type: &str, message: String| EngineError::Decode {
        database: database.to_string(),
        table: q.table.to_string(),
        column: column.to_string(),
        db_type: db_type.to_string(),
        message,
    };
    field_count(database, q, decoders.len(), fields.len())?;
    decoders
        .iter()
        .zip(fields)
        .map(|(d, f)| {
            let c = d.column();
            d.decode(f)
                .map(|v| v.coerce(c.compare_as, c.compare_fraction))
                .map_err(|m| err(&c.name, &c.db_type, m))
        })
        .collect()
}

/// Batches of rows travel through a bounded channel, so memory stays bounded whatever
/// the range's size.
pub type RowSender = mpsc::Sender<Vec<Row>>;
pub(crate) const ROW_BATCH: usize = 1024;
pub(crate) use crate::value::ENCODED_BATCH;
pub type EncodedSender = mpsc::Sender<EncodedRows>;

/// What a result fills, batch by batch: decoded rows, canonical encodings, or raw rows.
pub(crate) trait Batch: Default + Send {
    fn rows(&self) -> usize;
}

impl<T: Send> Batch for Vec<T> {
    fn rows(&self) -> usize {
        self.len()
    }
}

impl Batch for EncodedRows {
    fn rows(&self) -> usize {
        self.len()
    }
}

/// A batch that a range's decoded rows fill, as `scan` (the rows) and `scan_encoded`
/// (their canonical encodings) send them; `LIMIT` rows make a batch.
pub(crate) trait RowBatch: Batch {
    const LIMIT: usize;

    fn push_decoded(&mut self, row: Row, key0: usize);
}

impl RowBatch for Vec<Row> {
    const LIMIT: usize = ROW_BATCH;

    fn push_decoded(&mut self, row: Row, _key0: usize) {
        self.push(row);
    }
}

impl RowBatch for EncodedRows {
    const LIMIT: usize = ENCODED_BATCH;

    fn push_decoded(&mut self, row: Row, key0: usize) {
        self.push_row(&row, key0);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("database {database}: cannot connect: {message}")]
    Connect { database: String, message: String },
    #[error("database {database}: table {table} does not exist")]
    TableNotFound { database: String, table: String },
    #[error("database {database}: table {table}: {message}")]
    Query {
        database: String,
        table: String,
        message: String,
    },
    #[error("database {database}: table {table}, column {column}: cannot decode a {db_type} value: {message}")]
    Decode {
        database: String,
        table: String,
        column: String,
        db_type: String,
        message: String,
    },
    #[error("database {database}: {message}")]
    Config { database: String, message: String },
    /// A statement ran past the database's statement_timeout and was cancelled: the
    /// database answers, the table's query is too slow for the limit.
    #[error("database {database}: table {table}: statement timeout: ran past the statement_timeout of {}", humantime::format_duration(*limit))]
    Timeout {
        database: String,
        table: String,
        limit: std::time::Duration,
    },
}

impl EngineError {
    /// Every value of [`EngineError::reason`] (each series exists from the start).
    pub const REASONS: [&'static str; 6] = [
        "connect",
        "table_not_found",
        "query",
        "decode",
        "config",
        "timeout",
    ];

    /// The `reason` label of `driftwatch_errors_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            EngineError::Connect { .. } => "connect",
            EngineError::TableNotFound { .. } => "table_not_found",
            EngineError::Query { .. } => "query",
            EngineError::Decode { .. } => "decode",
            EngineError::Config { .. } => "config",
            EngineError::Timeout { .. } => "timeout",
        }
    }

    /// Whether the database itself failed (as opposed to one table's query).
    pub fn is_connection(&self) -> bool {
        matches!(self, EngineError::Connect { .. })
    }
}

pub type Result<T> = std::result::Result<T, EngineError>;

/// A driver's error and every error it was caused by, `: ` between them, so that a
/// message names the cause a driver wraps (a refused connection under a TLS error).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

#[async_trait]
pub trait Engine: Send + Sync {
    fn family(&self) -> Family;

    /// Columns, types and primary key of a table.
    async fn introspect(&self, table: &TableRef) -> Result<TableSchema>;

    /// Min and max of the integer first key column, or `None` for an empty table.
    async fn lead_bounds(&self, q: &TableQuery) -> Result<Option<(i64, i64)>>;

    /// The key of the row `offset` rows (0-based) into `range` in key order, if any.
    async fn key_at(&self, q: &TableQuery, range: &KeyRange, offset: u64) -> Result<Option<Key>>;

    /// Per-bucket digests computed by the database itself (same family only).
    async fn pushdown_digest(&self, q: &TableQuery, spec: &DigestSpec) -> Result<Digests>;

    /// Streams the rows of `range` in key order, returning how many
    /// were sent. Stops early, without error, when the receiver is dropped.
    async fn scan(&self, q: &TableQuery, range: &KeyRange, tx: RowSender) -> Result<u64>;

    /// Streams the canonical encodings of the rows of `range`, in no particular order
    /// (the streamed digest). This default encodes decoded rows; an engine overrides it
    /// to encode straight from its wire format.
    async fn scan_encoded(
        &self,
        q: &TableQuery,
        range: &KeyRange,
        tx: EncodedSender,
    ) -> Result<u64> {
        let (rows_tx, mut rows_rx) = mpsc::channel::<Vec<Row>>(2);
        let key0 = q.key[0];
        let encode = async move {
            let mut out = EncodedRows::default();
            while let Some(batch) = rows_rx.recv().await {
                for row in &batch {
                    out.push_row(row, key0);
                }
                if out.len() >= ENCODED_BATCH && tx.send(std::mem::take(&mut out)).await.is_err() {
                    return;
                }
            }
            if !out.is_empty() {
                let _ = tx.send(out).await;
            }
        };
        let (n, ()) = tokio::join!(self.scan(q, range, rows_tx), encode);
        n
    }

    /// As a publisher: a replication position at or after every transaction that a read
    /// finished before this call could see; `None` where the engine exposes none.
    async fn replication_position(&self) -> Result<Option<String>> {
        Ok(None)
    }

    /// Whether the replica that `feed` names has applied `position`, waiting at most
    /// `wait` where the server can wait. PostgreSQL answers as the publisher (its slot's
    /// confirmed position), MySQL and MariaDB as the replica.
    async fn position_applied(
        &self,
        _feed: &Feed,
        _position: &str,
        _wait: std::time::Duration,
    ) -> Result<bool> {
        Ok(false)
    }

    /// As a subscriber: the one feed that replicates into this database, if it can be
    /// told unambiguously from what the database shows.
    async fn detect_feed(&self) -> Result<Option<Feed>> {
        Ok(None)
    }

    /// A cheap round trip that proves the database answers.
    async fn ping(&self) -> Result<()>;

    /// Cancels every query in flight (shutdown).
    async fn cancel_all(&self);
}

/// An engine as the registry knows it: its family, the URL prefixes it serves (the first
/// is the one error messages show), how it is built, and the dialect its scripts are
/// written in with its spelling of them.
pub(crate) struct Registered {
    pub family: Family,
    pub schemes: &'static [&'static str],
    pub connect: fn(&str, &DatabaseConfig) -> Result<Arc<dyn Engine>>,
    pub dialect: Dialect,
    pub script: &'static dyn ScriptDialect,
}

/// Every engine, one line each, in the order URLs are matched. Adding an engine is its
/// folder and a line here.
#[rustfmt::skip]
pub(crate) static ENGINES: [Registered; 4] = [
    Registered { family: Family::Postgres, schemes: &["postgres://", "postgresql://"], connect: |n, c| Ok(Arc::new(postgres::Postgres::new(n, c)?)), dialect: Dialect::Postgres, script: &postgres::PostgresScript },
    Registered { family: Family::Sqlite, schemes: &["sqlite://", "sqlite:"], connect: |n, c| Ok(Arc::new(sqlite::Sqlite::new(n, c)?)), dialect: Dialect::Sqlite, script: &sqlite::SqliteScript },
    Registered { family: Family::Mysql, schemes: &["mysql://"], connect: |n, c| Ok(Arc::new(mysql::Mysql::new(n, c)?)), dialect: Dialect::Mysql, script: &mysql::MysqlScript },
    Registered { family: Family::Mssql, schemes: &["mssql://", "sqlserver://"], connect: |n, c| Ok(Arc::new(mssql::Mssql::new(n, c)?)), dialect: Dialect::Tsql, script: &mssql::TsqlScript },
];

/// Builds the engine a database's URL names.
pub fn connect(name: &str, config: &DatabaseConfig) -> Result<Arc<dyn Engine>> {
    let url = config.url.as_str();
    match ENGINES
        .iter()
        .find(|e| e.schemes.iter().any(|s| url.starts_with(s)))
    {
        Some(e) => (e.connect)(name, config),
        None => {
            let scheme = url.split(':').next().unwrap_or(url);
            let supported: Vec<&str> = ENGINES.iter().map(|e| e.schemes[0]).collect();
            Err(EngineError::Config {
                database: name.to_string(),
                message: format!(
                    "unsupported URL scheme {scheme:?} (supported: {})",
                    supported.join(", ")
                ),
            })
        }
    }
}

/// The registry's side of [`Dialect`]: which engine writes each dialect.
impl Dialect {
    /// This dialect's spelling of scripts, implemented by its engine.
    pub fn spelling(self) -> &'static dyn ScriptDialect {
        registered(|e| e.dialect == self).script
    }

    /// The dialect of an engine family.
    pub fn of(family: Family) -> Dialect {
        registered(|e| e.family == family).dialect
    }
}

fn registered(which: impl Fn(&Registered) -> bool) -> &'static Registered {
    ENGINES
        .iter()
        .find(|e| which(e))
        .expect("every family and dialect has its line in ENGINES")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_and_dialect_is_registered_once() {
        for d in Dialect::ALL {
            assert_eq!(ENGINES.iter().filter(|e| e.dialect == d).count(), 1, "{d}");
        }
        for f in [
            Family::Postgres,
            Family::Sqlite,
            Family::Mysql,
            Family::Mssql,
        ] {
            assert_eq!(ENGINES.iter().filter(|e| e.family == f).count(), 1, "{f:?}");
            assert_eq!(
                Dialect::of(f).spelling().quote_ident("a"),
                Dialect::of(f).ident("a")
            );
        }
    }
}
