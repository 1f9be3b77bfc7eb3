//! Random tables with hostile values, and random mutations whose differences are known
//! exactly; the `CREATE TABLE` and respelling every engine's writer shares.

use std::collections::BTreeSet;

use driftwatch::value::{Decimal, Timestamp, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

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

/// The SET clause that rewrites `column` to an equal value spelled otherwise: a decimal
/// with more trailing zeros (1.5 → 1.500), a zero with a sign (0.0 → -0.0).
pub(crate) fn respelled(schema: &Schema, column: &str, quoted: &str) -> String {
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
