//! The MariaDB pair. Every statement the benchmark sends to MariaDB is in this file; what
//! is common to every engine (the differences, the runs, the report) is in `main.rs`.
//!
//! The rows are generated in the server, from its SEQUENCE engine's `seq_1_to_N` tables,
//! by the same functions of the id as the PostgreSQL pair's, so that both engines are
//! measured on the same data. Every connection is made the way driftwatch makes its own:
//! over TCP (never the Unix socket a local server offers), with the URL's TLS settings,
//! in UTC and utf8mb4; so the floors pay for the transport and conversions the pass pays for.
//!
//! Must not: touch any database but `dw_bench_pub` and `dw_bench_sub`, or relax a check
//! beyond the session that loads them (unique checks are off for that session only).
//! Only our own integers and constant names are interpolated into SQL; ids are bound.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Row};

use crate::peers::{PtTableSyncTarget, ReladiffTarget};
use crate::{side_of, url_for_database, Change, Engine, LoadPlan, Probe, Side, Strategy};

/// The PostgreSQL pair's `orders` in MariaDB's types: timestamptz is `timestamp` (an
/// instant, read in the session's UTC), timestamp is `datetime`, text is varchar.
const CREATE_TABLE: &str = "CREATE TABLE orders (
    id          bigint        NOT NULL,
    customer_id int           NOT NULL,
    status      varchar(16)   NOT NULL,
    amount      decimal(12,2) NOT NULL,
    currency    char(3)       NOT NULL,
    placed_at   timestamp     NOT NULL,
    shipped_at  datetime      NULL,
    note        varchar(255)  NULL,
    PRIMARY KEY (id)
) ENGINE = InnoDB CHARACTER SET utf8mb4";

/// Rows of the ids a sequence table holds (see [`insert_rows`]). Every column is the same
/// function of the id as in `postgres.rs`; `note` is NULL for every 7th row.
const INSERT_ROWS: &str = "INSERT INTO orders
SELECT seq,
       seq * 7919 % 50000 + 1,
       ELT(seq % 5 + 1, 'pending', 'paid', 'shipped', 'delivered', 'cancelled'),
       seq * 7793 % 1000000 / 100 + 0.99,
       ELT(seq % 3 + 1, 'EUR', 'USD', 'GBP'),
       TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq * 31 SECOND,
       CASE WHEN seq % 5 IN (2, 3)
            THEN TIMESTAMP '2024-01-03 08:00:00' + INTERVAL seq * 31 SECOND END,
       CASE WHEN seq % 7 <> 0 THEN CONCAT('leave at the door, ref ', seq % 9973) END";

/// Ids per INSERT: large enough for speed, small enough for a modest undo log.
const LOAD_BATCH: u64 = 250_000;
/// The last id whose `placed_at` (2024-01-01 + 31 s per id) fits MariaDB's `timestamp`,
/// which ends at 2038-01-19 03:14:07 UTC.
const MAX_ROWS: u64 = (2_147_483_647 - 1_704_067_200) / 31;

const ANALYZE: &str = "ANALYZE TABLE orders";
const CREATE_MARKER: &str = "CREATE TABLE dw_bench_meta (marker text NOT NULL, \
     loaded_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP)";
const WRITE_MARKER: &str = "INSERT INTO dw_bench_meta (marker) VALUES (?)";
const READ_MARKER: &str = "SELECT marker FROM dw_bench_meta";
const HAS_MARKER: &str = "SELECT COUNT(*) FROM information_schema.TABLES \
     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'dw_bench_meta'";
const COUNT_ROWS: &str = "SELECT COUNT(*) FROM orders";
/// A row as canonical text (JSON, where NULL is null), to compare a changed row's sides.
const ROWS_AS_TEXT: &str = "SELECT id, JSON_ARRAY(id, customer_id, status, amount, currency, \
     placed_at, shipped_at, note) FROM orders WHERE id IN ";

/// The pushdown floor: one side hashes every row in the database and only a sum travels:
/// MD5 of the row's columns joined, its first 64 bits summed, as driftwatch's pushdown
/// does per row (which also canonicalizes each column and sums the second half).
const MD5_FLOOR: &str = "SELECT COUNT(*), SUM(CAST(CONV(SUBSTRING(MD5(CONCAT_WS('#', \
     id, customer_id, status, amount, currency, placed_at, shipped_at, note)), 1, 16), 16, 10) \
     AS UNSIGNED)) FROM orders";
/// The streamed floor: every row of one side crosses the wire.
const SELECT_ALL: &str = "SELECT * FROM orders";
/// The query of reladiff's URLs, which mysql-connector takes as a connection option: every
/// session starts read-only, so that the server refuses any write.
const RELADIFF_READ_ONLY: &str = "init_command=SET%20SESSION%20TRANSACTION%20READ%20ONLY";
/// pt-table-sync's `--set-vars`: every session of it read-only (MariaDB's name of the
/// variable; MySQL 8 calls it transaction_read_only).
const PT_TABLE_SYNC_READ_ONLY: &str = "tx_read_only=1";

fn change_sql(kind: Change) -> &'static str {
    match kind {
        Change::Amount => "UPDATE orders SET amount = amount + 0.01 WHERE id IN ",
        Change::Note => {
            "UPDATE orders SET note = COALESCE(CONCAT(note, ' (edited)'), 'added later') WHERE id IN "
        }
        Change::Status => {
            "UPDATE orders SET status = CASE status WHEN 'cancelled' THEN 'paid' ELSE 'cancelled' END \
             WHERE id IN "
        }
    }
}

/// The rows of ids `lo..=hi` except `skip` bound ids: the SEQUENCE engine's table
/// `seq_LO_to_HI` (in any database) holds the ids.
fn insert_rows(lo: u64, hi: u64, skip: usize) -> String {
    let mut sql = format!("{INSERT_ROWS} FROM seq_{lo}_to_{hi}");
    if skip > 0 {
        sql += &format!(" WHERE seq NOT IN {}", placeholders(skip));
    }
    sql
}

/// `(?, ?, ...)` for `n` bound ids.
fn placeholders(n: usize) -> String {
    format!("({})", vec!["?"; n].join(", "))
}

/// A MariaDB server holding both benchmark databases.
pub struct Mariadb {
    /// The URL as given (no database, or a maintenance one).
    url: String,
    /// The connection that lists the threads serving the bench databases.
    sampler: tokio::sync::Mutex<Option<Conn>>,
}

impl Mariadb {
    pub fn new(url: &str) -> Result<Self> {
        ensure!(
            url.starts_with("mysql://"),
            "--mysql-url must be a mysql:// URL (it is also written into the driftwatch config)"
        );
        let opts = Opts::from_url(url).context("--mysql-url is not a MySQL connection URL")?;
        if let Some(db) = opts.db_name() {
            ensure!(
                ![Side::Publisher, Side::Subscriber]
                    .iter()
                    .any(|s| s.database() == db),
                "--mysql-url must name no database, or a maintenance one, not {db}"
            );
        }
        Ok(Self {
            sampler: tokio::sync::Mutex::new(None),
            url: url.to_owned(),
        })
    }

    async fn connect_to(url: &str) -> Result<Conn> {
        let opts = Opts::from_url(url).context("invalid MySQL URL")?;
        // driftwatch connects over TCP even to a local server; so must the floors.
        let opts = OptsBuilder::from_opts(opts).prefer_socket(false);
        let mut conn = Conn::new(opts)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        // The session driftwatch sets up: instants in UTC, text as utf8mb4.
        conn.query_drop("SET NAMES utf8mb4; SET SESSION time_zone = '+00:00'")
            .await?;
        Ok(conn)
    }

    async fn connect_admin(&self) -> Result<Conn> {
        Self::connect_to(&self.url).await
    }

    async fn connect(&self, side: Side) -> Result<Conn> {
        Self::connect_to(&self.url(side)).await
    }
}

impl Engine for Mariadb {
    fn name(&self) -> &'static str {
        "MariaDB"
    }

    fn url(&self, side: Side) -> String {
        match url_for_database(&self.url, side.database()) {
            (url, Some(query)) => format!("{url}?{query}"),
            (url, None) => url,
        }
    }

    fn table(&self) -> &'static str {
        // The schema is the URL's database.
        "orders"
    }

    fn transfer_method(&self) -> &'static str {
        "SELECT *"
    }

    async fn marker(&self, side: Side) -> Result<Option<String>> {
        let mut admin = self.connect_admin().await?;
        let tables: Option<u64> = admin.exec_first(HAS_MARKER, (side.database(),)).await?;
        admin.disconnect().await?;
        if tables != Some(1) {
            return Ok(None);
        }
        let mut conn = self.connect(side).await?;
        let markers: Vec<String> = conn.query(READ_MARKER).await?;
        conn.disconnect().await?;
        Ok(match markers.as_slice() {
            [marker] => Some(marker.clone()),
            _ => None,
        })
    }

    async fn recreate(&self) -> Result<()> {
        let mut admin = self.connect_admin().await?;
        for side in [Side::Publisher, Side::Subscriber] {
            // The names are our own constants, never user input.
            let db = side.database();
            admin
                .query_drop(format!(
                    "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} CHARACTER SET utf8mb4"
                ))
                .await
                .with_context(|| format!("recreating database {db}"))?;
        }
        admin.disconnect().await?;
        Ok(())
    }

    async fn load(&self, side: Side, plan: &LoadPlan<'_>) -> Result<()> {
        ensure!(
            plan.rows <= MAX_ROWS,
            "--rows {} is past what MariaDB's timestamp holds for placed_at (at most {MAX_ROWS})",
            plan.rows
        );
        let mut conn = self.connect(side).await?;
        // This session only: the ids are unique by construction, and no timestamp column
        // may get an implicit ON UPDATE (servers older than 10.10 default to that).
        conn.query_drop("SET SESSION unique_checks = 0, explicit_defaults_for_timestamp = 1")
            .await?;
        conn.query_drop(CREATE_TABLE).await?;
        let mut lo = 1;
        while lo <= plan.rows {
            let hi = (lo + LOAD_BATCH - 1).min(plan.rows);
            conn.exec_drop(insert_rows(lo, hi, plan.skip.len()), plan.skip.to_vec())
                .await?;
            lo = hi + 1;
        }
        conn.query_drop("SET SESSION unique_checks = 1").await?;

        if !plan.delete.is_empty() {
            let sql = format!(
                "DELETE FROM orders WHERE id IN {}",
                placeholders(plan.delete.len())
            );
            conn.exec_drop(sql, plan.delete.to_vec()).await?;
            let deleted = conn.affected_rows();
            ensure!(
                deleted == plan.delete.len() as u64,
                "{side}: deleted {deleted} rows"
            );
        }
        for kind in Change::ALL {
            let ids: Vec<i64> = plan
                .change
                .iter()
                .filter(|(_, k)| *k == kind)
                .map(|(id, _)| *id)
                .collect();
            if ids.is_empty() {
                continue;
            }
            let sql = format!("{}{}", change_sql(kind), placeholders(ids.len()));
            conn.exec_drop(sql, ids.clone()).await?;
            let updated = conn.affected_rows();
            ensure!(
                updated == ids.len() as u64,
                "{side}: updated {updated} rows ({kind:?})"
            );
        }

        // Fresh statistics, as PostgreSQL's pair gets from ANALYZE.
        conn.query_drop(ANALYZE).await?;
        // The marker comes last: a load that stopped half-way has none and is redone.
        conn.query_drop(CREATE_MARKER).await?;
        conn.exec_drop(WRITE_MARKER, (plan.marker,)).await?;
        conn.disconnect().await?;
        Ok(())
    }

    async fn probe(&self, side: Side, ids: &[i64]) -> Result<Probe> {
        let mut conn = self.connect(side).await?;
        let count: Option<u64> = conn.query_first(COUNT_ROWS).await?;
        let rows: Vec<(i64, String)> = conn
            .exec(
                format!("{ROWS_AS_TEXT}{}", placeholders(ids.len())),
                ids.to_vec(),
            )
            .await?;
        conn.disconnect().await?;
        Ok(Probe {
            count: count.context("no row count")?,
            rows: rows.into_iter().collect::<HashMap<_, _>>(),
        })
    }

    /// No cheap 64-bit hash is built in: the pushdown pass is held to the md5 floor.
    fn target(&self, strategy: Strategy) -> f64 {
        match strategy {
            Strategy::Pushdown => 1.0,
            Strategy::Streamed => 1.5,
        }
    }

    /// MariaDB's processlist names each connection's OS thread (TID).
    async fn server_tasks(&self) -> Result<Vec<(Side, u32)>> {
        let mut sampler = self.sampler.lock().await;
        if sampler.is_none() {
            *sampler = Some(self.connect_admin().await?);
        }
        let conn = sampler.as_mut().expect("connected above");
        let rows: Vec<(Option<u32>, Option<String>)> = conn
            .exec(
                "SELECT TID, DB FROM information_schema.PROCESSLIST WHERE DB IN (?, ?)",
                (Side::Publisher.database(), Side::Subscriber.database()),
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(tid, db)| Some((side_of(&db?)?, tid?)))
            .collect())
    }

    async fn digest_floor(&self) -> Result<Duration> {
        let mut conn = self.connect(Side::Publisher).await?;
        let start = Instant::now();
        let row: Option<(u64, Option<String>)> = conn.query_first(MD5_FLOOR).await?;
        let elapsed = start.elapsed();
        conn.disconnect().await?;
        ensure!(
            matches!(row, Some((n, Some(_))) if n > 0),
            "the md5 floor hashed no rows"
        );
        Ok(elapsed)
    }

    async fn transfer_floor(&self) -> Result<(Duration, u64)> {
        let (mut publisher, mut subscriber) = tokio::try_join!(
            self.connect(Side::Publisher),
            self.connect(Side::Subscriber)
        )?;
        let start = Instant::now();
        let (a, b) = tokio::try_join!(
            select_all_bytes(&mut publisher),
            select_all_bytes(&mut subscriber)
        )?;
        let elapsed = start.elapsed();
        tokio::try_join!(publisher.disconnect(), subscriber.disconnect())?;
        Ok((elapsed, a + b))
    }

    async fn drop_databases(&self) -> Result<()> {
        let mut admin = self.connect_admin().await?;
        for side in [Side::Publisher, Side::Subscriber] {
            let db = side.database();
            admin
                .query_drop(format!("DROP DATABASE IF EXISTS {db}"))
                .await
                .with_context(|| format!("dropping database {db}"))?;
        }
        admin.disconnect().await?;
        Ok(())
    }

    fn reladiff_target(&self) -> ReladiffTarget {
        // Without the URL's own query: its options are mysql_async's, not mysql-connector's.
        let url = |side: Side| {
            let (url, _) = url_for_database(&self.url, side.database());
            format!("{url}?{RELADIFF_READ_ONLY}")
        };
        ReladiffTarget {
            urls: [url(Side::Publisher), url(Side::Subscriber)],
        }
    }

    fn pt_table_sync_target(&self) -> Option<PtTableSyncTarget> {
        let opts = Opts::from_url(&self.url).expect("the URL was checked by Mariadb::new");
        // An IP address (127.0.0.1, not localhost) makes DBD::mysql connect over TCP too.
        let mut server = format!("h={},P={}", opts.ip_or_hostname(), opts.tcp_port());
        if let Some(user) = opts.user() {
            server += &format!(",u={user}");
        }
        if let Some(pass) = opts.pass() {
            server += &format!(",p={}", pass.replace(',', "\\,"));
        }
        let dsn = |side: Side| format!("{server},D={},t={}", side.database(), self.table());
        Some(PtTableSyncTarget {
            dsns: [dsn(Side::Publisher), dsn(Side::Subscriber)],
            read_only_vars: PT_TABLE_SYNC_READ_ONLY,
        })
    }
}

/// Streams the whole table out of one side into a sink that only counts the values' bytes.
async fn select_all_bytes(conn: &mut Conn) -> Result<u64> {
    let mut result = conn.query_iter(SELECT_ALL).await?;
    let mut bytes = 0u64;
    if let Some(mut rows) = result.stream::<Row>().await? {
        while let Some(row) = rows.next().await {
            // The text protocol sends every value as bytes (NULL as none).
            bytes += row?
                .unwrap_raw()
                .iter()
                .map(|v| match v {
                    Some(mysql_async::Value::Bytes(b)) => b.len() as u64,
                    _ => 0,
                })
                .sum::<u64>();
        }
    }
    if bytes == 0 {
        bail!("SELECT * returned no data");
    }
    Ok(bytes)
}
