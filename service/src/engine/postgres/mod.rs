//! PostgreSQL (tokio-postgres, TLS through rustls).
//!
//! Sessions are read-only (`default_transaction_read_only`), with a statement timeout and
//! fixed output settings, so that no result depends on a server's defaults. Rows are read
//! with `COPY (SELECT …) TO STDOUT (FORMAT binary)` and decoded from the binary send
//! format: the cheapest way to move rows, with no text parsing on either side. Pushdown
//! digests use `hash_record_extended`, which agrees with PostgreSQL's own equality
//! (numeric by value, -0.0 = 0.0, timestamptz by instant) and is stable across major
//! versions (hash partitioning depends on it).
//!
//! Must not: write, or interpolate anything into SQL that is not a quoted identifier or a
//! literal built by [`literal`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Buf, BytesMut};
use futures::{pin_mut, StreamExt};
use tokio_postgres::{CancelToken, Client};

use super::pool::{Lease, Pool};
use super::sql::{Dialect, Sql};
use super::{DigestSpec, Digests, EncodedSender, Engine, EngineError, Feed, Result, RowSender, ENCODED_BATCH, ROW_BATCH};
use crate::table::{Column, Family, KeyRange, QueryColumn, Row, TableQuery, TableRef, TableSchema};
use crate::config::DatabaseConfig;
use crate::value::{
    encode_decimal_body, encode_prefixed, format_date, format_time, format_timestamp, format_uuid,
    Decimal, EncodedRows, Fraction, Key, LogicalType, Timestamp, Value, TAG_BYTES, TAG_DECIMAL,
    TAG_JSON, TAG_TEXT,
};

/// Seed of `hash_record_extended`. Not 0: with seed 0, a float 0.0 hashes to 0, exactly
/// like NULL, and the two would compare equal.
const HASH_SEED: i64 = 1;

pub struct Postgres {
    name: String,
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    /// Idle clients, and the cancel tokens of those in use (shutdown).
    pool: Pool<Client, CancelToken>,
}

impl Postgres {
    pub fn new(name: &str, db: &DatabaseConfig) -> Result<Postgres> {
        let cfg_err = |message: String| EngineError::Config {
            database: name.to_string(),
            message,
        };
        let tls = TlsOptions::from_url(&db.url).map_err(cfg_err)?;
        let mut config: tokio_postgres::Config = tls
            .url
            .parse()
            .map_err(|e| cfg_err(format!("invalid PostgreSQL URL: {e}")))?;
        if let Some(p) = &db.password {
            config.password(p.as_str());
        }
        let timeout_ms = db.statement_timeout.as_millis();
        config.application_name("driftwatch");
        config.options(format!(
            "-c default_transaction_read_only=on -c statement_timeout={timeout_ms} -c DateStyle=ISO \
             -c IntervalStyle=iso_8601 -c TimeZone=UTC -c extra_float_digits=3 -c bytea_output=hex \
             -c standard_conforming_strings=on"
        ));
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let tls = tls.client_config().map_err(cfg_err)?;
        Ok(Postgres {
            name: name.to_string(),
            config,
            tls: tokio_postgres_rustls::MakeRustlsConnect::new(tls),
            pool: Pool::new(),
        })
    }

    async fn session(&self) -> Result<Session<'_>> {
        let client = match self.pool.idle() {
            Some((c, _)) if !c.is_closed() => c,
            _ => {
                let (client, conn) = self.config.connect(self.tls.clone()).await.map_err(|e| {
                    EngineError::Connect {
                        database: self.name.clone(),
                        message: error_text(&e),
                    }
                })?;
                let database = self.name.clone();
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%database, error = %e, "PostgreSQL connection closed");
                    }
                });
                client
            }
        };
        let cancel = client.cancel_token();
        Ok(self.pool.lease(client, cancel))
    }

    fn query_err(&self, table: &TableRef, e: tokio_postgres::Error) -> EngineError {
        if e.is_closed() || e.as_db_error().is_none() && e.code().is_none() {
            EngineError::Connect {
                database: self.name.clone(),
                message: error_text(&e),
            }
        } else {
            EngineError::Query {
                database: self.name.clone(),
                table: table.to_string(),
                message: error_text(&e),
            }
        }
    }

    /// Runs `COPY (sql) TO STDOUT (FORMAT binary)`, adding each tuple to a batch and
    /// sending the batch to `tx` once it holds `limit` rows; stops early, without error,
    /// when the receiver is gone.
    async fn copy<B: Batch>(
        &self,
        q: &TableQuery,
        sql: &str,
        width: usize,
        tx: &tokio::sync::mpsc::Sender<B>,
        limit: usize,
        mut add: impl FnMut(&mut B, &[u8], &[Option<(usize, usize)>]) -> Result<()>,
    ) -> Result<u64> {
        let mut batch = B::default();
        let s = self.session().await?;
        let stream = s
            .get()
            .copy_out(&format!("COPY ({sql}) TO STDOUT (FORMAT binary)"))
            .await
            .map_err(|e| self.query_err(&q.table, e))?;
        pin_mut!(stream);
        let mut parser = CopyParser::default();
        let mut fields = Vec::with_capacity(width);
        let mut n = 0u64;
        let mut pending = false;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.query_err(&q.table, e))?;
            let mut full = false;
            parser
                .feed(&chunk, &mut fields, |tuple, fields| {
                    if fields.len() != width {
                        return Err(self.decode_err(
                            q,
                            "-",
                            "-",
                            format!("expected {width} fields, got {}", fields.len()),
                        ));
                    }
                    add(&mut batch, tuple, fields)?;
                    n += 1;
                    pending = true;
                    full |= batch.rows() >= limit;
                    Ok(())
                })
                .map_err(|m| self.decode_err(q, "-", "-", m))??;
            if full {
                pending = false;
                if tx.send(std::mem::take(&mut batch)).await.is_err() {
                    // The consumer has what it needs. A session left mid-COPY is not reused.
                    s.discard();
                    return Ok(n);
                }
            }
        }
        s.release();
        if pending {
            let _ = tx.send(batch).await;
        }
        Ok(n)
    }

    /// Decoded rows of a COPY, sent in batches.
    async fn copy_rows(
        &self,
        q: &TableQuery,
        columns: &[Decoder],
        sql: &str,
        tx: &RowSender,
    ) -> Result<u64> {
        self.copy(
            q,
            sql,
            columns.len(),
            tx,
            ROW_BATCH,
            |batch: &mut Vec<Row>, tuple, fields| {
                batch.push(self.decode_row(q, columns, tuple, fields)?);
                Ok(())
            },
        )
        .await
    }

    fn decode_row(
        &self,
        q: &TableQuery,
        columns: &[Decoder],
        tuple: &[u8],
        fields: &[Option<(usize, usize)>],
    ) -> Result<Row> {
        columns
            .iter()
            .zip(fields)
            .map(|(d, f)| match f {
                None => Ok(Value::Null),
                Some((a, b)) => d
                    .decode(&tuple[*a..*b])
                    .map(|v| v.coerce(d.compare_as, d.compare_fraction))
                    .map_err(|m| self.decode_err(q, &d.column, &d.db_type, m)),
            })
            .collect()
    }

    fn decode_err(
        &self,
        q: &TableQuery,
        column: &str,
        db_type: &str,
        message: String,
    ) -> EngineError {
        EngineError::Decode {
            database: self.name.clone(),
            table: q.table.to_string(),
            column: column.to_string(),
            db_type: db_type.to_string(),
            message,
        }
    }

    async fn query(
        &self,
        table: &TableRef,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>> {
        let s = self.session().await?;
        let rows = s
            .get()
            .query(sql, params)
            .await
            .map_err(|e| self.query_err(table, e))?;
        s.release();
        Ok(rows)
    }
}

/// TLS as libpq means it: `sslmode=prefer` (the default) and `require` encrypt without
/// authenticating the server; `verify-ca` and `verify-full` also verify its certificate
/// (both check the host name here) against the system roots or `sslrootcert`.
struct TlsOptions {
    /// The URL without the parameters tokio-postgres does not know.
    url: String,
    verify: bool,
    root_cert: Option<String>,
}

impl TlsOptions {
    fn from_url(url: &str) -> std::result::Result<TlsOptions, String> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        let (mut verify, mut root_cert) = (false, None);
        for param in query.split('&').filter(|p| !p.is_empty()) {
            match param.split_once('=') {
                Some(("sslmode", "verify-ca" | "verify-full")) => {
                    verify = true;
                    kept.push("sslmode=require".to_string());
                }
                Some(("sslrootcert", path)) => root_cert = Some(path.to_string()),
                _ => kept.push(param.to_string()),
            }
        }
        let url = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        Ok(TlsOptions {
            url,
            verify,
            root_cert,
        })
    }

    fn client_config(&self) -> std::result::Result<rustls::ClientConfig, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?;
        if !self.verify {
            return Ok(builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
                .with_no_client_auth());
        }
        let mut roots = rustls::RootCertStore::empty();
        match &self.root_cert {
            Some(path) => {
                use rustls::pki_types::pem::PemObject;
                let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                    .map_err(|e| format!("sslrootcert {path}: {e}"))?;
                for cert in certs {
                    roots
                        .add(cert.map_err(|e| format!("sslrootcert {path}: {e}"))?)
                        .map_err(|e| format!("sslrootcert {path}: {e}"))?;
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        Ok(builder.with_root_certificates(roots).with_no_client_auth())
    }
}

/// libpq's `sslmode=require`: the channel is encrypted and the handshake's signatures are
/// checked, but the certificate itself is not trusted or rejected.
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                src = inner.source();
            }
            s
        }
    }
}

/// What a COPY fills: decoded rows, or canonical encodings.
trait Batch: Default + Send {
    fn rows(&self) -> usize;
}

impl Batch for Vec<Row> {
    fn rows(&self) -> usize {
        self.len()
    }
}

impl Batch for EncodedRows {
    fn rows(&self) -> usize {
        self.len()
    }
}

/// A pooled client: back to the pool only when a statement completed cleanly.
type Session<'a> = Lease<'a, Client, CancelToken>;

// ---- SQL -------------------------------------------------------------------------------

pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn table_sql(t: &TableRef) -> String {
    format!(
        "{}.{}",
        quote_ident(t.schema.as_deref().unwrap_or("public")),
        quote_ident(&t.name)
    )
}

/// The type to cast a literal to: the declared type without its modifiers, so that a
/// bound is never rounded or truncated by a typmod.
fn cast_type(db_type: &str) -> String {
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
pub fn input_text(v: &Value) -> Option<String> {
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
pub fn quote_text(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// PostgreSQL's spelling of the shared range SQL: literals typed as their column, and
/// `COLLATE "C"` for bytewise text.
struct Pg;

impl Dialect for Pg {
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

fn sql(q: &TableQuery) -> Sql<'_, Pg> {
    Sql::new(q, Pg)
}

/// A column inside the hashed ROW(): json has no hash function, and interval's hash
/// equates '1 day' with '24 hours', so both are hashed by their text.
fn hashed_col(c: &QueryColumn) -> String {
    let name = quote_ident(&c.name);
    match c.logical {
        LogicalType::Json if cast_type(&c.db_type) == "json" => format!("md5({name}::text)"),
        LogicalType::Interval => format!("{name}::text"),
        _ => name,
    }
}

// ---- Engine ----------------------------------------------------------------------------

#[async_trait]
impl Engine for Postgres {
    fn family(&self) -> Family {
        Family::Postgres
    }

    async fn introspect(&self, table: &TableRef) -> Result<TableSchema> {
        let full = table_sql(table);
        let oid_rows = self
            .query(table, "SELECT to_regclass($1)::oid", &[&full])
            .await?;
        let oid: Option<u32> = oid_rows.first().and_then(|r| r.get(0));
        let Some(oid) = oid else {
            return Err(EngineError::TableNotFound {
                database: self.name.clone(),
                table: table.to_string(),
            });
        };
        let cols = self
            .query(
                table,
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), \
                        coalesce(bt.typname, t.typname)::text, \
                        CASE WHEN a.attcollation <> 0 AND co.collname NOT IN ('C', 'POSIX', 'default') THEN co.collname::text END, \
                 a.attidentity <> '', \
                 CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END \
                 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
                 LEFT JOIN pg_type bt ON bt.oid = t.typbasetype AND t.typtype = 'd' \
                 LEFT JOIN pg_collation co ON co.oid = a.attcollation \
                 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                &[&oid],
            )
            .await?;
        let columns = cols
            .iter()
            .map(|r| {
                let typname: String = r.get(2);
                let logical = logical_type(&typname);
                Column {
                    name: r.get(0),
                    db_type: r.get(1),
                    fraction_digits: fraction_digits(logical, r.get(5)),
                    logical,
                    collation: r.get(3),
                    identity: r.get(4),
                }
            })
            .collect();
        let pk = self
            .query(
                table,
                "SELECT a.attname::text FROM pg_index i \
                 CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                 WHERE i.indrelid = $1 AND i.indisprimary ORDER BY k.n",
                &[&oid],
            )
            .await?;
        Ok(TableSchema {
            columns,
            primary_key: pk.iter().map(|r| r.get(0)).collect(),
            pushdown_unavailable: None,
        })
    }

    async fn lead_bounds(&self, q: &TableQuery) -> Result<Option<(i64, i64)>> {
        let mut sql = sql(q);
        let k1 = sql.col(q.key[0]);
        let text = format!(
            "SELECT min({k1})::int8, max({k1})::int8 FROM {}{}",
            table_sql(&q.table),
            sql.where_clause(&KeyRange::default())
        );
        let rows = self.query(&q.table, &text, &[]).await?;
        let row = &rows[0];
        Ok(
            match (row.get::<_, Option<i64>>(0), row.get::<_, Option<i64>>(1)) {
                (Some(lo), Some(hi)) => Some((lo, hi)),
                _ => None,
            },
        )
    }

    async fn key_at(&self, q: &TableQuery, range: &KeyRange, offset: u64) -> Result<Option<Key>> {
        let mut sql = sql(q);
        let text = format!(
            "SELECT {} FROM {}{}{} OFFSET {offset} LIMIT 1",
            sql.list(&q.key),
            table_sql(&q.table),
            sql.where_clause(range),
            sql.order_by()
        );
        let decoders: Vec<Decoder> = q.key.iter().map(|&i| Decoder::new(&q.columns[i])).collect();
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        self.copy_rows(q, &decoders, &text, &tx).await?;
        drop(tx);
        Ok(rx.recv().await.and_then(|batch| batch.into_iter().next()))
    }

    async fn pushdown_digest(&self, q: &TableQuery, spec: &DigestSpec) -> Result<Digests> {
        let mut sql = sql(q);
        let k1 = sql.col(q.key[0]);
        let hashed: Vec<String> = q.columns.iter().map(hashed_col).collect();
        let digest = format!("count(*)::int8 AS c, coalesce(sum(hash_record_extended(ROW({}), {HASH_SEED})), 0) AS h", hashed.join(", "));
        let table = table_sql(&q.table);
        let text = match (spec.bucket_width, spec.range.lead_lo, spec.range.lead_hi) {
            // A bounded chunk: one index range scan per bucket, each aggregated as it is
            // read. (Grouping the chunk instead makes the planner sort it, or hash every
            // row's bucket, for want of knowing how few buckets there are.)
            (Some(w), Some(lo), Some(hi))
                if hi.checked_add(w).is_some() && lo.checked_sub(w).is_some() =>
            {
                let (first, last) = (lo.div_euclid(w), (hi - 1).div_euclid(w));
                let bounds = format!(
                    "{k1} >= greatest(g.b * {w}, {lo}) AND {k1} < least(g.b * {w} + {w}, {hi})"
                );
                let range = KeyRange {
                    lead_lo: None,
                    lead_hi: None,
                    ..spec.range.clone()
                };
                let filter = sql.where_clause(&range);
                let filter = if filter.is_empty() {
                    format!(" WHERE {bounds}")
                } else {
                    format!("{filter} AND {bounds}")
                };
                format!(
                    "SELECT g.b, s.c, s.h FROM generate_series({first}::int8, {last}::int8) AS g(b) \
                     CROSS JOIN LATERAL (SELECT {digest} FROM {table}{filter}) s WHERE s.c > 0"
                )
            }
            (Some(w), _, _) => {
                let bucket = format!("({k1}::int8 / {w} - ({k1}::int8 % {w} < 0)::int)");
                format!(
                    "BEGIN READ ONLY; SET LOCAL enable_sort = off; SELECT {bucket}::int8, {digest} FROM {table}{} GROUP BY 1; COMMIT",
                    sql.where_clause(&spec.range)
                )
            }
            (None, _, _) => format!(
                "SELECT 0::int8, {digest} FROM {table}{}",
                sql.where_clause(&spec.range)
            ),
        };
        let s = self.session().await?;
        let messages = s
            .get()
            .simple_query(&text)
            .await
            .map_err(|e| self.query_err(&q.table, e))?;
        s.release();
        let bad = |what: &str| {
            self.decode_err(
                q,
                "-",
                "digest",
                format!("unexpected {what} in a digest row"),
            )
        };
        let mut out = Digests::new();
        for m in messages {
            if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
                let field = |i: usize| r.get(i).ok_or_else(|| bad("NULL"));
                let bucket: i64 = field(0)?.parse().map_err(|_| bad("bucket"))?;
                let count: u64 = field(1)?.parse().map_err(|_| bad("count"))?;
                let sum: i128 = field(2)?.parse().map_err(|_| bad("sum"))?;
                if count > 0 {
                    out.insert(
                        bucket,
                        super::BucketDigest {
                            count,
                            sum: sum as u128,
                        },
                    );
                }
            }
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
        let all: Vec<usize> = (0..q.columns.len()).collect();
        // No ORDER BY: a digest does not depend on row order, and the database may scan
        // the range however is cheapest.
        let text = format!(
            "SELECT {} FROM {}{}",
            sql.list(&all),
            table_sql(&q.table),
            sql.where_clause(range)
        );
        let decoders: Vec<Decoder> = q.columns.iter().map(Decoder::new).collect();
        let key0 = q.key[0];
        let mut scratch = String::new();
        self.copy(
            q,
            &text,
            decoders.len(),
            &tx,
            ENCODED_BATCH,
            |out: &mut EncodedRows, tuple, fields| {
                for (d, f) in decoders.iter().zip(fields) {
                    match f {
                        None => Value::Null.encode(&mut out.data),
                        Some((a, b)) => d
                            .encode(&tuple[*a..*b], &mut out.data, &mut scratch)
                            .map_err(|m| self.decode_err(q, &d.column, &d.db_type, m))?,
                    }
                }
                out.ends.push(out.data.len());
                out.lead.push(match fields[key0] {
                    Some((a, b)) => decoders[key0]
                        .decode(&tuple[a..b])
                        .ok()
                        .and_then(|v| v.as_i64()),
                    None => None,
                });
                Ok(())
            },
        )
        .await
    }

    async fn scan(&self, q: &TableQuery, range: &KeyRange, tx: RowSender) -> Result<u64> {
        let mut sql = sql(q);
        let all: Vec<usize> = (0..q.columns.len()).collect();
        let text = format!(
            "SELECT {} FROM {}{}{}",
            sql.list(&all),
            table_sql(&q.table),
            sql.where_clause(range),
            sql.order_by()
        );
        let decoders: Vec<Decoder> = q.columns.iter().map(Decoder::new).collect();
        self.copy_rows(q, &decoders, &text, &tx).await
    }

    async fn ping(&self) -> Result<()> {
        self.query(&no_table(), "SELECT 1", &[]).await.map(|_| ())
    }

    /// The WAL insert position: at or after the commit record of every transaction a
    /// read could see (with synchronous_commit off, a commit is visible before it is
    /// written or flushed, so the write position would not do).
    async fn replication_position(&self) -> Result<Option<String>> {
        let rows = self
            .query(&no_table(), "SELECT pg_current_wal_insert_lsn()::text", &[])
            .await?;
        Ok(rows.first().map(|r| r.get::<_, String>(0)))
    }

    /// Asked of the publisher: the subscription's slot has a confirmed flush position at
    /// or past `position`. A logical subscriber confirms a position only once every
    /// transaction before it is applied and committed on its side (and, when it has
    /// nothing pending, the position of the publisher's keepalive), so its rows then
    /// show everything up to it. Needs no privilege: pg_replication_slots is public.
    async fn position_applied(
        &self,
        feed: &Feed,
        position: &str,
        _wait: std::time::Duration,
    ) -> Result<bool> {
        let Feed::PostgresSlot(slot) = feed else {
            return Ok(false);
        };
        let rows = self
            .query(
                &no_table(),
                "SELECT confirmed_flush_lsn >= $1::text::pg_lsn FROM pg_replication_slots \
                 WHERE slot_name = $2 AND database = current_database()",
                &[&position, slot],
            )
            .await?;
        match rows.first() {
            None => Err(EngineError::Query {
                database: self.name.clone(),
                table: "-".into(),
                message: format!(
                    "no logical replication slot {slot:?} for this database (set replication_slot to the subscription's slot)"
                ),
            }),
            Some(r) => Ok(r.get::<_, Option<bool>>(0).unwrap_or(false)),
        }
    }

    /// The subscriber's one enabled subscription in this database, by its slot's name.
    /// (These columns of pg_subscription are readable by every role.)
    async fn detect_feed(&self) -> Result<Option<Feed>> {
        let rows = self
            .query(
                &no_table(),
                "SELECT s.subslotname::text FROM pg_subscription s \
                 JOIN pg_database d ON d.oid = s.subdbid \
                 WHERE d.datname = current_database() AND s.subenabled \
                 AND s.subslotname IS NOT NULL",
                &[],
            )
            .await?;
        Ok(match rows.as_slice() {
            [one] => Some(Feed::PostgresSlot(one.get::<_, String>(0))),
            _ => None,
        })
    }

    async fn cancel_all(&self) {
        for token in self.pool.in_use() {
            let _ = token.cancel_query(self.tls.clone()).await;
        }
    }
}

/// The table named in errors of statements about no table (pings, positions).
fn no_table() -> TableRef {
    TableRef {
        schema: None,
        name: "-".into(),
    }
}

fn logical_type(typname: &str) -> Option<LogicalType> {
    Some(match typname {
        "int2" | "int4" | "int8" | "oid" => LogicalType::Int,
        "numeric" => LogicalType::Decimal,
        "float4" | "float8" => LogicalType::Float,
        "bool" => LogicalType::Bool,
        "text" | "varchar" | "bpchar" | "name" | "citext" => LogicalType::Text,
        "bytea" => LogicalType::Bytes,
        "date" => LogicalType::Date,
        "time" => LogicalType::Time,
        "timestamp" => LogicalType::Timestamp,
        "timestamptz" => LogicalType::TimestampTz,
        "uuid" => LogicalType::Uuid,
        "json" | "jsonb" => LogicalType::Json,
        "interval" => LogicalType::Interval,
        _ => return None,
    })
}

/// The fractional-second digits of a time, timestamp or timestamptz column: its type
/// modifier is the precision, -1 (none given) means PostgreSQL's 6.
fn fraction_digits(logical: Option<LogicalType>, typmod: i32) -> Option<u8> {
    match logical? {
        LogicalType::Time | LogicalType::Timestamp | LogicalType::TimestampTz => {
            Some(u8::try_from(typmod).unwrap_or(6))
        }
        _ => None,
    }
}

// ---- binary COPY decoding ----------------------------------------------------------------

/// Decodes one column's binary send format.
struct Decoder {
    column: String,
    db_type: String,
    kind: Kind,
    compare_as: LogicalType,
    compare_fraction: Option<Fraction>,
}

#[derive(Clone, Copy)]
enum Kind {
    Bool,
    Int2,
    Int4,
    Int8,
    Oid,
    Numeric,
    Float4,
    Float8,
    Text,
    Bytea,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Uuid,
    Json,
    Jsonb,
    Interval,
}

/// Seconds from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_SECS: i64 = 946_684_800;
const PG_EPOCH_DAYS: i32 = 10_957;

impl Decoder {
    fn new(c: &crate::table::QueryColumn) -> Decoder {
        let base = cast_type(&c.db_type);
        let kind = match (c.logical, base.as_str()) {
            (LogicalType::Bool, _) => Kind::Bool,
            (LogicalType::Int, "smallint") => Kind::Int2,
            (LogicalType::Int, "integer") => Kind::Int4,
            (LogicalType::Int, "oid") => Kind::Oid,
            (LogicalType::Int, _) => Kind::Int8,
            (LogicalType::Decimal, _) => Kind::Numeric,
            (LogicalType::Float, "real") => Kind::Float4,
            (LogicalType::Float, _) => Kind::Float8,
            (LogicalType::Text, _) => Kind::Text,
            (LogicalType::Bytes, _) => Kind::Bytea,
            (LogicalType::Date, _) => Kind::Date,
            (LogicalType::Time, _) => Kind::Time,
            (LogicalType::Timestamp, _) => Kind::Timestamp,
            (LogicalType::TimestampTz, _) => Kind::TimestampTz,
            (LogicalType::Uuid, _) => Kind::Uuid,
            (LogicalType::Json, "jsonb") => Kind::Jsonb,
            (LogicalType::Json, _) => Kind::Json,
            (LogicalType::Interval, _) => Kind::Interval,
        };
        Decoder {
            column: c.name.clone(),
            db_type: c.db_type.clone(),
            kind,
            compare_as: c.compare_as,
            compare_fraction: c.compare_fraction,
        }
    }

    fn decode(&self, b: &[u8]) -> std::result::Result<Value, String> {
        let fixed = |n: usize| -> std::result::Result<&[u8], String> {
            if b.len() == n {
                Ok(b)
            } else {
                Err(format!("expected {n} bytes, got {}", b.len()))
            }
        };
        let text = || String::from_utf8(b.to_vec()).map_err(|e| e.to_string());
        Ok(match self.kind {
            Kind::Bool => Value::Bool(fixed(1)?[0] != 0),
            Kind::Int2 => Value::Int(i16::from_be_bytes(fixed(2)?.try_into().unwrap()) as i128),
            Kind::Int4 => Value::Int(i32::from_be_bytes(fixed(4)?.try_into().unwrap()) as i128),
            Kind::Oid => Value::Int(u32::from_be_bytes(fixed(4)?.try_into().unwrap()) as i128),
            Kind::Int8 => Value::Int(i64::from_be_bytes(fixed(8)?.try_into().unwrap()) as i128),
            Kind::Float4 => Value::float(f32::from_be_bytes(fixed(4)?.try_into().unwrap()) as f64),
            Kind::Float8 => Value::float(f64::from_be_bytes(fixed(8)?.try_into().unwrap())),
            Kind::Numeric => Value::Decimal(decode_numeric(b)?),
            Kind::Text => Value::Text(text()?),
            Kind::Json => Value::Json(text()?),
            Kind::Jsonb => match b.split_first() {
                Some((1, rest)) => {
                    Value::Json(String::from_utf8(rest.to_vec()).map_err(|e| e.to_string())?)
                }
                _ => return Err("unknown jsonb version".into()),
            },
            Kind::Bytea => Value::Bytes(b.to_vec()),
            Kind::Uuid => Value::Uuid(fixed(16)?.try_into().unwrap()),
            Kind::Date => Value::Date(match i32::from_be_bytes(fixed(4)?.try_into().unwrap()) {
                d @ (i32::MAX | i32::MIN) => d,
                d => d + PG_EPOCH_DAYS,
            }),
            Kind::Time => {
                Value::Time(i64::from_be_bytes(fixed(8)?.try_into().unwrap()) as u64 * 1000)
            }
            Kind::Timestamp => Value::Timestamp(pg_timestamp(i64::from_be_bytes(
                fixed(8)?.try_into().unwrap(),
            ))),
            Kind::TimestampTz => Value::instant(pg_timestamp(i64::from_be_bytes(
                fixed(8)?.try_into().unwrap(),
            ))),
            Kind::Interval => {
                let b = fixed(16)?;
                Value::Interval {
                    micros: i64::from_be_bytes(b[0..8].try_into().unwrap()),
                    days: i32::from_be_bytes(b[8..12].try_into().unwrap()),
                    months: i32::from_be_bytes(b[12..16].try_into().unwrap()),
                }
            }
        })
    }
}

impl Decoder {
    /// Appends the canonical encoding of a field straight from its send format: what
    /// `decode(b).encode(out)` gives, without a heap allocation for text, bytes, json and
    /// numeric. `scratch` is reused across calls.
    fn encode(
        &self,
        b: &[u8],
        out: &mut Vec<u8>,
        scratch: &mut String,
    ) -> std::result::Result<(), String> {
        // Values widened or brought to a coarser precision go through the value model.
        let converted = self.compare_as != logical_of(self.kind) || self.compare_fraction.is_some();
        match self.kind {
            _ if converted => self
                .decode(b)?
                .coerce(self.compare_as, self.compare_fraction)
                .encode(out),
            Kind::Text => encode_prefixed(
                out,
                TAG_TEXT,
                std::str::from_utf8(b)
                    .map_err(|e| e.to_string())?
                    .as_bytes(),
            ),
            Kind::Json => encode_prefixed(
                out,
                TAG_JSON,
                std::str::from_utf8(b)
                    .map_err(|e| e.to_string())?
                    .as_bytes(),
            ),
            Kind::Jsonb => match b.split_first() {
                Some((1, rest)) => encode_prefixed(
                    out,
                    TAG_JSON,
                    std::str::from_utf8(rest)
                        .map_err(|e| e.to_string())?
                        .as_bytes(),
                ),
                _ => return Err("unknown jsonb version".into()),
            },
            Kind::Bytea => encode_prefixed(out, TAG_BYTES, b),
            Kind::Numeric => match numeric_digits(b, scratch)? {
                Some((negative, exp)) => {
                    out.push(TAG_DECIMAL);
                    let (digits, exp) = normalized(scratch, exp);
                    if digits.is_empty() {
                        encode_decimal_body(out, false, "0", 0);
                    } else {
                        encode_decimal_body(out, negative, digits, exp);
                    }
                }
                None => Value::Decimal(decode_numeric(b)?).encode(out),
            },
            _ => self.decode(b)?.encode(out),
        }
        Ok(())
    }
}

/// The logical type a binary kind decodes to.
fn logical_of(kind: Kind) -> LogicalType {
    match kind {
        Kind::Bool => LogicalType::Bool,
        Kind::Int2 | Kind::Int4 | Kind::Int8 | Kind::Oid => LogicalType::Int,
        Kind::Numeric => LogicalType::Decimal,
        Kind::Float4 | Kind::Float8 => LogicalType::Float,
        Kind::Text => LogicalType::Text,
        Kind::Bytea => LogicalType::Bytes,
        Kind::Date => LogicalType::Date,
        Kind::Time => LogicalType::Time,
        Kind::Timestamp => LogicalType::Timestamp,
        Kind::TimestampTz => LogicalType::TimestampTz,
        Kind::Uuid => LogicalType::Uuid,
        Kind::Json | Kind::Jsonb => LogicalType::Json,
        Kind::Interval => LogicalType::Interval,
    }
}

/// Trims a digit string to its normalized form: no leading or trailing zeros, the
/// exponent adjusted (the same normalization as [`Decimal::normalize`]).
fn normalized(digits: &str, exp: i32) -> (&str, i32) {
    let trimmed = digits.trim_start_matches('0');
    let without_trailing = trimmed.trim_end_matches('0');
    (
        without_trailing,
        exp + (trimmed.len() - without_trailing.len()) as i32,
    )
}

fn pg_timestamp(micros: i64) -> Timestamp {
    match micros {
        i64::MAX => Timestamp::INFINITY,
        i64::MIN => Timestamp::NEG_INFINITY,
        m => {
            let t = Timestamp::from_micros(m);
            Timestamp {
                secs: t.secs + PG_EPOCH_SECS,
                nanos: t.nanos,
            }
        }
    }
}

/// numeric's send format: ndigits, weight, sign, dscale, then base-10000 digits.
/// Writes the decimal digits into `digits` and returns (negative, exponent), or `None`
/// for NaN and the infinities.
fn numeric_digits(
    b: &[u8],
    digits: &mut String,
) -> std::result::Result<Option<(bool, i32)>, String> {
    if b.len() < 8 {
        return Err("numeric shorter than its header".into());
    }
    let ndigits = u16::from_be_bytes([b[0], b[1]]) as usize;
    let weight = i16::from_be_bytes([b[2], b[3]]) as i32;
    let sign = u16::from_be_bytes([b[4], b[5]]);
    match sign {
        0xC000 | 0xD000 | 0xF000 => return Ok(None),
        0x0000 | 0x4000 => {}
        s => return Err(format!("unknown numeric sign {s:#x}")),
    }
    if b.len() != 8 + 2 * ndigits {
        return Err("numeric length does not match its digit count".into());
    }
    digits.clear();
    for i in 0..ndigits {
        let d = u16::from_be_bytes([b[8 + 2 * i], b[9 + 2 * i]]);
        if d > 9999 {
            return Err(format!("numeric digit {d} out of range"));
        }
        for div in [1000, 100, 10, 1] {
            digits.push((b'0' + (d / div % 10) as u8) as char);
        }
    }
    Ok(Some((sign == 0x4000, (weight - ndigits as i32 + 1) * 4)))
}

fn decode_numeric(b: &[u8]) -> std::result::Result<Decimal, String> {
    let mut digits = String::new();
    match numeric_digits(b, &mut digits)? {
        Some((negative, exp)) => Ok(Decimal::normalize(negative, digits, exp)),
        None => Ok(match u16::from_be_bytes([b[4], b[5]]) {
            0xC000 => Decimal::NaN,
            0xD000 => Decimal::Infinity,
            _ => Decimal::NegInfinity,
        }),
    }
}

/// Incremental parser of the binary COPY format: header, then tuples of
/// (i16 field count, then per field an i32 length, -1 for NULL, and the bytes).
#[derive(Default)]
struct CopyParser {
    buf: BytesMut,
    header_done: bool,
}

const COPY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

impl CopyParser {
    /// Feeds one message of the COPY stream and hands every complete tuple to `each`,
    /// with its fields' ranges in it (`None` for NULL). PostgreSQL sends a tuple per
    /// message, so tuples are parsed straight from the message, copying nothing, unless
    /// a tuple spans messages.
    fn feed(
        &mut self,
        chunk: &[u8],
        fields: &mut Vec<Option<(usize, usize)>>,
        mut each: impl FnMut(&[u8], &[Option<(usize, usize)>]) -> Result<()>,
    ) -> std::result::Result<Result<()>, String> {
        let mut data = chunk;
        if !self.header_done || !self.buf.is_empty() {
            self.buf.extend_from_slice(chunk);
            if !self.header_done {
                if self.buf.len() < 19 {
                    return Ok(Ok(()));
                }
                if &self.buf[..11] != COPY_SIGNATURE {
                    return Err("not a binary COPY stream".into());
                }
                let ext = u32::from_be_bytes(self.buf[15..19].try_into().unwrap()) as usize;
                if self.buf.len() < 19 + ext {
                    return Ok(Ok(()));
                }
                self.buf.advance(19 + ext);
                self.header_done = true;
            }
            let buffered = std::mem::take(&mut self.buf).freeze();
            let mut off = 0;
            while let Some(len) = parse_tuple(&buffered[off..], fields)? {
                if let Err(e) = each(&buffered[off..off + len], fields) {
                    return Ok(Err(e));
                }
                off += len;
            }
            self.buf.extend_from_slice(&buffered[off..]);
            return Ok(Ok(()));
        }
        while let Some(len) = parse_tuple(data, fields)? {
            if let Err(e) = each(&data[..len], fields) {
                return Ok(Err(e));
            }
            data = &data[len..];
        }
        self.buf.extend_from_slice(data);
        Ok(Ok(()))
    }
}

/// The length of the complete tuple at the start of `data`, if there is one (the
/// trailer, a field count of -1, counts as none), with its fields' ranges in `fields`.
fn parse_tuple(
    data: &[u8],
    fields: &mut Vec<Option<(usize, usize)>>,
) -> std::result::Result<Option<usize>, String> {
    if data.len() < 2 {
        return Ok(None);
    }
    let nfields = i16::from_be_bytes([data[0], data[1]]);
    if nfields < 0 {
        return Ok(None);
    }
    fields.clear();
    let mut pos = 2;
    for _ in 0..nfields {
        if data.len() < pos + 4 {
            return Ok(None);
        }
        let len = i32::from_be_bytes(data[pos..pos + 4].try_into().unwrap());
        pos += 4;
        if len < -1 {
            return Err(format!("negative field length {len}"));
        }
        if len < 0 {
            fields.push(None);
        } else {
            fields.push(Some((pos, pos + len as usize)));
            pos += len as usize;
        }
    }
    if data.len() < pos {
        return Ok(None);
    }
    Ok(Some(pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_send_format_decodes_exactly() {
        // 12345.678: weight 1, digits [1, 2345, 6780], dscale 3
        let mut b = vec![0, 3, 0, 1, 0, 0, 0, 3];
        for d in [1u16, 2345, 6780] {
            b.extend_from_slice(&d.to_be_bytes());
        }
        assert_eq!(decode_numeric(&b).unwrap().to_string(), "12345.678");
        // -0.0001: weight -1, digits [1]
        let b = [0, 1, 0xff, 0xff, 0x40, 0, 0, 4, 0, 1];
        assert_eq!(decode_numeric(&b).unwrap().to_string(), "-0.0001");
        assert_eq!(
            decode_numeric(&[0, 0, 0, 0, 0xC0, 0, 0, 0]).unwrap(),
            Decimal::NaN
        );
    }

    #[test]
    fn tls_parameters_follow_libpq() {
        let t = TlsOptions::from_url(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=/ca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(
            t.url,
            "postgres://u@h/db?sslmode=require&application_name=x"
        );
        assert!(t.verify);
        assert_eq!(t.root_cert.as_deref(), Some("/ca.pem"));
        let t = TlsOptions::from_url("postgres://u@h/db").unwrap();
        assert!(!t.verify);
        assert_eq!(t.url, "postgres://u@h/db");
    }

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
