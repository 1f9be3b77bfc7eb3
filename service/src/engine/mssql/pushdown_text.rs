//! The pushdown digest cannot run here, so its agreement with the streamed digest is proven
//! type by type: for edge values as the server holds them, the text each column's T-SQL
//! expression ([`hashed_col`]) is documented to produce, computed in Rust with T-SQL's
//! semantics, equals a text that depends on the decoded value alone, so that two rows
//! hash alike in a pushdown digest exactly when the streamed digest sees them equal.
//!
//! Tests only: must not model an expression other than the one `statements.rs` sends
//! (`the_modelled_expressions_are_the_ones_sent` holds them together).

use sha2::Digest;
use tiberius::numeric::Numeric;
use tiberius::time::{Date, DateTime, DateTime2, DateTimeOffset, SmallDateTime, Time};
use tiberius::ColumnData;

use super::decode::Decoder;
use super::introspect::logical_type;
use super::statements::{base_type, decimal_precision_scale, hashed_col};
use super::DAYS_0001_TO_1970;
use crate::engine::{FieldDecoder, INLINE_TEXT};
use crate::table::QueryColumn;
use crate::value::{Decimal, Timestamp, Value};

fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// CONVERT(varchar, binary, 2): hexadecimal digits without the 0x prefix ("CAST and
/// CONVERT (Transact-SQL)", binary styles), in upper case as SQL Server writes them.
fn style_2(b: &[u8]) -> String {
    hex_upper(b)
}

/// CAST(x AS nvarchar(...)): the UTF-16LE code units that nvarchar stores.
fn nvarchar(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// HASHBYTES('SHA2_256', CAST(x AS nvarchar(max))): SHA-256 of the UTF-16LE code units.
fn hashbytes_nvarchar(s: &str) -> Vec<u8> {
    sha2::Sha256::digest(nvarchar(s)).to_vec()
}

/// The text part of [`hashed_col`] as T-SQL computes it for a column declared with
/// `declared` characters (None: max or an old LOB type): DATALENGTH of the nvarchar is its
/// bytes; a declared length of at most INLINE_TEXT is spelled counted, else the CASE
/// decides by that DATALENGTH.
fn tsql_text(s: &str, declared: Option<usize>) -> String {
    let datalength = nvarchar(s).len();
    if declared.is_some_and(|n| n <= INLINE_TEXT) || datalength <= INLINE_TEXT * 2 {
        format!("{datalength}:{s}")
    } else {
        style_2(&hashbytes_nvarchar(s))
    }
}

/// The binary part of [`hashed_col`] as T-SQL computes it (CONVERT(varchar, binary, 2)
/// behind DATALENGTH, or the SHA-256), the same way.
fn tsql_bytes(b: &[u8], declared: Option<usize>) -> String {
    if declared.is_some_and(|n| n <= INLINE_TEXT / 2) || b.len() <= INLINE_TEXT / 2 {
        format!("{}:{}", b.len(), style_2(b))
    } else {
        style_2(&sha2::Sha256::digest(b))
    }
}

fn civil(days_from_0001: i64) -> String {
    chrono::NaiveDate::from_num_days_from_ce_opt(days_from_0001 as i32 + 1)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string()
}

/// Style 121, "ODBC canonical (with milliseconds)": yyyy-mm-dd hh:mi:ss.fffffff for
/// datetime2(7) (the fraction at the type's scale: 3 digits for datetime).
fn style_121(days_from_0001: i64, hundred_ns: u64, digits: u32) -> String {
    let secs = hundred_ns / 10_000_000;
    let frac = (hundred_ns % 10_000_000) / 10u64.pow(7 - digits);
    format!(
        "{} {:02}:{:02}:{:02}.{:0w$}",
        civil(days_from_0001),
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        frac,
        w = digits as usize
    )
}

/// CONVERT(varchar(42), decimal(p,s)): the digits at the declared scale, a '-' for a
/// negative value, and (where p > s) the integer part's 0; `integer_zero` says whether
/// a decimal(p,p) writes that 0, which its documentation leaves open.
fn convert_decimal(unscaled: i128, scale: u8, integer_zero: bool) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let s = scale as usize;
    let digits = format!("{digits:0>w$}", w = s + 1);
    let (int, frac) = digits.split_at(digits.len() - s);
    let int = if int == "0" && !integer_zero { "" } else { int };
    let sign = if unscaled < 0 { "-" } else { "" };
    if s == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

/// The decimal part of [`hashed_col`], step by step with T-SQL's string functions
/// (1-based; LEN ignores trailing spaces, of which there are none here).
fn tsql_decimal_text(text: &str, precision_is_scale: bool, is_zero: bool) -> String {
    let left = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    let len = |s: &str| s.chars().count();
    let v = if precision_is_scale && left(text, 1) == "." {
        format!("0{text}")
    } else if precision_is_scale && left(text, 2) == "-." {
        format!("-0{}", &text[1..])
    } else {
        text.to_string()
    };
    // PATINDEX('%[^0]%', REVERSE(v)): where the first character that is not 0 is,
    // counting from the end.
    let reversed: String = v.chars().rev().collect();
    let patindex = reversed.chars().position(|c| c != '0').map_or(0, |i| i + 1);
    let z = left(&v, len(&v) - patindex + 1);
    if is_zero {
        "0".into()
    } else if !v.contains('.') {
        v
    } else if z.ends_with('.') {
        left(&z, len(&z) - 1)
    } else {
        z
    }
}

/// The text a column's part of the row hash should be, from the decoded value alone.
fn from_value(v: &Value) -> String {
    let at_7 = |t: &Timestamp| {
        let days = t.secs.div_euclid(86_400) + DAYS_0001_TO_1970;
        let hundred_ns = t.secs.rem_euclid(86_400) as u64 * 10_000_000 + t.nanos as u64 / 100;
        style_121(days, hundred_ns, 7)
    };
    match v {
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => (*b as u8).to_string(),
        Value::Decimal(d) if *d == Decimal::from_i128(0) => "0".into(),
        Value::Decimal(d) => d.to_string(),
        Value::Float(f) if *f == 0.0 => "0".into(),
        Value::Float(f) => hex_upper(&f.to_bits().to_be_bytes()),
        // Counted by its UTF-16 bytes when short, else hashed.
        Value::Text(s) => {
            let units = s.encode_utf16().count();
            if units <= INLINE_TEXT {
                format!("{}:{s}", units * 2)
            } else {
                hex_upper(&hashbytes_nvarchar(s))
            }
        }
        Value::Bytes(b) if b.len() <= INLINE_TEXT / 2 => format!("{}:{}", b.len(), hex_upper(b)),
        Value::Bytes(b) => hex_upper(&sha2::Sha256::digest(b)),
        Value::Uuid(u) => crate::value::format_uuid(u).to_uppercase(),
        Value::Date(d) => crate::value::format_date(*d),
        Value::Time(n) => style_121(
            crate::value::days_from_civil(1900, 1, 1).unwrap() as i64 + DAYS_0001_TO_1970,
            n / 100,
            7,
        ),
        Value::Timestamp(t) | Value::TimestampTz(t, _) => at_7(t),
        other => panic!("no SQL Server type holds {other:?}"),
    }
}

/// A column of `db_type` as the engine reads it.
fn decoded(db_type: &str, wire: ColumnData<'static>) -> Value {
    let base = base_type(db_type);
    let logical = logical_type(base).unwrap();
    let column = QueryColumn::new("c", db_type, logical);
    Decoder::new(&column).decode(wire).unwrap()
}

/// Asserts that the documented texts equal the value's, and that two of the values give
/// one text exactly when they are equal values with one encoding.
fn agree(db_type: &str, cases: Vec<(ColumnData<'static>, String)>) {
    let mut seen: Vec<(Value, String)> = Vec::new();
    for (wire, documented) in cases {
        let v = decoded(db_type, wire);
        assert_eq!(from_value(&v), documented, "{db_type} {v}");
        for (w, text) in &seen {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            v.encode(&mut a);
            w.encode(&mut b);
            assert_eq!(&v == w, a == b, "{db_type}: {v} and {w}");
            assert_eq!(&v == w, text == &documented, "{db_type}: {v} and {w}");
        }
        seen.push((v, documented));
    }
}

#[test]
fn integers_and_bits() {
    for (db_type, values) in [
        ("bigint", vec![i64::MIN, -1, 0, 1, i64::MAX]),
        ("int", vec![i32::MIN as i64, 0, i32::MAX as i64]),
    ] {
        let cases = values
            .iter()
            .map(|&i| {
                let wire = match db_type {
                    "int" => ColumnData::I32(Some(i as i32)),
                    _ => ColumnData::I64(Some(i)),
                };
                // CONVERT(varchar(20), int): its decimal digits, '-' when negative.
                (wire, i.to_string())
            })
            .collect();
        agree(db_type, cases);
    }
    agree("tinyint", vec![(ColumnData::U8(Some(255)), "255".into())]);
    agree(
        "smallint",
        vec![(ColumnData::I16(Some(-32768)), "-32768".into())],
    );
    agree(
        "bit",
        vec![
            (ColumnData::Bit(Some(true)), "1".into()),
            (ColumnData::Bit(Some(false)), "0".into()),
        ],
    );
}

#[test]
fn decimals_at_any_declared_scale() {
    let max38: i128 = "9".repeat(38).parse().unwrap();
    // (declared type, unscaled value, scale): the same value at several scales must
    // give one text (1.10 = 1.1 = 1.1000000000).
    let values: &[(&str, i128, u8)] = &[
        ("decimal(12,2)", 150, 2),
        ("decimal(38,10)", 15_000_000_000, 10),
        ("decimal(5,1)", 15, 1),
        ("decimal(12,2)", 0, 2),
        ("decimal(12,2)", -5, 2),
        ("decimal(38,0)", 1200, 0),
        ("decimal(38,0)", max38, 0),
        ("decimal(38,0)", -max38, 0),
        ("decimal(38,38)", 1, 38),
        ("decimal(38,38)", -max38, 38),
        ("decimal(2,2)", 50, 2),
        ("decimal(3,2)", 50, 2),
        ("decimal(3,2)", -50, 2),
        // money as the engine selects it, decimal(19,4): the extremes of money.
        ("money", i64::MAX as i128, 4),
        ("money", i64::MIN as i128, 4),
        ("smallmoney", -2_147_483_648, 4),
    ];
    for integer_zero in [true, false] {
        let mut seen: Vec<(Value, String)> = Vec::new();
        for &(db_type, unscaled, scale) in values {
            let p_is_s = decimal_precision_scale(db_type).is_some_and(|(p, s)| p == s);
            let text = convert_decimal(unscaled, scale, integer_zero || !p_is_s);
            let documented = tsql_decimal_text(&text, p_is_s, unscaled == 0);
            let wire = ColumnData::Numeric(Some(Numeric::new_with_scale(unscaled, scale)));
            let v = decoded(db_type, wire);
            assert_eq!(from_value(&v), documented, "{db_type} {text}");
            for (w, t) in &seen {
                assert_eq!(&v == w, t == &documented, "{v} and {w}");
            }
            seen.push((v, documented));
        }
    }
    let zero_point_five = tsql_decimal_text(&convert_decimal(50, 2, false), true, false);
    assert_eq!(zero_point_five, "0.5");
}

#[test]
fn floats_by_their_bits() {
    let mut cases = Vec::new();
    for f in [
        1.0,
        -1.0,
        0.1,
        f64::MIN_POSITIVE,
        f64::MAX,
        -f64::MAX,
        1e-300,
    ] {
        // CAST(float AS binary(8)): the IEEE 754 bits, most significant byte first.
        cases.push((
            ColumnData::F64(Some(f)),
            style_2(&f.to_bits().to_be_bytes()),
        ));
    }
    // -0 = 0, and both are '0'.
    cases.push((ColumnData::F64(Some(0.0)), "0".into()));
    cases.push((ColumnData::F64(Some(-0.0)), "0".into()));
    agree("float", cases);
    // real widened to float exactly: a real and the float of its value hash alike.
    let r = 0.1f32;
    let widened = style_2(&(r as f64).to_bits().to_be_bytes());
    agree(
        "real",
        vec![
            (ColumnData::F32(Some(r)), widened.clone()),
            (
                ColumnData::F32(Some(f32::MAX)),
                style_2(&(f32::MAX as f64).to_bits().to_be_bytes()),
            ),
        ],
    );
    assert_eq!(
        from_value(&decoded("float", ColumnData::F64(Some(r as f64)))),
        widened
    );
}

#[test]
fn text_and_bytes_counted_when_short_hashed_when_long() {
    // Trailing spaces are kept (DATALENGTH and HASHBYTES see them), characters past U+FFFF
    // are two UTF-16 code units, the empty string is not NULL, and the separator, the
    // count's colon and the NULL mark inside a text change nothing.
    let short = [
        "",
        " ",
        "a",
        "a ",
        "é",
        "e\u{301}",
        "😀",
        "日本語",
        "#",
        "~",
        "1:~",
        "a#b",
        "2:a#",
    ];
    let at_limit = "x".repeat(INLINE_TEXT);
    let past_limit = "x".repeat(INLINE_TEXT + 1);
    // 254 units and one character of two: 256 units, hashed.
    let pair_past = format!("{}😀", "y".repeat(INLINE_TEXT - 1));
    let pair_at = format!("{}😀", "y".repeat(INLINE_TEXT - 2));
    let long = [
        at_limit.as_str(),
        &past_limit,
        &pair_past,
        &pair_at,
        &"z".repeat(5000),
    ];
    let text = |declared: Option<usize>| {
        move |s: &str| {
            (
                ColumnData::String(Some(s.to_string().into())),
                tsql_text(s, declared),
            )
        }
    };
    let mut all: Vec<&str> = short.to_vec();
    all.extend(long);
    agree("nvarchar(max)", all.iter().map(|s| text(None)(s)).collect());
    agree(
        "nvarchar(255)",
        all.iter()
            .filter(|s| s.encode_utf16().count() <= 255)
            .map(|s| text(Some(255))(s))
            .collect(),
    );
    agree(
        "varchar(40)",
        short.iter().map(|s| text(Some(40))(s)).collect(),
    );
    // A value is spelled alike whatever its column's declaration.
    for s in all.iter().filter(|s| s.encode_utf16().count() <= 255) {
        assert_eq!(tsql_text(s, Some(255)), tsql_text(s, None), "{s}");
    }
    assert!(tsql_text(&past_limit, None).len() == 64);
    assert!(tsql_text(&pair_past, None).len() == 64);
    assert!(tsql_text(&pair_at, None).starts_with("510:"));
    let bytes = |declared: Option<usize>| {
        move |b: Vec<u8>| {
            let documented = tsql_bytes(&b, declared);
            (ColumnData::Binary(Some(b.into())), documented)
        }
    };
    let values = || {
        vec![
            vec![],
            vec![0],
            vec![0, 0],
            b"1:".to_vec(),
            vec![0xab; INLINE_TEXT / 2],
            vec![0xab; INLINE_TEXT / 2 + 1],
            vec![0xff; 30_000],
        ]
    };
    agree(
        "varbinary(max)",
        values().into_iter().map(bytes(None)).collect(),
    );
    agree(
        "varbinary(16)",
        values()
            .into_iter()
            .filter(|b| b.len() <= 16)
            .map(bytes(Some(16)))
            .collect(),
    );
    // 32 bytes, the size of a hash, are counted, not taken for one.
    assert_eq!(
        tsql_bytes(&[7; 32], None),
        format!("32:{}", "07".repeat(32))
    );
}

#[test]
fn decimals_declared_alike_at_their_declared_scale() {
    // Both sides declare decimal(12,2): CONVERT spells every value at scale 2, so equal
    // values give one text and different values different texts, with no trim.
    let spelled = |unscaled: i128, scale: u8| match unscaled {
        0 => "0".to_string(),
        _ => convert_decimal(unscaled, scale, true),
    };
    let values = [0i128, 1, -1, 10, 150, -150, 999_999_999_999];
    for (i, &a) in values.iter().enumerate() {
        for &b in &values[i..] {
            assert_eq!(a == b, spelled(a, 2) == spelled(b, 2), "{a} and {b}");
        }
    }
    assert_eq!(spelled(150, 2), "1.50");
    assert_eq!(spelled(-5, 2), "-0.05");
}

#[test]
fn uniqueidentifiers_as_their_text() {
    // CONVERT(char(36), uniqueidentifier): the canonical text, upper case.
    let cases = [
        "00000000-0000-0000-0000-000000000000",
        "6F9619FF-8B86-D011-B42D-00C04FC964FF",
        "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
    ]
    .into_iter()
    .map(|s| {
        (
            ColumnData::Guid(Some(tiberius::Uuid::parse_str(s).unwrap())),
            s.to_string(),
        )
    })
    .collect();
    agree("uniqueidentifier", cases);
}

#[test]
fn dates_and_times_in_styles_23_and_121() {
    // date, style 23 (ISO 8601 yyyy-mm-dd): days since 0001-01-01.
    let dates = [0u32, 577_814, 693_595, 730_178, 3_652_058]
        .into_iter()
        .map(|d| (ColumnData::Date(Some(Date::new(d))), civil(d as i64)))
        .collect();
    agree("date", dates);
    // time(n) cast to datetime2(7): 1900-01-01 and the time at 100 ns.
    let day_1900 = 693_595;
    let times = [(0u64, 7u8), (863_999_999_999, 7), (45_296, 0), (123, 3)]
        .into_iter()
        .map(|(increments, scale)| {
            let hundred_ns = increments * 10u64.pow(7 - scale as u32);
            (
                ColumnData::Time(Some(Time::new(increments, scale))),
                style_121(day_1900, hundred_ns, 7),
            )
        })
        .collect();
    agree("time(7)", times);
    // datetime, style 121 at its 3 digits, then '0000': ticks of 1/300 s shown as
    // milliseconds rounded to the nearest ("datetime (Transact-SQL)": .000, .003, .007).
    let datetimes = [
        (0i32, 0u32),
        (0, 1),
        (0, 2),
        (-53_690, 0),
        (2_958_463, 25_919_999),
    ]
    .into_iter()
    .map(|(days, ticks)| {
        let ms = (ticks as f64 * 1000.0 / 300.0).round() as u64;
        let documented = style_121(day_1900 + days as i64, ms * 10_000, 3) + "0000";
        (
            ColumnData::DateTime(Some(DateTime::new(days, ticks))),
            documented,
        )
    })
    .collect();
    agree("datetime", datetimes);
    // smalldatetime and datetime2(n) cast to datetime2(7), style 121.
    let small = [(0u16, 0u16), (65_535, 1_439)]
        .into_iter()
        .map(|(days, minutes)| {
            (
                ColumnData::SmallDateTime(Some(SmallDateTime::new(days, minutes))),
                style_121(day_1900 + days as i64, minutes as u64 * 600_000_000, 7),
            )
        })
        .collect();
    agree("smalldatetime", small);
    let dt2 =
        |days, increments, scale| DateTime2::new(Date::new(days), Time::new(increments, scale));
    let at_7 = |days: u32, increments: u64, scale: u8| {
        style_121(days as i64, increments * 10u64.pow(7 - scale as u32), 7)
    };
    agree(
        "datetime2(7)",
        vec![
            (ColumnData::DateTime2(Some(dt2(0, 0, 7))), at_7(0, 0, 7)),
            (
                ColumnData::DateTime2(Some(dt2(3_652_058, 863_999_999_999, 7))),
                at_7(3_652_058, 863_999_999_999, 7),
            ),
            (
                ColumnData::DateTime2(Some(dt2(739_050, 1, 7))),
                at_7(739_050, 1, 7),
            ),
            // datetime2(3) holding the same instant as a datetime2(7): one text.
            (
                ColumnData::DateTime2(Some(dt2(739_050, 5, 3))),
                at_7(739_050, 5, 3),
            ),
            (
                ColumnData::DateTime2(Some(dt2(739_050, 50_000, 7))),
                at_7(739_050, 50_000, 7),
            ),
        ],
    );
    // datetimeoffset: SWITCHOFFSET to +00:00 and cast to datetime2(7): the instant,
    // whatever the offset (the wire holds the instant in UTC beside its offset).
    let utc = |days, increments| DateTime2::new(Date::new(days), Time::new(increments, 7));
    agree(
        "datetimeoffset(7)",
        [
            (739_050, 72_000_000_001, 585i16),
            (739_050, 72_000_000_001, 0),
            (739_050, 72_000_000_001, -840),
            (739_050, 72_000_000_002, 585),
            (3_652_058, 863_999_999_999, -840),
        ]
        .into_iter()
        .map(|(days, increments, offset)| {
            (
                ColumnData::DateTimeOffset(Some(DateTimeOffset::new(
                    utc(days, increments),
                    offset,
                ))),
                style_121(days as i64, increments, 7),
            )
        })
        .collect(),
    );
}

/// The expressions these texts model are the ones the statements use.
#[test]
fn the_modelled_expressions_are_the_ones_sent() {
    let col = |db_type: &str| {
        let logical = logical_type(base_type(db_type)).unwrap();
        QueryColumn::new("c", db_type, logical)
    };
    let mut applies = Vec::new();
    for (db_type, expected) in [
        ("date", "COALESCE(CONVERT(char(10), [c], 23), '~')"),
        ("datetime", "COALESCE(CONVERT(char(23), [c], 121) + '0000', '~')"),
        ("time(7)", "COALESCE(CONVERT(char(27), CAST([c] AS datetime2(7)), 121), '~')"),
        (
            "datetimeoffset(7)",
            "COALESCE(CONVERT(char(27), CAST(SWITCHOFFSET([c], '+00:00') AS datetime2(7)), 121), '~')",
        ),
        (
            "float",
            "COALESCE(CASE WHEN [c] = 0 THEN '0' ELSE CONVERT(varchar(18), CAST(CAST([c] AS float) AS binary(8)), 2) END, '~')",
        ),
        (
            "nvarchar(max)",
            "COALESCE(CASE WHEN DATALENGTH(CAST([c] AS nvarchar(max))) <= 510 THEN \
             CONVERT(varchar(11), DATALENGTH(CAST([c] AS nvarchar(255)))) + ':' + CAST([c] AS nvarchar(255)) COLLATE Latin1_General_100_BIN2 \
             ELSE CONVERT(varchar(66), HASHBYTES('SHA2_256', CAST([c] AS nvarchar(max))), 2) END, '~')",
        ),
        (
            "varchar(40)",
            "COALESCE(CONVERT(varchar(11), DATALENGTH(CAST([c] AS nvarchar(40)))) + ':' + CAST([c] AS nvarchar(40)) COLLATE Latin1_General_100_BIN2, '~')",
        ),
        (
            "varbinary(max)",
            "COALESCE(CASE WHEN DATALENGTH(CAST([c] AS varbinary(max))) <= 127 THEN \
             CONVERT(varchar(11), DATALENGTH(CAST([c] AS varbinary(127)))) + ':' + CONVERT(varchar(254), CAST([c] AS varbinary(127)), 2) \
             ELSE CONVERT(varchar(66), HASHBYTES('SHA2_256', CAST([c] AS varbinary(max))), 2) END, '~')",
        ),
        (
            "binary(16)",
            "COALESCE(CONVERT(varchar(11), DATALENGTH([c])) + ':' + CONVERT(varchar(32), [c], 2), '~')",
        ),
        ("uniqueidentifier", "COALESCE(CONVERT(char(36), [c]), '~')"),
    ] {
        assert_eq!(hashed_col(&col(db_type), 0, &mut applies), expected);
    }
    assert!(applies.is_empty());
    // NOT NULL: no NULL mark. Declared alike: the decimal at its declared scale.
    let not_null_alike = |db_type: &str| QueryColumn {
        nullable: false,
        declared_alike: true,
        ..col(db_type)
    };
    assert_eq!(
        hashed_col(&not_null_alike("bigint"), 0, &mut applies),
        "CONVERT(varchar(20), [c])"
    );
    assert_eq!(
        hashed_col(&not_null_alike("decimal(12,2)"), 0, &mut applies),
        "CASE WHEN [c] = 0 THEN '0' ELSE CONVERT(varchar(42), [c]) END"
    );
    assert!(applies.is_empty());
    // decimal(p,p) keeps its canonical form even declared alike: servers may spell its
    // integer zero differently.
    hashed_col(&not_null_alike("decimal(2,2)"), 0, &mut applies);
    assert_eq!(applies.len(), 2);
    applies.clear();
    hashed_col(&col("decimal(2,2)"), 3, &mut applies);
    assert!(
        applies[0].contains("WHEN LEFT(CONVERT(varchar(42), [c]), 1) = '.' THEN '0' + "),
        "{}",
        applies[0]
    );
    applies.clear();
    hashed_col(&col("decimal(12,2)"), 3, &mut applies);
    assert_eq!(
        applies[0],
        " CROSS APPLY (SELECT CONVERT(varchar(42), [c]) AS dw_v) AS dw_t3"
    );
}
