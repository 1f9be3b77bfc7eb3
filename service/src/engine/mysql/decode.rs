//! MySQL's binary protocol → the value model: one [`Decoder`] a column, decoding a value
//! or encoding it straight into the canonical encoding.
//!
//! Must not: guess. A value outside what its type means in the value model (a zero date,
//! a time past 24:00:00) is kept as the text the server spells it, so that it compares
//! unequal; a value of an unexpected wire type is an error.

use mysql_async::Value as My;

use crate::engine::FieldDecoder;
use crate::table::QueryColumn;
use crate::value::{
    days_from_civil, encode_decimal_text, encode_prefixed, parse_uuid, Decimal, LogicalType,
    Timestamp, Value, TAG_BYTES, TAG_JSON, TAG_TEXT,
};

// ---- binary protocol decoding -------------------------------------------------------------

/// Decodes one column's binary-protocol values.
pub(super) struct Decoder {
    column: QueryColumn,
}

impl Decoder {
    pub(super) fn new(c: &QueryColumn) -> Decoder {
        Decoder { column: c.clone() }
    }

    /// Appends the canonical encoding of a value: what decoding, `coerce` and `encode`
    /// give, without building a [`Value`] (and its allocation) for text, bytes, json and
    /// decimals. `scratch` is reused across calls.
    pub(super) fn encode(
        &self,
        v: My,
        out: &mut Vec<u8>,
        scratch: &mut String,
    ) -> std::result::Result<(), String> {
        let c = &self.column;
        if c.compare_as != c.logical || c.compare_fraction.is_some() {
            self.decode(v)?
                .coerce(c.compare_as, c.compare_fraction)
                .encode(out);
            return Ok(());
        }
        let prefixed = match (c.logical, &v) {
            (LogicalType::Text, My::Bytes(b)) => Some((TAG_TEXT, b, true)),
            (LogicalType::Json, My::Bytes(b)) => Some((TAG_JSON, b, true)),
            (LogicalType::Bytes, My::Bytes(b)) => Some((TAG_BYTES, b, false)),
            (LogicalType::Decimal, My::Bytes(b)) => {
                // Anything but plain digits is left to `decode`, and its error.
                if let Ok(s) = std::str::from_utf8(b) {
                    if encode_decimal_text(out, s, scratch) {
                        return Ok(());
                    }
                }
                None
            }
            _ => None,
        };
        if let Some((tag, bytes, text)) = prefixed {
            if text {
                std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
            }
            encode_prefixed(out, tag, bytes);
            return Ok(());
        }
        // `coerce` would return the value as it is.
        self.decode(v)?.encode(out);
        Ok(())
    }

    /// The integer of a first key column, for buckets: what `decode_row` then
    /// [`Value::as_i64`] give, read off an integer without decoding it.
    pub(super) fn lead(&self, v: &My) -> Option<i64> {
        let c = &self.column;
        match v {
            My::Int(i) if c.logical == LogicalType::Int && c.compare_as == LogicalType::Int => {
                Some(*i)
            }
            _ => self
                .decode(v.clone())
                .ok()?
                .coerce(c.compare_as, c.compare_fraction)
                .as_i64(),
        }
    }
}

impl FieldDecoder for Decoder {
    type Field = My;

    fn column(&self) -> &QueryColumn {
        &self.column
    }

    fn decode(&self, v: My) -> std::result::Result<Value, String> {
        let utf8 = |b: Vec<u8>| String::from_utf8(b).map_err(|e| e.to_string());
        Ok(match (self.column.logical, v) {
            (_, My::NULL) => Value::Null,
            (LogicalType::Int, My::Int(i)) => Value::Int(i as i128),
            (LogicalType::Int, My::UInt(u)) => Value::Int(u as i128),
            // bit(n): big-endian bytes, at most 8.
            (LogicalType::Int, My::Bytes(b)) if b.len() <= 8 => {
                Value::Int(b.iter().fold(0u64, |a, &x| a << 8 | x as u64) as i128)
            }
            (LogicalType::Bool, My::Bytes(b)) if b.len() == 1 => Value::Bool(b[0] != 0),
            (LogicalType::Bool, My::Int(i)) => Value::Bool(i != 0),
            (LogicalType::Bool, My::UInt(u)) => Value::Bool(u != 0),
            (LogicalType::Decimal, My::Bytes(b)) => {
                let s = utf8(b)?;
                Value::Decimal(Decimal::parse(&s).ok_or_else(|| format!("not a decimal: {s:?}"))?)
            }
            (LogicalType::Decimal, My::Int(i)) => Value::Decimal(Decimal::from_i128(i as i128)),
            (LogicalType::Decimal, My::UInt(u)) => Value::Decimal(Decimal::from_i128(u as i128)),
            (LogicalType::Float, My::Float(f)) => Value::float(f as f64),
            (LogicalType::Float, My::Double(f)) => Value::float(f),
            (LogicalType::Text, My::Bytes(b)) => Value::Text(utf8(b)?),
            (LogicalType::Json, My::Bytes(b)) => Value::Json(utf8(b)?),
            (LogicalType::Bytes, My::Bytes(b)) => Value::Bytes(b),
            (LogicalType::Uuid, My::Bytes(b)) => match <[u8; 16]>::try_from(b.as_slice()) {
                Ok(u) => Value::Uuid(u),
                Err(_) => {
                    let s = utf8(b)?;
                    Value::Uuid(parse_uuid(&s).ok_or_else(|| format!("not a uuid: {s:?}"))?)
                }
            },
            (LogicalType::Date, My::Date(y, m, d, ..)) => {
                match days_from_civil(y as i32, m as u32, d as u32) {
                    Some(days) => Value::Date(days),
                    None => Value::Text(format!("{y:04}-{m:02}-{d:02}")),
                }
            }
            (LogicalType::Time, My::Time(negative, days, h, m, s, us)) => {
                let secs = days as u64 * 86_400 + h as u64 * 3600 + m as u64 * 60 + s as u64;
                let nanos = secs * 1_000_000_000 + us as u64 * 1000;
                if !negative && nanos <= 86_400 * 1_000_000_000 || nanos == 0 {
                    Value::Time(nanos)
                } else {
                    // Not a time of day: compared as the server spells it.
                    let mut t = format!(
                        "{}{:02}:{m:02}:{s:02}",
                        if negative { "-" } else { "" },
                        days as u64 * 24 + h as u64
                    );
                    if us != 0 {
                        t.push_str(format!(".{us:06}").trim_end_matches('0'));
                    }
                    Value::Text(t)
                }
            }
            (
                LogicalType::Timestamp | LogicalType::TimestampTz,
                My::Date(y, mo, d, h, mi, s, us),
            ) => match days_from_civil(y as i32, mo as u32, d as u32) {
                Some(days) if h < 24 && mi < 60 && s < 60 && us < 1_000_000 => {
                    let t = Timestamp {
                        secs: days as i64 * 86_400 + h as i64 * 3600 + mi as i64 * 60 + s as i64,
                        nanos: us * 1000,
                    };
                    if self.column.logical == LogicalType::Timestamp {
                        Value::Timestamp(t)
                    } else {
                        Value::instant(t)
                    }
                }
                _ => {
                    let mut t = format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}");
                    if us != 0 {
                        t.push_str(format!(".{us:06}").trim_end_matches('0'));
                    }
                    Value::Text(t)
                }
            },
            (t, v) => return Err(format!("unexpected {v:?} for a {t} column")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoder(logical: LogicalType) -> Decoder {
        Decoder::new(&QueryColumn::new("c", "-", logical))
    }

    #[test]
    fn binary_values_decode_exactly() {
        assert_eq!(
            decoder(LogicalType::Int)
                .decode(My::UInt(u64::MAX))
                .unwrap(),
            Value::Int(u64::MAX as i128)
        );
        assert_eq!(
            decoder(LogicalType::Int)
                .decode(My::Bytes(vec![1, 0]))
                .unwrap(),
            Value::Int(256)
        );
        assert_eq!(
            decoder(LogicalType::Decimal)
                .decode(My::Bytes(b"-12.3400".to_vec()))
                .unwrap(),
            Value::Decimal(Decimal::parse("-12.34").unwrap())
        );
        assert_eq!(
            decoder(LogicalType::Float).decode(My::Float(0.1)).unwrap(),
            Value::float(0.1f32 as f64)
        );
        assert_eq!(
            decoder(LogicalType::Time)
                .decode(My::Time(true, 34, 22, 59, 59, 500_000))
                .unwrap(),
            Value::Text("-838:59:59.5".into())
        );
        assert_eq!(
            decoder(LogicalType::Time)
                .decode(My::Time(false, 0, 1, 2, 3, 4))
                .unwrap(),
            Value::Time(3_723_000_004_000)
        );
        assert_eq!(
            decoder(LogicalType::Timestamp)
                .decode(My::Date(0, 0, 0, 0, 0, 0, 0))
                .unwrap(),
            Value::Text("0000-00-00 00:00:00".into())
        );
        let ts = decoder(LogicalType::TimestampTz)
            .decode(My::Date(2025, 6, 14, 2, 0, 0, 123_456))
            .unwrap();
        assert_eq!(ts.to_string(), "2025-06-14 02:00:00.123456+00");
    }

    #[test]
    fn lead_is_the_decoded_keys_integer() {
        let mut as_int = QueryColumn::new("c", "-", LogicalType::Decimal);
        as_int.compare_as = LogicalType::Int;
        for (c, v) in [
            (QueryColumn::new("c", "-", LogicalType::Int), My::Int(-3)),
            (
                QueryColumn::new("c", "-", LogicalType::Int),
                My::UInt(u64::MAX),
            ),
            (
                QueryColumn::new("c", "-", LogicalType::Int),
                My::Bytes(vec![1, 0]),
            ),
            (as_int, My::Bytes(b"42.000".to_vec())),
            (
                QueryColumn::new("c", "-", LogicalType::Text),
                My::Bytes(b"7".to_vec()),
            ),
        ] {
            let d = Decoder::new(&c);
            let decoded = d
                .decode(v.clone())
                .unwrap()
                .coerce(c.compare_as, None)
                .as_i64();
            assert_eq!(d.lead(&v), decoded, "{v:?}");
        }
    }

    /// The direct encoding is the value model's, byte for byte, for every value it
    /// shortcuts and for those it leaves to `decode`.
    #[test]
    fn direct_encoding_is_the_decoded_values() {
        let cases: Vec<(LogicalType, My)> = vec![
            (LogicalType::Text, My::Bytes("é trailing  ".into())),
            (LogicalType::Text, My::Bytes(Vec::new())),
            (LogicalType::Json, My::Bytes(br#"{"a": 1.0}"#.to_vec())),
            (LogicalType::Bytes, My::Bytes(vec![0, 255, 7])),
            (LogicalType::Decimal, My::Bytes(b"-12.3400".to_vec())),
            (LogicalType::Decimal, My::Bytes(b"-0.00".to_vec())),
            (LogicalType::Decimal, My::Bytes(b"000120".to_vec())),
            (LogicalType::Decimal, My::Bytes(b".5".to_vec())),
            (LogicalType::Decimal, My::Int(-7)),
            (LogicalType::Int, My::Int(i64::MIN)),
            (LogicalType::Timestamp, My::Date(2024, 2, 29, 23, 59, 59, 1)),
            (LogicalType::Text, My::NULL),
        ];
        let mut scratch = String::new();
        for (logical, v) in cases {
            let d = decoder(logical);
            let (mut direct, mut via_value) = (Vec::new(), Vec::new());
            d.encode(v.clone(), &mut direct, &mut scratch).unwrap();
            d.decode(v.clone()).unwrap().encode(&mut via_value);
            assert_eq!(direct, via_value, "{logical} {v:?}");
        }
        // Compared as another type: through the value model, as `decode_row` does.
        let mut widened = QueryColumn::new("c", "-", LogicalType::Int);
        widened.compare_as = LogicalType::Decimal;
        let (mut direct, mut via_value) = (Vec::new(), Vec::new());
        Decoder::new(&widened)
            .encode(My::Int(5), &mut direct, &mut scratch)
            .unwrap();
        Value::Decimal(Decimal::from_i128(5)).encode(&mut via_value);
        assert_eq!(direct, via_value);
        // Not UTF-8 and not a decimal: the decoder's errors.
        let bad = vec![0xff, 0xfe];
        assert!(decoder(LogicalType::Text)
            .encode(My::Bytes(bad.clone()), &mut direct, &mut scratch)
            .is_err());
        assert!(decoder(LogicalType::Decimal)
            .encode(My::Bytes(b"12x".to_vec()), &mut direct, &mut scratch)
            .is_err());
    }
}
