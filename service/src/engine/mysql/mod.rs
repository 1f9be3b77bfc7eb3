//! MySQL and MariaDB (mysql_async, TLS through rustls).
//!
//! Connections come from the URL `mysql://user@host:port/database` (TLS with mysql_async's
//! URL parameters `require_ssl`, `verify_ca`, `verify_identity`), the password from the
//! config. Each session is set up once, when it connects, so that no result depends on a
//! server's defaults:
//!
//! - `SET SESSION TRANSACTION READ ONLY`: every transaction refuses to write;
//! - `time_zone = '+00:00'`: `timestamp` values are read in UTC;
//! - `NAMES utf8mb4`: text arrives as UTF-8, whatever the column's character set;
//! - `sql_mode`: the server's, less `PAD_CHAR_TO_FULL_LENGTH` (char(n) values are read as
//!   stored, without their padding, on every side). The rest of the server's mode is kept,
//!   so that a table's `filter` reads as its users write it; every statement driftwatch
//!   builds reads the same in any mode (identifiers in backticks, bound parameters, no
//!   string literal with a backslash or a double quote);
//! - the statement timeout: `max_statement_time` (seconds) on MariaDB,
//!   `max_execution_time` (milliseconds, SELECTs) on MySQL.
//!
//! Rows are read through prepared statements, so values arrive in the binary protocol,
//! typed (integers, floats, dates and times as numbers; decimals as their exact text), and
//! are decoded into the value model exactly.
//!
//! Pushdown digests hash, per row, `SHA2(CONCAT_WS('#', part, ...), 256)` where each column's
//! part is a canonical text of its value (`~` for NULL, on nullable columns): integers as
//! numbers (bit and year through `+ 0`), floats widened to double with -0 as 0; decimals
//! and temporal values (in UTC) as the server spells them where both sides declare the
//! same type (a `timestamp` as its `UNIX_TIMESTAMP`), else without trailing zeros
//! (1.10 = 1.1); text of at most
//! [`INLINE_TEXT`](crate::engine::INLINE_TEXT) characters as its UTF-8 bytes behind their
//! count (`3:a#b`), longer text, bytes and json
//! as the MD5 of their bytes. Only a counted text part may contain the separator, and its
//! count says where it ends (an MD5 has no `:`), so the row text reads back one way only.
//! A table whose row text could outgrow the server's `max_allowed_packet` (which would
//! make it NULL) is not pushed down. Each row's hash is the first 64 bits of its SHA-256,
//! summed per bucket as DECIMAL (exact: no overflow, no cancelling). Every function in the
//! text costs the server per row, so none is there that the values do not need;
//! docs/engines/mysql.md (Digests) gives the measured costs, why SHA-256 and what the
//! collision probability is.
//!
//! Type mapping (see docs/engines/mysql.md, Types): integers of every width, signed or not, `year`
//! and `bit(n > 1)` → integer (so `boolean`, which is `tinyint(1)`, is an integer);
//! `bit(1)` → boolean; decimal → decimal; float, double → float; char, varchar, the text
//! types, enum and set → text; binary, varbinary, the blob types → bytes; json (MariaDB's
//! `longtext` with a `json_valid` check, too) → json, by its text; MariaDB's uuid → uuid;
//! date, time → date, time; datetime(n) → timestamp; timestamp(n) → timestamptz. Other
//! types (geometry, inet6, vector, ...) are not compared. A stored value outside what its
//! type means in the value model (a zero date, a time below zero or past 24:00:00) is
//! compared as the text the server spells it, so that it shows as a difference against
//! any other value instead of being guessed.
//!
//! Must not: write, or interpolate anything into SQL that is not a quoted identifier, a
//! number, or the table's configured filter; values are bound parameters.

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Params, Value as My};

mod decode;
mod dialect;
mod digest;

use super::pool::{Lease, Pool};
use super::{
    insert_words, Batch, DigestSpec, Digests, EncodedSender, Engine, EngineError, Feed,
    FieldDecoder, Result, RowSender, ENCODED_BATCH, ROW_BATCH,
};
use crate::config::DatabaseConfig;
use crate::table::{Column, Family, KeyRange, Row, TableQuery, TableRef, TableSchema};
use crate::value::{EncodedRows, Key, LogicalType};
use decode::Decoder;
use dialect::sql;
pub(crate) use dialect::MysqlScript;
pub use dialect::{param, quote_ident};
use digest::hashed_col;

/// An idle connection older than this is pinged before it is used again.
const IDLE_PING: std::time::Duration = std::time::Duration::from_secs(60);

pub(crate) struct Mysql {
    name: String,
    /// The URL's database: the schema of tables named without one.
    database: String,
    opts: Opts,
    statement_timeout: std::time::Duration,
    /// Idle connections, and the connection ids of those in use (shutdown).
    pool: Pool<Conn, u32>,
}

impl Mysql {
    pub fn new(name: &str, db: &DatabaseConfig) -> Result<Mysql> {
        let cfg_err = |message: String| EngineError::Config {
            database: name.to_string(),
            message,
        };
        let opts =
            Opts::from_url(&db.url).map_err(|e| cfg_err(format!("invalid MySQL URL: {e}")))?;
        let database = opts
            .db_name()
            .filter(|d| !d.is_empty())
            .ok_or_else(|| {
                cfg_err(format!(
                    "{:?} names no database (expected mysql://user@host:port/database)",
                    db.url
                ))
            })?
            .to_string();
        let mut builder = OptsBuilder::from_opts(opts).prefer_socket(false);
        if let Some(p) = &db.password {
            builder = builder.pass(Some(p.as_str()));
        }
        Ok(Mysql {
            name: name.to_string(),
            database,
            opts: builder.into(),
            statement_timeout: db.statement_timeout,
            pool: Pool::new(),
        })
    }

    fn connect_err(&self, e: &mysql_async::Error) -> EngineError {
        EngineError::Connect {
            database: self.name.clone(),
            message: error_text(e),
        }
    }

    /// A new connection, its session set up (see the module's documentation).
    async fn connect(&self) -> Result<Conn> {
        let mut conn = Conn::new(self.opts.clone())
            .await
            .map_err(|e| self.connect_err(&e))?;
        let version: Option<String> = conn
            .query_first("SELECT VERSION()")
            .await
            .map_err(|e| self.connect_err(&e))?;
        let timeout = if version.unwrap_or_default().contains("MariaDB") {
            format!(
                "max_statement_time = {:.3}",
                self.statement_timeout.as_secs_f64()
            )
        } else {
            format!(
                "max_execution_time = {}",
                self.statement_timeout.as_millis()
            )
        };
        let setup = format!(
            "SET SESSION TRANSACTION READ ONLY; \
             SET NAMES utf8mb4; \
             SET SESSION time_zone = '+00:00', \
             sql_mode = TRIM(BOTH ',' FROM REPLACE(CONCAT(',', @@sql_mode, ','), ',PAD_CHAR_TO_FULL_LENGTH,', ',')), \
             {timeout}"
        );
        conn.query_drop(setup)
            .await
            .map_err(|e| self.connect_err(&e))?;
        Ok(conn)
    }

    async fn session(&self) -> Result<Session<'_>> {
        let conn = match self.pool.idle() {
            Some((c, idle)) if idle < IDLE_PING => c,
            // The server may have closed it since (wait_timeout, a restart).
            Some((mut c, _)) => match c.ping().await {
                Ok(()) => c,
                Err(_) => self.connect().await?,
            },
            None => self.connect().await?,
        };
        let id = conn.id();
        Ok(self.pool.lease(conn, id))
    }

    fn query_err(&self, table: &TableRef, e: mysql_async::Error) -> EngineError {
        match &e {
            mysql_async::Error::Server(s) if s.code == 1146 || s.code == 1049 => {
                EngineError::TableNotFound {
                    database: self.name.clone(),
                    table: table.to_string(),
                }
            }
            mysql_async::Error::Server(_) => EngineError::Query {
                database: self.name.clone(),
                table: table.to_string(),
                message: error_text(&e),
            },
            _ => self.connect_err(&e),
        }
    }

    fn decode_err(
        &self,
        table: &TableRef,
        column: &str,
        db_type: &str,
        message: String,
    ) -> EngineError {
        EngineError::Decode {
            database: self.name.clone(),
            table: table.to_string(),
            column: column.to_string(),
            db_type: db_type.to_string(),
            message,
        }
    }

    /// Runs a prepared statement, adding each row's values to a batch and sending the
    /// batch to `tx` once it holds `limit` rows; stops early, without error, when the
    /// receiver is gone.
    async fn rows<B: Batch>(
        &self,
        table: &TableRef,
        sql: &str,
        params: Vec<My>,
        tx: &tokio::sync::mpsc::Sender<B>,
        limit: usize,
        mut add: impl FnMut(&mut B, Vec<My>) -> Result<()>,
    ) -> Result<u64> {
        let mut s = self.session().await?;
        let params = if params.is_empty() {
            Params::Empty
        } else {
            Params::Positional(params)
        };
        let mut n = 0u64;
        let mut batch = B::default();
        let mut closed = false;
        {
            let mut result = s
                .get_mut()
                .exec_iter(sql, params)
                .await
                .map_err(|e| self.query_err(table, e))?;
            // Row by row from the result itself: its row stream boxes a future per row.
            while let Some(row) = result.next().await.map_err(|e| self.query_err(table, e))? {
                add(&mut batch, row.unwrap())?;
                n += 1;
                if batch.rows() >= limit && tx.send(std::mem::take(&mut batch)).await.is_err() {
                    closed = true;
                    break;
                }
            }
        }
        if closed {
            // The rest of the result is still on the wire: this session is not reused.
            s.discard();
            return Ok(n);
        }
        s.release();
        if batch.rows() > 0 {
            let _ = tx.send(batch).await;
        }
        Ok(n)
    }

    fn decode_row(&self, q: &TableQuery, decoders: &[Decoder], values: Vec<My>) -> Result<Row> {
        super::decode_row(&self.name, q, decoders, values.into_iter())
    }

    /// All rows of a small result, as raw values.
    async fn fetch(&self, table: &TableRef, sql: &str, params: Vec<My>) -> Result<Vec<Vec<My>>> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Vec<My>>>(1);
        let collect = async move {
            let mut out = Vec::new();
            while let Some(b) = rx.recv().await {
                out.extend(b);
            }
            out
        };
        let (n, out) = tokio::join!(
            async move {
                self.rows(
                    table,
                    sql,
                    params,
                    &tx,
                    ROW_BATCH,
                    |b: &mut Vec<Vec<My>>, r| {
                        b.push(r);
                        Ok(())
                    },
                )
                .await
            },
            collect
        );
        n?;
        Ok(out)
    }

    /// Whether the server is MariaDB (whose statements differ from MySQL's here and there).
    async fn is_mariadb(&self, table: &TableRef) -> Result<bool> {
        Ok(self.server(table).await?.mariadb)
    }

    /// What the server is, and the longest statement or result it takes.
    async fn server(&self, table: &TableRef) -> Result<Server> {
        let rows = self
            .fetch(table, "SELECT VERSION(), @@max_allowed_packet", vec![])
            .await?;
        let row = rows.first();
        let field = |i: usize| row.and_then(|r| r.get(i)).map(text).unwrap_or_default();
        Ok(Server {
            mariadb: field(0).contains("MariaDB"),
            max_allowed_packet: field(1).parse().unwrap_or(0),
        })
    }
}

/// A server's kind and limits, as introspection reads them.
struct Server {
    mariadb: bool,
    max_allowed_packet: usize,
}

fn error_text(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Server(s) => format!("{} ({}): {}", s.code, s.state, s.message),
        other => super::error_chain(other),
    }
}

/// A connection in use: back to the pool only when its statement completed.
type Session<'a> = Lease<'a, Conn, u32>;

// ---- SQL -------------------------------------------------------------------------------

impl Mysql {
    fn table_sql(&self, t: &TableRef) -> String {
        format!(
            "{}.{}",
            quote_ident(t.schema.as_deref().unwrap_or(&self.database)),
            quote_ident(&t.name)
        )
    }
}

// ---- Engine ----------------------------------------------------------------------------

#[async_trait]
impl Engine for Mysql {
    fn family(&self) -> Family {
        Family::Mysql
    }

    async fn introspect(&self, table: &TableRef) -> Result<TableSchema> {
        let schema = table
            .schema
            .clone()
            .unwrap_or_else(|| self.database.clone());
        let key = || {
            vec![
                My::Bytes(schema.clone().into_bytes()),
                My::Bytes(table.name.clone().into_bytes()),
            ]
        };
        let cols = self
            .fetch(
                table,
                "SELECT COLUMN_NAME, COLUMN_TYPE, DATA_TYPE, COLLATION_NAME, EXTRA, DATETIME_PRECISION, IS_NULLABLE \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
                 ORDER BY ORDINAL_POSITION",
                key(),
            )
            .await?;
        if cols.is_empty() {
            return Err(EngineError::TableNotFound {
                database: self.name.clone(),
                table: table.to_string(),
            });
        }
        let server = self.server(table).await?;
        // MariaDB's json is longtext with a json_valid check on the column.
        let mut json_checked = Vec::new();
        if server.mariadb {
            for r in self
                .fetch(
                    table,
                    "SELECT CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
                     WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?",
                    key(),
                )
                .await?
            {
                let (name, clause) = (text(&r[0]), text(&r[1]));
                if clause.replace(' ', "").eq_ignore_ascii_case(&format!("json_valid({})", quote_ident(&name))) {
                    json_checked.push(name);
                }
            }
        }
        let columns = cols
            .iter()
            .map(|r| {
                let name = text(&r[0]);
                let column_type = text(&r[1]);
                let data_type = text(&r[2]).to_ascii_lowercase();
                let mut logical = logical_type(&data_type, &column_type);
                if logical == Some(LogicalType::Text) && json_checked.contains(&name) {
                    logical = Some(LogicalType::Json);
                }
                let collation = Some(text(&r[3])).filter(|c| !c.is_empty());
                // time, datetime and timestamp hold 0 digits unless declared, e.g.
                // datetime(3); information_schema says which.
                let fraction_digits = match logical {
                    Some(LogicalType::Time | LogicalType::Timestamp | LogicalType::TimestampTz) => {
                        text(&r[5]).parse().ok()
                    }
                    _ => None,
                };
                Column {
                    fraction_digits,
                    identity: text(&r[4]).to_ascii_lowercase().contains("auto_increment"),
                    name,
                    db_type: column_type,
                    logical,
                    collation,
                    nullable: text(&r[6]).eq_ignore_ascii_case("YES"),
                }
            })
            .collect::<Vec<Column>>();
        let pk = self
            .fetch(
                table,
                "SELECT COLUMN_NAME FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' \
                 ORDER BY SEQ_IN_INDEX",
                key(),
            )
            .await?;
        let longest = digest::longest_text(&columns);
        let pushdown_unavailable = (longest > server.max_allowed_packet).then(|| {
            format!(
                "a row's digest text can reach {longest} bytes, past its max_allowed_packet of {}",
                server.max_allowed_packet
            )
        });
        Ok(TableSchema {
            columns,
            primary_key: pk.iter().map(|r| text(&r[0])).collect(),
            pushdown_unavailable,
        })
    }

    async fn lead_bounds(&self, q: &TableQuery) -> Result<Option<(i64, i64)>> {
        let mut sql = sql(q);
        let k1 = sql.col(q.key[0]);
        let text = format!(
            "SELECT MIN({k1}), MAX({k1}) FROM {}{}",
            self.table_sql(&q.table),
            sql.where_clause(&KeyRange::default())
        );
        let rows = self.fetch(&q.table, &text, sql.dialect.params).await?;
        let c = &q.columns[q.key[0]];
        let int = |v: &My| -> Result<Option<i64>> {
            match v {
                My::NULL => Ok(None),
                My::Int(i) => Ok(Some(*i)),
                My::UInt(u) => i64::try_from(*u).map(Some).map_err(|_| {
                    self.decode_err(
                        &q.table,
                        &c.name,
                        &c.db_type,
                        format!("{u} does not fit a 64-bit signed key"),
                    )
                }),
                other => Err(self.decode_err(
                    &q.table,
                    &c.name,
                    &c.db_type,
                    format!("not an integer: {other:?}"),
                )),
            }
        };
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        Ok(match (int(&row[0])?, int(&row[1])?) {
            (Some(lo), Some(hi)) => Some((lo, hi)),
            _ => None,
        })
    }

    async fn key_at(&self, q: &TableQuery, range: &KeyRange, offset: u64) -> Result<Option<Key>> {
        let mut sql = sql(q);
        let select = sql.select(&self.table_sql(&q.table), &q.key, range, true);
        let text = format!("{select} LIMIT 1 OFFSET {offset}");
        let decoders: Vec<Decoder> = q.key.iter().map(|&i| Decoder::new(&q.columns[i])).collect();
        let rows = self.fetch(&q.table, &text, sql.dialect.params).await?;
        rows.into_iter()
            .next()
            .map(|r| self.decode_row(q, &decoders, r))
            .transpose()
    }

    async fn pushdown_digest(&self, q: &TableQuery, spec: &DigestSpec) -> Result<Digests> {
        let mut sql = sql(q);
        let k1 = sql.col(q.key[0]);
        let parts: Vec<String> = q.columns.iter().map(hashed_col).collect();
        // One mention of the row's hash, so that the server computes it once per row
        // without materializing a derived table (two 64-bit halves would need either);
        // CONV's text is cast, not summed as a double, so the sum is exact.
        let digest = format!(
            "COUNT(*), CAST(COALESCE(SUM(CAST(CONV(LEFT(SHA2(CONCAT_WS('#', {}), 256), 16), 16, 10) AS UNSIGNED)), 0) AS CHAR)",
            parts.join(", ")
        );
        let bucket = match spec.bucket_width {
            // Floor division: DIV truncates toward zero.
            Some(w) => format!("({k1} DIV {w}) - ({k1} % {w} < 0)"),
            None => "0".to_string(),
        };
        // By the expression, not its alias: a name in GROUP BY means the table's column of
        // that name first. ORDER BY NULL: MariaDB would sort the groups too.
        let group = match spec.bucket_width {
            Some(_) => format!(" GROUP BY {bucket} ORDER BY NULL"),
            None => String::new(),
        };
        let text = format!(
            "SELECT {bucket} AS b, {digest} FROM {}{}{group}",
            self.table_sql(&q.table),
            sql.where_clause(&spec.range)
        );
        let rows = self.fetch(&q.table, &text, sql.dialect.params).await?;
        let bad = |what: &str| {
            self.decode_err(
                &q.table,
                "-",
                "digest",
                format!("unexpected {what} in a digest row"),
            )
        };
        let number = |v: &My, what: &str| -> Result<i128> {
            match v {
                My::Int(i) => Ok(*i as i128),
                My::UInt(u) => Ok(*u as i128),
                My::Bytes(b) => std::str::from_utf8(b)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| bad(what)),
                _ => Err(bad(what)),
            }
        };
        let mut out = Digests::new();
        for r in rows {
            if r.len() != 3 {
                return Err(bad("field count"));
            }
            let bucket = i64::try_from(number(&r[0], "bucket")?).map_err(|_| bad("bucket"))?;
            let count = u64::try_from(number(&r[1], "count")?).map_err(|_| bad("count"))?;
            insert_words(&mut out, bucket, count, 0, number(&r[2], "sum")?);
        }
        Ok(out)
    }

    async fn scan_encoded(
        &self,
        q: &TableQuery,
        range: &KeyRange,
        tx: EncodedSender,
    ) -> Result<u64> {
        let mut sql = sql(q);
        let text = sql.select(&self.table_sql(&q.table), &sql.all(), range, false);
        let decoders: Vec<Decoder> = q.columns.iter().map(Decoder::new).collect();
        let key0 = q.key[0];
        let mut scratch = String::new();
        self.rows(
            &q.table,
            &text,
            sql.dialect.params,
            &tx,
            ENCODED_BATCH,
            |out: &mut EncodedRows, values| {
                super::field_count(&self.name, q, decoders.len(), values.len())?;
                let lead = decoders[key0].lead(&values[key0]);
                for (d, v) in decoders.iter().zip(values) {
                    d.encode(v, &mut out.data, &mut scratch).map_err(|m| {
                        let c = d.column();
                        self.decode_err(&q.table, &c.name, &c.db_type, m)
                    })?;
                }
                out.end_row(lead);
                Ok(())
            },
        )
        .await
    }

    async fn scan(&self, q: &TableQuery, range: &KeyRange, tx: RowSender) -> Result<u64> {
        let mut sql = sql(q);
        let text = sql.select(&self.table_sql(&q.table), &sql.all(), range, true);
        let decoders: Vec<Decoder> = q.columns.iter().map(Decoder::new).collect();
        self.rows(
            &q.table,
            &text,
            sql.dialect.params,
            &tx,
            ROW_BATCH,
            |batch: &mut Vec<Row>, values| {
                batch.push(self.decode_row(q, &decoders, values)?);
                Ok(())
            },
        )
        .await
    }

    async fn ping(&self) -> Result<()> {
        self.fetch(&no_table(), "SELECT 1", vec![])
            .await
            .map(|_| ())
    }

    /// The GTIDs the server has executed: MariaDB's binlog position (the last GTID of
    /// each domain), MySQL's executed set. Read after the rows, it covers every
    /// transaction they could show.
    async fn replication_position(&self) -> Result<Option<String>> {
        let sql = if self.is_mariadb(&no_table()).await? {
            "SELECT @@GLOBAL.gtid_binlog_pos"
        } else {
            "SELECT @@GLOBAL.gtid_executed"
        };
        let rows = self.fetch(&no_table(), sql, vec![]).await?;
        Ok(rows.first().and_then(|r| r.first()).map(text))
    }

    /// Asked of the replica, which waits on the server for at most `wait`
    /// (MASTER_GTID_WAIT on MariaDB, WAIT_FOR_EXECUTED_GTID_SET on MySQL; both only read).
    async fn position_applied(
        &self,
        feed: &Feed,
        position: &str,
        wait: std::time::Duration,
    ) -> Result<bool> {
        if *feed != Feed::Gtid {
            return Ok(false);
        }
        let mariadb = self.is_mariadb(&no_table()).await?;
        let (sql, applied) = if mariadb {
            ("SELECT MASTER_GTID_WAIT(?, ?)", 0)
        } else {
            ("SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?)", 0)
        };
        let params = vec![My::from(position), My::from(wait.as_secs_f64())];
        let rows = self.fetch(&no_table(), sql, params).await?;
        let code = rows
            .first()
            .and_then(|r| r.first())
            .map(text)
            .and_then(|t| t.parse::<i64>().ok());
        Ok(code == Some(applied))
    }

    /// A replica applying a primary's GTIDs: MariaDB with a replication SQL thread
    /// running and a replicated GTID position; MySQL with GTID mode on and one running
    /// applier channel.
    async fn detect_feed(&self) -> Result<Option<Feed>> {
        let t = no_table();
        let one = |rows: Vec<Vec<My>>| rows.first().and_then(|r| r.first()).map(text);
        let replica = if self.is_mariadb(&t).await? {
            let pos = one(self
                .fetch(&t, "SELECT @@GLOBAL.gtid_slave_pos", vec![])
                .await?);
            let running = one(self
                .fetch(
                    &t,
                    "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
                     WHERE VARIABLE_NAME = 'SLAVES_RUNNING'",
                    vec![],
                )
                .await?);
            pos.is_some_and(|p| !p.is_empty())
                && running.and_then(|n| n.parse::<u64>().ok()).unwrap_or(0) == 1
        } else {
            let mode = one(self.fetch(&t, "SELECT @@GLOBAL.gtid_mode", vec![]).await?);
            let channels = one(self
                .fetch(
                    &t,
                    "SELECT COUNT(*) FROM performance_schema.replication_applier_status \
                     WHERE SERVICE_STATE = 'ON'",
                    vec![],
                )
                .await?);
            mode.as_deref() == Some("ON") && channels.as_deref() == Some("1")
        };
        Ok(replica.then_some(Feed::Gtid))
    }

    async fn cancel_all(&self) {
        let ids = self.pool.in_use();
        if ids.is_empty() {
            return;
        }
        let Ok(mut conn) = Conn::new(self.opts.clone()).await else {
            return;
        };
        for id in ids {
            let _ = conn.query_drop(format!("KILL QUERY {id}")).await;
        }
        let _ = conn.disconnect().await;
    }
}

/// A value as text: strings as they are, NULL as empty, numbers as SQL shows them.
fn text(v: &My) -> String {
    match v {
        My::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        My::NULL => String::new(),
        other => other.as_sql(true),
    }
}

/// The table named in errors of statements about no table (pings, positions).
fn no_table() -> TableRef {
    TableRef {
        schema: None,
        name: "-".into(),
    }
}

/// The logical type of a column, from information_schema's DATA_TYPE and COLUMN_TYPE.
fn logical_type(data_type: &str, column_type: &str) -> Option<LogicalType> {
    Some(match data_type {
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "year" => {
            LogicalType::Int
        }
        "bit" if column_type.eq_ignore_ascii_case("bit(1)") => LogicalType::Bool,
        "bit" => LogicalType::Int,
        "decimal" | "numeric" => LogicalType::Decimal,
        "float" | "double" | "real" | "double precision" => LogicalType::Float,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set" => {
            LogicalType::Text
        }
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
            LogicalType::Bytes
        }
        "json" => LogicalType::Json,
        "uuid" => LogicalType::Uuid,
        "date" => LogicalType::Date,
        "time" => LogicalType::Time,
        "datetime" => LogicalType::Timestamp,
        "timestamp" => LogicalType::TimestampTz,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_map_by_information_schema() {
        assert_eq!(
            logical_type("tinyint", "tinyint(1)"),
            Some(LogicalType::Int)
        );
        assert_eq!(
            logical_type("bigint", "bigint(20) unsigned"),
            Some(LogicalType::Int)
        );
        assert_eq!(logical_type("bit", "bit(1)"), Some(LogicalType::Bool));
        assert_eq!(logical_type("bit", "bit(12)"), Some(LogicalType::Int));
        assert_eq!(
            logical_type("enum", "enum('a','b')"),
            Some(LogicalType::Text)
        );
        assert_eq!(
            logical_type("timestamp", "timestamp(6)"),
            Some(LogicalType::TimestampTz)
        );
        assert_eq!(
            logical_type("datetime", "datetime(3)"),
            Some(LogicalType::Timestamp)
        );
        assert_eq!(logical_type("geometry", "geometry"), None);
    }
}
