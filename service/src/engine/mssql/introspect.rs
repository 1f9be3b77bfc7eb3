//! What sys.columns and sys.indexes say about a table, read into the vocabulary: a
//! column's type as DDL spells it, its logical type and fractional digits, and the key.
//!
//! Must not: query (the statements are in `statements.rs`), or map a type it cannot
//! compare exactly: such a column is `None`, not compared.

use crate::value::LogicalType;

/// A column's type as SQL Server spells it in DDL, from sys.columns and sys.types.
pub fn spell_type(base: &str, max_length: i16, precision: u8, scale: u8) -> String {
    match base {
        "varchar" | "char" | "varbinary" | "binary" => match max_length {
            -1 => format!("{base}(max)"),
            n => format!("{base}({n})"),
        },
        "nvarchar" | "nchar" => match max_length {
            -1 => format!("{base}(max)"),
            n => format!("{base}({})", n / 2),
        },
        "decimal" | "numeric" => format!("{base}({precision},{scale})"),
        "datetime2" | "time" | "datetimeoffset" => format!("{base}({scale})"),
        "float" if precision == 24 => "real".into(),
        other => other.to_string(),
    }
}

/// Digits after the second that a temporal type holds: datetime's 1/300 s read as
/// milliseconds, smalldatetime's minutes as whole seconds.
pub fn fraction_digits(base: &str, scale: u8) -> Option<u8> {
    match base {
        "datetime2" | "time" | "datetimeoffset" => Some(scale),
        "datetime" => Some(3),
        "smalldatetime" => Some(0),
        _ => None,
    }
}

/// The logical type of a column, from its system type's name.
pub fn logical_type(base: &str) -> Option<LogicalType> {
    Some(match base {
        "bit" => LogicalType::Bool,
        "tinyint" | "smallint" | "int" | "bigint" => LogicalType::Int,
        "decimal" | "numeric" | "money" | "smallmoney" => LogicalType::Decimal,
        "real" | "float" => LogicalType::Float,
        "char" | "varchar" | "nchar" | "nvarchar" | "text" | "ntext" | "sysname" => {
            LogicalType::Text
        }
        "binary" | "varbinary" | "image" => LogicalType::Bytes,
        "uniqueidentifier" => LogicalType::Uuid,
        "date" => LogicalType::Date,
        "time" => LogicalType::Time,
        "datetime" | "datetime2" | "smalldatetime" => LogicalType::Timestamp,
        "datetimeoffset" => LogicalType::TimestampTz,
        // xml, sql_variant, geography, geometry, hierarchyid, timestamp (rowversion),
        // CLR types: not compared.
        _ => return None,
    })
}

/// Chooses the key: the primary key, else the unique index of fewest columns that are
/// all NOT NULL. Rows are (index id, is primary key, column, nullable), in index order.
pub fn choose_key(rows: &[(i32, bool, String, bool)]) -> Vec<String> {
    let mut indexes: Vec<(i32, bool, Vec<String>, bool)> = Vec::new();
    for (id, pk, col, nullable) in rows {
        match indexes.last_mut() {
            Some(ix) if ix.0 == *id => {
                ix.2.push(col.clone());
                ix.3 |= nullable;
            }
            _ => indexes.push((*id, *pk, vec![col.clone()], *nullable)),
        }
    }
    if let Some(pk) = indexes.iter().find(|ix| ix.1) {
        return pk.2.clone();
    }
    indexes
        .into_iter()
        .filter(|ix| !ix.3)
        .min_by_key(|ix| (ix.2.len(), ix.0))
        .map(|ix| ix.2)
        .unwrap_or_default()
}
