//! The canonical value model: what "equal" means, whatever engine a value came from.
//!
//! Every engine decodes its values into [`Value`]; row diffs compare `Value`s and the
//! streamed digest hashes their canonical byte encoding ([`Value::encode`]). Equality
//! follows SQL semantics (decimals by value, floats with -0.0 = 0.0 and NaN = NaN,
//! instants by instant), never the text a driver happens to print.
//!
//! This module must not know about any engine: engines convert into it, not the reverse.

use std::cmp::Ordering;
use std::fmt;

/// One column value, canonicalized at construction (see the constructors).
#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Bool(bool),
    /// Every integer width and signedness.
    Int(i128),
    Decimal(Decimal),
    /// Canonical: -0.0 is stored as 0.0 and every NaN as one NaN (use [`Value::float`]).
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    /// Days since 1970-01-01; `i32::MAX`/`i32::MIN` are PostgreSQL's ±infinity.
    Date(i32),
    /// Nanoseconds since midnight.
    Time(u64),
    /// A timestamp without time zone.
    Timestamp(Timestamp),
    /// An instant (a timestamp with time zone), normalized to UTC, and the offset from UTC
    /// it was written with. Compared, ordered and encoded by the instant alone, as SQL
    /// Server's own `=` compares datetimeoffset ('10:00 +01:00' = '09:00 +00:00'), so an
    /// offset never changes a digest; the offset is kept so that a fix script writes the
    /// value as the publisher holds it. Engines that keep no offset give [`Offset::UTC`].
    TimestampTz(Timestamp, Offset),
    /// RFC 4122 byte order.
    Uuid([u8; 16]),
    Json(String),
    /// Field-exact: '1 day' and '24 hours' differ, as they behave differently.
    Interval {
        months: i32,
        days: i32,
        micros: i64,
    },
}

/// The logical type of a compared column: the value model's variants, minus NULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogicalType {
    Bool,
    Int,
    Decimal,
    Float,
    Text,
    Bytes,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Uuid,
    Json,
    Interval,
}

impl fmt::Display for LogicalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_value(self).ok();
        f.write_str(s.as_ref().and_then(|v| v.as_str()).unwrap_or("?"))
    }
}

/// A point in time as seconds and nanoseconds since the Unix epoch.
/// `secs == i64::MAX` / `i64::MIN` encode PostgreSQL's 'infinity' / '-infinity'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

impl Timestamp {
    pub const INFINITY: Timestamp = Timestamp {
        secs: i64::MAX,
        nanos: 0,
    };
    pub const NEG_INFINITY: Timestamp = Timestamp {
        secs: i64::MIN,
        nanos: 0,
    };

    pub fn from_micros(micros: i64) -> Timestamp {
        Timestamp {
            secs: micros.div_euclid(1_000_000),
            nanos: (micros.rem_euclid(1_000_000) * 1000) as u32,
        }
    }
}

impl Timestamp {
    /// Nanoseconds since the epoch, wide enough for any `secs`.
    fn total_nanos(self) -> i128 {
        self.secs as i128 * NANOS_PER_SEC as i128 + self.nanos as i128
    }

    /// The timestamp `total` nanoseconds after the epoch, when it is a finite one.
    fn from_total_nanos(total: i128) -> Option<Timestamp> {
        let t = Timestamp {
            secs: i64::try_from(total.div_euclid(NANOS_PER_SEC as i128)).ok()?,
            nanos: total.rem_euclid(NANOS_PER_SEC as i128) as u32,
        };
        (!t.is_infinite()).then_some(t)
    }

    pub fn is_infinite(self) -> bool {
        self == Timestamp::INFINITY || self == Timestamp::NEG_INFINITY
    }
}

/// An offset from UTC in minutes east of Greenwich (SQL Server's datetimeoffset holds
/// -14:00..=+14:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Offset(pub i16);

impl Offset {
    pub const UTC: Offset = Offset(0);

    /// The wall-clock time at this offset of the instant `utc`.
    pub fn local(self, utc: Timestamp) -> Timestamp {
        if utc.is_infinite() {
            return utc;
        }
        Timestamp {
            secs: utc.secs.saturating_add(i64::from(self.0) * 60),
            nanos: utc.nanos,
        }
    }
}

impl fmt::Display for Offset {
    /// `+09:45`, `-03:00`, `+00:00`: as SQL Server writes and reads it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { '-' } else { '+' };
        let m = self.0.unsigned_abs();
        write!(f, "{sign}{:02}:{:02}", m / 60, m % 60)
    }
}

const NANOS_PER_SEC: u64 = 1_000_000_000;
/// A time of day may be 24:00:00 (PostgreSQL's, MySQL's), never past it.
const NANOS_PER_DAY: u64 = 86_400 * NANOS_PER_SEC;

/// How a time or timestamp is brought to fewer fractional-second digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rounding {
    /// To the nearest; a half goes to the later time (as SQL Server and MySQL round, and
    /// PostgreSQL when it narrows a timestamp from 2000-01-01 on).
    Round,
    /// Toward the earlier time: the digits past the precision are dropped (as MariaDB
    /// stores a value with more digits than its column holds).
    Truncate,
}

/// The fractional-second precision a temporal column is compared at, on both sides, when
/// the sides hold different ones and the config allows comparing at the coarser one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Fraction {
    /// Digits after the second, 0..=9 (more than 9 changes nothing: values hold nanoseconds).
    pub digits: u8,
    pub rounding: Rounding,
}

impl Fraction {
    /// Nanoseconds in one unit of the last kept digit.
    fn unit(self) -> u64 {
        10u64.pow(9 - u32::from(self.digits.min(9)))
    }

    /// `nanos` brought to the precision. Arithmetic on the whole value, so that a carry
    /// goes into the seconds, the day and the year (23:59:59.9999999 rounds to the next
    /// day's 00:00:00 at 6 digits).
    fn nanos(self, nanos: i128) -> i128 {
        let unit = self.unit() as i128;
        let below = nanos.rem_euclid(unit);
        let truncated = nanos - below;
        match self.rounding {
            Rounding::Round if 2 * below >= unit => truncated + unit,
            _ => truncated,
        }
    }

    /// A time or timestamp at this precision; infinities and every other value unchanged.
    pub fn apply(self, v: Value) -> Value {
        match v {
            // A time of day rounds up to 24:00:00 at most, as PostgreSQL's does.
            Value::Time(t) => Value::Time(self.nanos(t as i128) as u64),
            Value::Timestamp(t) => Value::Timestamp(self.timestamp(t)),
            Value::TimestampTz(t, offset) => Value::TimestampTz(self.timestamp(t), offset),
            v => v,
        }
    }

    fn timestamp(self, t: Timestamp) -> Timestamp {
        if t.is_infinite() {
            return t;
        }
        Timestamp::from_total_nanos(self.nanos(t.total_nanos())).unwrap_or(t)
    }

    /// Every value that [`Fraction::apply`] brings to `v` (which must be at this
    /// precision): `lower <= x < upper`, `upper` absent where it would reach the end of a
    /// day of times. `None` for a value that is not a finite time or timestamp.
    /// A guarded script matches a finer column's value with this range, since the diff
    /// saw only its value at the coarser precision.
    pub fn preimage(self, v: &Value) -> Option<(Value, Option<Value>)> {
        let unit = self.unit() as i128;
        // The half-open range [start, start + unit) of finer values that give `v`.
        let start = |x: i128| match self.rounding {
            Rounding::Round => x - unit / 2,
            Rounding::Truncate => x,
        };
        match v {
            Value::Time(t) => {
                let lo = start(*t as i128).max(0) as u64;
                let hi = (start(*t as i128) + unit) as u64;
                // No upper bound at the end of the day: '24:00:00' is no time literal for
                // SQL Server (a row moved to exactly 24:00:00 since the diff, where an
                // engine holds that, is the one change such a guard lets through).
                Some((
                    Value::Time(lo),
                    (hi < NANOS_PER_DAY).then_some(Value::Time(hi)),
                ))
            }
            Value::Timestamp(t) | Value::TimestampTz(t, _) if !t.is_infinite() => {
                let lo = Timestamp::from_total_nanos(start(t.total_nanos()))?;
                let hi = Timestamp::from_total_nanos(start(t.total_nanos()) + unit)?;
                Some(match v {
                    Value::TimestampTz(_, o) => {
                        (Value::TimestampTz(lo, *o), Some(Value::TimestampTz(hi, *o)))
                    }
                    _ => (Value::Timestamp(lo), Some(Value::Timestamp(hi))),
                })
            }
            _ => None,
        }
    }
}

/// An exact decimal: `digits × 10^exp`, normalized (no leading or trailing zeros), so
/// that equal values have equal representations: 1.10 = 1.1, -0 = 0.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Decimal {
    Finite {
        negative: bool,
        digits: String,
        exp: i32,
    },
    NaN,
    Infinity,
    NegInfinity,
}

impl Decimal {
    /// Parses decimal text such as `-12.3400`, `1e-5`, `NaN`, `Infinity`.
    pub fn parse(s: &str) -> Option<Decimal> {
        let s = s.trim();
        let named = |names: &[&str]| names.iter().any(|n| s.eq_ignore_ascii_case(n));
        if named(&["nan"]) {
            return Some(Decimal::NaN);
        }
        if named(&["infinity", "+infinity", "inf", "+inf"]) {
            return Some(Decimal::Infinity);
        }
        if named(&["-infinity", "-inf"]) {
            return Some(Decimal::NegInfinity);
        }
        let (negative, int_part, frac_part, exp) = split_decimal(s)?;
        let mut digits = String::with_capacity(int_part.len() + frac_part.len());
        digits.push_str(int_part);
        digits.push_str(frac_part);
        Some(Decimal::normalize(negative, digits, exp))
    }

    /// Builds a normalized decimal from raw digits (which may carry leading/trailing zeros).
    pub fn normalize(negative: bool, digits: String, exp: i32) -> Decimal {
        match trim_digits(&digits, exp) {
            ("", _) => Decimal::Finite {
                negative: false,
                digits: "0".into(),
                exp: 0,
            },
            (d, exp) => Decimal::Finite {
                negative,
                digits: d.to_string(),
                exp,
            },
        }
    }

    pub fn from_i128(v: i128) -> Decimal {
        Decimal::normalize(v < 0, v.unsigned_abs().to_string(), 0)
    }

    /// The integer value, when the decimal is integral and fits.
    pub fn to_i128(&self) -> Option<i128> {
        match self {
            Decimal::Finite {
                negative,
                digits,
                exp,
            } if *exp >= 0 => {
                let mut s = String::with_capacity(digits.len() + *exp as usize + 1);
                if *negative {
                    s.push('-');
                }
                s.push_str(digits);
                s.extend(std::iter::repeat_n('0', *exp as usize));
                s.parse().ok()
            }
            _ => None,
        }
    }

    fn canonical_text(&self) -> String {
        match self {
            Decimal::Finite {
                negative,
                digits,
                exp,
            } => {
                format!("{}{}e{}", if *negative { "-" } else { "" }, digits, exp)
            }
            Decimal::NaN => "NaN".into(),
            Decimal::Infinity => "Infinity".into(),
            Decimal::NegInfinity => "-Infinity".into(),
        }
    }

    /// Total order by value; NaN sorts above +Infinity, as PostgreSQL does.
    fn order(&self, other: &Decimal) -> Ordering {
        fn rank(d: &Decimal) -> u8 {
            match d {
                Decimal::NegInfinity => 0,
                Decimal::Finite { .. } => 1,
                Decimal::Infinity => 2,
                Decimal::NaN => 3,
            }
        }
        match (self, other) {
            (
                Decimal::Finite {
                    negative: na,
                    digits: da,
                    exp: ea,
                },
                Decimal::Finite {
                    negative: nb,
                    digits: db,
                    exp: eb,
                },
            ) => {
                let zero_a = da == "0";
                let zero_b = db == "0";
                let sign = |neg: bool, zero: bool| {
                    if zero {
                        0
                    } else if neg {
                        -1
                    } else {
                        1
                    }
                };
                let (sa, sb) = (sign(*na, zero_a), sign(*nb, zero_b));
                if sa != sb || sa == 0 {
                    return sa.cmp(&sb);
                }
                // Same sign, both non-zero: compare magnitudes by adjusted exponent, then digits.
                let mag_a = da.len() as i64 + *ea as i64;
                let mag_b = db.len() as i64 + *eb as i64;
                let magnitude = mag_a.cmp(&mag_b).then_with(|| {
                    let n = da.len().max(db.len());
                    let pad = |d: &str| format!("{d:0<n$}");
                    pad(da).cmp(&pad(db))
                });
                if sa < 0 {
                    magnitude.reverse()
                } else {
                    magnitude
                }
            }
            _ => rank(self).cmp(&rank(other)),
        }
    }
}

impl fmt::Display for Decimal {
    /// Plain positional notation (no exponent), as SQL literals want it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decimal::Finite {
                negative,
                digits,
                exp,
            } => {
                if *negative {
                    f.write_str("-")?;
                }
                if *exp >= 0 {
                    f.write_str(digits)?;
                    for _ in 0..*exp {
                        f.write_str("0")?;
                    }
                    Ok(())
                } else {
                    let frac = (-*exp) as usize;
                    if digits.len() > frac {
                        let (i, fr) = digits.split_at(digits.len() - frac);
                        write!(f, "{i}.{fr}")
                    } else {
                        write!(f, "0.{}{}", "0".repeat(frac - digits.len()), digits)
                    }
                }
            }
            other => f.write_str(&other.canonical_text()),
        }
    }
}

/// The bit pattern every NaN is stored as.
const CANONICAL_NAN: u64 = 0x7ff8_0000_0000_0000;

impl Value {
    /// An instant from an engine that keeps no offset (at UTC).
    pub fn instant(t: Timestamp) -> Value {
        Value::TimestampTz(t, Offset::UTC)
    }

    /// A float, canonicalized: -0.0 becomes 0.0 and every NaN the same NaN.
    pub fn float(f: f64) -> Value {
        if f.is_nan() {
            Value::Float(f64::from_bits(CANONICAL_NAN))
        } else if f == 0.0 {
            Value::Float(0.0)
        } else {
            Value::Float(f)
        }
    }

    fn tag(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Int(_) => 2,
            Value::Decimal(_) => TAG_DECIMAL,
            Value::Float(_) => 4,
            Value::Text(_) => TAG_TEXT,
            Value::Bytes(_) => TAG_BYTES,
            Value::Date(_) => 7,
            Value::Time(_) => 8,
            Value::Timestamp(_) => 9,
            Value::TimestampTz(..) => 10,
            Value::Uuid(_) => 11,
            Value::Json(_) => TAG_JSON,
            Value::Interval { .. } => 13,
        }
    }

    /// Appends the canonical encoding: a type tag, then a fixed-width or length-prefixed
    /// payload, so that no two distinct values (or column sequences) encode alike.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.tag());
        let prefixed = |bytes: &[u8], out: &mut Vec<u8>| {
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            out.extend_from_slice(bytes);
        };
        match self {
            Value::Null => {}
            Value::Bool(b) => out.push(*b as u8),
            Value::Int(i) => out.extend_from_slice(&i.to_le_bytes()),
            Value::Decimal(Decimal::Finite {
                negative,
                digits,
                exp,
            }) => encode_decimal_body(out, *negative, digits, *exp),
            Value::Decimal(d) => prefixed(d.canonical_text().as_bytes(), out),
            Value::Float(f) => out.extend_from_slice(&f.to_bits().to_le_bytes()),
            Value::Text(s) | Value::Json(s) => prefixed(s.as_bytes(), out),
            Value::Bytes(b) => prefixed(b, out),
            Value::Date(d) => out.extend_from_slice(&d.to_le_bytes()),
            Value::Time(t) => out.extend_from_slice(&t.to_le_bytes()),
            // The instant only: see the variant.
            Value::Timestamp(t) | Value::TimestampTz(t, _) => {
                out.extend_from_slice(&t.secs.to_le_bytes());
                out.extend_from_slice(&t.nanos.to_le_bytes());
            }
            Value::Uuid(u) => out.extend_from_slice(u),
            Value::Interval {
                months,
                days,
                micros,
            } => {
                out.extend_from_slice(&months.to_le_bytes());
                out.extend_from_slice(&days.to_le_bytes());
                out.extend_from_slice(&micros.to_le_bytes());
            }
        }
    }

    /// Brings a decoded value to what both sides are compared as; every engine calls it
    /// once per decoded value (with its column's `compare_as` and `compare_fraction`).
    ///
    /// Converts into the representation of `target` where that is exact (an integer
    /// compared with a decimal column); anything else is returned unchanged, so a value
    /// that does not fit its column's type still compares unequal instead of being guessed.
    /// With `fraction` (the config's `temporal_precision` allowed a temporal column to be
    /// compared at the coarser of two precisions), a time or timestamp is rounded or
    /// truncated to that many fractional digits.
    pub fn coerce(self, target: LogicalType, fraction: Option<Fraction>) -> Value {
        let v = match (self, target) {
            (Value::Int(i), LogicalType::Decimal) => Value::Decimal(Decimal::from_i128(i)),
            (Value::Decimal(d), LogicalType::Int) => match d.to_i128() {
                Some(i) => Value::Int(i),
                None => Value::Decimal(d),
            },
            (v, _) => v,
        };
        match fraction {
            Some(f) => f.apply(v),
            None => v,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The integer value of an integer key column.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => i64::try_from(*i).ok(),
            _ => None,
        }
    }
}

/// A finite decimal's text `[-+]digits[.digits][e±n]` (surrounding whitespace trimmed) as
/// its sign, integer digits, fraction digits and the exponent of the last digit; `None` for
/// any other text.
fn split_decimal(s: &str) -> Option<(bool, &str, &str, i32)> {
    let s = s.trim();
    let (negative, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i32>().ok()?),
        None => (rest, 0),
    };
    let (int_part, frac_part) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
        None => (mantissa, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part
        .bytes()
        .chain(frac_part.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let exp = exponent.checked_sub(i32::try_from(frac_part.len()).ok()?)?;
    Some((negative, int_part, frac_part, exp))
}

/// Raw digits without their leading and trailing zeros, the exponent moved past the
/// trailing ones: a decimal's normalized form (`""` for zero).
fn trim_digits(digits: &str, exp: i32) -> (&str, i32) {
    let trimmed = digits.trim_start_matches('0');
    let without_trailing = trimmed.trim_end_matches('0');
    (
        without_trailing,
        exp + (trimmed.len() - without_trailing.len()) as i32,
    )
}

/// The encoding of a finite decimal given by raw digits (leading and trailing zeros
/// allowed) and the exponent of the last one: what `Value::Decimal(Decimal::normalize(..))`
/// encodes to, for engines that read digits off their wire format.
pub fn encode_decimal_digits(out: &mut Vec<u8>, negative: bool, digits: &str, exp: i32) {
    out.push(TAG_DECIMAL);
    match trim_digits(digits, exp) {
        ("", _) => encode_decimal_body(out, false, "0", 0),
        (d, exp) => encode_decimal_body(out, negative, d, exp),
    }
}

/// The encoding of a finite decimal spelled as text (`-12.3400`, `1e-5`), what
/// `Value::Decimal(Decimal::parse(s)?).encode(out)` gives, with the digits gathered in
/// `scratch` instead of a new allocation. `false`, writing nothing, for any other text (NaN,
/// the infinities, not a number), which the caller decodes the slow way.
pub fn encode_decimal_text(out: &mut Vec<u8>, s: &str, scratch: &mut String) -> bool {
    let Some((negative, int_part, frac_part, exp)) = split_decimal(s) else {
        return false;
    };
    scratch.clear();
    scratch.push_str(int_part);
    scratch.push_str(frac_part);
    encode_decimal_digits(out, negative, scratch, exp);
    true
}

/// The payload of a finite decimal, as [`Value::encode`] writes it: the length-prefixed
/// text `[-]digits e exp` of the normalized form. Engines with a wire format of their own
/// call this (after the tag) to encode without building a [`Value`].
pub fn encode_decimal_body(out: &mut Vec<u8>, negative: bool, digits: &str, exp: i32) {
    let len_at = out.len();
    out.extend_from_slice(&[0; 8]);
    let start = out.len();
    if negative {
        out.push(b'-');
    }
    out.extend_from_slice(digits.as_bytes());
    out.push(b'e');
    out.extend_from_slice(itoa::Buffer::new().format(exp).as_bytes());
    let len = (out.len() - start) as u64;
    out[len_at..start].copy_from_slice(&len.to_le_bytes());
}

/// The encoding of a text, json or bytes payload (`tag` from [`Value::encode`]'s table).
pub fn encode_prefixed(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

pub const TAG_DECIMAL: u8 = 3;
pub const TAG_TEXT: u8 = 5;
pub const TAG_BYTES: u8 = 6;
pub const TAG_JSON: u8 = 12;

/// Rows per batch of canonical encodings: large, so that handing a batch to rayon costs
/// little next to hashing it.
pub const ENCODED_BATCH: usize = 8192;

/// Rows already canonically encoded, back to back: what the streamed digest hashes.
#[derive(Debug)]
pub struct EncodedRows {
    pub data: Vec<u8>,
    /// End offset in `data` of each row.
    pub ends: Vec<usize>,
    /// The integer first key column of each row, for buckets.
    pub lead: Vec<Option<i64>>,
}

/// Spent batches, emptied, for the next batches to fill: a batch is about a megabyte, and
/// fresh memory costs the kernel a page fault per page (measured on the benchmark's
/// PostgreSQL pair: 0.06 s of driftwatch's 0.78 s of CPU in a streamed pass of 2 million
/// rows). At most [`SPARE_BATCHES`] are kept, none of more than [`SPARE_BYTES`].
static SPARE: std::sync::Mutex<Vec<EncodedRows>> = std::sync::Mutex::new(Vec::new());
const SPARE_BATCHES: usize = 8;
const SPARE_BYTES: usize = 4 << 20;

impl Default for EncodedRows {
    /// An empty batch: a spent one's buffers if one is spare, else room for
    /// [`ENCODED_BATCH`] rows of 64 bytes, so that filling one rarely copies it as it
    /// grows (every streamed row passes through one).
    fn default() -> EncodedRows {
        let spare = SPARE.lock().map(|mut s| s.pop()).unwrap_or(None);
        spare.unwrap_or_else(|| EncodedRows {
            data: Vec::with_capacity(ENCODED_BATCH * 64),
            ends: Vec::with_capacity(ENCODED_BATCH),
            lead: Vec::with_capacity(ENCODED_BATCH),
        })
    }
}

impl EncodedRows {
    /// Gives a spent batch's buffers to the next batch (see [`SPARE`]).
    pub fn recycle(mut self) {
        if self.data.capacity() > SPARE_BYTES {
            return;
        }
        self.data.clear();
        self.ends.clear();
        self.lead.clear();
        if let Ok(mut spare) = SPARE.lock() {
            if spare.len() < SPARE_BATCHES {
                spare.push(self);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn row(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.data[start..self.ends[i]]
    }

    pub fn push_row(&mut self, row: &[Value], key0: usize) {
        for v in row {
            v.encode(&mut self.data);
        }
        self.end_row(row[key0].as_i64());
    }

    /// Ends the row whose values were just encoded into `data` (by an engine encoding its
    /// wire format straight into it), with its integer first key column.
    pub fn end_row(&mut self, lead: Option<i64>) {
        self.ends.push(self.data.len());
        self.lead.push(lead);
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Value {}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Value) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Value {
    /// Values of one type order by value (text and bytes bytewise, which is what a binary
    /// collation gives); values of different types order by type tag.
    fn cmp(&self, other: &Value) -> Ordering {
        use Value::*;
        match (self, other) {
            (Null, Null) => Ordering::Equal,
            (Bool(a), Bool(b)) => a.cmp(b),
            (Int(a), Int(b)) => a.cmp(b),
            (Decimal(a), Decimal(b)) => a.order(b),
            (Float(a), Float(b)) => a.total_cmp(b),
            (Text(a), Text(b)) | (Json(a), Json(b)) => a.cmp(b),
            (Bytes(a), Bytes(b)) => a.cmp(b),
            (Date(a), Date(b)) => a.cmp(b),
            (Time(a), Time(b)) => a.cmp(b),
            (Timestamp(a), Timestamp(b)) | (TimestampTz(a, _), TimestampTz(b, _)) => a.cmp(b),
            (Uuid(a), Uuid(b)) => a.cmp(b),
            (
                Interval {
                    months: m1,
                    days: d1,
                    micros: u1,
                },
                Interval {
                    months: m2,
                    days: d2,
                    micros: u2,
                },
            ) => (m1, d1, u1).cmp(&(m2, d2, u2)),
            (a, b) => a.tag().cmp(&b.tag()),
        }
    }
}

/// A row's key: the key columns' values, in key order.
pub type Key = Vec<Value>;

/// The canonical encoding of a key, usable as a hash-map key.
pub fn key_bytes(key: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 * key.len());
    for v in key {
        v.encode(&mut out);
    }
    out
}

/// The streamed digest of one row: xxh3-128 over its columns' canonical encodings.
/// `buf` is scratch space reused across rows.
pub fn row_hash(row: &[Value], buf: &mut Vec<u8>) -> u128 {
    buf.clear();
    for v in row {
        v.encode(buf);
    }
    xxhash_rust::xxh3::xxh3_128(buf)
}

const UNIX_EPOCH_CE_DAYS: i32 = 719_163;

/// Days since 1970-01-01 for a proleptic Gregorian date.
pub fn days_from_civil(year: i32, month: u32, day: u32) -> Option<i32> {
    chrono::NaiveDate::from_ymd_opt(year, month, day)
        .map(|d| chrono::Datelike::num_days_from_ce(&d) - UNIX_EPOCH_CE_DAYS)
}

impl fmt::Display for Value {
    /// A readable rendering for status pages and logs (not a SQL literal).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Decimal(d) => write!(f, "{d}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Text(s) | Value::Json(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => {
                f.write_str("0x")?;
                b.iter().try_for_each(|x| write!(f, "{x:02x}"))
            }
            Value::Date(d) => f.write_str(&format_date(*d)),
            Value::Time(t) => f.write_str(&format_time(*t)),
            Value::Timestamp(t) => f.write_str(&format_timestamp(*t)),
            Value::TimestampTz(t, Offset::UTC) => write!(f, "{}+00", format_timestamp(*t)),
            // The wall clock at its offset, as SQL Server shows it.
            Value::TimestampTz(t, o) => write!(f, "{}{o}", format_timestamp(o.local(*t))),
            Value::Uuid(u) => f.write_str(&format_uuid(u)),
            Value::Interval {
                months,
                days,
                micros,
            } => write!(f, "{months} mons {days} days {micros} us"),
        }
    }
}

/// `YYYY-MM-DD` (years outside 0..=9999 keep their sign and width).
pub fn format_date(days: i32) -> String {
    match days {
        i32::MAX => "infinity".into(),
        i32::MIN => "-infinity".into(),
        _ => chrono::NaiveDate::from_num_days_from_ce_opt(days + UNIX_EPOCH_CE_DAYS)
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_else(|| format!("day {days}")),
    }
}

/// `HH:MM:SS[.fffffffff]`, trailing fractional zeros trimmed.
pub fn format_time(nanos: u64) -> String {
    let secs = nanos / 1_000_000_000;
    let frac = nanos % 1_000_000_000;
    let base = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    with_fraction(base, frac as u32)
}

fn with_fraction(mut base: String, nanos: u32) -> String {
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        base.push('.');
        base.push_str(frac.trim_end_matches('0'));
    }
    base
}

/// `YYYY-MM-DD HH:MM:SS[.fffffffff]` in the proleptic Gregorian calendar.
pub fn format_timestamp(t: Timestamp) -> String {
    if t == Timestamp::INFINITY {
        return "infinity".into();
    }
    if t == Timestamp::NEG_INFINITY {
        return "-infinity".into();
    }
    let days = t.secs.div_euclid(86_400);
    let secs_of_day = t.secs.rem_euclid(86_400) as u64;
    match i32::try_from(days) {
        Ok(d) => format!(
            "{} {}",
            format_date(d),
            format_time(secs_of_day * 1_000_000_000 + t.nanos as u64)
        ),
        Err(_) => format!("{}s", t.secs),
    }
}

pub fn format_uuid(u: &[u8; 16]) -> String {
    let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<i32> {
    let d = chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()?;
    Some(chrono::Datelike::num_days_from_ce(&d) - UNIX_EPOCH_CE_DAYS)
}

/// Parses `HH:MM[:SS[.fffffffff]]`.
pub fn parse_time(s: &str) -> Option<u64> {
    let t = chrono::NaiveTime::parse_from_str(s.trim(), "%H:%M:%S%.f")
        .or_else(|_| chrono::NaiveTime::parse_from_str(s.trim(), "%H:%M"))
        .ok()?;
    let secs = chrono::Timelike::num_seconds_from_midnight(&t) as u64;
    Some(secs * 1_000_000_000 + chrono::Timelike::nanosecond(&t) as u64)
}

/// Parses `YYYY-MM-DD[ T]HH:MM[:SS[.f]]`, optionally followed by `Z` or `±HH[:MM]`.
/// Returns the timestamp (converted to UTC when an offset is present) and whether an
/// offset was present.
pub fn parse_timestamp(s: &str) -> Option<(Timestamp, bool)> {
    let s = s.trim();
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some((to_timestamp(dt.naive_utc()), true));
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f%#z",
        "%Y-%m-%dT%H:%M:%S%.f%#z",
        "%Y-%m-%d %H:%M%#z",
    ] {
        if let Ok(dt) = chrono::DateTime::parse_from_str(s, fmt) {
            return Some((to_timestamp(dt.naive_utc()), true));
        }
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Some((to_timestamp(dt), false));
        }
    }
    let days = parse_date(s)?;
    Some((
        Timestamp {
            secs: days as i64 * 86_400,
            nanos: 0,
        },
        false,
    ))
}

fn to_timestamp(dt: chrono::NaiveDateTime) -> Timestamp {
    let utc = dt.and_utc();
    Timestamp {
        secs: utc.timestamp(),
        nanos: utc.timestamp_subsec_nanos(),
    }
}

/// Parses a hyphenated (or bare hex) UUID.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = s.trim().bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        Decimal::parse(s).unwrap()
    }

    #[test]
    fn decimals_compare_by_value_never_through_floats() {
        assert_eq!(dec("1.10"), dec("1.1"));
        assert_eq!(dec("-0.000"), dec("0"));
        assert_eq!(dec("100"), dec("1e2"));
        assert_ne!(dec("1.1"), dec("1.1000000000000000001"));
        assert_eq!(dec("0012.3400").to_string(), "12.34");
        assert_eq!(dec("-0.05").to_string(), "-0.05");
        assert_eq!(dec("1200").to_string(), "1200");
        assert!(Decimal::parse("1.2.3").is_none());
        assert!(Decimal::parse("").is_none());
        assert!(Decimal::parse("-").is_none());
        let ordered = [
            "-Infinity",
            "-10",
            "-9.99",
            "-0.001",
            "0",
            "0.001",
            "9.99",
            "10",
            "1e30",
            "Infinity",
            "NaN",
        ];
        for w in ordered.windows(2) {
            assert_eq!(
                dec(w[0]).order(&dec(w[1])),
                Ordering::Less,
                "{} < {}",
                w[0],
                w[1]
            );
        }
    }

    #[test]
    fn floats_follow_sql_equality() {
        assert_eq!(Value::float(-0.0), Value::float(0.0));
        assert_eq!(Value::float(f64::NAN), Value::float(-f64::NAN));
        assert_ne!(Value::float(f64::INFINITY), Value::float(f64::NEG_INFINITY));
        let mut a = Vec::new();
        let mut b = Vec::new();
        Value::float(-0.0).encode(&mut a);
        Value::float(0.0).encode(&mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn null_is_not_empty_and_encodings_are_unambiguous() {
        let mut buf = Vec::new();
        let h = |row: &[Value], buf: &mut Vec<u8>| row_hash(row, buf);
        assert_ne!(
            h(&[Value::Null], &mut buf),
            h(&[Value::Text(String::new())], &mut buf)
        );
        assert_ne!(
            h(
                &[Value::Text("ab".into()), Value::Text("c".into())],
                &mut buf
            ),
            h(
                &[Value::Text("a".into()), Value::Text("bc".into())],
                &mut buf
            )
        );
        assert_ne!(
            h(&[Value::Text("a ".into())], &mut buf),
            h(&[Value::Text("a".into())], &mut buf)
        );
        assert_ne!(
            h(&[Value::Int(1)], &mut buf),
            h(&[Value::Bool(true)], &mut buf)
        );
    }

    #[test]
    fn temporal_round_trips() {
        let (t, tz) = parse_timestamp("2025-06-14 02:00:00.123456").unwrap();
        assert!(!tz);
        assert_eq!(format_timestamp(t), "2025-06-14 02:00:00.123456");
        let (a, _) = parse_timestamp("2025-06-14T04:00:00+02:00").unwrap();
        let (b, _) = parse_timestamp("2025-06-14 02:00:00Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(format_date(parse_date("1999-12-31").unwrap()), "1999-12-31");
        assert_eq!(format_time(parse_time("23:59:59.5").unwrap()), "23:59:59.5");
        assert_eq!(
            Timestamp::from_micros(-1),
            Timestamp {
                secs: -1,
                nanos: 999_999_000
            }
        );
        let u = parse_uuid("123e4567-e89b-12d3-a456-426614174000").unwrap();
        assert_eq!(format_uuid(&u), "123e4567-e89b-12d3-a456-426614174000");
    }

    #[test]
    fn direct_encoders_match_value_encode() {
        let d = Decimal::parse("-12.50").unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        Value::Decimal(d.clone()).encode(&mut a);
        b.push(TAG_DECIMAL);
        let Decimal::Finite {
            negative,
            digits,
            exp,
        } = d
        else {
            unreachable!()
        };
        encode_decimal_body(&mut b, negative, &digits, exp);
        assert_eq!(a, b);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        Value::Text("é".into()).encode(&mut a);
        encode_prefixed(&mut b, TAG_TEXT, "é".as_bytes());
        assert_eq!(a, b);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        Value::Json("{}".into()).encode(&mut a);
        encode_prefixed(&mut b, TAG_JSON, b"{}");
        assert_eq!(a, b);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        Value::Bytes(vec![0]).encode(&mut a);
        encode_prefixed(&mut b, TAG_BYTES, &[0]);
        assert_eq!(a, b);
    }

    fn ts(s: &str) -> Timestamp {
        parse_timestamp(s).unwrap().0
    }

    fn at(digits: u8, rounding: Rounding) -> Option<Fraction> {
        Some(Fraction { digits, rounding })
    }

    #[test]
    fn a_coarser_precision_rounds_half_to_the_later_time_or_truncates() {
        use Rounding::*;
        let cases = [
            // (value, digits, rounded, truncated)
            (
                "2025-01-01 00:00:00.1235",
                3,
                "2025-01-01 00:00:00.124",
                "2025-01-01 00:00:00.123",
            ),
            (
                "2025-01-01 00:00:00.1234999",
                3,
                "2025-01-01 00:00:00.123",
                "2025-01-01 00:00:00.123",
            ),
            (
                "2025-01-01 00:00:00.1234567",
                6,
                "2025-01-01 00:00:00.123457",
                "2025-01-01 00:00:00.123456",
            ),
            (
                "2025-01-01 00:00:00.0000005",
                6,
                "2025-01-01 00:00:00.000001",
                "2025-01-01 00:00:00",
            ),
            (
                "2025-01-01 00:00:00.5",
                0,
                "2025-01-01 00:00:01",
                "2025-01-01 00:00:00",
            ),
            // The carry goes through the second, the day and the year.
            (
                "2025-12-31 23:59:59.9999995",
                6,
                "2026-01-01 00:00:00",
                "2025-12-31 23:59:59.999999",
            ),
            (
                "2024-02-28 23:59:59.9995",
                3,
                "2024-02-29 00:00:00",
                "2024-02-28 23:59:59.999",
            ),
            // Before 1970 (negative seconds): still to the later time, and truncation
            // toward the earlier one, as the wall clock reads.
            (
                "1969-12-31 23:59:59.0005",
                3,
                "1969-12-31 23:59:59.001",
                "1969-12-31 23:59:59",
            ),
            (
                "1900-06-01 12:00:00.9999999",
                6,
                "1900-06-01 12:00:01",
                "1900-06-01 12:00:00.999999",
            ),
            // Already at the precision, or coarser: unchanged.
            (
                "2025-01-01 00:00:00.12",
                3,
                "2025-01-01 00:00:00.12",
                "2025-01-01 00:00:00.12",
            ),
            (
                "2025-01-01 00:00:00.123456789",
                9,
                "2025-01-01 00:00:00.123456789",
                "2025-01-01 00:00:00.123456789",
            ),
        ];
        for (v, digits, rounded, truncated) in cases {
            for (rounding, want) in [(Round, rounded), (Truncate, truncated)] {
                let got =
                    Value::Timestamp(ts(v)).coerce(LogicalType::Timestamp, at(digits, rounding));
                assert_eq!(
                    got.to_string(),
                    want,
                    "{v} at {digits} digits, {rounding:?}"
                );
                let got =
                    Value::instant(ts(v)).coerce(LogicalType::TimestampTz, at(digits, rounding));
                assert_eq!(
                    got,
                    Value::instant(ts(want)),
                    "{v} at {digits}, {rounding:?}"
                );
            }
        }
        // A time of day rounds up to 24:00:00, as PostgreSQL's does, never past it.
        let time = |s: &str| Value::Time(parse_time(s).unwrap());
        assert_eq!(
            time("23:59:59.9999999").coerce(LogicalType::Time, at(6, Round)),
            Value::Time(NANOS_PER_DAY)
        );
        assert_eq!(
            time("23:59:59.9999999").coerce(LogicalType::Time, at(6, Truncate)),
            time("23:59:59.999999")
        );
        assert_eq!(
            Value::Time(NANOS_PER_DAY).coerce(LogicalType::Time, at(0, Round)),
            Value::Time(NANOS_PER_DAY)
        );
        // Infinities, NULL and values of other types (a MySQL time out of range is text)
        // are left alone.
        for v in [
            Value::Timestamp(Timestamp::INFINITY),
            Value::instant(Timestamp::NEG_INFINITY),
            Value::Null,
            Value::Text("838:59:59.5".into()),
        ] {
            assert_eq!(v.clone().coerce(LogicalType::Timestamp, at(0, Round)), v);
        }
    }

    #[test]
    fn the_preimage_is_every_value_that_compares_equal() {
        use Rounding::*;
        let v = Value::Timestamp(ts("2025-01-01 00:00:00.124"));
        let (lo, hi) = Fraction {
            digits: 3,
            rounding: Round,
        }
        .preimage(&v)
        .unwrap();
        assert_eq!(lo.to_string(), "2025-01-01 00:00:00.1235");
        assert_eq!(hi.unwrap().to_string(), "2025-01-01 00:00:00.1245");
        let (lo, hi) = Fraction {
            digits: 3,
            rounding: Truncate,
        }
        .preimage(&v)
        .unwrap();
        assert_eq!(lo.to_string(), "2025-01-01 00:00:00.124");
        assert_eq!(hi.unwrap().to_string(), "2025-01-01 00:00:00.125");
        // Both ends agree with `apply`: the lower bound gives the value, the upper does not.
        for digits in 0..=7 {
            for rounding in [Round, Truncate] {
                let f = Fraction { digits, rounding };
                for s in [
                    "2025-06-14 02:00:00",
                    "1969-12-31 23:59:59.9",
                    "2000-01-01 00:00:00.5",
                ] {
                    let v = f.apply(Value::Timestamp(ts(s)));
                    let (lo, hi) = f.preimage(&v).unwrap();
                    let hi = hi.unwrap();
                    assert_eq!(f.apply(lo.clone()), v, "{s} {f:?}");
                    assert_ne!(f.apply(hi.clone()), v, "{s} {f:?}");
                    let Value::Timestamp(h) = hi else {
                        unreachable!()
                    };
                    let below = Timestamp::from_total_nanos(h.total_nanos() - 1).unwrap();
                    assert_eq!(f.apply(Value::Timestamp(below)), v, "{s} {f:?}");
                }
            }
        }
        // Times stay within the day: no bound below midnight, none at 24:00:00.
        let f = Fraction {
            digits: 0,
            rounding: Round,
        };
        assert_eq!(
            f.preimage(&Value::Time(0)),
            Some((Value::Time(0), Some(Value::Time(NANOS_PER_SEC / 2))))
        );
        assert_eq!(
            f.preimage(&Value::Time(NANOS_PER_DAY)),
            Some((Value::Time(NANOS_PER_DAY - NANOS_PER_SEC / 2), None))
        );
        assert_eq!(f.preimage(&Value::Timestamp(Timestamp::INFINITY)), None);
        assert_eq!(f.preimage(&Value::Int(1)), None);
    }

    #[test]
    fn coercion_is_exact_only() {
        assert_eq!(
            Value::Int(5).coerce(LogicalType::Decimal, None),
            Value::Decimal(dec("5.00"))
        );
        assert_eq!(
            Value::Decimal(dec("5.0")).coerce(LogicalType::Int, None),
            Value::Int(5)
        );
        assert_eq!(
            Value::Decimal(dec("5.5")).coerce(LogicalType::Int, None),
            Value::Decimal(dec("5.5"))
        );
    }
}
