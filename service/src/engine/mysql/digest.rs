//! The pushdown digest's row text on MySQL and MariaDB: each column's canonical part of
//! `CONCAT_WS('#', …)` (see the engine's module documentation for the format).
//!
//! Must not: spell equal values (by the server's own equality) differently, or let any
//! part but a counted text contain the separator.

use super::dialect::quote_ident;
use crate::engine::INLINE_TEXT;
use crate::table::{Column, QueryColumn};
use crate::value::LogicalType;

/// The most bytes a row text of these columns can take: a server whose max_allowed_packet
/// is below it could return NULL for a row's text (and so leave the row out of its sum).
pub(super) fn longest_text(columns: &[Column]) -> usize {
    columns
        .iter()
        .map(|c| match c.logical {
            // At most four bytes a character, behind the count and its colon; the MD5's
            // 32 hex digits are fewer.
            Some(LogicalType::Text) => INLINE_TEXT * 4 + 12,
            Some(LogicalType::Json | LogicalType::Bytes) => 32,
            // A number, a temporal value or a uuid's text (a decimal has up to 65 digits).
            _ => 80,
        })
        .sum::<usize>()
        + columns.len()
}

/// A column's part of the hashed row text: equal values (by the server's own
/// equality, 1.10 = 1.1, -0 = 0) give equal text, different values different text,
/// no text is `~` (NULL), and only a counted text contains `#` (see the module's
/// documentation). Every conversion a value's own text does not need is left out: each
/// costs the server about a tenth of the row's MD5 per column and row. So a column both
/// sides declare alike is spelled as the server spells it (the same scale, the same
/// fractional digits), text already in UTF-8 is not converted, and a NOT NULL column
/// needs no `~`: its text is never `~` (a counted text is `1:~`).
pub(super) fn hashed_col(c: &QueryColumn) -> String {
    let name = quote_ident(&c.name);
    // The declared scale or fractional precision says whether the server's text has a
    // fraction to trim, which spares the per-row test (and a second CAST) when it is known.
    let fraction = if c.declared_alike {
        Some(0)
    } else {
        fraction_digits(&c.db_type)
    };
    let db_type = c.db_type.trim().to_ascii_lowercase();
    let part = match c.logical {
        // bit(n) reads as bytes, year as a date part; `+ 0` makes both numbers. Other
        // integers are spelled by CONCAT_WS itself.
        LogicalType::Int | LogicalType::Bool
            if db_type.starts_with("bit") || db_type.starts_with("year") =>
        {
            format!("CAST({name} + 0 AS CHAR)")
        }
        LogicalType::Int | LogicalType::Bool => name,
        // Declared alike, the server spells equal values alike (MariaDB and MySQL store
        // no -0; were one to, the rows would compare equal once read). Otherwise TRIM
        // spells the decimal as CAST(... AS CHAR) would, and -0 is spelled 0.
        LogicalType::Decimal if c.declared_alike => name,
        LogicalType::Decimal => format!("IF({name} = 0, '0', {})", trim_fraction(&name, fraction)),
        LogicalType::Float => format!("CAST({name} + 0e0 AS CHAR)"),
        LogicalType::Text => {
            // The text as UTF-8 bytes behind their count (LENGTH: the server knows it
            // without reading the text, as CHAR_LENGTH does not).
            let utf8 = if is_utf8(c.collation.as_deref()) {
                name.clone()
            } else {
                format!("CONVERT({name} USING utf8mb4)")
            };
            // Short text as itself: an MD5 per column cost more than the row's own
            // (measured: a quarter of a chunk digest's time on a table of short texts).
            let inline = format!("CONCAT(LENGTH({utf8}), ':', {utf8})");
            if declared_chars(&db_type).is_some_and(|n| n <= INLINE_TEXT) {
                inline
            } else {
                format!("IF(CHAR_LENGTH({name}) <= {INLINE_TEXT}, {inline}, MD5({utf8}))")
            }
        }
        LogicalType::Json => format!("MD5(CONVERT({name} USING utf8mb4))"),
        LogicalType::Bytes => format!("MD5({name})"),
        LogicalType::Uuid | LogicalType::Interval => format!("CAST({name} AS CHAR)"),
        // The server spells a temporal value in a string context as CAST(... AS CHAR)
        // does, without the cast's cost.
        LogicalType::Date => name,
        // A timestamp is stored as seconds since the epoch: UNIX_TIMESTAMP spells them (and
        // the declared fractional digits) without converting them to the session's date
        // and time, a tenth less of the row's cost. Only the zero date is 0.
        LogicalType::TimestampTz if c.declared_alike => format!("UNIX_TIMESTAMP({name})"),
        LogicalType::Time | LogicalType::Timestamp | LogicalType::TimestampTz => {
            trim_fraction(&name, fraction)
        }
    };
    if c.nullable {
        format!("COALESCE({part}, '~')")
    } else {
        part
    }
}

/// Whether a collation's character set spells text as UTF-8 bytes already (utf8mb4,
/// utf8mb3, and ascii, a subset), so that converting it would change nothing.
fn is_utf8(collation: Option<&str>) -> bool {
    let charset = collation.and_then(|c| c.split('_').next()).unwrap_or("");
    matches!(charset, "utf8mb4" | "utf8mb3" | "utf8" | "ascii")
}

/// The most characters a `char(n)` or `varchar(n)` column holds; None for other types.
fn declared_chars(column_type: &str) -> Option<usize> {
    let rest = column_type
        .strip_prefix("varchar(")
        .or_else(|| column_type.strip_prefix("char("))?;
    rest.split_once(')')?.0.trim().parse().ok()
}

/// `s` without trailing fractional zeros (and without a bare point): `1.500` → `1.5`,
/// `12:00:00.000000` → `12:00:00`, `100` unchanged. `fraction` is the number of fractional
/// digits the server always spells for the column, when known: the same text comes out
/// either way, but a known 0 (nothing to trim) or a known n > 0 (always a point) needs no
/// per-row LOCATE.
fn trim_fraction(s: &str, fraction: Option<u32>) -> String {
    let trimmed = format!("TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM {s}))");
    match fraction {
        Some(0) => s.to_string(),
        Some(_) => trimmed,
        None => format!("IF(LOCATE('.', {s}) > 0, {trimmed}, {s})"),
    }
}

/// The fractional digits a decimal or temporal column's values are spelled with, from its
/// information_schema COLUMN_TYPE: `decimal(12,2)` → 2, `decimal(10)` → 0, `datetime(6)` →
/// 6, `timestamp` → 0. None for any other spelling (the fraction is then tested per row).
fn fraction_digits(column_type: &str) -> Option<u32> {
    let t = column_type.trim().to_ascii_lowercase();
    let (name, rest) = match t.find('(') {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t.split_whitespace().next().unwrap_or(""), None),
    };
    let args = match rest {
        Some(rest) => rest.split_once(')')?.0,
        None => "",
    };
    let number = |s: &str| s.trim().parse::<u32>().ok();
    match name.trim() {
        "decimal" | "numeric" => match args.split_once(',') {
            Some((_, scale)) => number(scale),
            None if args.is_empty() || number(args).is_some() => Some(0),
            None => None,
        },
        "time" | "datetime" | "timestamp" if args.is_empty() => Some(0),
        "time" | "datetime" | "timestamp" => number(args),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fraction_digits_come_from_the_declared_type() {
        for (column_type, want) in [
            ("decimal(12,2)", Some(2)),
            ("decimal(10,0) unsigned", Some(0)),
            ("decimal(10)", Some(0)),
            ("datetime(6)", Some(6)),
            ("TIMESTAMP(3)", Some(3)),
            ("timestamp", Some(0)),
            ("time", Some(0)),
            ("decimal(x,y)", None),
            ("varchar(10)", None),
        ] {
            assert_eq!(fraction_digits(column_type), want, "{column_type}");
        }
        assert_eq!(trim_fraction("s", Some(0)), "s");
        assert_eq!(
            trim_fraction("s", Some(6)),
            "TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM s))"
        );
        assert!(trim_fraction("s", None).starts_with("IF(LOCATE('.', s) > 0"));
    }

    #[test]
    fn parts_leave_out_what_the_values_do_not_need() {
        let column =
            |db_type: &str, logical, nullable, collation: Option<&str>, alike| QueryColumn {
                nullable,
                collation: collation.map(str::to_string),
                declared_alike: alike,
                ..QueryColumn::new("c", db_type, logical)
            };
        let utf8 = Some("utf8mb4_general_ci");
        // Declared alike and NOT NULL: the value as the server spells it.
        assert_eq!(
            hashed_col(&column(
                "decimal(12,2)",
                LogicalType::Decimal,
                false,
                None,
                true
            )),
            "`c`"
        );
        assert_eq!(
            hashed_col(&column(
                "datetime(6)",
                LogicalType::Timestamp,
                false,
                None,
                true
            )),
            "`c`"
        );
        assert_eq!(
            hashed_col(&column(
                "timestamp(3)",
                LogicalType::TimestampTz,
                false,
                None,
                true
            )),
            "UNIX_TIMESTAMP(`c`)"
        );
        // Declared differently: trailing zeros trimmed, -0 spelled 0.
        assert!(hashed_col(&column(
            "decimal(12,2)",
            LogicalType::Decimal,
            false,
            None,
            false
        ))
        .starts_with("IF(`c` = 0, '0', TRIM("));
        // Nullable: NULL is `~`.
        assert_eq!(
            hashed_col(&column("int", LogicalType::Int, true, None, true)),
            "COALESCE(`c`, '~')"
        );
        // UTF-8 text as itself behind its byte count; other character sets converted.
        assert_eq!(
            hashed_col(&column("varchar(16)", LogicalType::Text, false, utf8, true)),
            "CONCAT(LENGTH(`c`), ':', `c`)"
        );
        assert_eq!(
            hashed_col(&column(
                "varchar(16)",
                LogicalType::Text,
                false,
                Some("latin1_swedish_ci"),
                true
            )),
            "CONCAT(LENGTH(CONVERT(`c` USING utf8mb4)), ':', CONVERT(`c` USING utf8mb4))"
        );
        // Text that can be longer than what is inlined: its MD5 past that.
        assert!(
            hashed_col(&column("text", LogicalType::Text, false, utf8, true))
                .starts_with("IF(CHAR_LENGTH(`c`) <= 255, ")
        );
        for (collation, utf8) in [
            (Some("utf8mb4_uca1400_ai_ci"), true),
            (Some("utf8mb3_general_ci"), true),
            (Some("utf8_bin"), true),
            (Some("ascii_general_ci"), true),
            (Some("latin1_swedish_ci"), false),
            (Some("utf16_general_ci"), false),
            (None, false),
        ] {
            assert_eq!(is_utf8(collation), utf8, "{collation:?}");
        }
    }

    #[test]
    fn declared_lengths_come_from_char_and_varchar_only() {
        for (column_type, want) in [
            ("varchar(16)", Some(16)),
            ("char(3)", Some(3)),
            ("varchar(255)", Some(255)),
            ("text", None),
            ("enum('a','b')", None),
            ("varbinary(10)", None),
        ] {
            assert_eq!(declared_chars(column_type), want, "{column_type}");
        }
    }
}
