//! PostgreSQL's binary send format → the value model: one [`Decoder`] a column, decoding
//! a field or encoding it straight into the canonical encoding.
//!
//! Must not: guess. A field whose bytes do not match its type is an error naming why.

use super::dialect::cast_type;
use crate::table::QueryColumn;
use crate::value::{
    encode_decimal_digits, encode_prefixed, Decimal, Fraction, LogicalType, Timestamp, Value,
    TAG_BYTES, TAG_JSON, TAG_TEXT,
};

// ---- binary COPY decoding ----------------------------------------------------------------

/// Decodes one column's binary send format.
pub(super) struct Decoder {
    pub(super) column: String,
    pub(super) db_type: String,
    kind: Kind,
    pub(super) compare_as: LogicalType,
    pub(super) compare_fraction: Option<Fraction>,
    /// Values are widened or brought to a coarser precision (through the value model).
    converted: bool,
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
    pub(super) fn new(c: &QueryColumn) -> Decoder {
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
            converted: c.compare_as != logical_of(kind) || c.compare_fraction.is_some(),
        }
    }

    pub(super) fn decode(&self, b: &[u8]) -> std::result::Result<Value, String> {
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
    pub(super) fn encode(
        &self,
        b: &[u8],
        out: &mut Vec<u8>,
        scratch: &mut String,
    ) -> std::result::Result<(), String> {
        match self.kind {
            _ if self.converted => self
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
                Some((negative, exp)) => encode_decimal_digits(out, negative, scratch, exp),
                None => Value::Decimal(decode_numeric(b)?).encode(out),
            },
            _ => self.decode(b)?.encode(out),
        }
        Ok(())
    }
}

impl Decoder {
    /// The integer of a first key column, for buckets: what `decode_row` then
    /// [`Value::as_i64`] give (the value brought to the type it is compared as, as for the
    /// other side's rows, so that a key compared as an integer buckets alike on both).
    pub(super) fn lead(&self, b: &[u8]) -> Option<i64> {
        self.decode(b)
            .ok()?
            .coerce(self.compare_as, self.compare_fraction)
            .as_i64()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lead_is_the_key_as_compared() {
        // 42 as numeric: weight 0, digits [42].
        let b = [0, 1, 0, 0, 0, 0, 0, 0, 0, 42];
        let mut c = QueryColumn::new("k", "numeric(10,0)", LogicalType::Decimal);
        assert_eq!(Decoder::new(&c).lead(&b), None);
        c.compare_as = LogicalType::Int;
        assert_eq!(Decoder::new(&c).lead(&b), Some(42));
        let c = QueryColumn::new("k", "bigint", LogicalType::Int);
        assert_eq!(Decoder::new(&c).lead(&(-7i64).to_be_bytes()), Some(-7));
    }

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
}
