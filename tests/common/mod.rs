//! Test support: real databases (PostgreSQL on loopback, SQLite files), random tables
//! with hostile values, and random mutations whose differences are known exactly.
//!
//! Nothing here mocks a database. PostgreSQL is found at DRIFTWATCH_TEST_PG_URL
//! (default postgres://postgres@127.0.0.1:5432); the README's test command starts one.

#![allow(dead_code)] // each test binary uses part of this module

pub mod replication;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use driftwatch::engine::postgres::{literal, quote_ident};
use driftwatch::value::{Decimal, Timestamp, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub fn pg_base() -> String {
    std::env::var("DRIFTWATCH_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub fn pg_url(db: &str) -> String {
    format!("{}/{db}?sslmode=disable", pg_base().trim_end_matches('/'))
}

pub async fn pg_connect(db: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&pg_url(db), tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {} (set DRIFTWATCH_TEST_PG_URL): {e}",
                pg_base()
            )
        });
    tokio::spawn(conn);
    client
}

/// A database a test made, with a connection to it: dropped when the test is done with
/// it, also when the test fails (the drop runs while a panic unwinds). Hold it for as long
/// as the database is used, even where the connection is not.
pub struct TestDb<C> {
    conn: C,
    drop: DropDatabase,
}

impl<C> std::ops::Deref for TestDb<C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.conn
    }
}

impl<C> std::ops::DerefMut for TestDb<C> {
    fn deref_mut(&mut self) -> &mut C {
        &mut self.conn
    }
}

#[derive(Clone, Copy)]
enum Server {
    Postgres,
    Mysql,
}

struct DropDatabase {
    server: Server,
    name: String,
}

impl Drop for DropDatabase {
    fn drop(&mut self) {
        // Drop cannot await, and the test's runtime may be the one unwinding: the DROP runs
        // on a thread and runtime of its own. It must not panic (a panic while unwinding
        // aborts the test binary): a failure is reported and the next run drops it first.
        let (server, name) = (self.server, self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(drop_database(server, &name))
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop test database {}: {e}", self.name),
            Err(_) => eprintln!(
                "could not drop test database {}: the thread failed",
                self.name
            ),
        }
    }
}

async fn drop_database(server: Server, name: &str) -> Result<(), String> {
    match server {
        Server::Postgres => {
            let (admin, conn) = tokio_postgres::connect(&pg_url("postgres"), tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            // FORCE ends the sessions still on it (the test's own, a service left running).
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await
                .map_err(|e| e.to_string())
        }
        Server::Mysql => {
            use mysql_async::prelude::Queryable;
            let opts = mysql_async::Opts::from_url(&mysql_base()).map_err(|e| e.to_string())?;
            let mut admin = mysql_async::Conn::new(
                mysql_async::OptsBuilder::from_opts(opts).prefer_socket(false),
            )
            .await
            .map_err(|e| e.to_string())?;
            // A session still inside a statement on it holds a lock: wait for it a little,
            // not for MariaDB's default of a year.
            let dropped = admin
                .query_drop(format!(
                    "SET SESSION lock_wait_timeout = 10; DROP DATABASE IF EXISTS `{name}`"
                ))
                .await
                .map_err(|e| e.to_string());
            let _ = admin.disconnect().await;
            dropped
        }
    }
}

/// A fresh, empty database (dropped first if a previous run could not drop it).
pub async fn pg_database(name: &str) -> TestDb<tokio_postgres::Client> {
    let admin = pg_connect("postgres").await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    TestDb {
        drop: DropDatabase {
            server: Server::Postgres,
            name: name.to_string(),
        },
        conn: pg_connect(name).await,
    }
}

pub async fn pg_database_exists(name: &str) -> bool {
    pg_connect("postgres")
        .await
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .unwrap()
        .is_some()
}

/// The `driftwatch` binary, for the tests that run it as a user would.
///
/// DRIFTWATCH_BIN names it when set (scripts/test.sh builds it before `cargo test` and sets
/// it; a relative path is taken from the workspace's root). Otherwise the first call in a
/// test process builds it, `cargo build -p driftwatch --bin driftwatch` with the cargo that
/// runs the tests (`CARGO`), and returns the executable cargo reports, wherever the target
/// directory is (CARGO_TARGET_DIR, build.target-dir). Parallel tests wait for that one build
/// (the OnceLock); test processes at once wait for each other on cargo's own lock.
pub fn bin() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let bin = match std::env::var_os("DRIFTWATCH_BIN") {
            Some(bin) if !bin.is_empty() => root.join(bin),
            _ => build_bin(&root),
        };
        assert!(
            bin.is_file(),
            "no driftwatch binary at {} (DRIFTWATCH_BIN)",
            bin.display()
        );
        bin
    })
}

fn build_bin(root: &Path) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = std::process::Command::new(&cargo)
        .current_dir(root)
        .args(["build", "-p", "driftwatch", "--bin", "driftwatch"])
        .arg("--message-format=json-render-diagnostics")
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", Path::new(&cargo).display()));
    assert!(
        out.status.success(),
        "cargo build -p driftwatch --bin driftwatch failed (its errors are above)"
    );
    // The last line about the binary: {"reason":"compiler-artifact", ..., "executable": ...}
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "driftwatch")
        .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
        .next_back()
        .expect("cargo build named no driftwatch executable")
}

pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// The kinds of column the generator fills.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Gen {
    Int,
    Numeric,
    Float,
    Text,
    Bytes,
    Timestamp,
    TimestampTz,
    Bool,
    Uuid,
    Date,
    Json,
}

#[derive(Debug, Clone)]
pub struct Col {
    pub name: &'static str,
    pub gen: Gen,
    pub pg: &'static str,
    pub sqlite: &'static str,
}

const fn col(name: &'static str, gen: Gen, pg: &'static str, sqlite: &'static str) -> Col {
    Col {
        name,
        gen,
        pg,
        sqlite,
    }
}

/// A table: key columns first.
#[derive(Debug, Clone)]
pub struct Schema {
    pub cols: Vec<Col>,
    pub key: usize,
}

/// An integer-led composite key, and every value kind.
pub fn wide_schema() -> Schema {
    Schema {
        cols: vec![
            col("k1", Gen::Int, "bigint", "INTEGER"),
            col("k2", Gen::Text, "text", "TEXT"),
            col("c_int", Gen::Int, "bigint", "INTEGER"),
            col("c_num", Gen::Numeric, "numeric", "DECIMAL"),
            col("c_float", Gen::Float, "double precision", "REAL"),
            col("c_text", Gen::Text, "text", "TEXT"),
            col("c_bytes", Gen::Bytes, "bytea", "BLOB"),
            col("c_ts", Gen::Timestamp, "timestamp", "TIMESTAMP"),
            col("c_tstz", Gen::TimestampTz, "timestamptz", "TIMESTAMPTZ"),
            col("c_bool", Gen::Bool, "boolean", "BOOLEAN"),
            col("c_uuid", Gen::Uuid, "uuid", "UUID"),
            col("c_date", Gen::Date, "date", "DATE"),
            col("c_json", Gen::Json, "jsonb", "JSON"),
        ],
        key: 2,
    }
}

/// A text key (chunked by boundaries, localized by bisection).
pub fn text_key_schema() -> Schema {
    Schema {
        cols: vec![
            col("code", Gen::Text, "text", "TEXT"),
            col("qty", Gen::Int, "bigint", "INTEGER"),
            col("price", Gen::Numeric, "numeric", "DECIMAL"),
            col("note", Gen::Text, "text", "TEXT"),
            col("blob", Gen::Bytes, "bytea", "BLOB"),
        ],
        key: 1,
    }
}

/// What values the generator may produce: `portable` keeps to values both PostgreSQL
/// and SQLite can hold alike (no NaN or infinities, decimals of at most 15 digits).
#[derive(Debug, Clone, Copy)]
pub struct Domain {
    pub portable: bool,
    pub sqlite: bool,
}

pub struct Generator {
    pub rng: StdRng,
    pub domain: Domain,
}

const TEXTS: &[&str] = &[
    "",
    " ",
    "a ",
    " a",
    "é",
    "e\u{301}",
    "O'Brien",
    "back\\slash",
    "semi;colon",
    "--comment",
    "/* c */",
    "😀 emoji",
    "日本語",
    "tab\there",
    "new\nline",
    "\"quoted\"",
    "NULL",
    "null",
    "%_",
    "ǅ",
];

impl Generator {
    pub fn new(seed: u64, domain: Domain) -> Generator {
        Generator {
            rng: StdRng::seed_from_u64(seed),
            domain,
        }
    }

    pub fn value(&mut self, gen: Gen, nullable: bool) -> Value {
        if nullable && self.rng.random_bool(0.12) {
            return Value::Null;
        }
        let r = &mut self.rng;
        match gen {
            Gen::Int => Value::Int(match r.random_range(0..8) {
                0 => i64::MAX as i128,
                1 => i64::MIN as i128,
                2 => 0,
                _ => r.random_range(-1_000_000i64..1_000_000) as i128,
            }),
            Gen::Numeric => {
                // SQLite's NUMERIC affinity keeps 15 significant digits (a mutation adds one).
                let digits = if self.domain.portable || self.domain.sqlite {
                    r.random_range(1..=14)
                } else {
                    r.random_range(1..=38)
                };
                let mut s: String = (0..digits)
                    .map(|_| char::from(b'0' + r.random_range(0..10u8)))
                    .collect();
                let scale = r.random_range(0..=digits.min(12));
                if scale > 0 {
                    s.insert(s.len() - scale, '.');
                }
                if r.random_bool(0.3) {
                    s.insert(0, '-');
                }
                Value::Decimal(Decimal::parse(&s).unwrap())
            }
            Gen::Float => {
                // SQLite stores NaN as NULL, and only PostgreSQL has both NaN and
                // infinities on each side of a portable pair.
                let specials: &[f64] = match (self.domain.portable, self.domain.sqlite) {
                    (true, _) => &[],
                    (false, true) => &[f64::INFINITY, f64::NEG_INFINITY],
                    (false, false) => &[f64::NAN, f64::INFINITY, f64::NEG_INFINITY],
                };
                Value::float(match r.random_range(0..12usize) {
                    0 => -0.0,
                    1 => f64::MIN_POSITIVE,
                    2 => 1e308,
                    i if i - 3 < specials.len() => specials[i - 3],
                    _ => r.random_range(-1e9..1e9),
                })
            }
            Gen::Text => Value::Text(match r.random_range(0..10) {
                0 => "long ".repeat(r.random_range(100..3000)),
                // SQLite's text may hold NUL (PostgreSQL's may not).
                1 if self.domain.sqlite && !self.domain.portable => "nul\0inside".to_string(),
                1..=4 => TEXTS[r.random_range(0..TEXTS.len())].to_string(),
                _ => (0..r.random_range(1..20))
                    .map(|_| char::from_u32(r.random_range(0x20..0x3000)).unwrap_or('x'))
                    .collect(),
            }),
            Gen::Bytes => Value::Bytes(match r.random_range(0..6) {
                0 => vec![],
                1 => vec![0; 3],
                2 => (0..r.random_range(1000..20000))
                    .map(|_| r.random())
                    .collect(),
                _ => (0..r.random_range(1..64)).map(|_| r.random()).collect(),
            }),
            Gen::Timestamp | Gen::TimestampTz => {
                let t = if !self.domain.portable && r.random_bool(0.03) {
                    Timestamp::INFINITY
                } else {
                    // 1900..2100, at microsecond precision (PostgreSQL's).
                    let secs = r.random_range(-2_208_988_800i64..4_102_444_800);
                    Timestamp {
                        secs,
                        nanos: r.random_range(0..1_000_000u32) * 1000,
                    }
                };
                if gen == Gen::Timestamp {
                    Value::Timestamp(t)
                } else {
                    Value::instant(t)
                }
            }
            Gen::Bool => Value::Bool(r.random()),
            Gen::Uuid => Value::Uuid(r.random()),
            Gen::Date => Value::Date(r.random_range(-25_000..50_000)),
            Gen::Json => Value::Json(format!(
                "{{\"a\": {}, \"b\": \"{}\"}}",
                r.random_range(0..1000),
                r.random_range(0..9)
            )),
        }
    }

    /// A value certain to differ from `old` under SQL equality.
    pub fn different(&mut self, gen: Gen, old: &Value, nullable: bool) -> Value {
        if old.is_null() {
            return self.value(gen, false);
        }
        if nullable && self.rng.random_bool(0.2) {
            return Value::Null;
        }
        match old {
            Value::Int(i) => Value::Int(if *i == i64::MAX as i128 { i - 1 } else { i + 1 }),
            Value::Decimal(d) => {
                let s = d.to_string();
                let s = if s.contains('.') {
                    format!("{s}7")
                } else {
                    format!("{s}.7")
                };
                Value::Decimal(Decimal::parse(&s).unwrap())
            }
            Value::Float(f) if f.is_nan() || f.is_infinite() || *f == 0.0 => Value::float(1.5),
            Value::Float(f) => Value::float(-f),
            Value::Text(s) => Value::Text(format!("{s}x")),
            Value::Bytes(b) => Value::Bytes([b.as_slice(), &[0]].concat()),
            Value::Timestamp(t) | Value::TimestampTz(t, _) => {
                let t = if *t == Timestamp::INFINITY {
                    Timestamp { secs: 0, nanos: 0 }
                } else {
                    Timestamp {
                        secs: t.secs,
                        nanos: (t.nanos + 1000) % 1_000_000_000,
                    }
                };
                if gen == Gen::Timestamp {
                    Value::Timestamp(t)
                } else {
                    Value::instant(t)
                }
            }
            Value::Bool(b) => Value::Bool(!b),
            Value::Uuid(u) => {
                let mut u = *u;
                u[15] ^= 1;
                Value::Uuid(u)
            }
            Value::Date(d) => Value::Date(d + 1),
            Value::Json(_) => Value::Json("{\"changed\": true}".into()),
            other => panic!("no mutation for {other:?}"),
        }
    }
}

/// A generated table and the differences its subscriber copy holds.
pub struct Case {
    pub schema: Schema,
    pub publisher: Vec<Vec<Value>>,
    pub subscriber: Vec<Vec<Value>>,
    /// (key, kind, changed column names)
    pub expected: BTreeSet<(Vec<String>, String, Vec<String>)>,
    /// Rows rewritten on the subscriber to an equal value spelled differently (must not
    /// be reported): (key, column).
    pub rewrites: Vec<(Vec<Value>, &'static str)>,
}

pub fn key_strings(key: &[Value]) -> Vec<String> {
    key.iter().map(|v| v.to_string()).collect()
}

impl Case {
    pub fn generate(schema: Schema, rows: usize, seed: u64, domain: Domain) -> Case {
        let mut g = Generator::new(seed, domain);
        let mut seen = BTreeSet::new();
        let mut publisher = Vec::new();
        while publisher.len() < rows {
            let row: Vec<Value> = schema
                .cols
                .iter()
                .enumerate()
                .map(|(i, c)| g.value(c.gen, i >= schema.key))
                .collect();
            let key = row[..schema.key].to_vec();
            if key
                .iter()
                .any(|v| matches!(v, Value::Text(s) if s.len() > 200))
            {
                continue; // keys stay short
            }
            if seen.insert(key_strings(&key)) {
                publisher.push(row);
            }
        }
        let mut subscriber = publisher.clone();
        let mut expected = BTreeSet::new();
        let mut rewrites = Vec::new();
        let n = rows.max(1);
        // Deletions: missing on the subscriber.
        for _ in 0..g.rng.random_range(0..=n / 20 + 1) {
            if subscriber.is_empty() {
                break;
            }
            let i = g.rng.random_range(0..subscriber.len());
            let row = subscriber.remove(i);
            expected.insert((
                key_strings(&row[..schema.key]),
                "missing".to_string(),
                vec![],
            ));
        }
        // Updates: changed, with exactly the mutated columns.
        let mut touched = BTreeSet::new();
        for _ in 0..g.rng.random_range(0..=n / 20 + 1) {
            let i = g.rng.random_range(0..subscriber.len().max(1));
            let Some(row) = subscriber.get_mut(i) else {
                break;
            };
            let key = key_strings(&row[..schema.key]);
            if !touched.insert(key.clone()) {
                continue;
            }
            let mut changed = Vec::new();
            let last = schema.cols.len() - 1;
            for (c, (value, col)) in row
                .iter_mut()
                .zip(&schema.cols)
                .enumerate()
                .skip(schema.key)
            {
                if g.rng.random_bool(0.3) || (c == last && changed.is_empty()) {
                    *value = g.different(col.gen, value, true);
                    changed.push(col.name.to_string());
                }
            }
            expected.insert((key, "changed".to_string(), changed));
        }
        // Insertions: extra on the subscriber.
        for _ in 0..g.rng.random_range(0..=n / 20 + 1) {
            let row: Vec<Value> = schema
                .cols
                .iter()
                .enumerate()
                .map(|(i, c)| g.value(c.gen, i >= schema.key))
                .collect();
            let key = key_strings(&row[..schema.key]);
            if seen.insert(key.clone()) {
                expected.insert((key, "extra".to_string(), vec![]));
                subscriber.push(row);
            }
        }
        // Equal values spelled otherwise: must not count as changes.
        for row in &subscriber {
            if rewrites.len() >= 5 {
                break;
            }
            let key = key_strings(&row[..schema.key]);
            if touched.contains(&key) {
                continue;
            }
            for (c, col) in schema.cols.iter().enumerate().skip(schema.key) {
                let equal_respelled = match (&row[c], col.gen) {
                    (Value::Decimal(_), Gen::Numeric) => true,
                    (Value::Float(f), Gen::Float) => *f == 0.0,
                    _ => false,
                };
                if equal_respelled {
                    rewrites.push((row[..schema.key].to_vec(), col.name));
                }
            }
        }
        Case {
            schema,
            publisher,
            subscriber,
            expected,
            rewrites,
        }
    }
}

// ---- writers -------------------------------------------------------------------------

/// `CREATE TABLE` for a generated schema, key columns first and as the primary key, in
/// one engine's quoting and column types (`column_type(col, is_key)`).
pub fn create_table(
    table: &str,
    schema: &Schema,
    quote: fn(&str) -> String,
    column_type: impl Fn(&Col, bool) -> String,
) -> String {
    let cols: Vec<String> = schema
        .cols
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{} {}", quote(c.name), column_type(c, i < schema.key)))
        .collect();
    let key: Vec<String> = schema.cols[..schema.key]
        .iter()
        .map(|c| quote(c.name))
        .collect();
    format!(
        "CREATE TABLE {table} ({}, PRIMARY KEY ({}))",
        cols.join(", "),
        key.join(", ")
    )
}

pub async fn pg_load(
    client: &tokio_postgres::Client,
    table: &str,
    schema: &Schema,
    rows: &[Vec<Value>],
) {
    let create = create_table(table, schema, quote_ident, |c, _| c.pg.to_string());
    client
        .batch_execute(&format!("DROP TABLE IF EXISTS {table}; {create}"))
        .await
        .unwrap();
    for chunk in rows.chunks(200) {
        let values: Vec<String> = chunk
            .iter()
            .map(|row| {
                format!(
                    "({})",
                    row.iter()
                        .zip(&schema.cols)
                        .map(|(v, c)| literal(v, c.pg))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect();
        client
            .batch_execute(&format!("INSERT INTO {table} VALUES {}", values.join(", ")))
            .await
            .unwrap();
    }
}

/// Rewrites values to an equal value of another spelling: 1.5 → 1.50, 0.0 → -0.0.
pub async fn pg_rewrite(
    client: &tokio_postgres::Client,
    table: &str,
    schema: &Schema,
    rewrites: &[(Vec<Value>, &'static str)],
) {
    for (key, column) in rewrites {
        let cond: Vec<String> = schema.cols[..schema.key]
            .iter()
            .zip(key)
            .map(|(c, v)| format!("{} = {}", quote_ident(c.name), literal(v, c.pg)))
            .collect();
        let set = respelled(schema, column, &quote_ident(column));
        client
            .batch_execute(&format!(
                "UPDATE {table} SET {set} WHERE {}",
                cond.join(" AND ")
            ))
            .await
            .unwrap();
    }
}

/// The SET clause that rewrites `column` to an equal value spelled otherwise: a decimal
/// with more trailing zeros (1.5 → 1.500), a zero with a sign (0.0 → -0.0).
fn respelled(schema: &Schema, column: &str, quoted: &str) -> String {
    let numeric = schema
        .cols
        .iter()
        .any(|x| x.name == column && x.gen == Gen::Numeric);
    if numeric {
        format!("{quoted} = {quoted} * 1.000")
    } else {
        format!("{quoted} = -{quoted}")
    }
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

pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

pub fn write_config(dir: &Path, toml: &str) -> PathBuf {
    let p = dir.join("driftwatch.toml");
    std::fs::write(&p, toml).unwrap();
    p
}

pub fn load_config(dir: &Path, toml: &str) -> driftwatch::config::Config {
    driftwatch::config::load(&write_config(dir, toml)).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs one full pass of every table and returns what each pair reported:
/// (group, table, subscriber) → set of (key, kind, changed columns), plus the status.
pub async fn run_pass(
    config: driftwatch::config::Config,
) -> Vec<(
    driftwatch::status::PairStatus,
    BTreeSet<(Vec<String>, String, Vec<String>)>,
)> {
    let rt = driftwatch::scheduler::Runtime::new(config).unwrap();
    for g in &rt.config.groups {
        for t in &g.tables {
            rt.pass(g, t).await;
        }
    }
    let mut out = Vec::new();
    for status in rt.status.snapshot() {
        let id = driftwatch::status::PairId::new(&status.group, &status.table, &status.subscriber);
        let rows = rt
            .status
            .with(&id, |e| {
                let names = e
                    .comparison
                    .as_ref()
                    .map(|c| c.column_names())
                    .unwrap_or_default();
                e.diff
                    .rows()
                    .map(|r| {
                        let mut changed: Vec<String> =
                            r.changed.iter().map(|&i| names[i].clone()).collect();
                        changed.sort();
                        (key_strings(&r.key), r.kind.as_str().to_string(), changed)
                    })
                    .collect::<BTreeSet<_>>()
            })
            .unwrap();
        out.push((status, rows));
    }
    out
}

pub fn sorted(
    mut expected: BTreeSet<(Vec<String>, String, Vec<String>)>,
) -> BTreeSet<(Vec<String>, String, Vec<String>)> {
    expected = expected
        .into_iter()
        .map(|(k, kind, mut c)| {
            c.sort();
            (k, kind, c)
        })
        .collect();
    expected
}

// ---- MySQL / MariaDB ----------------------------------------------------------------------

/// MariaDB (or MySQL) at DRIFTWATCH_TEST_MYSQL_URL, default mysql://root@127.0.0.1:3306
/// (the README's test command starts one).
pub fn mysql_base() -> String {
    std::env::var("DRIFTWATCH_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

pub fn mysql_url(db: &str) -> String {
    format!("{}/{db}", mysql_base().trim_end_matches('/'))
}

async fn mysql_connect_to(url: &str) -> mysql_async::Conn {
    use mysql_async::prelude::Queryable;
    let opts = mysql_async::OptsBuilder::from_opts(mysql_async::Opts::from_url(url).unwrap())
        .prefer_socket(false);
    let mut conn = mysql_async::Conn::new(opts).await.unwrap_or_else(|e| {
        panic!(
            "MySQL/MariaDB at {} (set DRIFTWATCH_TEST_MYSQL_URL): {e}",
            mysql_base()
        )
    });
    // The writers bind instants as UTC.
    conn.query_drop("SET time_zone = '+00:00'").await.unwrap();
    conn
}

pub async fn mysql_connect(db: &str) -> mysql_async::Conn {
    mysql_connect_to(&mysql_url(db)).await
}

/// A fresh, empty database (dropped first if a previous run could not drop it).
pub async fn mysql_database(name: &str) -> TestDb<mysql_async::Conn> {
    use mysql_async::prelude::Queryable;
    let mut admin = mysql_connect_to(&mysql_base()).await;
    admin
        .query_drop(format!(
            "DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}` CHARACTER SET utf8mb4"
        ))
        .await
        .unwrap();
    let _ = admin.disconnect().await;
    TestDb {
        drop: DropDatabase {
            server: Server::Mysql,
            name: name.to_string(),
        },
        conn: mysql_connect(name).await,
    }
}

pub async fn mysql_database_exists(name: &str) -> bool {
    use mysql_async::prelude::Queryable;
    let mut admin = mysql_connect_to(&mysql_base()).await;
    let found: Option<String> = admin
        .exec_first(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name = ?",
            (name,),
        )
        .await
        .unwrap();
    let _ = admin.disconnect().await;
    found.is_some()
}

/// Applies a script to database `db` with the server's own client over TCP, as a person
/// would, from the file `file`; panics with the client's errors and the script's start.
pub fn mysql_apply(db: &str, script: &str, file: &Path) {
    std::fs::write(file, script).unwrap();
    let args = mysql_client_args(db);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_client(mysql_client(), &args, file);
}

/// The MySQL type the tests give a generated column: text with a bytewise, no-pad
/// collation (so that 'a' and 'a ' are two keys, as on the other engines).
pub fn mysql_type(c: &Col, key: bool) -> &'static str {
    match c.gen {
        Gen::Int => "bigint",
        Gen::Numeric => "decimal(65,12)",
        Gen::Float => "double",
        Gen::Text if key => "varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin",
        Gen::Text => "longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin",
        Gen::Bytes => "longblob",
        Gen::Timestamp => "datetime(6)",
        Gen::TimestampTz => "timestamp(6) NULL",
        Gen::Bool => "bit(1)",
        Gen::Uuid => "uuid",
        Gen::Date => "date",
        Gen::Json => "json",
    }
}

/// Moves a case's values into what MariaDB can hold: `timestamp` spans 1970..2038, so
/// instants are folded into it, and uuids get RFC 4122's version and variant bits (the
/// same way on both sides, keeping values that differ different: mutations change an
/// instant's fraction and a uuid's last byte, or the value's nullity). Inserted rows
/// whose text key is longer than an index holds are left out.
pub fn mysql_fit(case: &mut Case) {
    let fit = |v: &mut Value| {
        match v {
            Value::TimestampTz(t, _) => t.secs = 86_400 + t.secs.rem_euclid(2_000_000_000),
            // MariaDB's uuid takes RFC 4122 variants only.
            Value::Uuid(u) => {
                u[6] = (u[6] & 0x0f) | 0x40;
                u[8] = (u[8] & 0x3f) | 0x80;
            }
            _ => {}
        }
    };
    for row in case.publisher.iter_mut().chain(case.subscriber.iter_mut()) {
        row.iter_mut().for_each(fit);
    }
    // Inserted rows may have long text keys, past what an index holds: left out.
    let key_len = case.schema.key;
    let long = |row: &Vec<Value>| {
        row[..key_len]
            .iter()
            .any(|v| matches!(v, Value::Text(s) if s.len() > 200))
    };
    for row in case.subscriber.iter().filter(|r| long(r)) {
        let key = key_strings(&row[..key_len]);
        case.expected
            .retain(|(k, kind, _)| !(k == &key && kind == "extra"));
    }
    case.subscriber.retain(|r| !long(r));
}

pub async fn mysql_load(
    conn: &mut mysql_async::Conn,
    table: &str,
    schema: &Schema,
    rows: &[Vec<Value>],
) {
    use driftwatch::engine::mysql::{param, quote_ident};
    use mysql_async::prelude::Queryable;
    let create = create_table(table, schema, quote_ident, |c, key| {
        mysql_type(c, key).to_string()
    });
    conn.query_drop(format!("DROP TABLE IF EXISTS {table}; {create}"))
        .await
        .unwrap();
    let marks = format!("({})", vec!["?"; schema.cols.len()].join(", "));
    for chunk in rows.chunks(200) {
        let params: Vec<mysql_async::Value> = chunk.iter().flatten().map(param).collect();
        conn.exec_drop(
            format!(
                "INSERT INTO {table} VALUES {}",
                vec![marks.as_str(); chunk.len()].join(", ")
            ),
            params,
        )
        .await
        .unwrap();
    }
}

/// Rewrites values to an equal value of another spelling: 1.5 → 1.5 * 1.000, 0.0 → -0.0.
pub async fn mysql_rewrite(
    conn: &mut mysql_async::Conn,
    table: &str,
    schema: &Schema,
    rewrites: &[(Vec<Value>, &'static str)],
) {
    use driftwatch::engine::mysql::{param, quote_ident};
    use mysql_async::prelude::Queryable;
    for (key, column) in rewrites {
        let cond: Vec<String> = schema.cols[..schema.key]
            .iter()
            .map(|c| format!("{} = ?", quote_ident(c.name)))
            .collect();
        let set = respelled(schema, column, &quote_ident(column));
        let params: Vec<mysql_async::Value> = key.iter().map(param).collect();
        conn.exec_drop(
            format!("UPDATE {table} SET {set} WHERE {}", cond.join(" AND ")),
            params,
        )
        .await
        .unwrap();
    }
}

// ---- the core property, shared by every engine's test --------------------------------

/// How many seeds a property test runs (DRIFTWATCH_PROPTEST_CASES, default 3).
pub fn proptest_cases() -> u64 {
    std::env::var("DRIFTWATCH_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// A one-table config comparing `table` (publisher) with `subscriber_table`.
pub fn pair_config(
    pub_url: &str,
    sub_url: &str,
    table: &str,
    subscriber_table: &str,
    strategy: &str,
    chunk_rows: u64,
) -> String {
    format!(
        r#"
[defaults]
confirm_after = "0s"
chunk_rows = {chunk_rows}
max_diff_rows = 1000000

[databases.pub]
url = "{pub_url}"
[databases.sub]
url = "{sub_url}"

[[groups]]
name = "g"
publisher = "pub"
subscribers = ["sub"]

[[groups.tables]]
name = "{table}"
subscriber_name = "{subscriber_table}"
strategy = "{strategy}"
"#
    )
}

/// The two table shapes of the property test: an integer-led composite key in many small
/// chunks, and a text key in one chunk larger than a fetch, so that localizing must bisect.
pub fn shapes(seed: u64) -> [(Schema, usize, u64); 2] {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    [
        (wide_schema(), rng.random_range(200..1500), 150),
        (text_key_schema(), 3000, 5000),
    ]
}

/// Runs one pass and asserts it reports exactly the case's differences, with no schema
/// drift, no skipped column, the right state and exact row counts.
pub async fn assert_exact(toml: String, dir: &std::path::Path, case: &Case, what: &str) {
    let results = run_pass(load_config(dir, &toml)).await;
    let (status, found) = &results[0];
    assert_eq!(status.error, None, "{what}");
    assert!(!status.schema.mismatch(), "{what}: {:?}", status.schema);
    assert!(
        status.schema.unsupported.is_empty(),
        "{what}: {:?}",
        status.schema
    );
    let expected = sorted(case.expected.clone());
    if *found != expected {
        let missed: Vec<_> = expected.difference(found).take(5).collect();
        let wrong: Vec<_> = found.difference(&expected).take(5).collect();
        panic!("{what}: {} expected, {} found\nnot reported: {missed:#?}\nwrongly reported: {wrong:#?}", expected.len(), found.len());
    }
    let count = |kind: &str| case.expected.iter().filter(|(_, k, _)| k == kind).count() as u64;
    let total = status.confirmed;
    assert_eq!(
        (total.missing, total.extra, total.changed),
        (count("missing"), count("extra"), count("changed")),
        "{what}"
    );
    let want = if case.expected.is_empty() {
        driftwatch::status::State::Converged
    } else {
        driftwatch::status::State::Divergent
    };
    assert_eq!(status.state, want, "{what}");
    assert_eq!(
        status.publisher_rows,
        Some(case.publisher.len() as u64),
        "{what}"
    );
    assert_eq!(
        status.subscriber_rows,
        Some(case.subscriber.len() as u64),
        "{what}"
    );
}

// ---- T-SQL text, checked without a server -------------------------------------------

/// Parses `sql` as T-SQL (sqlparser's MsSqlDialect), or fails the test showing it.
pub fn parse_tsql(sql: &str) {
    if let Err(e) = sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::MsSqlDialect {}, sql)
    {
        panic!("this does not parse as T-SQL: {e}\n{sql}");
    }
}

/// Compares `actual` with the golden file `tests/golden/{name}`; DRIFTWATCH_BLESS=1
/// rewrites the file instead.
pub fn golden(name: &str, actual: &str) {
    // The generation time is the one line that changes from run to run.
    let actual: String = actual
        .lines()
        .filter(|l| !l.starts_with("-- Generated:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("golden")
        .join(name);
    if std::env::var_os("DRIFTWATCH_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing: run with DRIFTWATCH_BLESS=1", path.display()));
    assert!(
        expected == actual,
        "{name} differs from its golden file (DRIFTWATCH_BLESS=1 rewrites it):\n{actual}"
    );
}

// ---- convergence scripts --------------------------------------------------------------

/// Diffs the only table of `config` and returns its script (header included) and counts.
pub async fn script_for(
    config: driftwatch::config::Config,
    options: &driftwatch::script::Options,
) -> (String, driftwatch::script::Summary) {
    use driftwatch::script;
    let rt = driftwatch::scheduler::Runtime::new(config).unwrap();
    let (g, t) = (
        rt.config.groups[0].name.clone(),
        rt.config.groups[0].tables[0].name.clone(),
    );
    let sub = script::subscriber_of(&rt, &g, &t, None).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(16);
    let collect = async {
        let mut s = String::new();
        while let Some(piece) = rx.recv().await {
            s.push_str(&piece);
        }
        s
    };
    let generate = async move { script::generate(&rt, &g, &t, &sub, options, &tx).await };
    let (generated, body) = tokio::join!(generate, collect);
    let (summary, header) = generated.unwrap_or_else(|e| panic!("{e}"));
    (header.unwrap_or_default() + &body, summary)
}

/// Applies `script` with a database's own client (psql, sqlite3, mariadb), which must
/// succeed; returns what the client printed.
pub fn run_client(program: &str, args: &[&str], script: &Path) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .stdin(std::fs::File::open(script).unwrap())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (the test command installs it)"));
    assert!(
        out.status.success(),
        "{program} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(script)
            .unwrap()
            .chars()
            .take(3000)
            .collect::<String>()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The client that applies MySQL scripts: MariaDB's `mariadb`, or `mysql`.
pub fn mysql_client() -> &'static str {
    if std::process::Command::new("mariadb")
        .arg("--version")
        .output()
        .is_ok()
    {
        "mariadb"
    } else {
        "mysql"
    }
}

/// The arguments that point [`mysql_client`] at database `db` of the test server.
pub fn mysql_client_args(db: &str) -> Vec<String> {
    let url = mysql_async::Opts::from_url(&mysql_url(db)).unwrap();
    let mut args = vec![
        "--protocol=tcp".to_string(),
        format!("--host={}", url.ip_or_hostname()),
        format!("--port={}", url.tcp_port()),
        format!("--user={}", url.user().unwrap_or("root")),
    ];
    if let Some(p) = url.pass() {
        args.push(format!("--password={p}"));
    }
    args.push(db.into());
    args
}
