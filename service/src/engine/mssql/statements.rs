//! Every statement the SQL Server engine sends, as [`Statement`] values (text, parameters,
//! result columns), so that the tests can parse them and keep golden copies: the range
//! SELECTs, the pushdown digest (each column's canonical text, [`hashed_col`]), the
//! introspection queries, and the check of a configured filter.
//!
//! Must not: send anything, or build a statement that is not a SELECT; the one piece of
//! SQL taken from the config, a table's filter, must pass [`check_filter`].

use tiberius::ColumnData;

use super::dialect::{quote_ident, table_sql, Tsql};
use crate::engine::sql::Sql;
use crate::engine::{DigestSpec, INLINE_TEXT};
use crate::table::{KeyRange, QueryColumn, TableQuery, TableRef};
use crate::value::LogicalType;

/// A statement and its parameters (`@P1`, `@P2`, … in order), as sent; public so that the
/// tests can parse and keep golden copies of every statement the engine sends.
#[derive(Debug, Clone)]
pub struct Statement {
    pub text: String,
    pub params: Vec<ColumnData<'static>>,
    /// Indexes into the query's columns of the result's columns, in order.
    pub columns: Vec<usize>,
}

/// A column as it is selected: money and the old LOB types through exact equivalents
/// that decode without loss (tiberius reads money as a float).
pub(super) fn select_col(c: &QueryColumn) -> String {
    let name = quote_ident(&c.name);
    match base_type(&c.db_type) {
        "money" => format!("CAST({name} AS decimal(19,4))"),
        "smallmoney" => format!("CAST({name} AS decimal(10,4))"),
        "text" => format!("CAST({name} AS varchar(max))"),
        "ntext" => format!("CAST({name} AS nvarchar(max))"),
        "image" => format!("CAST({name} AS varbinary(max))"),
        _ => name,
    }
}

/// `decimal(12,2)` → `(12, 2)`.
pub(super) fn decimal_precision_scale(db_type: &str) -> Option<(u8, u8)> {
    let (p, s) = type_args(db_type)?.split_once(',')?;
    Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
}

/// `decimal(12,2)` → `12,2`; None for a type spelled without arguments.
fn type_args(db_type: &str) -> Option<&str> {
    db_type.split_once('(')?.1.strip_suffix(')')
}

/// `decimal(12,2)` → `decimal`.
pub(super) fn base_type(db_type: &str) -> &str {
    db_type.split('(').next().unwrap_or(db_type).trim()
}

/// The most characters a column's part of the row text can take, from its logical type
/// alone, so that both sides decide alike whether the row text must be nvarchar(max) (a
/// concatenation of shorter types stops, silently, at 4,000 characters).
fn longest_part(logical: LogicalType) -> usize {
    match logical {
        LogicalType::Bool => 1,
        LogicalType::Int => 20,
        LogicalType::Float => 18,
        LogicalType::Decimal => 42,
        LogicalType::Date => 10,
        LogicalType::Uuid => 36,
        LogicalType::Time | LogicalType::Timestamp | LogicalType::TimestampTz => 27,
        // A counted value: its count, ':' and at most INLINE_TEXT characters (or hex
        // digits); a hash is 64 hex digits.
        LogicalType::Text | LogicalType::Json | LogicalType::Bytes => INLINE_TEXT + 4,
        LogicalType::Interval => 100,
    }
}

/// The declared length of a `char(n)`, `varchar(n)`, `nchar(n)`, `nvarchar(n)`,
/// `binary(n)` or `varbinary(n)` column: characters for the n-types, bytes for the others
/// (either way no fewer than the UTF-16 code units of its longest value); None for `max`
/// and the old LOB types.
fn declared_length(db_type: &str) -> Option<usize> {
    type_args(db_type)?.trim().parse().ok()
}

/// A text or binary value counted (`DATALENGTH(value) + ':' + spelled`) where it is at most
/// `limit` bytes long, else the SHA-256 of `whole`, the value cast to its max type.
fn counted_or_hashed(whole: &str, limit: usize, counted: &str) -> String {
    format!(
        "CASE WHEN DATALENGTH({whole}) <= {limit} THEN {counted} \
         ELSE CONVERT(varchar(66), HASHBYTES('SHA2_256', {whole}), 2) END"
    )
}

/// A column's part of the hashed row text: equal values give equal text whatever the
/// declared precision, length or code page (1.10 = 1.1, datetime2(3) = datetime2(7) at
/// equal instants, varchar = nvarchar at equal characters), different values different
/// text, and no text is `~` (NULL); only a counted part (`5:a#b:c`, its length in bytes
/// of UTF-16 or binary, then the value) can contain `#`, and its count says where it ends.
/// `i` names the CROSS APPLY that a decimal's text needs (pushed to `applies`), so that it
/// is converted once per row.
///
/// Every function in the text costs the server per row, and HASHBYTES the most (a peer
/// measured it far slower per row than PostgreSQL's hashing): so text and binary values up
/// to [`INLINE_TEXT`] characters (or half as many bytes, as hex) are spelled as
/// themselves, not hashed; a NOT NULL column needs no `~`; and a decimal both sides
/// declare alike is spelled at its declared scale, with no trailing zeros to trim.
pub fn hashed_col(c: &QueryColumn, i: usize, applies: &mut Vec<String>) -> String {
    let name = quote_ident(&c.name);
    let ty = base_type(&c.db_type);
    let short = declared_length(&c.db_type).filter(|&n| match c.logical {
        LogicalType::Bytes => n <= INLINE_TEXT / 2,
        _ => n <= INLINE_TEXT,
    });
    let part = match c.logical {
        LogicalType::Int => format!("CONVERT(varchar(20), {name})"),
        LogicalType::Bool => format!("CONVERT(varchar(1), {name})"),
        LogicalType::Decimal => {
            let exact = match ty {
                "money" | "smallmoney" => format!("CAST({name} AS decimal(19,4))"),
                _ => name.clone(),
            };
            let text = format!("CONVERT(varchar(42), {exact})");
            let p_is_s = decimal_precision_scale(&c.db_type).is_some_and(|(p, s)| p == s);
            if c.declared_alike && !p_is_s {
                // One declared scale on both sides: equal values are spelled alike.
                format!("CASE WHEN {exact} = 0 THEN '0' ELSE {text} END")
            } else {
                // v: the text at the declared scale; z: v without trailing zeros.
                // Names no user column is likely to have: the filter sees them too.
                let (v, z) = (format!("dw_t{i}.dw_v"), format!("dw_z{i}.dw_v"));
                // A type of no integer digits (decimal(p,p)) has no documented spelling
                // of its integer zero ('.5' or '0.5'): given one, so that it hashes as
                // decimal(p+1,p).
                let text = if p_is_s {
                    format!(
                        "CASE WHEN LEFT({text}, 1) = '.' THEN '0' + {text} \
                         WHEN LEFT({text}, 2) = '-.' THEN '-0' + SUBSTRING({text}, 2, 42) ELSE {text} END"
                    )
                } else {
                    text
                };
                applies.push(format!(" CROSS APPLY (SELECT {text} AS dw_v) AS dw_t{i}"));
                applies.push(format!(
                    " CROSS APPLY (SELECT LEFT({v}, LEN({v}) - PATINDEX('%[^0]%', REVERSE({v})) + 1) AS dw_v) AS dw_z{i}"
                ));
                format!(
                    "CASE WHEN {exact} = 0 THEN '0' WHEN CHARINDEX('.', {v}) = 0 THEN {v} \
                     WHEN RIGHT({z}, 1) = '.' THEN LEFT({z}, LEN({z}) - 1) ELSE {z} END"
                )
            }
        }
        // The IEEE bits: exact, and the same for real widened to float. -0 = 0.
        LogicalType::Float => format!(
            "CASE WHEN {name} = 0 THEN '0' ELSE CONVERT(varchar(18), CAST(CAST({name} AS float) AS binary(8)), 2) END"
        ),
        // The characters, whatever the code page: as UTF-16 (nvarchar), under one
        // explicit collation so that columns of different collations concatenate.
        LogicalType::Text | LogicalType::Json => {
            let counted = |n: usize| {
                let t = format!("CAST({name} AS nvarchar({n}))");
                format!("CONVERT(varchar(11), DATALENGTH({t})) + ':' + {t} COLLATE Latin1_General_100_BIN2")
            };
            match short {
                Some(n) => counted(n),
                None => counted_or_hashed(
                    &format!("CAST({name} AS nvarchar(max))"),
                    INLINE_TEXT * 2,
                    &counted(INLINE_TEXT),
                ),
            }
        }
        LogicalType::Bytes => {
            let counted = |b: &str, n: usize| {
                format!(
                    "CONVERT(varchar(11), DATALENGTH({b})) + ':' + CONVERT(varchar({}), {b}, 2)",
                    2 * n
                )
            };
            let n = INLINE_TEXT / 2;
            match short {
                Some(declared) => counted(&name, declared),
                None => counted_or_hashed(
                    &format!("CAST({name} AS varbinary(max))"),
                    n,
                    &counted(&format!("CAST({name} AS varbinary({n}))"), n),
                ),
            }
        }
        LogicalType::Uuid => format!("CONVERT(char(36), {name})"),
        LogicalType::Date => format!("CONVERT(char(10), {name}, 23)"),
        // 1900-01-01 and the time at 100 ns.
        LogicalType::Time => format!("CONVERT(char(27), CAST({name} AS datetime2(7)), 121)"),
        // datetime at its milliseconds as shown (.003, not .0033333, which is what a cast
        // to datetime2 gives under compatibility level 130), padded to 100 ns.
        LogicalType::Timestamp if ty == "datetime" => {
            format!("CONVERT(char(23), {name}, 121) + '0000'")
        }
        LogicalType::Timestamp => format!("CONVERT(char(27), CAST({name} AS datetime2(7)), 121)"),
        LogicalType::TimestampTz => format!(
            "CONVERT(char(27), CAST(SWITCHOFFSET({name}, '+00:00') AS datetime2(7)), 121)"
        ),
        // No SQL Server type maps to an interval; kept total for the type system.
        LogicalType::Interval => format!("CONVERT(varchar(100), {name})"),
    };
    if c.nullable {
        format!("COALESCE({part}, '~')")
    } else {
        part
    }
}

/// The statements of one table query.
pub struct Statements<'a> {
    q: &'a TableQuery,
}

impl<'a> Statements<'a> {
    pub fn new(q: &'a TableQuery) -> std::result::Result<Self, String> {
        if let Some(f) = &q.filter {
            check_filter(f)?;
        }
        Ok(Statements { q })
    }

    fn sql(&self) -> Sql<'a, Tsql> {
        Sql::new(self.q, Tsql::default())
    }

    fn finish(sql: Sql<'a, Tsql>, text: String, columns: Vec<usize>) -> Statement {
        Statement {
            text,
            params: sql.dialect.params,
            columns,
        }
    }

    pub fn lead_bounds(&self) -> Statement {
        let mut sql = self.sql();
        let k1 = sql.col(self.q.key[0]);
        let text = format!(
            "SELECT CAST(MIN({k1}) AS bigint), CAST(MAX({k1}) AS bigint) FROM {}{}",
            table_sql(&self.q.table),
            sql.where_clause(&KeyRange::default())
        );
        Self::finish(sql, text, vec![])
    }

    pub fn key_at(&self, range: &KeyRange, offset: u64) -> Statement {
        let mut sql = self.sql();
        let select = sql.select(&table_sql(&self.q.table), &self.q.key, range, true);
        let text = format!("{select} OFFSET {offset} ROWS FETCH NEXT 1 ROWS ONLY");
        Self::finish(sql, text, self.q.key.clone())
    }

    pub fn digest(&self, spec: &DigestSpec) -> Statement {
        let mut sql = self.sql();
        let q = self.q;
        let mut applies = Vec::new();
        let parts: Vec<String> = q
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| hashed_col(c, i, &mut applies))
            .collect();
        // A concatenation of types shorter than max stops at 4,000 characters (nvarchar):
        // a row text that could be longer is nvarchar(max).
        let longest: usize = q.columns.iter().map(|c| longest_part(c.logical) + 1).sum();
        let start = if longest > 4000 {
            "CAST(N'' AS nvarchar(max)) + "
        } else {
            ""
        };
        let k1 = sql.col(q.key[0]);
        let bucket = match spec.bucket_width {
            // Floor division: T-SQL's / truncates toward zero.
            Some(w) => format!(
                "CAST({k1} AS bigint) / {w} - CASE WHEN CAST({k1} AS bigint) % {w} < 0 THEN 1 ELSE 0 END"
            ),
            None => "CAST(0 AS bigint)".into(),
        };
        let word = |from: u8| {
            format!("SUM(CAST(CAST(SUBSTRING(d.h, {from}, 8) AS bigint) AS decimal(38,0)))")
        };
        let text = format!(
            "SELECT d.b, COUNT_BIG(*), {}, {} FROM (SELECT {bucket} AS b, HASHBYTES('SHA2_256', {start}{}) AS h FROM {}{}{}) AS d GROUP BY d.b",
            word(1),
            word(9),
            parts.join(" + '#' + "),
            table_sql(&q.table),
            applies.concat(),
            sql.where_clause(&spec.range)
        );
        Self::finish(sql, text, vec![])
    }

    /// Every compared column of a range's rows: in key order (`ordered`), or in whatever
    /// order is cheapest (digests).
    pub fn scan(&self, range: &KeyRange, ordered: bool) -> Statement {
        let mut sql = self.sql();
        let all = sql.all();
        let text = sql.select(&table_sql(&self.q.table), &all, range, ordered);
        Self::finish(sql, text, all)
    }
}

/// The introspection statement: the columns of one table, with their types.
pub fn columns_statement(t: &TableRef) -> Statement {
    Statement {
        text: "SELECT c.name, TYPE_NAME(c.system_type_id), t.name, c.max_length, c.precision, \
               c.scale, c.collation_name, CAST(CASE WHEN ic.column_id IS NULL THEN 0 ELSE 1 END AS bit), c.is_nullable \
               FROM sys.columns AS c \
               JOIN sys.types AS t ON t.user_type_id = c.user_type_id \
               LEFT JOIN sys.identity_columns AS ic ON ic.object_id = c.object_id AND ic.column_id = c.column_id \
               WHERE c.object_id = OBJECT_ID(@P1) ORDER BY c.column_id"
            .into(),
        params: vec![ColumnData::String(Some(table_sql(t).into()))],
        columns: vec![],
    }
}

/// The candidate keys of one table: the primary key, then every enabled, unfiltered
/// unique index, with their columns in key order.
pub fn keys_statement(t: &TableRef) -> Statement {
    Statement {
        text: "SELECT i.index_id, i.is_primary_key, c.name, c.is_nullable \
               FROM sys.indexes AS i \
               JOIN sys.index_columns AS ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id \
               JOIN sys.columns AS c ON c.object_id = ic.object_id AND c.column_id = ic.column_id \
               WHERE i.object_id = OBJECT_ID(@P1) AND i.is_unique = 1 AND i.has_filter = 0 \
               AND i.is_disabled = 0 AND i.is_hypothetical = 0 AND ic.key_ordinal > 0 \
               ORDER BY i.is_primary_key DESC, i.index_id, ic.key_ordinal"
            .into(),
        params: vec![ColumnData::String(Some(table_sql(t).into()))],
        columns: vec![],
    }
}

/// A configured filter must be one expression, so that nothing but a SELECT can be sent:
/// no statement separator, no comment, parentheses that never close more than they open,
/// and no keyword that starts a statement of its own or writes.
pub fn check_filter(filter: &str) -> std::result::Result<(), String> {
    const FORBIDDEN: &[&str] = &[
        "ALTER",
        "BACKUP",
        "BULK",
        "CREATE",
        "DBCC",
        "DECLARE",
        "DELETE",
        "DENY",
        "DISABLE",
        "DROP",
        "ENABLE",
        "EXEC",
        "EXECUTE",
        "GO",
        "GRANT",
        "INSERT",
        "INTO",
        "KILL",
        "MERGE",
        "OPENDATASOURCE",
        "OPENQUERY",
        "OPENROWSET",
        "OPENXML",
        "RECONFIGURE",
        "RESTORE",
        "REVERT",
        "REVOKE",
        "SET",
        "SHUTDOWN",
        "TRUNCATE",
        "UPDATE",
        "UPDATETEXT",
        "USE",
        "WAITFOR",
        "WRITETEXT",
    ];
    let bad = |why: String| Err(format!("filter {filter:?} {why}"));
    let chars: Vec<char> = filter.chars().collect();
    let mut depth = 0i32;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' | '[' | '"' => {
                let close = if c == '[' { ']' } else { c };
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return bad("has an unterminated quote".into()),
                        Some(&x) if x == close && chars.get(i + 1) == Some(&close) => i += 2,
                        Some(&x) if x == close => break,
                        Some(_) => i += 1,
                    }
                }
            }
            ';' => return bad("holds a ';': a filter is one expression".into()),
            '-' if chars.get(i + 1) == Some(&'-') => return bad("holds a comment".into()),
            '/' if chars.get(i + 1) == Some(&'*') => return bad("holds a comment".into()),
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return bad("closes a parenthesis it did not open".into());
                }
            }
            c if c.is_alphabetic() || c == '_' || c == '@' || c == '#' => {
                let start = i;
                while chars
                    .get(i + 1)
                    .is_some_and(|x| x.is_alphanumeric() || matches!(x, '_' | '@' | '#' | '$'))
                {
                    i += 1;
                }
                let word: String = chars[start..=i]
                    .iter()
                    .collect::<String>()
                    .to_ascii_uppercase();
                if FORBIDDEN.contains(&word.as_str()) {
                    return bad(format!("uses {word}, which has no place in a row filter"));
                }
            }
            _ => {}
        }
        i += 1;
    }
    if depth != 0 {
        return bad("leaves a parenthesis open".into());
    }
    Ok(())
}
