//! SQL Server and Azure SQL Database (tiberius, TLS through rustls).
//!
//! Connections come from the URL
//! `mssql://user@host[:port]/database?encrypt=true|false|strict&trust_server_certificate=…`
//! (see [`ConnectOptions`] for every parameter): SQL authentication with the password
//! from the config, or an Azure AD access token read from an environment variable or a
//! file at every new connection (so that a token refreshed outside driftwatch is picked
//! up); named instances through SQL Browser; `application_intent=readonly` routes to a
//! readable secondary. Each session is set up once, when it connects:
//!
//! - `TEXTSIZE 2147483647`: large values (varchar(max), nvarchar(max), varbinary(max))
//!   arrive whole, never cut at a client's default of 4 KB;
//! - `DEADLOCK_PRIORITY LOW`: in a deadlock with the application, driftwatch loses;
//! - `LOCK_TIMEOUT`: a digest waits at most the statement timeout for a lock;
//! - `ARITHABORT`, `CONCAT_NULL_YIELDS_NULL`, `ANSI_*` on: the settings indexed views and
//!   computed-column indexes need, and those SSMS uses, so plans are shared with them.
//!
//! SQL Server has no read-only session for a primary replica, so "never write" rests on
//! what is sent: only SELECTs that driftwatch builds, values as bound parameters cast to
//! their column's type (so that an index seek stays possible), and a configured filter
//! that must be one expression (see [`check_filter`]). docs/engines/sqlserver.md recommends a login with
//! SELECT permission only (db_datareader), which makes it hold whatever is sent.
//!
//! Statements are cancelled the TDS way: an attention packet on the connection
//! (tiberius' `cancel_query`), on shutdown or past the statement timeout; the connection
//! is then dropped, not reused.
//!
//! Pushdown digests hash, per row, `HASHBYTES('SHA2_256', p1 + '#' + p2 …)` where each
//! column's part is a canonical text of its value built with explicit CONVERT styles, so
//! that it depends neither on the session's language and date format nor on the declared
//! precision (see [`hashed_col`]); text and binary values of up to 255 characters are
//! spelled as themselves behind their length, longer ones as their SHA-256, so that a row
//! of short values costs one HASHBYTES. The first two 8-byte words of each row's hash are
//! summed per bucket as DECIMAL(38,0), which cannot overflow, and folded into one 128-bit
//! sum. CHECKSUM and BINARY_CHECKSUM are never used: they collide.
//!
//! Type mapping (see docs/engines/sqlserver.md, Types): bit → boolean; tinyint, smallint, int, bigint →
//! integer; decimal, numeric, money, smallmoney → decimal (money read as decimal(19,4),
//! exactly); real, float → float (real widened exactly); char, varchar, nchar, nvarchar,
//! text, ntext, sysname → text (char(n) with its padding, as SQL Server stores it);
//! binary, varbinary, image → bytes; uniqueidentifier → uuid (RFC 4122 byte order);
//! date → date; time(n) → time; datetime2(n), datetime, smalldatetime → timestamp
//! (datetime as the milliseconds SQL Server shows: .000, .003, .007); datetimeoffset(n) →
//! instant, its offset kept beside it for fix scripts.
//!
//! At every new connection the server's version is read ([`ServerInfo`]): below SQL
//! Server 13.0, and on Babelfish, the pushdown digest cannot run, which introspection
//! reports (`TableSchema::pushdown_unavailable`) so that `auto` streams. Not compared, with a warning, as Data Sync does: xml, sql_variant, geography,
//! geometry, hierarchyid, rowversion/timestamp, and CLR types.
//!
//! Must not: write, or interpolate into SQL anything but quoted identifiers, numbers the
//! planner chose, column types read from sys.types, and the checked filter.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use tiberius::{Client, ColumnData, Query, SqlBrowser};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};
use tokio_util::sync::CancellationToken;

mod decode;
mod dialect;
mod introspect;
mod options;
#[cfg(test)]
mod pushdown_text;
mod statements;

use super::pool::{Lease, Pool};
use super::{
    insert_words, Batch, DigestSpec, Digests, EncodedSender, Engine, EngineError, Result, RowBatch,
    RowSender, ROW_BATCH,
};
use crate::config::DatabaseConfig;
use crate::table::{Column, Family, KeyRange, Row, TableQuery, TableRef, TableSchema};
use crate::value::Key;
use decode::Decoder;
pub use dialect::quote_ident;
pub(crate) use dialect::TsqlScript;
pub use introspect::{choose_key, fraction_digits, logical_type, spell_type};
pub use options::ConnectOptions;
pub use statements::{check_filter, columns_statement, keys_statement, Statement, Statements};

/// An idle connection older than this is pinged before it is used again.
const IDLE_PING: Duration = Duration::from_secs(60);
/// How long a cancelled statement may take to acknowledge its attention packet.
const CANCEL_WAIT: Duration = Duration::from_secs(5);
/// Days from 0001-01-01 (SQL Server's `date` origin) to 1970-01-01.
const DAYS_0001_TO_1970: i64 = 719_162;
/// Days from 1900-01-01 (`datetime`'s origin) to 1970-01-01.
const DAYS_1900_TO_1970: i64 = 25_567;

type Conn = Client<Compat<TcpStream>>;

pub(crate) struct Mssql {
    name: String,
    options: ConnectOptions,
    statement_timeout: Duration,
    /// What the server said about itself at the last connect (a failover may change it).
    server: std::sync::Mutex<Option<ServerInfo>>,
    /// Idle connections, and the cancel tokens of those in use (shutdown).
    pool: Pool<Conn, CancellationToken>,
}

/// What a server says about itself when driftwatch connects: its version decides whether
/// the pushdown digest can run there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerInfo {
    /// The major version: 13 is SQL Server 2016 (ProductMajorVersion, or the top byte of
    /// @@MICROSOFTVERSION where SERVERPROPERTY does not know it).
    pub major: Option<i32>,
    /// SERVERPROPERTY('EngineEdition'): 5 is Azure SQL Database and 8 Azure SQL Managed
    /// Instance, which report 12 as their major version whatever engine they run.
    pub edition: Option<i32>,
    /// The first line of @@VERSION.
    pub version: String,
    /// Babelfish for PostgreSQL (or for Aurora PostgreSQL), which speaks TDS and T-SQL.
    pub babelfish: bool,
}

impl ServerInfo {
    pub const STATEMENT: &'static str =
        "SELECT COALESCE(CAST(SERVERPROPERTY('ProductMajorVersion') AS int), \
         @@MICROSOFTVERSION / 16777216), CAST(SERVERPROPERTY('EngineEdition') AS int), \
         CAST(@@VERSION AS nvarchar(4000))";

    pub fn new(major: Option<i32>, edition: Option<i32>, version: &str) -> ServerInfo {
        ServerInfo {
            major,
            edition,
            version: version.lines().next().unwrap_or("").trim().to_string(),
            babelfish: version.contains("Babelfish"),
        }
    }

    /// Why the pushdown digest cannot run on this server, when it cannot.
    pub fn pushdown_unavailable(&self) -> Option<String> {
        if self.babelfish {
            // Its CONVERT has no binary style 2, and SUBSTRING over varbinary gives text.
            return Some(
                "it is Babelfish (@@VERSION), which cannot run the pushdown digest's T-SQL".into(),
            );
        }
        match (self.major, self.edition) {
            // Azure's engine is always the current one.
            (_, Some(5 | 8)) => None,
            // HASHBYTES takes at most 8,000 bytes before SQL Server 2016.
            (Some(major), _) if major < 13 => Some(format!(
                "it reports SQL Server version {major}, and the pushdown digest needs 13.0 (SQL Server 2016) or later"
            )),
            _ => None,
        }
    }
}

impl Mssql {
    pub fn new(name: &str, db: &DatabaseConfig) -> Result<Mssql> {
        let options = ConnectOptions::parse(&db.url, db.password.as_deref()).map_err(|m| {
            EngineError::Config {
                database: name.to_string(),
                message: m,
            }
        })?;
        // tiberius uses the process's rustls provider when there is one: ring, as for
        // the other engines. (Already installed by another engine is fine.)
        let _ = rustls::crypto::ring::default_provider().install_default();
        Ok(Mssql {
            name: name.to_string(),
            options,
            statement_timeout: db.statement_timeout,
            server: std::sync::Mutex::new(None),
            pool: Pool::new(),
        })
    }

    fn connect_err(&self, message: String) -> EngineError {
        EngineError::Connect {
            database: self.name.clone(),
            message,
        }
    }

    /// A new connection, its session set up (see the module's documentation).
    async fn connect(&self) -> Result<Conn> {
        let mut config = self
            .options
            .tiberius_config(self.statement_timeout)
            .map_err(|m| self.connect_err(m))?;
        // Azure SQL's gateway may redirect a login to the node holding the database.
        let mut redirects = 0;
        let mut conn = loop {
            let tcp = TcpStream::connect_named(&config).await.map_err(|e| {
                self.connect_err(format!("{}: {}", config.get_addr(), error_text(&e)))
            })?;
            let _ = tcp.set_nodelay(true);
            match Client::connect(config.clone(), tcp.compat_write()).await {
                Ok(c) => break c,
                Err(tiberius::error::Error::Routing { host, port }) if redirects < 2 => {
                    redirects += 1;
                    config.host(&host);
                    config.port(port);
                }
                Err(e) => return Err(self.connect_err(error_text(&e))),
            }
        };
        let lock_ms = self.statement_timeout.as_millis().min(i32::MAX as u128);
        let setup = format!(
            "SET TEXTSIZE 2147483647; SET DEADLOCK_PRIORITY LOW; SET LOCK_TIMEOUT {lock_ms}; \
             SET ARITHABORT ON; SET CONCAT_NULL_YIELDS_NULL ON; SET ANSI_NULLS ON; \
             SET ANSI_PADDING ON; SET ANSI_WARNINGS ON; SET QUOTED_IDENTIFIER ON; \
             SET NUMERIC_ROUNDABORT OFF"
        );
        conn.simple_query(setup)
            .await
            .map_err(|e| self.connect_err(error_text(&e)))?
            .into_results()
            .await
            .map_err(|e| self.connect_err(error_text(&e)))?;
        let info = conn
            .simple_query(ServerInfo::STATEMENT)
            .await
            .map_err(|e| self.connect_err(error_text(&e)))?
            .into_row()
            .await
            .map_err(|e| self.connect_err(error_text(&e)))?
            .map(|r| {
                let int = |i| r.try_get::<i32, _>(i).ok().flatten();
                let version = r.try_get::<&str, _>(2).ok().flatten().unwrap_or("");
                ServerInfo::new(int(0), int(1), version)
            })
            .unwrap_or_default();
        let mut known = self.server.lock().unwrap_or_else(|p| p.into_inner());
        if known.as_ref() != Some(&info) {
            match info.pushdown_unavailable() {
                Some(why) => {
                    tracing::info!(database = %self.name, server = %info.version, "strategy auto uses streamed digests on this database, as {why}")
                }
                None => tracing::debug!(database = %self.name, server = %info.version, "connected"),
            }
            *known = Some(info);
        }
        Ok(conn)
    }

    /// A connection, and the token that cancels its statement.
    async fn session(&self) -> Result<(Session<'_>, CancellationToken)> {
        let conn = match self.pool.idle() {
            Some((c, idle)) if idle < IDLE_PING => c,
            // The server may have closed it since (a failover, a restart).
            Some((mut c, _)) => match ping(&mut c).await {
                Ok(()) => c,
                Err(_) => self.connect().await?,
            },
            None => self.connect().await?,
        };
        let cancel = CancellationToken::new();
        Ok((self.pool.lease(conn, cancel.clone()), cancel))
    }

    fn query_err(&self, table: &TableRef, e: tiberius::error::Error) -> EngineError {
        match classify(&e) {
            Failure::TableNotFound => EngineError::TableNotFound {
                database: self.name.clone(),
                table: table.to_string(),
            },
            Failure::Timeout => self.timeout_err(table),
            Failure::Query => EngineError::Query {
                database: self.name.clone(),
                table: table.to_string(),
                message: error_text(&e),
            },
            Failure::Connection => self.connect_err(error_text(&e)),
        }
    }

    fn timeout_err(&self, table: &TableRef) -> EngineError {
        EngineError::Timeout {
            database: self.name.clone(),
            table: table.to_string(),
            limit: self.statement_timeout,
        }
    }

    fn decode_err(&self, table: &TableRef, column: &str, db_type: &str, m: String) -> EngineError {
        EngineError::Decode {
            database: self.name.clone(),
            table: table.to_string(),
            column: column.to_string(),
            db_type: db_type.to_string(),
            message: m,
        }
    }

    /// Runs a statement, adding each row's values to a batch and sending the batch to `tx`
    /// once it holds `limit` rows; stops early, without error, when the receiver is gone.
    /// The statement ends within the statement timeout or on shutdown, cancelled with an
    /// attention packet.
    async fn rows<B: Batch>(
        &self,
        table: &TableRef,
        stmt: &Statement,
        tx: &tokio::sync::mpsc::Sender<B>,
        limit: usize,
        mut add: impl FnMut(&mut B, tiberius::Row) -> Result<()>,
    ) -> Result<u64> {
        let (mut s, cancel) = self.session().await?;
        let mut n = 0u64;
        let mut batch = B::default();
        let deadline = tokio::time::sleep(self.statement_timeout);
        tokio::pin!(deadline);
        // Ok(true): completed; Ok(false): the receiver left; Err: failed.
        let outcome: Result<bool> = {
            let mut query = Query::new(stmt.text.as_str());
            for p in &stmt.params {
                query.bind(p.clone());
            }
            let run = async {
                let mut stream = query
                    .query(s.get_mut())
                    .await
                    .map_err(|e| self.query_err(table, e))?
                    .into_row_stream();
                while let Some(row) = stream.next().await {
                    let row = row.map_err(|e| self.query_err(table, e))?;
                    add(&mut batch, row)?;
                    n += 1;
                    if batch.rows() >= limit && tx.send(std::mem::take(&mut batch)).await.is_err() {
                        return Ok(false);
                    }
                }
                Ok(true)
            };
            tokio::select! {
                r = run => r,
                () = &mut deadline => Err(self.timeout_err(table)),
                () = cancel.cancelled() => Err(EngineError::Query {
                    database: self.name.clone(),
                    table: table.to_string(),
                    message: "statement cancelled (shutdown)".into(),
                }),
            }
        };
        match outcome {
            Ok(true) => {
                s.release();
                if batch.rows() > 0 {
                    let _ = tx.send(batch).await;
                }
                Ok(n)
            }
            other => {
                // The rest of the result is still coming: stop the server's work, and drop
                // the connection, whose stream is out of step.
                let mut conn = s.take();
                let _ = tokio::time::timeout(CANCEL_WAIT, conn.cancel_query()).await;
                s.discard();
                other.map(|_| n)
            }
        }
    }

    /// The rows of `range`, decoded, sent to `tx` in batches: in key order when `ordered`.
    async fn range_rows<B: RowBatch>(
        &self,
        q: &TableQuery,
        range: &KeyRange,
        ordered: bool,
        tx: &tokio::sync::mpsc::Sender<B>,
    ) -> Result<u64> {
        let stmt = self.statements(q)?.scan(range, ordered);
        let decoders: Vec<Decoder> = stmt
            .columns
            .iter()
            .map(|&i| Decoder::new(&q.columns[i]))
            .collect();
        let key0 = q.key[0];
        self.rows(&q.table, &stmt, tx, B::LIMIT, |batch: &mut B, row| {
            batch.push_decoded(self.decode_row(q, &decoders, row)?, key0);
            Ok(())
        })
        .await
    }

    fn decode_row(&self, q: &TableQuery, decoders: &[Decoder], row: tiberius::Row) -> Result<Row> {
        super::decode_row(&self.name, q, decoders, row.into_iter())
    }

    /// All rows of a small result, undecoded.
    async fn fetch(&self, table: &TableRef, stmt: &Statement) -> Result<Vec<tiberius::Row>> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<tiberius::Row>>(1);
        let collect = async move {
            let mut out = Vec::new();
            while let Some(b) = rx.recv().await {
                out.extend(b);
            }
            out
        };
        let run = async move {
            self.rows(
                table,
                stmt,
                &tx,
                ROW_BATCH,
                |b: &mut Vec<tiberius::Row>, r| {
                    b.push(r);
                    Ok(())
                },
            )
            .await
        };
        let (n, out) = tokio::join!(run, collect);
        n?;
        Ok(out)
    }
}

async fn ping(c: &mut Conn) -> tiberius::Result<()> {
    c.simple_query("SELECT 1").await?.into_results().await?;
    Ok(())
}

/// What a failed statement says: about its table, its time limit, or the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    TableNotFound,
    /// Past the statement timeout: the database answers (its `up` stays 1).
    Timeout,
    Query,
    Connection,
}

pub fn classify(e: &tiberius::error::Error) -> Failure {
    use tiberius::error::{Error, IoErrorKind};
    match (e.code(), e) {
        (Some(code), _) => server_failure(code),
        // tiberius' command timeout: the server said nothing for the statement timeout.
        (
            None,
            Error::Io {
                kind: IoErrorKind::TimedOut,
                ..
            },
        ) => Failure::Timeout,
        (None, _) => Failure::Connection,
    }
}

/// A server error, by its number.
pub fn server_failure(code: u32) -> Failure {
    match code {
        // Invalid object name.
        208 => Failure::TableNotFound,
        // A lock wait past LOCK_TIMEOUT, which each session sets to the statement timeout.
        1222 => Failure::Timeout,
        _ => Failure::Query,
    }
}

fn error_text(e: &tiberius::error::Error) -> String {
    match e {
        tiberius::error::Error::Server(s) => {
            format!("{} (class {}): {}", s.code(), s.class(), s.message())
        }
        other => other.to_string(),
    }
}

/// A connection in use: back to the pool only when its statement completed.
type Session<'a> = Lease<'a, Conn, CancellationToken>;

// ---- SQL -------------------------------------------------------------------------------

// ---- Engine ----------------------------------------------------------------------------

impl Mssql {
    fn statements<'a>(&self, q: &'a TableQuery) -> Result<Statements<'a>> {
        Statements::new(q).map_err(|m| EngineError::Config {
            database: self.name.clone(),
            message: format!("table {}: {m}", q.table),
        })
    }
}

#[async_trait]
impl Engine for Mssql {
    fn family(&self) -> Family {
        Family::Mssql
    }

    async fn introspect(&self, table: &TableRef) -> Result<TableSchema> {
        let text = |r: &tiberius::Row, i: usize| -> String {
            r.try_get::<&str, _>(i)
                .ok()
                .flatten()
                .unwrap_or_default()
                .to_string()
        };
        let rows = self.fetch(table, &columns_statement(table)).await?;
        if rows.is_empty() {
            return Err(EngineError::TableNotFound {
                database: self.name.clone(),
                table: table.to_string(),
            });
        }
        let columns = rows
            .iter()
            .map(|r| {
                let base = text(r, 1);
                let max_length = r.try_get::<i16, _>(3).ok().flatten().unwrap_or(0);
                let precision = r.try_get::<u8, _>(4).ok().flatten().unwrap_or(0);
                let scale = r.try_get::<u8, _>(5).ok().flatten().unwrap_or(0);
                let shown = text(r, 2);
                if shown != base {
                    // An alias type is read, cast and compared as its base type.
                    tracing::debug!(table = %table, column = %text(r, 0), alias = %shown, base = %base, "alias type");
                }
                Column {
                    name: text(r, 0),
                    logical: logical_type(&base),
                    collation: Some(text(r, 6)).filter(|c| !c.is_empty()),
                    identity: r.try_get::<bool, _>(7).ok().flatten().unwrap_or(false),
                    fraction_digits: fraction_digits(&base, scale),
                    db_type: spell_type(&base, max_length, precision, scale),
                    nullable: r.try_get::<bool, _>(8).ok().flatten().unwrap_or(true),
                }
            })
            .collect();
        let keys = self.fetch(table, &keys_statement(table)).await?;
        let keys: Vec<(i32, bool, String, bool)> = keys
            .iter()
            .map(|r| {
                (
                    r.try_get::<i32, _>(0).ok().flatten().unwrap_or(0),
                    r.try_get::<bool, _>(1).ok().flatten().unwrap_or(false),
                    text(r, 2),
                    r.try_get::<bool, _>(3).ok().flatten().unwrap_or(true),
                )
            })
            .collect();
        let server = self.server.lock().unwrap_or_else(|p| p.into_inner());
        Ok(TableSchema {
            columns,
            primary_key: choose_key(&keys),
            pushdown_unavailable: server.as_ref().and_then(ServerInfo::pushdown_unavailable),
        })
    }

    async fn lead_bounds(&self, q: &TableQuery) -> Result<Option<(i64, i64)>> {
        let stmt = self.statements(q)?.lead_bounds();
        let rows = self.fetch(&q.table, &stmt).await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let get = |i| {
            row.try_get::<i64, _>(i)
                .map_err(|e| self.query_err(&q.table, e))
        };
        Ok(match (get(0)?, get(1)?) {
            (Some(lo), Some(hi)) => Some((lo, hi)),
            _ => None,
        })
    }

    async fn key_at(&self, q: &TableQuery, range: &KeyRange, offset: u64) -> Result<Option<Key>> {
        let stmt = self.statements(q)?.key_at(range, offset);
        let decoders: Vec<Decoder> = q.key.iter().map(|&i| Decoder::new(&q.columns[i])).collect();
        let rows = self.fetch(&q.table, &stmt).await?;
        rows.into_iter()
            .next()
            .map(|r| self.decode_row(q, &decoders, r))
            .transpose()
    }

    async fn pushdown_digest(&self, q: &TableQuery, spec: &DigestSpec) -> Result<Digests> {
        let stmt = self.statements(q)?.digest(spec);
        let rows = self.fetch(&q.table, &stmt).await?;
        let bad = |what: &str| {
            self.decode_err(
                &q.table,
                "-",
                "digest",
                format!("unexpected {what} in a digest row"),
            )
        };
        let mut out = Digests::new();
        for r in rows {
            let mut cells = r.into_iter();
            let mut next = |what: &str| -> Result<i128> {
                match cells.next() {
                    Some(ColumnData::I64(Some(v))) => Ok(v as i128),
                    Some(ColumnData::Numeric(Some(n))) if n.scale() == 0 => Ok(n.value()),
                    _ => Err(bad(what)),
                }
            };
            let bucket = i64::try_from(next("bucket")?).map_err(|_| bad("bucket"))?;
            let count = u64::try_from(next("count")?).map_err(|_| bad("count"))?;
            // The words are signed: summed as such they still fold into a wrapping sum
            // of 128-bit values (two's complement), which is all a digest needs.
            let (hi, lo) = (next("sum")?, next("sum")?);
            insert_words(&mut out, bucket, count, hi, lo);
        }
        Ok(out)
    }

    async fn scan_encoded(
        &self,
        q: &TableQuery,
        range: &KeyRange,
        tx: EncodedSender,
    ) -> Result<u64> {
        self.range_rows(q, range, false, &tx).await
    }

    async fn scan(&self, q: &TableQuery, range: &KeyRange, tx: RowSender) -> Result<u64> {
        self.range_rows(q, range, true, &tx).await
    }

    async fn ping(&self) -> Result<()> {
        let t = TableRef {
            schema: None,
            name: "-".into(),
        };
        let stmt = Statement {
            text: "SELECT 1".into(),
            params: vec![],
            columns: vec![],
        };
        self.fetch(&t, &stmt).await.map(|_| ())
    }

    async fn cancel_all(&self) {
        for token in self.pool.in_use() {
            token.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::dialect::param;
    use super::options::Credential;
    use super::*;
    use crate::engine::FieldDecoder;
    use crate::table::QueryColumn;
    use crate::value::{Decimal, LogicalType, Value};
    use tiberius::numeric::Numeric;
    use tiberius::time::{Date, DateTime, DateTime2, DateTimeOffset, SmallDateTime, Time};
    use tiberius::EncryptionLevel;

    fn decode(logical: LogicalType, v: ColumnData<'static>) -> Value {
        Decoder::new(&QueryColumn::new("c", "-", logical))
            .decode(v)
            .unwrap()
    }

    fn text(v: Value) -> String {
        v.to_string()
    }

    #[test]
    fn every_type_decodes_exactly() {
        use LogicalType as L;
        assert_eq!(
            decode(L::Bool, ColumnData::Bit(Some(true))),
            Value::Bool(true)
        );
        assert_eq!(decode(L::Int, ColumnData::U8(Some(255))), Value::Int(255));
        assert_eq!(
            decode(L::Int, ColumnData::I16(Some(-32768))),
            Value::Int(-32768)
        );
        assert_eq!(
            decode(L::Int, ColumnData::I64(Some(i64::MIN))),
            Value::Int(i64::MIN as i128)
        );
        // decimal(38,10) at full precision, and scale-only differences compare equal.
        let big = Numeric::new_with_scale(-12_345_678_901_234_567_890_123_456_789_012_345_678, 10);
        assert_eq!(
            text(decode(L::Decimal, ColumnData::Numeric(Some(big)))),
            "-1234567890123456789012345678.9012345678"
        );
        assert_eq!(
            decode(
                L::Decimal,
                ColumnData::Numeric(Some(Numeric::new_with_scale(1100, 3)))
            ),
            Value::Decimal(Decimal::parse("1.1").unwrap())
        );
        // money, as the engine selects it: decimal(19,4).
        assert_eq!(
            text(decode(
                L::Decimal,
                ColumnData::Numeric(Some(Numeric::new_with_scale(i64::MAX as i128, 4)))
            )),
            "922337203685477.5807"
        );
        assert_eq!(
            decode(L::Float, ColumnData::F32(Some(0.1))),
            Value::float(0.1f32 as f64)
        );
        assert_eq!(
            decode(L::Float, ColumnData::F64(Some(-0.0))),
            Value::float(0.0)
        );
        assert_eq!(
            decode(L::Text, ColumnData::String(Some("ab  é😀".into()))),
            Value::Text("ab  é😀".into())
        );
        assert_eq!(
            decode(L::Bytes, ColumnData::Binary(Some(vec![0u8, 255].into()))),
            Value::Bytes(vec![0, 255])
        );
        let u = tiberius::Uuid::parse_str("6f9619ff-8b86-d011-b42d-00c04fc964ff").unwrap();
        assert_eq!(
            text(decode(L::Uuid, ColumnData::Guid(Some(u)))),
            "6f9619ff-8b86-d011-b42d-00c04fc964ff"
        );
        // date: days since 0001-01-01.
        assert_eq!(
            text(decode(L::Date, ColumnData::Date(Some(Date::new(0))))),
            "0001-01-01"
        );
        assert_eq!(
            text(decode(
                L::Date,
                ColumnData::Date(Some(Date::new(3_652_058)))
            )),
            "9999-12-31"
        );
        // time(7) and time(0).
        assert_eq!(
            decode(
                L::Time,
                ColumnData::Time(Some(Time::new(863_999_999_999, 7)))
            ),
            Value::Time(86_399_999_999_900)
        );
        assert_eq!(
            decode(L::Time, ColumnData::Time(Some(Time::new(3723, 0)))),
            Value::Time(3_723_000_000_000)
        );
        // datetime: 1/300 s ticks, shown as .000, .003, .007.
        for (ticks, shown) in [
            (0, "1900-01-01 00:00:00"),
            (1, "1900-01-01 00:00:00.003"),
            (2, "1900-01-01 00:00:00.007"),
            (3, "1900-01-01 00:00:00.01"),
            (299, "1900-01-01 00:00:00.997"),
        ] {
            let v = decode(
                L::Timestamp,
                ColumnData::DateTime(Some(DateTime::new(0, ticks))),
            );
            assert_eq!(text(v), shown, "ticks {ticks}");
        }
        assert_eq!(
            text(decode(
                L::Timestamp,
                ColumnData::DateTime(Some(DateTime::new(-53_690, 0)))
            )),
            "1753-01-01 00:00:00"
        );
        assert_eq!(
            text(decode(
                L::Timestamp,
                ColumnData::SmallDateTime(Some(SmallDateTime::new(1, 61)))
            )),
            "1900-01-02 01:01:00"
        );
        let dt2 = DateTime2::new(Date::new(739_050), Time::new(72_000_000_001, 7));
        assert_eq!(
            text(decode(L::Timestamp, ColumnData::DateTime2(Some(dt2)))),
            "2024-06-14 02:00:00.0000001"
        );
        // datetimeoffset: the wire holds UTC; the offset does not change the instant.
        let at = |offset| {
            decode(
                L::TimestampTz,
                ColumnData::DateTimeOffset(Some(DateTimeOffset::new(dt2, offset))),
            )
        };
        assert_eq!(at(120), at(-300));
        assert_eq!(text(at(120)), "2024-06-14 04:00:00.0000001+02:00");
        assert_eq!(text(at(0)), "2024-06-14 02:00:00.0000001+00");
        assert_eq!(decode(L::Int, ColumnData::I32(None)), Value::Null);
    }

    /// A datetimeoffset keeps its offset from the wire to a fix script, and the instant
    /// alone decides equality and the digest.
    #[test]
    fn a_datetimeoffset_is_scripted_with_its_own_offset() {
        use crate::script::Dialect;
        use sqlparser::ast::{Expr, SetExpr, Statement as Ast, Value as Lit};
        // 2024-06-14 02:00:00.1234567 UTC, written at +09:45 (585 minutes).
        let utc = DateTime2::new(Date::new(739_050), Time::new(72_001_234_567, 7));
        let v = decode(
            LogicalType::TimestampTz,
            ColumnData::DateTimeOffset(Some(DateTimeOffset::new(utc, 585))),
        );
        let col = QueryColumn {
            fraction_digits: Some(7),
            ..QueryColumn::new("Moment", "datetimeoffset(7)", LogicalType::TimestampTz)
        };
        let lit = Dialect::Tsql.literal(&col, &v).unwrap();
        let sql = Dialect::Tsql.insert("[dbo].[t]", "[Moment]", &lit, "", false, false);
        let ast = sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::MsSqlDialect {}, &sql)
            .unwrap_or_else(|e| panic!("{e}: {sql}"));
        let Ast::Insert(insert) = &ast[0] else {
            panic!("{sql}")
        };
        let SetExpr::Values(values) = &*insert.source.as_ref().unwrap().body else {
            panic!("{sql}")
        };
        let Expr::Value(written) = &values.rows[0][0] else {
            panic!("{sql}")
        };
        assert_eq!(
            written.value,
            Lit::SingleQuotedString("2024-06-14T11:45:00.1234567+09:45".into()),
            "{sql}"
        );
        // As a bound parameter too: the same instant, the same offset.
        let ColumnData::DateTimeOffset(Some(p)) = param(&v) else {
            panic!()
        };
        assert_eq!(p.offset(), 585);
        assert_eq!(
            decode(LogicalType::TimestampTz, param(&v)).to_string(),
            v.to_string()
        );
        // Compared and encoded by the instant: equal to the same instant at +00:00.
        let at_utc = decode(
            LogicalType::TimestampTz,
            ColumnData::DateTimeOffset(Some(DateTimeOffset::new(utc, 0))),
        );
        assert_eq!(v, at_utc);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        v.encode(&mut a);
        at_utc.encode(&mut b);
        assert_eq!(a, b);
        assert_eq!(
            Dialect::Tsql.literal(&col, &at_utc).unwrap(),
            "'2024-06-14T02:00:00.1234567+00:00'"
        );
    }

    #[test]
    fn parameters_round_trip_through_the_decoder() {
        use LogicalType as L;
        let (t, _) = crate::value::parse_timestamp("1969-12-31 23:59:59.1234567").unwrap();
        for (logical, v) in [
            (L::Timestamp, Value::Timestamp(t)),
            (L::TimestampTz, Value::instant(t)),
            (L::Date, Value::Date(-719_162)),
            (L::Time, Value::Time(86_399_999_999_900)),
            (
                L::Decimal,
                Value::Decimal(Decimal::parse("-12.340").unwrap()),
            ),
            (L::Decimal, Value::Decimal(Decimal::parse("12e3").unwrap())),
            (
                L::Uuid,
                Value::Uuid(*b"\x12\x34\x56\x78\x9a\xbc\xde\xf0\x01\x02\x03\x04\x05\x06\x07\x08"),
            ),
            (L::Int, Value::Int(i64::MIN as i128)),
        ] {
            assert_eq!(decode(logical, param(&v)), v, "{v}");
        }
    }

    #[test]
    fn encrypt_false_does_not_check_the_certificate_of_the_login() {
        use super::options::CertificateCheck::*;
        let ca = || Ca("/etc/ssl/sql-ca.pem".into());
        for (query, check) in [
            ("encrypt=false", Unchecked),
            ("encrypt=false&trust_server_certificate=true", Unchecked),
            (
                "encrypt=false&trust_server_certificate_ca=/etc/ssl/sql-ca.pem",
                ca(),
            ),
            ("", System),
            ("encrypt=true", System),
            ("encrypt=true&trust_server_certificate=true", Unchecked),
            (
                "encrypt=true&trust_server_certificate_ca=/etc/ssl/sql-ca.pem",
                ca(),
            ),
            ("encrypt=strict", System),
            ("encrypt=strict&trust_server_certificate=true", Unchecked),
            (
                "encrypt=strict&trust_server_certificate_ca=/etc/ssl/sql-ca.pem",
                ca(),
            ),
        ] {
            let url = format!("mssql://u@h/db?{query}");
            let o = ConnectOptions::parse(&url, Some("pw")).unwrap();
            assert_eq!(o.certificate_check(), check, "{query}");
            // tiberius panics on a contradictory trust configuration: none is built.
            o.tiberius_config(Duration::from_secs(1)).unwrap();
        }
    }

    #[test]
    fn a_statement_past_its_timeout_is_a_timeout_not_a_lost_connection() {
        use tiberius::error::{Error, IoErrorKind};
        let io = |kind| Error::Io {
            kind,
            message: "-".into(),
        };
        assert_eq!(classify(&io(IoErrorKind::TimedOut)), Failure::Timeout);
        assert_eq!(
            classify(&io(IoErrorKind::ConnectionReset)),
            Failure::Connection
        );
        assert_eq!(
            classify(&Error::Protocol("bad packet".into())),
            Failure::Connection
        );
        assert_eq!(server_failure(1222), Failure::Timeout);
        assert_eq!(server_failure(208), Failure::TableNotFound);
        assert_eq!(server_failure(8134), Failure::Query);
        let db = DatabaseConfig {
            url: "mssql://u@h/db".into(),
            password: Some("pw".into()),
            max_concurrent_queries: 1,
            max_rows_per_second: 0,
            statement_timeout: Duration::from_secs(90),
            replication: crate::config::Replication::Off,
        };
        let engine = Mssql::new("hub", &db).unwrap();
        let table = TableRef::parse("Sales.Orders");
        let e = engine.query_err(&table, io(IoErrorKind::TimedOut));
        assert_eq!(
            e.to_string(),
            "database hub: table Sales.Orders: statement timeout: ran past the statement_timeout of 1m 30s"
        );
        assert_eq!(e.reason(), "timeout");
        assert!(EngineError::REASONS.contains(&e.reason()));
        // The database answered: not a connection failure, so its `up` stays 1.
        assert!(!e.is_connection());
    }

    #[test]
    fn pushdown_needs_sql_server_2016_and_is_never_tried_on_babelfish() {
        let at = |major, edition, version: &str| {
            ServerInfo::new(major, edition, version).pushdown_unavailable()
        };
        let sql2014 =
            "Microsoft SQL Server 2014 (SP3) (KB4022619) - 12.0.6024.0 (X64) \n\tSep  7 2018";
        let why = at(Some(12), Some(3), sql2014).unwrap();
        assert!(why.contains("version 12") && why.contains("13.0"), "{why}");
        assert!(at(Some(11), Some(2), "Microsoft SQL Server 2012").is_some());
        let sql2016 = "Microsoft SQL Server 2016 (RTM) - 13.0.1601.5";
        assert_eq!(at(Some(13), Some(3), sql2016), None);
        let sql2022 = "Microsoft SQL Server 2022 (RTM) - 16.0.1000.6";
        assert_eq!(at(Some(16), Some(2), sql2022), None);
        // Azure SQL Database and Managed Instance say 12, and run the current engine.
        let azure = "Microsoft SQL Azure (RTM) - 12.0.2000.8";
        assert_eq!(at(Some(12), Some(5), azure), None);
        assert_eq!(at(Some(12), Some(8), azure), None);
        let babelfish = "Babelfish for Aurora PostgreSQL with SQL Server Compatibility - 12.0.2000.8\nOct 22 2023 17:48:32\nCopyright (c) Amazon Web Services\nPostgreSQL 15.4 on x86_64-pc-linux-gnu (Babelfish 3.4.0)";
        let b = ServerInfo::new(Some(12), Some(3), babelfish);
        assert!(b.babelfish);
        assert_eq!(
            b.version,
            "Babelfish for Aurora PostgreSQL with SQL Server Compatibility - 12.0.2000.8"
        );
        assert!(b.pushdown_unavailable().unwrap().contains("Babelfish"));
        // A server that says nothing of its version keeps pushdown.
        assert_eq!(at(None, None, ""), None);
    }

    #[test]
    fn urls_name_every_option_or_fail_clearly() {
        let o = ConnectOptions::parse(
            "mssql://val%40dator@db.example:1433/Sales?encrypt=strict&application_intent=readonly&instance=HUB",
            Some("pw"),
        )
        .unwrap();
        assert_eq!(
            (o.host.as_str(), o.port, o.database.as_str()),
            ("db.example", Some(1433), "Sales")
        );
        assert!(matches!(o.encryption, EncryptionLevel::Strict) && o.readonly);
        assert_eq!(o.instance.as_deref(), Some("HUB"));
        assert!(matches!(&o.credential, Credential::Password { user, .. } if user == "val@dator"));
        let token = ConnectOptions::parse(
            "mssql://db.example/Sales?authentication=access_token&access_token_file=/run/token",
            None,
        )
        .unwrap();
        assert!(matches!(token.credential, Credential::TokenFile(_)));
        for (url, error) in [
            ("mssql://u@h/db", "password_env or password_file"),
            ("mssql://u@h/", "names no database"),
            ("mssql://u:secret@h/db", "not in the URL"),
            ("mssql://u@h/db?encrypt=maybe", "encrypt=\"maybe\""),
            (
                "mssql://u@h/db?colour=blue",
                "unknown URL parameter \"colour\"",
            ),
            (
                "mssql://h/db?authentication=access_token",
                "access_token_env or access_token_file",
            ),
            (
                "mssql://u@h/db?trust_server_certificate=true&trust_server_certificate_ca=/ca.pem",
                "not both",
            ),
        ] {
            let e = ConnectOptions::parse(url, None)
                .err()
                .unwrap_or_else(|| panic!("{url} was accepted"));
            assert!(e.contains(error), "{url}: {e}");
        }
    }
}
