//! The PostgreSQL pair. Every statement the benchmark sends to PostgreSQL is in this file;
//! what is common to every engine (the differences, the runs, the report) is in `main.rs`,
//! and the MariaDB pair is another implementation of [`Engine`] in `mariadb.rs`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use futures::TryStreamExt;
use tokio_postgres::{Client, Config, NoTls};

use crate::peers::{PtTableSyncTarget, ReladiffTarget};
use crate::{side_of, url_for_database, Change, Engine, LoadPlan, Probe, Side, Strategy};

const CREATE_TABLE: &str = "CREATE TABLE orders (
    id          bigint        NOT NULL,
    customer_id integer       NOT NULL,
    status      text          NOT NULL,
    amount      numeric(12,2) NOT NULL,
    currency    char(3)       NOT NULL,
    placed_at   timestamptz   NOT NULL,
    shipped_at  timestamp     NULL,
    note        text          NULL
)";

/// Rows 1..=$1 except the ids in $2; every column is a deterministic function of `g`,
/// so both sides load identical rows. `note` is NULL for every 7th row.
const INSERT_ROWS: &str = "INSERT INTO orders
SELECT g,
       (g * 7919 % 50000 + 1)::integer,
       (ARRAY['pending', 'paid', 'shipped', 'delivered', 'cancelled'])[(g % 5 + 1)::integer],
       (g * 7793 % 1000000 / 100.0 + 0.99)::numeric(12,2),
       (ARRAY['EUR', 'USD', 'GBP'])[(g % 3 + 1)::integer],
       timestamptz '2024-01-01 00:00:00+00' + g * interval '31 seconds',
       CASE WHEN g % 5 IN (2, 3)
            THEN timestamp '2024-01-03 08:00:00' + g * interval '31 seconds' END,
       CASE WHEN g % 7 <> 0 THEN 'leave at the door, ref ' || (g % 9973) END
FROM generate_series(1::bigint, $1::bigint) AS g
WHERE g <> ALL($2::bigint[])";

const ADD_KEY: &str = "ALTER TABLE orders ADD PRIMARY KEY (id)";
const DELETE_ROWS: &str = "DELETE FROM orders WHERE id = ANY($1)";
/// VACUUM sets the visibility map, so that index-only scans work, and ANALYZE the statistics.
const VACUUM: &str = "VACUUM ANALYZE orders";
const CREATE_MARKER: &str =
    "CREATE TABLE dw_bench_meta (marker text NOT NULL, loaded_at timestamptz NOT NULL DEFAULT now())";
const WRITE_MARKER: &str = "INSERT INTO dw_bench_meta (marker) VALUES ($1)";
const READ_MARKER: &str = "SELECT marker FROM dw_bench_meta";
const HAS_MARKER: &str = "SELECT to_regclass('dw_bench_meta') IS NOT NULL";
const DATABASE_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)";
const COUNT_ROWS: &str = "SELECT count(*) FROM orders";
const ROWS_AS_TEXT: &str = "SELECT id, t::text FROM orders t WHERE id = ANY($1)";

/// The pushdown floor: one side hashes every row in the database and only a sum travels.
const MD5_FLOOR: &str =
    "select count(*), sum(('x'||substr(md5(t::text),1,15))::bit(60)::bigint) from orders t";
/// The streamed floor: every row of one side crosses the wire, in PostgreSQL's own format.
const COPY_OUT: &str = "COPY orders TO STDOUT";
/// Added to reladiff's URLs, which psycopg2 passes on to libpq: every transaction of its
/// sessions is read-only, so that the server refuses any write.
const RELADIFF_READ_ONLY: &str = "options=-c%20default_transaction_read_only%3Don";

fn change_sql(kind: Change) -> &'static str {
    match kind {
        Change::Amount => "UPDATE orders SET amount = amount + 0.01 WHERE id = ANY($1)",
        Change::Note => {
            "UPDATE orders SET note = coalesce(note || ' (edited)', 'added later') WHERE id = ANY($1)"
        }
        Change::Status => {
            "UPDATE orders SET status = CASE status WHEN 'cancelled' THEN 'paid' ELSE 'cancelled' END \
             WHERE id = ANY($1)"
        }
    }
}

/// A PostgreSQL server holding both benchmark databases.
pub struct Postgres {
    /// Connection settings for the maintenance database named in the URL.
    admin: Config,
    url: String,
    /// The connection that lists the backends serving the bench databases.
    sampler: tokio::sync::Mutex<Option<Client>>,
}

impl Postgres {
    pub fn new(url: &str) -> Result<Self> {
        let admin: Config = url
            .parse()
            .context("--pg-url is not a PostgreSQL connection URL")?;
        ensure!(
            url.starts_with("postgres://") || url.starts_with("postgresql://"),
            "--pg-url must be a postgres:// URL (it is also written into the driftwatch config)"
        );
        if let Some(db) = admin.get_dbname() {
            ensure!(
                ![Side::Publisher, Side::Subscriber]
                    .iter()
                    .any(|s| s.database() == db),
                "--pg-url must name a maintenance database (e.g. postgres), not {db}"
            );
        }
        Ok(Self {
            admin,
            url: url.to_owned(),
            sampler: tokio::sync::Mutex::new(None),
        })
    }

    async fn connect_to(config: &Config) -> Result<Client> {
        let (client, connection) = config
            .connect(NoTls)
            .await
            .with_context(|| format!("connecting to {:?}", config.get_dbname()))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("postgres connection error: {e}");
            }
        });
        Ok(client)
    }

    async fn connect_admin(&self) -> Result<Client> {
        Self::connect_to(&self.admin).await
    }

    async fn connect(&self, side: Side) -> Result<Client> {
        let mut config = self.admin.clone();
        config.dbname(side.database());
        Self::connect_to(&config).await
    }
}

impl Engine for Postgres {
    fn name(&self) -> &'static str {
        "PostgreSQL"
    }

    fn url(&self, side: Side) -> String {
        let (url, query) = url_for_database(&self.url, side.database());
        // The floors connect without TLS; so must the pass, or it would be measured
        // paying for encryption its floor does not.
        let query = match query {
            Some(q) if q.split('&').any(|p| p.starts_with("sslmode=")) => q.to_string(),
            Some(q) => format!("{q}&sslmode=disable"),
            None => "sslmode=disable".to_string(),
        };
        format!("{url}?{query}")
    }

    fn table(&self) -> &'static str {
        "public.orders"
    }

    fn transfer_method(&self) -> &'static str {
        "COPY"
    }

    async fn marker(&self, side: Side) -> Result<Option<String>> {
        let admin = self.connect_admin().await?;
        let exists: bool = admin
            .query_one(DATABASE_EXISTS, &[&side.database()])
            .await?
            .get(0);
        if !exists {
            return Ok(None);
        }
        let client = self.connect(side).await?;
        if !client.query_one(HAS_MARKER, &[]).await?.get::<_, bool>(0) {
            return Ok(None);
        }
        let rows = client.query(READ_MARKER, &[]).await?;
        Ok(match rows.as_slice() {
            [row] => Some(row.get(0)),
            _ => None,
        })
    }

    async fn recreate(&self) -> Result<()> {
        let admin = self.connect_admin().await?;
        for side in [Side::Publisher, Side::Subscriber] {
            // The names are our own constants, never user input.
            // One statement per call: a multi-statement string runs as one transaction,
            // which DROP DATABASE refuses.
            let db = side.database();
            for sql in [
                format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
                format!("CREATE DATABASE {db}"),
            ] {
                admin
                    .batch_execute(&sql)
                    .await
                    .with_context(|| format!("recreating database {db}"))?;
            }
        }
        Ok(())
    }

    async fn load(&self, side: Side, plan: &LoadPlan<'_>) -> Result<()> {
        let client = self.connect(side).await?;
        let rows = i64::try_from(plan.rows)?;
        client.batch_execute(CREATE_TABLE).await?;
        client.execute(INSERT_ROWS, &[&rows, &plan.skip]).await?;
        client.batch_execute(ADD_KEY).await?;

        let deleted = client.execute(DELETE_ROWS, &[&plan.delete]).await?;
        ensure!(
            deleted == plan.delete.len() as u64,
            "{side}: deleted {deleted} rows"
        );
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
            let updated = client.execute(change_sql(kind), &[&ids]).await?;
            ensure!(
                updated == ids.len() as u64,
                "{side}: updated {updated} rows ({kind:?})"
            );
        }

        client.batch_execute(VACUUM).await?;
        // The marker comes last: a load that stopped half-way has none and is redone.
        client.batch_execute(CREATE_MARKER).await?;
        client.execute(WRITE_MARKER, &[&plan.marker]).await?;
        Ok(())
    }

    async fn probe(&self, side: Side, ids: &[i64]) -> Result<Probe> {
        let client = self.connect(side).await?;
        let count: i64 = client.query_one(COUNT_ROWS, &[]).await?.get(0);
        let rows = client
            .query(ROWS_AS_TEXT, &[&ids])
            .await?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect::<HashMap<i64, String>>();
        Ok(Probe {
            count: u64::try_from(count)?,
            rows,
        })
    }

    /// The native hash over one side's rows costs 0.3 to 0.45 of the md5 floor here; the
    /// streamed pass is bound by COPY.
    fn target(&self, strategy: Strategy) -> f64 {
        match strategy {
            Strategy::Pushdown => 0.45,
            Strategy::Streamed => 1.2,
        }
    }

    async fn server_tasks(&self) -> Result<Vec<(Side, u32)>> {
        let mut sampler = self.sampler.lock().await;
        if sampler.is_none() {
            *sampler = Some(self.connect_admin().await?);
        }
        let client = sampler.as_ref().expect("connected above");
        let rows = client
            .query(
                "SELECT pid, datname::text FROM pg_stat_activity WHERE datname = ANY($1)",
                &[&vec![
                    Side::Publisher.database(),
                    Side::Subscriber.database(),
                ]],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let side = side_of(r.get::<_, Option<String>>(1)?.as_str())?;
                Some((side, u32::try_from(r.get::<_, i32>(0)).ok()?))
            })
            .collect())
    }

    async fn digest_floor(&self) -> Result<Duration> {
        let client = self.connect(Side::Publisher).await?;
        let start = Instant::now();
        client.simple_query(MD5_FLOOR).await?;
        Ok(start.elapsed())
    }

    async fn transfer_floor(&self) -> Result<(Duration, u64)> {
        let (publisher, subscriber) = tokio::try_join!(
            self.connect(Side::Publisher),
            self.connect(Side::Subscriber)
        )?;
        let start = Instant::now();
        let (a, b) = tokio::try_join!(copy_out_bytes(&publisher), copy_out_bytes(&subscriber))?;
        Ok((start.elapsed(), a + b))
    }

    async fn drop_databases(&self) -> Result<()> {
        let admin = self.connect_admin().await?;
        for side in [Side::Publisher, Side::Subscriber] {
            let db = side.database();
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .await
                .with_context(|| format!("dropping database {db}"))?;
        }
        Ok(())
    }

    fn reladiff_target(&self) -> ReladiffTarget {
        // driftwatch's URL (which always has a query: sslmode), in the scheme reladiff
        // takes (postgresql://, not postgres://).
        let url = |side: Side| {
            let url = self.url(side);
            let url = match url.strip_prefix("postgres://") {
                Some(rest) => format!("postgresql://{rest}"),
                None => url,
            };
            format!("{url}&{RELADIFF_READ_ONLY}")
        };
        ReladiffTarget {
            urls: [url(Side::Publisher), url(Side::Subscriber)],
        }
    }

    fn pt_table_sync_target(&self) -> Option<PtTableSyncTarget> {
        None
    }
}

/// Streams the whole table out of one side into a sink that only counts bytes.
async fn copy_out_bytes(client: &Client) -> Result<u64> {
    let stream = client.copy_out(COPY_OUT).await?;
    let mut stream = std::pin::pin!(stream);
    let mut bytes = 0u64;
    while let Some(chunk) = stream.try_next().await? {
        bytes += chunk.len() as u64;
    }
    if bytes == 0 {
        bail!("COPY returned no data");
    }
    Ok(bytes)
}
