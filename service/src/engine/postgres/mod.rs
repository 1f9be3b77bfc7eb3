//! PostgreSQL (tokio-postgres, TLS through rustls).
//!
//! Sessions are read-only (`default_transaction_read_only`), with a statement timeout and
//! fixed output settings, so that no result depends on a server's defaults. Rows are read
//! with `COPY (SELECT …) TO STDOUT (FORMAT binary)` and decoded from the binary send
//! format: the cheapest way to move rows, with no text parsing on either side. Pushdown
//! digests hash each column by its type's extended hash function (see [`row_hash`]),
//! which agrees with PostgreSQL's own equality (numeric by value, -0.0 = 0.0, timestamptz
//! by instant) and is stable across major versions (hash partitioning depends on it).
//!
//! Must not: write, or interpolate anything into SQL that is not a quoted identifier or a
//! literal built by [`literal`].

use std::time::Duration;

use async_trait::async_trait;
use futures::{pin_mut, StreamExt};
use tokio_postgres::{CancelToken, Client};

mod copy;
mod decode;
mod dialect;
mod options;

use super::pool::{Lease, Pool};
use super::{
    Batch, DigestSpec, Digests, EncodedSender, Engine, EngineError, Feed, Result, RowSender,
    ENCODED_BATCH, ROW_BATCH,
};
use crate::config::DatabaseConfig;
use crate::table::{Column, Family, KeyRange, QueryColumn, Row, TableQuery, TableRef, TableSchema};
use crate::value::{EncodedRows, Key, LogicalType, Value};
use copy::CopyParser;
use decode::Decoder;
pub(crate) use dialect::PostgresScript;
pub use dialect::{literal, quote_ident};
use dialect::{sql, table_sql};
use options::TlsOptions;

/// Seed of the `hash_record_extended` over the columns that have no typed part (see
/// [`row_hash`]). Not 0: with seed 0, a float 0.0 hashes to 0, exactly like NULL, and the
/// two would compare equal.
const HASH_SEED: i64 = 1;

pub(crate) struct Postgres {
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
        // jit off: the planner's guess of a chunk digest's rows (a default selectivity per
        // bucket) puts a large chunk's cost past `jit_above_cost`, and compiling it costs
        // more than it saves (measured: a 377,909-row chunk digest 139 ms with JIT, 118 ms
        // without; with optimization, 261 ms).
        config.options(format!(
            "-c default_transaction_read_only=on -c statement_timeout={timeout_ms} -c DateStyle=ISO \
             -c IntervalStyle=iso_8601 -c TimeZone=UTC -c extra_float_digits=3 -c bytea_output=hex \
             -c standard_conforming_strings=on -c jit=off"
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

fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => super::error_chain(e),
    }
}

/// A pooled client: back to the pool only when a statement completed cleanly.
type Session<'a> = Lease<'a, Client, CancelToken>;

/// A column inside the hashed ROW(): json has no hash function, jsonb's gives some unequal
/// values one hash ('[]' and '{}', '"a"' and '["a"]') and others equal, which the
/// streamed digest tells apart by their normal form ('1.0' and '1'), and interval's
/// equates '1 day' with '24 hours': all three are hashed by their text. numeric's hash gives
/// NaN, Infinity and -Infinity one value (its seed), so a numeric column is followed by its
/// text where it is one of them (`scale` is NULL exactly there, in every version), and by
/// NULL, which costs nothing to hash, elsewhere (and `~` where it is NULL: numeric's hash
/// of 0 under the seed is 0, a NULL's). Text is compared exactly, so it is never hashed
/// under a collation that equates different texts: citext (and any domain) by its text, a
/// column of another collation than the database's, which may be nondeterministic (equal
/// ignoring case), under "C".
fn hashed_col(c: &QueryColumn) -> String {
    let name = quote_ident(&c.name);
    match c.logical {
        LogicalType::Json | LogicalType::Interval => format!("{name}::text"),
        LogicalType::Decimal => {
            format!("{name}, {}", numeric_special(&name))
        }
        LogicalType::Text => text_col(c, &name),
        _ => name,
    }
}

/// A numeric's text where it is NaN or an infinity (which numeric's hash gives one value),
/// NULL for every finite value (and for NULL).
fn numeric_special(name: &str) -> String {
    format!("CASE WHEN scale({name}) IS NULL THEN coalesce({name}::text, '~') END")
}

/// A text column as it is hashed: by its characters, never under a collation that equates
/// different texts (see [`hashed_col`]).
fn text_col(c: &QueryColumn, name: &str) -> String {
    if !(c.db_type == "text" || c.db_type.starts_with("character")) {
        format!("{name}::text COLLATE \"C\"")
    } else if c.collation.is_some() {
        format!("{name} COLLATE \"C\"")
    } else {
        name.to_string()
    }
}

/// A column hashed by its type's own extended hash function (the one its default hash
/// operator class names, which `hash_record_extended` would call for it), without forming
/// a ROW: the expression and the function. `None` for the types left to the ROW (date,
/// bytea, domains: a domain's db_type does not say which base type's function to call).
fn typed_part(c: &QueryColumn) -> Option<(String, &'static str)> {
    let name = quote_ident(&c.name);
    let t = c.db_type.as_str();
    let bpchar = t == "character" || t.starts_with("character(");
    Some(match c.logical {
        LogicalType::Int => (
            name,
            match t {
                "smallint" => "hashint2extended",
                "integer" => "hashint4extended",
                "bigint" => "hashint8extended",
                "oid" => "hashoidextended",
                _ => return None,
            },
        ),
        LogicalType::Float => (
            name,
            match t {
                "real" => "hashfloat4extended",
                "double precision" => "hashfloat8extended",
                _ => return None,
            },
        ),
        // boolean's hash is "char"'s, of 0 or 1: as an integer's of 0 or 1, with a cast.
        LogicalType::Bool if t == "boolean" => (format!("{name}::int4"), "hashint4extended"),
        LogicalType::Decimal if t == "numeric" || t.starts_with("numeric(") => {
            (name, "hash_numeric_extended")
        }
        LogicalType::Text if bpchar => (text_col(c, &name), "hashbpcharextended"),
        LogicalType::Text => (text_col(c, &name), "hashtextextended"),
        LogicalType::Json | LogicalType::Interval => (format!("{name}::text"), "hashtextextended"),
        LogicalType::Timestamp
            if t.starts_with("timestamp") && t.ends_with("without time zone") =>
        {
            (name, "timestamp_hash_extended")
        }
        // timestamptz's hash is timestamp's, of the same microseconds: its UTC wall time.
        // Shifted by a zero interval, which is arithmetic; by the zone 'UTC' it would be
        // looked up and the value split into fields per row (35 ms more per million rows).
        LogicalType::TimestampTz
            if t.starts_with("timestamp") && t.ends_with(" with time zone") =>
        {
            (
                format!("({name} AT TIME ZONE INTERVAL '00:00')"),
                "timestamp_hash_extended",
            )
        }
        LogicalType::Time if t.starts_with("time") && t.ends_with("without time zone") => {
            (name, "time_hash_extended")
        }
        LogicalType::Uuid if t == "uuid" => (name, "uuid_hash_extended"),
        _ => return None,
    })
}

/// The seed of the typed part at `position`: each position its own (so that equal values
/// in two columns, or two columns' values swapped, change the XOR), positive (a literal
/// PostgreSQL reads as int8).
fn part_seed(position: usize) -> i64 {
    mixed(2 * position as u64)
}

/// What a NULL part contributes at `position`. Float 0 hashes to its seed, numeric NaN and
/// the infinities to the seed and numeric 0 to the seed minus one: a mark related to the
/// seeds by a constant would let such values trade places with NULLs unseen (`K = s ^ C`
/// makes a float 0 beside a NULL hash like the NULL beside the 0). Seeds and marks are
/// outputs of one bijective mixer, with no such relation among them.
fn null_mark(position: usize) -> i64 {
    mixed(2 * position as u64 + 1)
}

/// splitmix64's output function, to 63 bits.
fn mixed(n: u64) -> i64 {
    let mut z = n.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) & i64::MAX as u64) as i64
}

/// One row's 64-bit hash, as SQL: the XOR of each column's typed hash under its position's
/// seed, and of `hash_record_extended` over a ROW of the columns without one. The typed
/// hashes cost the server about a third less than hashing the whole row as a ROW, which
/// forms a tuple per row only to take it apart again.
fn row_hash(columns: &[QueryColumn]) -> String {
    let mut terms = Vec::new();
    let mut rest = Vec::new();
    let mut part = |expr: String, function: &str, nullable: bool| {
        let k = terms.len();
        let hash = format!("{function}({expr}, {})", part_seed(k));
        terms.push(if nullable {
            format!("coalesce({hash}, {})", null_mark(k))
        } else {
            hash
        });
    };
    for c in columns {
        match typed_part(c) {
            Some((expr, function)) => {
                part(expr, function, c.nullable);
                // A precision-constrained numeric cannot hold an infinity, so its one
                // special value, NaN, hashes to the seed, which no finite value does but by
                // chance: the second part is needed only where either side may hold one
                // (both sides must build the same parts, hence declared alike).
                let finite_or_nan = c.declared_alike && c.db_type.starts_with("numeric(");
                if c.logical == LogicalType::Decimal && !finite_or_nan {
                    // NULL for every finite value: always through coalesce.
                    let name = quote_ident(&c.name);
                    let special = format!("CASE WHEN scale({name}) IS NULL THEN {name}::text END");
                    part(special, "hashtextextended", true);
                }
            }
            None => rest.push(hashed_col(c)),
        }
    }
    if !rest.is_empty() {
        terms.push(format!(
            "hash_record_extended(ROW({}), {HASH_SEED})",
            rest.join(", ")
        ));
    }
    terms.join(" # ")
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
                 CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END, \
                 NOT (a.attnotnull OR (t.typtype = 'd' AND t.typnotnull)) \
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
                    nullable: r.get(6),
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
        let select = sql(q).select(&table_sql(&q.table), &q.key, range, true);
        let text = format!("{select} OFFSET {offset} LIMIT 1");
        let decoders: Vec<Decoder> = q.key.iter().map(|&i| Decoder::new(&q.columns[i])).collect();
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        self.copy_rows(q, &decoders, &text, &tx).await?;
        drop(tx);
        Ok(rx.recv().await.and_then(|batch| batch.into_iter().next()))
    }

    async fn pushdown_digest(&self, q: &TableQuery, spec: &DigestSpec) -> Result<Digests> {
        let mut sql = sql(q);
        let k1 = sql.col(q.key[0]);
        let digest = format!(
            "count(*)::int8 AS c, coalesce(sum({}), 0) AS h",
            row_hash(&q.columns)
        );
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
        let text = sql.select(&table_sql(&q.table), &sql.all(), range, false);
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
                out.end_row(fields[key0].and_then(|(a, b)| decoders[key0].lead(&tuple[a..b])));
                Ok(())
            },
        )
        .await
    }

    async fn scan(&self, q: &TableQuery, range: &KeyRange, tx: RowSender) -> Result<u64> {
        let mut sql = sql(q);
        let text = sql.select(&table_sql(&q.table), &sql.all(), range, true);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, db_type: &str, logical: LogicalType, nullable: bool) -> QueryColumn {
        let mut c = QueryColumn::new(name, db_type, logical);
        c.nullable = nullable;
        c
    }

    #[test]
    fn only_a_numeric_that_may_hold_an_infinity_has_a_part_for_its_special_values() {
        let numeric = |db_type: &str, alike: bool| {
            let mut c = column("n", db_type, LogicalType::Decimal, false);
            c.declared_alike = alike;
            row_hash(&[c])
        };
        let plain = format!(r#"hash_numeric_extended("n", {})"#, part_seed(0));
        assert_eq!(numeric("numeric(12,2)", true), plain);
        // Unconstrained (NaN, Infinity and -Infinity hash alike), or constrained on one
        // side only (the other side's parts must be the same).
        for (db_type, alike) in [("numeric", true), ("numeric(12,2)", false)] {
            let hash = numeric(db_type, alike);
            assert!(
                hash.starts_with(&plain) && hash.contains("scale(\"n\")"),
                "{hash}"
            );
        }
    }

    #[test]
    fn a_row_hashes_by_typed_parts_and_a_row_of_the_rest() {
        let columns = [
            column("id", "bigint", LogicalType::Int, false),
            column("amount", "numeric(12,2)", LogicalType::Decimal, false),
            column("code", "character(3)", LogicalType::Text, true),
            column(
                "at",
                "timestamp(3) with time zone",
                LogicalType::TimestampTz,
                false,
            ),
            column("day", "date", LogicalType::Date, true),
            column("blob", "bytea", LogicalType::Bytes, true),
        ];
        let s = |k| part_seed(k);
        let n = |k| null_mark(k);
        assert_eq!(
            row_hash(&columns),
            format!(
                r#"hashint8extended("id", {}) # hash_numeric_extended("amount", {}) # coalesce(hashtextextended(CASE WHEN scale("amount") IS NULL THEN "amount"::text END, {}), {}) # coalesce(hashbpcharextended("code", {}), {}) # timestamp_hash_extended(("at" AT TIME ZONE INTERVAL '00:00'), {}) # hash_record_extended(ROW("day", "blob"), 1)"#,
                s(0),
                s(1),
                s(2),
                n(2),
                s(3),
                n(3),
                s(4)
            )
        );
        // Every seed and NULL mark distinct, positive, and none a seed minus one (numeric
        // 0's hash): a NULL is never a value's hash but by chance.
        let mut all: Vec<i64> = (0..64).flat_map(|k| [s(k), n(k)]).collect();
        all.extend((0..64).map(|k| s(k) - 1));
        assert!(all.iter().all(|&v| v > 0));
        let count = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), count);
    }
}
