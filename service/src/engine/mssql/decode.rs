//! TDS values → the value model, exactly: one [`Decoder`] a column.
//!
//! Must not: guess. A value of an unexpected wire type for its column is an error.

use tiberius::ColumnData;

use super::{DAYS_0001_TO_1970, DAYS_1900_TO_1970};
use crate::engine::FieldDecoder;
use crate::table::QueryColumn;
use crate::value::{Decimal, LogicalType, Offset, Timestamp, Value};

// ---- decoding --------------------------------------------------------------------------

/// Decodes one column's TDS values into the value model, exactly.
pub(super) struct Decoder {
    column: QueryColumn,
}

impl Decoder {
    pub(super) fn new(c: &QueryColumn) -> Decoder {
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
