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
//! that must be one expression (see [`check_filter`]). The README recommends a login with
//! SELECT permission only (db_datareader), which makes it hold whatever is sent.
//!
//! Statements are cancelled the TDS way: an attention packet on the connection
//! (tiberius' `cancel_query`), on shutdown or past the statement timeout; the connection
//! is then dropped, not reused.
//!
//! Pushdown digests hash, per row, `HASHBYTES('SHA2_256', p1 + '#' + p2 …)` where each
//! column's part is a canonical text of its value built with explicit CONVERT styles, so
//! that it depends neither on the session's language and date format nor on the declared
//! precision (see [`hashed_col`]); the first two 8-byte words of each row's hash are summed
//! per bucket as DECIMAL(38,0), which cannot overflow, and folded into one 128-bit sum.
//! CHECKSUM and BINARY_CHECKSUM are never used: they collide.
//!
//! Type mapping (see the README's table): bit → boolean; tinyint, smallint, int, bigint →
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
use tiberius::{AuthMethod, Client, ColumnData, Config, EncryptionLevel, Query, SqlBrowser};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};
use tokio_util::sync::CancellationToken;

use super::pool::{Lease, Pool};
use super::sql::{Dialect, Sql};
use super::{insert_words, Batch, DigestSpec, Digests, EncodedSender, Engine, EngineError, FieldDecoder, Result, RowSender, ENCODED_BATCH, ROW_BATCH};
use crate::table::{Column, Family, KeyRange, QueryColumn, Row, TableQuery, TableRef, TableSchema};
use crate::config::DatabaseConfig;
use crate::value::{Decimal, EncodedRows, Key, LogicalType, Offset, Timestamp, Value};

/// An idle connection older than this is pinged before it is used again.
const IDLE_PING: Duration = Duration::from_secs(60);
/// How long a cancelled statement may take to acknowledge its attention packet.
const CANCEL_WAIT: Duration = Duration::from_secs(5);
/// Days from 0001-01-01 (SQL Server's `date` origin) to 1970-01-01.
const DAYS_0001_TO_1970: i64 = 719_162;
/// Days from 1900-01-01 (`datetime`'s origin) to 1970-01-01.
const DAYS_1900_TO_1970: i64 = 25_567;

type Conn = Client<Compat<TcpStream>>;

pub struct Mssql {
    name: String,
    options: ConnectOptions,
    statement_timeout: Duration,
    /// What the server said about itself at the last connect (a failover may change it).
    server: std::sync::Mutex<Option<ServerInfo>>,
    /// Idle connections, and the cancel tokens of those in use (shutdown).
    pool: Pool<Conn, CancellationToken>,
}

/// Where the credential of a new connection comes from.
#[derive(Clone)]
enum Credential {
    /// SQL authentication: the URL's user, the config's password.
    Password {
        user: String,
        password: String,
    },
    /// An Azure AD access token, read again for every connection.
    TokenEnv(String),
    TokenFile(std::path::PathBuf),
}

/// What the URL says, checked once when the engine is built.
#[derive(Clone)]
pub struct ConnectOptions {
    host: String,
    port: Option<u16>,
    instance: Option<String>,
    database: String,
    encryption: EncryptionLevel,
    trust_server_certificate: bool,
    ca_file: Option<String>,
    hostname_in_certificate: Option<String>,
    readonly: bool,
    application_name: String,
    credential: Credential,
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

/// How a connection checks the server's certificate, from `encrypt`,
/// `trust_server_certificate` and `trust_server_certificate_ca` (the README's table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateCheck {
    /// Against the system's trust store, and the host name (or hostname_in_certificate).
    System,
    /// Against the CA certificate in this file, and the host name.
    Ca(String),
    /// Not checked: trust_server_certificate, or encrypt=false, where only the login is
    /// encrypted and, as with Microsoft's drivers, its certificate is not validated
    /// (a stock SQL Server encrypts the login with a self-signed certificate).
    Unchecked,
}

/// The URL parameters, for error messages.
const PARAMETERS: &str = "encrypt, trust_server_certificate, trust_server_certificate_ca, \
     hostname_in_certificate, application_intent, instance, application_name, authentication, \
     access_token_env, access_token_file";

impl ConnectOptions {
    /// Reads `mssql://user@host[:port]/database?…`; `password` is the config's.
    pub fn parse(raw: &str, password: Option<&str>) -> std::result::Result<Self, String> {
        let url = url::Url::parse(raw).map_err(|e| format!("invalid SQL Server URL: {e}"))?;
        if url.scheme() != "mssql" && url.scheme() != "sqlserver" {
            return Err(format!("expected mssql://, got {}://", url.scheme()));
        }
        let decode =
            |s: &str| percent_decode(s).ok_or_else(|| format!("invalid percent-encoding in {s:?}"));
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("the URL names no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let database = decode(url.path().trim_start_matches('/'))?;
        if database.is_empty() {
            return Err(
                "the URL names no database (expected mssql://user@host:port/database)".into(),
            );
        }
        if url.password().is_some() {
            return Err("put the password in password_env or password_file, not in the URL".into());
        }
        let user = decode(url.username())?;
        let mut o = ConnectOptions {
            host,
            port: url.port(),
            instance: None,
            database,
            encryption: EncryptionLevel::Required,
            trust_server_certificate: false,
            ca_file: None,
            hostname_in_certificate: None,
            readonly: false,
            application_name: "driftwatch".into(),
            credential: Credential::Password {
                user: user.clone(),
                password: String::new(),
            },
        };
        let mut authentication = "sql_password".to_string();
        let (mut token_env, mut token_file) = (None, None);
        let flag = |k: &str, v: &str| match v.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Ok(true),
            "false" | "no" | "0" => Ok(false),
            _ => Err(format!("{k}={v:?}: expected true or false")),
        };
        for (k, v) in url.query_pairs() {
            let v = v.into_owned();
            match k.as_ref() {
                "encrypt" => {
                    o.encryption = match v.to_ascii_lowercase().as_str() {
                        "strict" => EncryptionLevel::Strict,
                        "true" | "yes" | "mandatory" => EncryptionLevel::Required,
                        // Only the login is encrypted (the server may still insist on more).
                        "false" | "no" | "optional" => EncryptionLevel::Off,
                        _ => return Err(format!("encrypt={v:?}: expected true, false or strict")),
                    }
                }
                "trust_server_certificate" => o.trust_server_certificate = flag(&k, &v)?,
                "trust_server_certificate_ca" => o.ca_file = Some(v),
                "hostname_in_certificate" => o.hostname_in_certificate = Some(v),
                "application_intent" => {
                    o.readonly = match v.to_ascii_lowercase().as_str() {
                        "readonly" => true,
                        "readwrite" => false,
                        _ => {
                            return Err(format!(
                                "application_intent={v:?}: expected readonly or readwrite"
                            ))
                        }
                    }
                }
                "instance" => o.instance = Some(v),
                "application_name" => o.application_name = v,
                "authentication" => authentication = v.to_ascii_lowercase(),
                "access_token_env" => token_env = Some(v),
                "access_token_file" => token_file = Some(v),
                other => {
                    return Err(format!(
                        "unknown URL parameter {other:?} (known: {PARAMETERS})"
                    ))
                }
            }
        }
        if o.trust_server_certificate && o.ca_file.is_some() {
            return Err(
                "set trust_server_certificate or trust_server_certificate_ca, not both".into(),
            );
        }
        o.credential = match (authentication.as_str(), token_env, token_file) {
            ("sql_password", None, None) => {
                if user.is_empty() {
                    return Err("the URL names no user (mssql://user@host/database)".into());
                }
                Credential::Password {
                    user,
                    password: password
                        .ok_or("SQL authentication needs password_env or password_file")?
                        .to_string(),
                }
            }
            ("access_token", Some(env), None) => Credential::TokenEnv(env),
            ("access_token", None, Some(file)) => Credential::TokenFile(file.into()),
            ("access_token", _, _) => {
                return Err(
                    "authentication=access_token needs access_token_env or access_token_file (one of them)"
                        .into(),
                )
            }
            ("sql_password", _, _) => {
                return Err(
                    "access_token_env and access_token_file need authentication=access_token"
                        .into(),
                )
            }
            (other, _, _) => {
                return Err(format!(
                    "authentication={other:?}: expected sql_password or access_token"
                ))
            }
        };
        Ok(o)
    }

    pub fn certificate_check(&self) -> CertificateCheck {
        match (
            &self.ca_file,
            self.trust_server_certificate,
            self.encryption,
        ) {
            (Some(ca), _, _) => CertificateCheck::Ca(ca.clone()),
            (None, true, _) | (None, false, EncryptionLevel::Off) => CertificateCheck::Unchecked,
            (None, false, _) => CertificateCheck::System,
        }
    }

    /// The tiberius configuration of a new connection, its credential read now.
    pub fn tiberius_config(
        &self,
        statement_timeout: Duration,
    ) -> std::result::Result<Config, String> {
        let mut c = Config::new();
        c.host(&self.host);
        if let Some(p) = self.port {
            c.port(p);
        }
        if let Some(i) = &self.instance {
            c.instance_name(i);
        }
        c.database(&self.database);
        c.application_name(&self.application_name);
        c.encryption(self.encryption);
        match self.certificate_check() {
            CertificateCheck::System => {}
            CertificateCheck::Ca(file) => c.trust_cert_ca(file),
            CertificateCheck::Unchecked => c.trust_cert(),
        }
        if let Some(h) = &self.hostname_in_certificate {
            c.hostname_in_certificate(h);
        }
        c.readonly(self.readonly);
        // The time the server may stay silent; the whole statement is bounded separately.
        c.command_timeout(Some(statement_timeout));
        c.authentication(match &self.credential {
            Credential::Password { user, password } => AuthMethod::sql_server(user, password),
            Credential::TokenEnv(var) => AuthMethod::aad_token(
                std::env::var(var)
                    .map_err(|_| format!("access_token_env: {var} is not set"))?
                    .trim(),
            ),
            Credential::TokenFile(path) => AuthMethod::aad_token(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("access_token_file {}: {e}", path.display()))?
                    .trim(),
            ),
        });
        Ok(c)
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
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

    /// Decoded rows, sent in batches.
    async fn send_rows(&self, q: &TableQuery, stmt: &Statement, tx: &RowSender) -> Result<u64> {
        let decoders: Vec<Decoder> = stmt
            .columns
            .iter()
            .map(|&i| Decoder::new(&q.columns[i]))
            .collect();
        self.rows(
            &q.table,
            stmt,
            tx,
            ROW_BATCH,
            |batch: &mut Vec<Row>, row| {
                batch.push(self.decode_row(q, &decoders, row)?);
                Ok(())
            },
        )
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

/// A statement and its parameters (`@P1`, `@P2`, … in order), as sent; public so that the
/// tests can parse and keep golden copies of every statement the engine sends.
#[derive(Debug, Clone)]
pub struct Statement {
    pub text: String,
    pub params: Vec<ColumnData<'static>>,
    /// Indexes into the query's columns of the result's columns, in order.
    pub columns: Vec<usize>,
}

pub fn quote_ident(s: &str) -> String {
    format!("[{}]", s.replace(']', "]]"))
}

pub fn table_sql(t: &TableRef) -> String {
    match &t.schema {
        Some(s) => format!("{}.{}", quote_ident(s), quote_ident(&t.name)),
        None => quote_ident(&t.name),
    }
}

/// T-SQL's spelling of the shared range SQL: parameters cast to the column's type, and a
/// binary collation over nvarchar for bytewise text.
#[derive(Default)]
struct Tsql {
    params: Vec<ColumnData<'static>>,
}

/// The collation that orders nvarchar by UTF-16 code unit, which is code point order for
/// every character of the Basic Multilingual Plane.
const BYTEWISE: &str = "Latin1_General_100_BIN2";

impl Dialect for Tsql {
    fn quote_ident(&self, name: &str) -> String {
        quote_ident(name)
    }

    fn key_col(&self, c: &QueryColumn, bytewise: bool) -> String {
        if bytewise && c.logical == LogicalType::Uuid {
            // Its text is in RFC 4122 byte order; the value orders by its last group first.
            format!(
                "CONVERT(char(36), {}) COLLATE {BYTEWISE}",
                quote_ident(&c.name)
            )
        } else if bytewise {
            // Through nvarchar, so that varchar in any code page orders by characters.
            format!(
                "CAST({} AS nvarchar(max)) COLLATE {BYTEWISE}",
                quote_ident(&c.name)
            )
        } else {
            quote_ident(&c.name)
        }
    }

    fn value(&mut self, c: &QueryColumn, v: &Value, bytewise: bool) -> String {
        self.params.push(param(v));
        let n = self.params.len();
        if bytewise && c.logical == LogicalType::Uuid {
            format!("CONVERT(char(36), CAST(@P{n} AS uniqueidentifier)) COLLATE {BYTEWISE}")
        } else if bytewise {
            format!("CAST(@P{n} AS nvarchar(max)) COLLATE {BYTEWISE}")
        } else {
            // The column's own type: a parameter of another type would convert the column
            // instead, and the index could not be used.
            format!("CAST(@P{n} AS {})", c.db_type)
        }
    }

    fn int_bound(&mut self, b: i64) -> String {
        // A bigint parameter: SQL Server still seeks an int column's index with it.
        self.params.push(ColumnData::I64(Some(b)));
        format!("@P{}", self.params.len())
    }

    fn row_values(&self) -> bool {
        false
    }
}

/// A key bound as a parameter.
pub fn param(v: &Value) -> ColumnData<'static> {
    use tiberius::time::{Date, DateTime2, DateTimeOffset, Time};
    let time = |nanos: u64| Time::new(nanos / 100, 7);
    let date = |days: i64| Date::new((days + DAYS_0001_TO_1970).clamp(0, u32::MAX as i64) as u32);
    let datetime2 = |t: &Timestamp| {
        DateTime2::new(
            date(t.secs.div_euclid(86_400)),
            time(t.secs.rem_euclid(86_400) as u64 * 1_000_000_000 + t.nanos as u64),
        )
    };
    match v {
        Value::Null => ColumnData::String(None),
        Value::Bool(b) => ColumnData::Bit(Some(*b)),
        Value::Int(i) => match i64::try_from(*i) {
            Ok(i) => ColumnData::I64(Some(i)),
            Err(_) => ColumnData::Numeric(Some(tiberius::numeric::Numeric::new_with_scale(*i, 0))),
        },
        Value::Decimal(d) => match numeric(d) {
            Some(n) => ColumnData::Numeric(Some(n)),
            None => ColumnData::String(Some(d.to_string().into())),
        },
        Value::Float(f) => ColumnData::F64(Some(*f)),
        Value::Text(s) | Value::Json(s) => ColumnData::String(Some(s.clone().into())),
        Value::Bytes(b) => ColumnData::Binary(Some(b.clone().into())),
        Value::Uuid(u) => ColumnData::Guid(Some(tiberius::Uuid::from_bytes(*u))),
        Value::Date(d) => ColumnData::Date(Some(date(*d as i64))),
        Value::Time(t) => ColumnData::Time(Some(time(*t))),
        Value::Timestamp(t) => ColumnData::DateTime2(Some(datetime2(t))),
        // The instant in UTC, and the offset beside it, as the wire holds them.
        Value::TimestampTz(t, offset) => {
            ColumnData::DateTimeOffset(Some(DateTimeOffset::new(datetime2(t), offset.0)))
        }
        Value::Interval { .. } => ColumnData::String(Some(v.to_string().into())),
    }
}

/// A decimal as SQL Server's numeric, when it fits 38 digits.
fn numeric(d: &Decimal) -> Option<tiberius::numeric::Numeric> {
    let Decimal::Finite {
        negative,
        digits,
        exp,
    } = d
    else {
        return None;
    };
    let (digits, scale) = if *exp >= 0 {
        (format!("{digits}{}", "0".repeat(*exp as usize)), 0)
    } else {
        (digits.clone(), u8::try_from(-exp).ok()?)
    };
    if digits.len() > 38 || scale > 38 {
        return None;
    }
    let v: i128 = digits.parse().ok()?;
    Some(tiberius::numeric::Numeric::new_with_scale(
        if *negative { -v } else { v },
        scale,
    ))
}

/// A column as it is selected: money and the old LOB types through exact equivalents
/// that decode without loss (tiberius reads money as a float).
fn select_col(c: &QueryColumn) -> String {
    let name = quote_ident(&c.name);
    match base_type(&c.db_type) {
        "money" => format!("CAST({name} AS decimal(19,4))"),
        "smallmoney" => format!("CAST({name} AS decimal(10,4))"),
        "text" => format!("CAST({name} AS varchar(max))"),
        "ntext" => format!("CAST({name} AS nvarchar(max))"),
        "image" => format!("CAST({name} AS varbinary(max))"),
        _ => name,
    }
}

/// `decimal(12,2)` → `(12, 2)`.
fn decimal_precision_scale(db_type: &str) -> Option<(u8, u8)> {
    let args = db_type.split_once('(')?.1.strip_suffix(')')?;
    let (p, s) = args.split_once(',')?;
    Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
}

/// `decimal(12,2)` → `decimal`.
fn base_type(db_type: &str) -> &str {
    db_type.split('(').next().unwrap_or(db_type).trim()
}

/// A column's part of the hashed row text: equal values give equal text whatever the
/// declared precision, length or code page (1.10 = 1.1, datetime2(3) = datetime2(7) at
/// equal instants, varchar = nvarchar at equal characters), different values different
/// text, and no text contains `#` or is `~` (NULL). `i` names the CROSS APPLY that a
/// decimal's text needs (pushed to `applies`), so that it is converted once per row.
pub fn hashed_col(c: &QueryColumn, i: usize, applies: &mut Vec<String>) -> String {
    let name = quote_ident(&c.name);
    let ty = base_type(&c.db_type);
    let part = match c.logical {
        LogicalType::Int => format!("CONVERT(varchar(20), {name})"),
        LogicalType::Bool => format!("CONVERT(varchar(1), {name})"),
        LogicalType::Decimal => {
            let exact = match ty {
                "money" | "smallmoney" => format!("CAST({name} AS decimal(19,4))"),
                _ => name.clone(),
            };
            // v: the text at the declared scale; z: v without trailing zeros.
            // Names no user column is likely to have: the filter sees them too.
            let (v, z) = (format!("dw_t{i}.dw_v"), format!("dw_z{i}.dw_v"));
            let text = format!("CONVERT(varchar(42), {exact})");
            // A type of no integer digits (decimal(p,p)) has no documented spelling of
            // its integer zero ('.5' or '0.5'): given one, so that it hashes as decimal(p+1,p).
            let text = match decimal_precision_scale(&c.db_type) {
                Some((p, s)) if p == s => format!(
                    "CASE WHEN LEFT({text}, 1) = '.' THEN '0' + {text} \
                     WHEN LEFT({text}, 2) = '-.' THEN '-0' + SUBSTRING({text}, 2, 42) ELSE {text} END"
                ),
                _ => text,
            };
            applies.push(format!(
                " CROSS APPLY (SELECT {text} AS dw_v) AS dw_t{i}"
            ));
            applies.push(format!(
                " CROSS APPLY (SELECT LEFT({v}, LEN({v}) - PATINDEX('%[^0]%', REVERSE({v})) + 1) AS dw_v) AS dw_z{i}"
            ));
            format!(
                "CASE WHEN {exact} = 0 THEN '0' WHEN CHARINDEX('.', {v}) = 0 THEN {v} \
                 WHEN RIGHT({z}, 1) = '.' THEN LEFT({z}, LEN({z}) - 1) ELSE {z} END"
            )
        }
        // The IEEE bits: exact, and the same for real widened to float. -0 = 0.
        LogicalType::Float => format!(
            "CASE WHEN {name} = 0 THEN '0' ELSE CONVERT(varchar(18), CAST(CAST({name} AS float) AS binary(8)), 2) END"
        ),
        // The characters, whatever the code page: hashed as UTF-16 (nvarchar).
        LogicalType::Text | LogicalType::Json => format!(
            "CONVERT(varchar(66), HASHBYTES('SHA2_256', CAST({name} AS nvarchar(max))), 2)"
        ),
        LogicalType::Bytes => format!(
            "CONVERT(varchar(66), HASHBYTES('SHA2_256', CAST({name} AS varbinary(max))), 2)"
        ),
        LogicalType::Uuid => format!("CONVERT(char(36), {name})"),
        LogicalType::Date => format!("CONVERT(char(10), {name}, 23)"),
        // 1900-01-01 and the time at 100 ns.
        LogicalType::Time => format!("CONVERT(char(27), CAST({name} AS datetime2(7)), 121)"),
        // datetime at its milliseconds as shown (.003, not .0033333, which is what a cast
        // to datetime2 gives under compatibility level 130), padded to 100 ns.
        LogicalType::Timestamp if ty == "datetime" => {
            format!("CONVERT(char(23), {name}, 121) + '0000'")
        }
        LogicalType::Timestamp => format!("CONVERT(char(27), CAST({name} AS datetime2(7)), 121)"),
        LogicalType::TimestampTz => format!(
            "CONVERT(char(27), CAST(SWITCHOFFSET({name}, '+00:00') AS datetime2(7)), 121)"
        ),
        // No SQL Server type maps to an interval; kept total for the type system.
        LogicalType::Interval => format!("CONVERT(varchar(100), {name})"),
    };
    format!("COALESCE({part}, '~')")
}

/// The statements of one table query.
pub struct Statements<'a> {
    q: &'a TableQuery,
}

impl<'a> Statements<'a> {
    pub fn new(q: &'a TableQuery) -> std::result::Result<Self, String> {
        if let Some(f) = &q.filter {
            check_filter(f)?;
        }
        Ok(Statements { q })
    }

    fn sql(&self) -> Sql<'a, Tsql> {
        Sql::new(self.q, Tsql::default())
    }

    fn finish(sql: Sql<'a, Tsql>, text: String, columns: Vec<usize>) -> Statement {
        Statement {
            text,
            params: sql.dialect.params,
            columns,
        }
    }

    pub fn lead_bounds(&self) -> Statement {
        let mut sql = self.sql();
        let k1 = sql.col(self.q.key[0]);
        let text = format!(
            "SELECT CAST(MIN({k1}) AS bigint), CAST(MAX({k1}) AS bigint) FROM {}{}",
            table_sql(&self.q.table),
            sql.where_clause(&KeyRange::default())
        );
        Self::finish(sql, text, vec![])
    }

    pub fn key_at(&self, range: &KeyRange, offset: u64) -> Statement {
        let mut sql = self.sql();
        let cols: Vec<String> = self
            .q
            .key
            .iter()
            .map(|&i| select_col(&self.q.columns[i]))
            .collect();
        let text = format!(
            "SELECT {} FROM {}{}{} OFFSET {offset} ROWS FETCH NEXT 1 ROWS ONLY",
            cols.join(", "),
            table_sql(&self.q.table),
            sql.where_clause(range),
            sql.order_by()
        );
        Self::finish(sql, text, self.q.key.clone())
    }

    pub fn digest(&self, spec: &DigestSpec) -> Statement {
        let mut sql = self.sql();
        let q = self.q;
        let mut applies = Vec::new();
        let parts: Vec<String> = q
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| hashed_col(c, i, &mut applies))
            .collect();
        // Each part is short, but a plain varchar sum stops at 8000 characters: past that
        // many columns, the row text is varchar(max).
        let start = if parts.len() * 70 > 8000 {
            "CAST('' AS varchar(max)) + "
        } else {
            ""
        };
        let k1 = sql.col(q.key[0]);
        let bucket = match spec.bucket_width {
            // Floor division: T-SQL's / truncates toward zero.
            Some(w) => format!(
                "CAST({k1} AS bigint) / {w} - CASE WHEN CAST({k1} AS bigint) % {w} < 0 THEN 1 ELSE 0 END"
            ),
            None => "CAST(0 AS bigint)".into(),
        };
        let word = |from: u8| {
            format!("SUM(CAST(CAST(SUBSTRING(d.h, {from}, 8) AS bigint) AS decimal(38,0)))")
        };
        let text = format!(
            "SELECT d.b, COUNT_BIG(*), {}, {} FROM (SELECT {bucket} AS b, HASHBYTES('SHA2_256', {start}{}) AS h FROM {}{}{}) AS d GROUP BY d.b",
            word(1),
            word(9),
            parts.join(" + '#' + "),
            table_sql(&q.table),
            applies.concat(),
            sql.where_clause(&spec.range)
        );
        Self::finish(sql, text, vec![])
    }

    /// Every compared column of a range's rows: in key order (`ordered`), or in whatever
    /// order is cheapest (digests).
    pub fn scan(&self, range: &KeyRange, ordered: bool) -> Statement {
        let mut sql = self.sql();
        let cols: Vec<String> = self.q.columns.iter().map(select_col).collect();
        let mut text = format!(
            "SELECT {} FROM {}{}",
            cols.join(", "),
            table_sql(&self.q.table),
            sql.where_clause(range)
        );
        if ordered {
            text.push_str(&sql.order_by());
        }
        Self::finish(sql, text, (0..self.q.columns.len()).collect())
    }
}

/// The introspection statement: the columns of one table, with their types.
pub fn columns_statement(t: &TableRef) -> Statement {
    Statement {
        text: "SELECT c.name, TYPE_NAME(c.system_type_id), t.name, c.max_length, c.precision, \
               c.scale, c.collation_name, CAST(CASE WHEN ic.column_id IS NULL THEN 0 ELSE 1 END AS bit) \
               FROM sys.columns AS c \
               JOIN sys.types AS t ON t.user_type_id = c.user_type_id \
               LEFT JOIN sys.identity_columns AS ic ON ic.object_id = c.object_id AND ic.column_id = c.column_id \
               WHERE c.object_id = OBJECT_ID(@P1) ORDER BY c.column_id"
            .into(),
        params: vec![ColumnData::String(Some(table_sql(t).into()))],
        columns: vec![],
    }
}

/// The candidate keys of one table: the primary key, then every enabled, unfiltered
/// unique index, with their columns in key order.
pub fn keys_statement(t: &TableRef) -> Statement {
    Statement {
        text: "SELECT i.index_id, i.is_primary_key, c.name, c.is_nullable \
               FROM sys.indexes AS i \
               JOIN sys.index_columns AS ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id \
               JOIN sys.columns AS c ON c.object_id = ic.object_id AND c.column_id = ic.column_id \
               WHERE i.object_id = OBJECT_ID(@P1) AND i.is_unique = 1 AND i.has_filter = 0 \
               AND i.is_disabled = 0 AND i.is_hypothetical = 0 AND ic.key_ordinal > 0 \
               ORDER BY i.is_primary_key DESC, i.index_id, ic.key_ordinal"
            .into(),
        params: vec![ColumnData::String(Some(table_sql(t).into()))],
        columns: vec![],
    }
}

/// A configured filter must be one expression, so that nothing but a SELECT can be sent:
/// no statement separator, no comment, parentheses that never close more than they open,
/// and no keyword that starts a statement of its own or writes.
pub fn check_filter(filter: &str) -> std::result::Result<(), String> {
    const FORBIDDEN: &[&str] = &[
        "ALTER",
        "BACKUP",
        "BULK",
        "CREATE",
        "DBCC",
        "DECLARE",
        "DELETE",
        "DENY",
        "DISABLE",
        "DROP",
        "ENABLE",
        "EXEC",
        "EXECUTE",
        "GO",
        "GRANT",
        "INSERT",
        "INTO",
        "KILL",
        "MERGE",
        "OPENDATASOURCE",
        "OPENQUERY",
        "OPENROWSET",
        "OPENXML",
        "RECONFIGURE",
        "RESTORE",
        "REVERT",
        "REVOKE",
        "SET",
        "SHUTDOWN",
        "TRUNCATE",
        "UPDATE",
        "UPDATETEXT",
        "USE",
        "WAITFOR",
        "WRITETEXT",
    ];
    let bad = |why: String| Err(format!("filter {filter:?} {why}"));
    let chars: Vec<char> = filter.chars().collect();
    let mut depth = 0i32;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' | '[' | '"' => {
                let close = if c == '[' { ']' } else { c };
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return bad("has an unterminated quote".into()),
                        Some(&x) if x == close && chars.get(i + 1) == Some(&close) => i += 2,
                        Some(&x) if x == close => break,
                        Some(_) => i += 1,
                    }
                }
            }
            ';' => return bad("holds a ';': a filter is one expression".into()),
            '-' if chars.get(i + 1) == Some(&'-') => return bad("holds a comment".into()),
            '/' if chars.get(i + 1) == Some(&'*') => return bad("holds a comment".into()),
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return bad("closes a parenthesis it did not open".into());
                }
            }
            c if c.is_alphabetic() || c == '_' || c == '@' || c == '#' => {
                let start = i;
                while chars
                    .get(i + 1)
                    .is_some_and(|x| x.is_alphanumeric() || matches!(x, '_' | '@' | '#' | '$'))
                {
                    i += 1;
                }
                let word: String = chars[start..=i]
                    .iter()
                    .collect::<String>()
                    .to_ascii_uppercase();
                if FORBIDDEN.contains(&word.as_str()) {
                    return bad(format!("uses {word}, which has no place in a row filter"));
                }
            }
            _ => {}
        }
        i += 1;
    }
    if depth != 0 {
        return bad("leaves a parenthesis open".into());
    }
    Ok(())
}

/// A column's type as SQL Server spells it in DDL, from sys.columns and sys.types.
pub fn spell_type(base: &str, max_length: i16, precision: u8, scale: u8) -> String {
    match base {
        "varchar" | "char" | "varbinary" | "binary" => match max_length {
            -1 => format!("{base}(max)"),
            n => format!("{base}({n})"),
        },
        "nvarchar" | "nchar" => match max_length {
            -1 => format!("{base}(max)"),
            n => format!("{base}({})", n / 2),
        },
        "decimal" | "numeric" => format!("{base}({precision},{scale})"),
        "datetime2" | "time" | "datetimeoffset" => format!("{base}({scale})"),
        "float" if precision == 24 => "real".into(),
        other => other.to_string(),
    }
}

/// Digits after the second that a temporal type holds: datetime's 1/300 s read as
/// milliseconds, smalldatetime's minutes as whole seconds.
pub fn fraction_digits(base: &str, scale: u8) -> Option<u8> {
    match base {
        "datetime2" | "time" | "datetimeoffset" => Some(scale),
        "datetime" => Some(3),
        "smalldatetime" => Some(0),
        _ => None,
    }
}

/// The logical type of a column, from its system type's name.
pub fn logical_type(base: &str) -> Option<LogicalType> {
    Some(match base {
        "bit" => LogicalType::Bool,
        "tinyint" | "smallint" | "int" | "bigint" => LogicalType::Int,
        "decimal" | "numeric" | "money" | "smallmoney" => LogicalType::Decimal,
        "real" | "float" => LogicalType::Float,
        "char" | "varchar" | "nchar" | "nvarchar" | "text" | "ntext" | "sysname" => {
            LogicalType::Text
        }
        "binary" | "varbinary" | "image" => LogicalType::Bytes,
        "uniqueidentifier" => LogicalType::Uuid,
        "date" => LogicalType::Date,
        "time" => LogicalType::Time,
        "datetime" | "datetime2" | "smalldatetime" => LogicalType::Timestamp,
        "datetimeoffset" => LogicalType::TimestampTz,
        // xml, sql_variant, geography, geometry, hierarchyid, timestamp (rowversion),
        // CLR types: not compared.
        _ => return None,
    })
}

/// Chooses the key: the primary key, else the unique index of fewest columns that are
/// all NOT NULL. Rows are (index id, is primary key, column, nullable), in index order.
pub fn choose_key(rows: &[(i32, bool, String, bool)]) -> Vec<String> {
    let mut indexes: Vec<(i32, bool, Vec<String>, bool)> = Vec::new();
    for (id, pk, col, nullable) in rows {
        match indexes.last_mut() {
            Some(ix) if ix.0 == *id => {
                ix.2.push(col.clone());
                ix.3 |= nullable;
            }
            _ => indexes.push((*id, *pk, vec![col.clone()], *nullable)),
        }
    }
    if let Some(pk) = indexes.iter().find(|ix| ix.1) {
        return pk.2.clone();
    }
    indexes
        .into_iter()
        .filter(|ix| !ix.3)
        .min_by_key(|ix| (ix.2.len(), ix.0))
        .map(|ix| ix.2)
        .unwrap_or_default()
}

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
        let stmt = self.statements(q)?.scan(range, false);
        let decoders: Vec<Decoder> = q.columns.iter().map(Decoder::new).collect();
        let key0 = q.key[0];
        self.rows(
            &q.table,
            &stmt,
            &tx,
            ENCODED_BATCH,
            |out: &mut EncodedRows, row| {
                out.push_row(&self.decode_row(q, &decoders, row)?, key0);
                Ok(())
            },
        )
        .await
    }

    async fn scan(&self, q: &TableQuery, range: &KeyRange, tx: RowSender) -> Result<u64> {
        let stmt = self.statements(q)?.scan(range, true);
        self.send_rows(q, &stmt, &tx).await
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

// ---- decoding --------------------------------------------------------------------------

/// Decodes one column's TDS values into the value model, exactly.
struct Decoder {
    column: QueryColumn,
}

impl Decoder {
    fn new(c: &QueryColumn) -> Decoder {
        Decoder { column: c.clone() }
    }
}

impl FieldDecoder for Decoder {
    type Field = ColumnData<'static>;

    fn column(&self) -> &QueryColumn {
        &self.column
    }

    fn decode(&self, v: ColumnData<'static>) -> std::result::Result<Value, String> {
        use ColumnData as D;
        let ts = |days: i64, nanos: u64| Timestamp {
            secs: days * 86_400 + (nanos / 1_000_000_000) as i64,
            nanos: (nanos % 1_000_000_000) as u32,
        };
        let time_nanos = |t: tiberius::time::Time| -> std::result::Result<u64, String> {
            let scale = t.scale();
            if scale > 9 {
                return Err(format!("time scale {scale}"));
            }
            Ok(t.increments() * 10u64.pow(9 - scale as u32))
        };
        Ok(match (self.column.logical, v) {
            (
                _,
                D::U8(None)
                | D::I16(None)
                | D::I32(None)
                | D::I64(None)
                | D::F32(None)
                | D::F64(None)
                | D::Bit(None)
                | D::String(None)
                | D::Guid(None)
                | D::Binary(None)
                | D::Numeric(None)
                | D::DateTime(None)
                | D::SmallDateTime(None)
                | D::Time(None)
                | D::Date(None)
                | D::DateTime2(None)
                | D::DateTimeOffset(None),
            ) => Value::Null,
            (LogicalType::Bool, D::Bit(Some(b))) => Value::Bool(b),
            (LogicalType::Int, D::U8(Some(i))) => Value::Int(i as i128),
            (LogicalType::Int, D::I16(Some(i))) => Value::Int(i as i128),
            (LogicalType::Int, D::I32(Some(i))) => Value::Int(i as i128),
            (LogicalType::Int, D::I64(Some(i))) => Value::Int(i as i128),
            (LogicalType::Decimal, D::Numeric(Some(n))) => Value::Decimal(Decimal::normalize(
                n.value() < 0,
                n.value().unsigned_abs().to_string(),
                -(n.scale() as i32),
            )),
            (LogicalType::Float, D::F32(Some(f))) => Value::float(f as f64),
            (LogicalType::Float, D::F64(Some(f))) => Value::float(f),
            (LogicalType::Text, D::String(Some(s))) => Value::Text(s.into_owned()),
            (LogicalType::Bytes, D::Binary(Some(b))) => Value::Bytes(b.into_owned()),
            // tiberius puts the mixed-endian wire bytes in RFC 4122 order.
            (LogicalType::Uuid, D::Guid(Some(u))) => Value::Uuid(*u.as_bytes()),
            (LogicalType::Date, D::Date(Some(d))) => {
                Value::Date((d.days() as i64 - DAYS_0001_TO_1970) as i32)
            }
            (LogicalType::Time, D::Time(Some(t))) => Value::Time(time_nanos(t)?),
            // 1/300 s ticks, as the milliseconds SQL Server shows them: .003, .007, .010.
            (LogicalType::Timestamp, D::DateTime(Some(dt))) => {
                let ticks = dt.seconds_fragments() as u64;
                let millis = (ticks * 10 + 1) / 3;
                Value::Timestamp(ts(dt.days() as i64 - DAYS_1900_TO_1970, millis * 1_000_000))
            }
            (LogicalType::Timestamp, D::SmallDateTime(Some(dt))) => Value::Timestamp(ts(
                dt.days() as i64 - DAYS_1900_TO_1970,
                dt.seconds_fragments() as u64 * 60_000_000_000,
            )),
            (LogicalType::Timestamp, D::DateTime2(Some(dt))) => Value::Timestamp(ts(
                dt.date().days() as i64 - DAYS_0001_TO_1970,
                time_nanos(dt.time())?,
            )),
            // The wire holds the instant in UTC, and the offset beside it (MS-TDS 2.2.5.5.1.8).
            (LogicalType::TimestampTz, D::DateTimeOffset(Some(dto))) => {
                let dt = dto.datetime2();
                Value::TimestampTz(
                    ts(
                        dt.date().days() as i64 - DAYS_0001_TO_1970,
                        time_nanos(dt.time())?,
                    ),
                    Offset(dto.offset()),
                )
            }
            (t, v) => return Err(format!("unexpected {v:?} for a {t} column")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiberius::numeric::Numeric;
    use tiberius::time::{Date, DateTime, DateTime2, DateTimeOffset, SmallDateTime, Time};

    fn decode(logical: LogicalType, v: ColumnData<'static>) -> Value {
        Decoder::new(&QueryColumn {
            name: "c".into(),
            db_type: "-".into(),
            logical,
            compare_as: logical,
            identity: false,
            fraction_digits: None,
            compare_fraction: None,
        })
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
            name: "Moment".into(),
            db_type: "datetimeoffset(7)".into(),
            logical: LogicalType::TimestampTz,
            compare_as: LogicalType::TimestampTz,
            identity: false,
            fraction_digits: Some(7),
            compare_fraction: None,
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
        use CertificateCheck::*;
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

/// The pushdown digest cannot run here, so its agreement with the streamed digest is proven
/// type by type: for edge values as the server holds them, the text each column's T-SQL
/// expression ([`hashed_col`]) is documented to produce, computed in Rust with T-SQL's
/// semantics, equals a text that depends on the decoded value alone, so that two rows
/// hash alike in a pushdown digest exactly when the streamed digest sees them equal.
#[cfg(test)]
mod pushdown_text {
    use super::*;
    use sha2::Digest;
    use tiberius::numeric::Numeric;
    use tiberius::time::{Date, DateTime, DateTime2, DateTimeOffset, SmallDateTime, Time};

    fn hex_upper(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02X}")).collect()
    }

    /// CONVERT(varchar, binary, 2): hexadecimal digits without the 0x prefix ("CAST and
    /// CONVERT (Transact-SQL)", binary styles), in upper case as SQL Server writes them.
    fn style_2(b: &[u8]) -> String {
        hex_upper(b)
    }

    /// HASHBYTES('SHA2_256', CAST(x AS nvarchar(max))): SHA-256 of the UTF-16LE code units
    /// that nvarchar stores.
    fn hashbytes_nvarchar(s: &str) -> Vec<u8> {
        let utf16: Vec<u8> = s.encode_utf16().flat_map(u16::to_le_bytes).collect();
        sha2::Sha256::digest(utf16).to_vec()
    }

    fn civil(days_from_0001: i64) -> String {
        chrono::NaiveDate::from_num_days_from_ce_opt(days_from_0001 as i32 + 1)
            .unwrap()
            .format("%Y-%m-%d")
            .to_string()
    }

    /// Style 121, "ODBC canonical (with milliseconds)": yyyy-mm-dd hh:mi:ss.fffffff for
    /// datetime2(7) (the fraction at the type's scale: 3 digits for datetime).
    fn style_121(days_from_0001: i64, hundred_ns: u64, digits: u32) -> String {
        let secs = hundred_ns / 10_000_000;
        let frac = (hundred_ns % 10_000_000) / 10u64.pow(7 - digits);
        format!(
            "{} {:02}:{:02}:{:02}.{:0w$}",
            civil(days_from_0001),
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            frac,
            w = digits as usize
        )
    }

    /// CONVERT(varchar(42), decimal(p,s)): the digits at the declared scale, a '-' for a
    /// negative value, and (where p > s) the integer part's 0; `integer_zero` says whether
    /// a decimal(p,p) writes that 0, which its documentation leaves open.
    fn convert_decimal(unscaled: i128, scale: u8, integer_zero: bool) -> String {
        let digits = unscaled.unsigned_abs().to_string();
        let s = scale as usize;
        let digits = format!("{digits:0>w$}", w = s + 1);
        let (int, frac) = digits.split_at(digits.len() - s);
        let int = if int == "0" && !integer_zero { "" } else { int };
        let sign = if unscaled < 0 { "-" } else { "" };
        if s == 0 {
            format!("{sign}{int}")
        } else {
            format!("{sign}{int}.{frac}")
        }
    }

    /// The decimal part of [`hashed_col`], step by step with T-SQL's string functions
    /// (1-based; LEN ignores trailing spaces, of which there are none here).
    fn tsql_decimal_text(text: &str, precision_is_scale: bool, is_zero: bool) -> String {
        let left = |s: &str, n: usize| s.chars().take(n).collect::<String>();
        let len = |s: &str| s.chars().count();
        let v = if precision_is_scale && left(text, 1) == "." {
            format!("0{text}")
        } else if precision_is_scale && left(text, 2) == "-." {
            format!("-0{}", &text[1..])
        } else {
            text.to_string()
        };
        // PATINDEX('%[^0]%', REVERSE(v)): where the first character that is not 0 is,
        // counting from the end.
        let reversed: String = v.chars().rev().collect();
        let patindex = reversed.chars().position(|c| c != '0').map_or(0, |i| i + 1);
        let z = left(&v, len(&v) - patindex + 1);
        if is_zero {
            "0".into()
        } else if !v.contains('.') {
            v
        } else if z.ends_with('.') {
            left(&z, len(&z) - 1)
        } else {
            z
        }
    }

    /// The text a column's part of the row hash should be, from the decoded value alone.
    fn from_value(v: &Value) -> String {
        let at_7 = |t: &Timestamp| {
            let days = t.secs.div_euclid(86_400) + DAYS_0001_TO_1970;
            let hundred_ns = t.secs.rem_euclid(86_400) as u64 * 10_000_000 + t.nanos as u64 / 100;
            style_121(days, hundred_ns, 7)
        };
        match v {
            Value::Int(i) => i.to_string(),
            Value::Bool(b) => (*b as u8).to_string(),
            Value::Decimal(d) if *d == Decimal::from_i128(0) => "0".into(),
            Value::Decimal(d) => d.to_string(),
            Value::Float(f) if *f == 0.0 => "0".into(),
            Value::Float(f) => hex_upper(&f.to_bits().to_be_bytes()),
            Value::Text(s) => hex_upper(&hashbytes_nvarchar(s)),
            Value::Bytes(b) => hex_upper(&sha2::Sha256::digest(b)),
            Value::Uuid(u) => crate::value::format_uuid(u).to_uppercase(),
            Value::Date(d) => crate::value::format_date(*d),
            Value::Time(n) => style_121(
                crate::value::days_from_civil(1900, 1, 1).unwrap() as i64 + DAYS_0001_TO_1970,
                n / 100,
                7,
            ),
            Value::Timestamp(t) | Value::TimestampTz(t, _) => at_7(t),
            other => panic!("no SQL Server type holds {other:?}"),
        }
    }

    /// A column of `db_type` as the engine reads it.
    fn decoded(db_type: &str, wire: ColumnData<'static>) -> Value {
        let base = base_type(db_type);
        let logical = logical_type(base).unwrap();
        let column = QueryColumn {
            name: "c".into(),
            db_type: db_type.into(),
            logical,
            compare_as: logical,
            identity: false,
            fraction_digits: None,
            compare_fraction: None,
        };
        Decoder::new(&column).decode(wire).unwrap()
    }

    /// Asserts that the documented texts equal the value's, and that two of the values give
    /// one text exactly when they are equal values with one encoding.
    fn agree(db_type: &str, cases: Vec<(ColumnData<'static>, String)>) {
        let mut seen: Vec<(Value, String)> = Vec::new();
        for (wire, documented) in cases {
            let v = decoded(db_type, wire);
            assert_eq!(from_value(&v), documented, "{db_type} {v}");
            for (w, text) in &seen {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                v.encode(&mut a);
                w.encode(&mut b);
                assert_eq!(&v == w, a == b, "{db_type}: {v} and {w}");
                assert_eq!(&v == w, text == &documented, "{db_type}: {v} and {w}");
            }
            seen.push((v, documented));
        }
    }

    #[test]
    fn integers_and_bits() {
        for (db_type, values) in [
            ("bigint", vec![i64::MIN, -1, 0, 1, i64::MAX]),
            ("int", vec![i32::MIN as i64, 0, i32::MAX as i64]),
        ] {
            let cases = values
                .iter()
                .map(|&i| {
                    let wire = match db_type {
                        "int" => ColumnData::I32(Some(i as i32)),
                        _ => ColumnData::I64(Some(i)),
                    };
                    // CONVERT(varchar(20), int): its decimal digits, '-' when negative.
                    (wire, i.to_string())
                })
                .collect();
            agree(db_type, cases);
        }
        agree("tinyint", vec![(ColumnData::U8(Some(255)), "255".into())]);
        agree(
            "smallint",
            vec![(ColumnData::I16(Some(-32768)), "-32768".into())],
        );
        agree(
            "bit",
            vec![
                (ColumnData::Bit(Some(true)), "1".into()),
                (ColumnData::Bit(Some(false)), "0".into()),
            ],
        );
    }

    #[test]
    fn decimals_at_any_declared_scale() {
        let max38: i128 = "9".repeat(38).parse().unwrap();
        // (declared type, unscaled value, scale): the same value at several scales must
        // give one text (1.10 = 1.1 = 1.1000000000).
        let values: &[(&str, i128, u8)] = &[
            ("decimal(12,2)", 150, 2),
            ("decimal(38,10)", 15_000_000_000, 10),
            ("decimal(5,1)", 15, 1),
            ("decimal(12,2)", 0, 2),
            ("decimal(12,2)", -5, 2),
            ("decimal(38,0)", 1200, 0),
            ("decimal(38,0)", max38, 0),
            ("decimal(38,0)", -max38, 0),
            ("decimal(38,38)", 1, 38),
            ("decimal(38,38)", -max38, 38),
            ("decimal(2,2)", 50, 2),
            ("decimal(3,2)", 50, 2),
            ("decimal(3,2)", -50, 2),
            // money as the engine selects it, decimal(19,4): the extremes of money.
            ("money", i64::MAX as i128, 4),
            ("money", i64::MIN as i128, 4),
            ("smallmoney", -2_147_483_648, 4),
        ];
        for integer_zero in [true, false] {
            let mut seen: Vec<(Value, String)> = Vec::new();
            for &(db_type, unscaled, scale) in values {
                let p_is_s = decimal_precision_scale(db_type).is_some_and(|(p, s)| p == s);
                let text = convert_decimal(unscaled, scale, integer_zero || !p_is_s);
                let documented = tsql_decimal_text(&text, p_is_s, unscaled == 0);
                let wire = ColumnData::Numeric(Some(Numeric::new_with_scale(unscaled, scale)));
                let v = decoded(db_type, wire);
                assert_eq!(from_value(&v), documented, "{db_type} {text}");
                for (w, t) in &seen {
                    assert_eq!(&v == w, t == &documented, "{v} and {w}");
                }
                seen.push((v, documented));
            }
        }
        let zero_point_five = tsql_decimal_text(&convert_decimal(50, 2, false), true, false);
        assert_eq!(zero_point_five, "0.5");
    }

    #[test]
    fn floats_by_their_bits() {
        let mut cases = Vec::new();
        for f in [
            1.0,
            -1.0,
            0.1,
            f64::MIN_POSITIVE,
            f64::MAX,
            -f64::MAX,
            1e-300,
        ] {
            // CAST(float AS binary(8)): the IEEE 754 bits, most significant byte first.
            cases.push((
                ColumnData::F64(Some(f)),
                style_2(&f.to_bits().to_be_bytes()),
            ));
        }
        // -0 = 0, and both are '0'.
        cases.push((ColumnData::F64(Some(0.0)), "0".into()));
        cases.push((ColumnData::F64(Some(-0.0)), "0".into()));
        agree("float", cases);
        // real widened to float exactly: a real and the float of its value hash alike.
        let r = 0.1f32;
        let widened = style_2(&(r as f64).to_bits().to_be_bytes());
        agree(
            "real",
            vec![
                (ColumnData::F32(Some(r)), widened.clone()),
                (
                    ColumnData::F32(Some(f32::MAX)),
                    style_2(&(f32::MAX as f64).to_bits().to_be_bytes()),
                ),
            ],
        );
        assert_eq!(
            from_value(&decoded("float", ColumnData::F64(Some(r as f64)))),
            widened
        );
    }

    #[test]
    fn text_and_bytes_by_the_hash_of_what_they_hold() {
        let text = |s: &str| {
            (
                ColumnData::String(Some(s.to_string().into())),
                style_2(&hashbytes_nvarchar(s)),
            )
        };
        // Trailing spaces are kept (HASHBYTES sees them), characters past U+FFFF are two
        // UTF-16 code units, and the empty string is not NULL.
        agree(
            "nvarchar(max)",
            [
                "",
                " ",
                "a",
                "a ",
                "é",
                "e\u{301}",
                "😀",
                "日本語",
                "#",
                "~",
            ]
            .into_iter()
            .map(text)
            .collect(),
        );
        let bytes = |b: Vec<u8>| {
            let documented = style_2(&sha2::Sha256::digest(&b));
            (ColumnData::Binary(Some(b.into())), documented)
        };
        agree(
            "varbinary(max)",
            vec![
                bytes(vec![]),
                bytes(vec![0]),
                bytes(vec![0, 0]),
                bytes(vec![0xff; 30_000]),
            ],
        );
    }

    #[test]
    fn uniqueidentifiers_as_their_text() {
        // CONVERT(char(36), uniqueidentifier): the canonical text, upper case.
        let cases = [
            "00000000-0000-0000-0000-000000000000",
            "6F9619FF-8B86-D011-B42D-00C04FC964FF",
            "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
        ]
        .into_iter()
        .map(|s| {
            (
                ColumnData::Guid(Some(tiberius::Uuid::parse_str(s).unwrap())),
                s.to_string(),
            )
        })
        .collect();
        agree("uniqueidentifier", cases);
    }

    #[test]
    fn dates_and_times_in_styles_23_and_121() {
        // date, style 23 (ISO 8601 yyyy-mm-dd): days since 0001-01-01.
        let dates = [0u32, 577_814, 693_595, 730_178, 3_652_058]
            .into_iter()
            .map(|d| (ColumnData::Date(Some(Date::new(d))), civil(d as i64)))
            .collect();
        agree("date", dates);
        // time(n) cast to datetime2(7): 1900-01-01 and the time at 100 ns.
        let day_1900 = 693_595;
        let times = [(0u64, 7u8), (863_999_999_999, 7), (45_296, 0), (123, 3)]
            .into_iter()
            .map(|(increments, scale)| {
                let hundred_ns = increments * 10u64.pow(7 - scale as u32);
                (
                    ColumnData::Time(Some(Time::new(increments, scale))),
                    style_121(day_1900, hundred_ns, 7),
                )
            })
            .collect();
        agree("time(7)", times);
        // datetime, style 121 at its 3 digits, then '0000': ticks of 1/300 s shown as
        // milliseconds rounded to the nearest ("datetime (Transact-SQL)": .000, .003, .007).
        let datetimes = [
            (0i32, 0u32),
            (0, 1),
            (0, 2),
            (-53_690, 0),
            (2_958_463, 25_919_999),
        ]
        .into_iter()
        .map(|(days, ticks)| {
            let ms = (ticks as f64 * 1000.0 / 300.0).round() as u64;
            let documented = style_121(day_1900 + days as i64, ms * 10_000, 3) + "0000";
            (
                ColumnData::DateTime(Some(DateTime::new(days, ticks))),
                documented,
            )
        })
        .collect();
        agree("datetime", datetimes);
        // smalldatetime and datetime2(n) cast to datetime2(7), style 121.
        let small = [(0u16, 0u16), (65_535, 1_439)]
            .into_iter()
            .map(|(days, minutes)| {
                (
                    ColumnData::SmallDateTime(Some(SmallDateTime::new(days, minutes))),
                    style_121(day_1900 + days as i64, minutes as u64 * 600_000_000, 7),
                )
            })
            .collect();
        agree("smalldatetime", small);
        let dt2 =
            |days, increments, scale| DateTime2::new(Date::new(days), Time::new(increments, scale));
        let at_7 = |days: u32, increments: u64, scale: u8| {
            style_121(days as i64, increments * 10u64.pow(7 - scale as u32), 7)
        };
        agree(
            "datetime2(7)",
            vec![
                (ColumnData::DateTime2(Some(dt2(0, 0, 7))), at_7(0, 0, 7)),
                (
                    ColumnData::DateTime2(Some(dt2(3_652_058, 863_999_999_999, 7))),
                    at_7(3_652_058, 863_999_999_999, 7),
                ),
                (
                    ColumnData::DateTime2(Some(dt2(739_050, 1, 7))),
                    at_7(739_050, 1, 7),
                ),
                // datetime2(3) holding the same instant as a datetime2(7): one text.
                (
                    ColumnData::DateTime2(Some(dt2(739_050, 5, 3))),
                    at_7(739_050, 5, 3),
                ),
                (
                    ColumnData::DateTime2(Some(dt2(739_050, 50_000, 7))),
                    at_7(739_050, 50_000, 7),
                ),
            ],
        );
        // datetimeoffset: SWITCHOFFSET to +00:00 and cast to datetime2(7): the instant,
        // whatever the offset (the wire holds the instant in UTC beside its offset).
        let utc = |days, increments| DateTime2::new(Date::new(days), Time::new(increments, 7));
        agree(
            "datetimeoffset(7)",
            [
                (739_050, 72_000_000_001, 585i16),
                (739_050, 72_000_000_001, 0),
                (739_050, 72_000_000_001, -840),
                (739_050, 72_000_000_002, 585),
                (3_652_058, 863_999_999_999, -840),
            ]
            .into_iter()
            .map(|(days, increments, offset)| {
                (
                    ColumnData::DateTimeOffset(Some(DateTimeOffset::new(
                        utc(days, increments),
                        offset,
                    ))),
                    style_121(days as i64, increments, 7),
                )
            })
            .collect(),
        );
    }

    /// The expressions these texts model are the ones the statements use.
    #[test]
    fn the_modelled_expressions_are_the_ones_sent() {
        let col = |db_type: &str| {
            let logical = logical_type(base_type(db_type)).unwrap();
            QueryColumn {
                name: "c".into(),
                db_type: db_type.into(),
                logical,
                compare_as: logical,
                identity: false,
                fraction_digits: None,
                compare_fraction: None,
            }
        };
        let mut applies = Vec::new();
        for (db_type, expected) in [
            ("date", "COALESCE(CONVERT(char(10), [c], 23), '~')"),
            ("datetime", "COALESCE(CONVERT(char(23), [c], 121) + '0000', '~')"),
            ("time(7)", "COALESCE(CONVERT(char(27), CAST([c] AS datetime2(7)), 121), '~')"),
            (
                "datetimeoffset(7)",
                "COALESCE(CONVERT(char(27), CAST(SWITCHOFFSET([c], '+00:00') AS datetime2(7)), 121), '~')",
            ),
            (
                "float",
                "COALESCE(CASE WHEN [c] = 0 THEN '0' ELSE CONVERT(varchar(18), CAST(CAST([c] AS float) AS binary(8)), 2) END, '~')",
            ),
            (
                "nvarchar(max)",
                "COALESCE(CONVERT(varchar(66), HASHBYTES('SHA2_256', CAST([c] AS nvarchar(max))), 2), '~')",
            ),
            ("uniqueidentifier", "COALESCE(CONVERT(char(36), [c]), '~')"),
        ] {
            assert_eq!(hashed_col(&col(db_type), 0, &mut applies), expected);
        }
        assert!(applies.is_empty());
        hashed_col(&col("decimal(2,2)"), 3, &mut applies);
        assert!(
            applies[0].contains("WHEN LEFT(CONVERT(varchar(42), [c]), 1) = '.' THEN '0' + "),
            "{}",
            applies[0]
        );
        applies.clear();
        hashed_col(&col("decimal(12,2)"), 3, &mut applies);
        assert_eq!(
            applies[0],
            " CROSS APPLY (SELECT CONVERT(varchar(42), [c]) AS dw_v) AS dw_t3"
        );
    }
}
