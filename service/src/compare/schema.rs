//! Reconciles the two sides' schemas into what is compared: the key, the common columns
//! and the type each is compared as, the digest strategy, and the schema drift to report.
//!
//! It must not guess: columns whose types two engines cannot represent alike are not
//! compared, and say so (schema mismatch), instead of being converted approximately.

use crate::config::{Strategy, TableConfig, TemporalPrecision};
use crate::table::{Column, Family, QueryColumn, TableQuery, TableRef, TableSchema};
use crate::value::{Fraction, LogicalType, Rounding};

/// The strategy actually used for a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resolved {
    Pushdown,
    Streamed,
}

#[derive(Debug, Clone, Default)]
pub struct SchemaReport {
    /// Columns on the publisher only.
    pub publisher_only: Vec<String>,
    /// Columns on the subscriber only.
    pub subscriber_only: Vec<String>,
    /// Common columns whose types cannot be compared exactly, with why.
    pub type_mismatch: Vec<String>,
    /// Columns of types driftwatch does not compare (skipped on purpose, as Data Sync does).
    pub unsupported: Vec<String>,
    /// Columns the config excludes.
    pub excluded: Vec<String>,
}

impl SchemaReport {
    pub fn mismatch(&self) -> bool {
        !(self.publisher_only.is_empty()
            && self.subscriber_only.is_empty()
            && self.type_mismatch.is_empty())
    }

    /// The drift as readable lists, for the fields of a log line (text and JSON alike):
    /// columns on the publisher only, on the subscriber only, and common columns whose
    /// types differ (with why). An empty list is an empty string.
    pub fn drift_fields(&self) -> [String; 3] {
        [
            self.publisher_only.join(", "),
            self.subscriber_only.join(", "),
            self.type_mismatch.join("; "),
        ]
    }
}

#[derive(Debug, Clone)]
pub struct Comparison {
    pub publisher: TableQuery,
    pub subscriber: TableQuery,
    pub strategy: Resolved,
    pub schema: SchemaReport,
    /// Index into the compared columns of the table's time_column.
    pub time_column: Option<usize>,
}

impl Comparison {
    pub fn column_names(&self) -> Vec<String> {
        self.publisher
            .columns
            .iter()
            .map(|c| c.name.clone())
            .collect()
    }
}

/// Why a table cannot be compared at all.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct SchemaError(pub String);

pub struct Side<'a> {
    pub database: &'a str,
    pub family: Family,
    pub table: TableRef,
    pub schema: &'a TableSchema,
}

fn find<'a>(cols: &'a [Column], name: &str) -> Option<&'a Column> {
    cols.iter()
        .find(|c| c.name == name)
        .or_else(|| cols.iter().find(|c| c.name.eq_ignore_ascii_case(name)))
}

/// The type two sides' columns are compared as, when they can be compared exactly, and
/// for temporal columns whose fractional-second precisions are both known and differ,
/// the coarser precision (what `temporal_precision` decides about).
fn compare_type(
    p: &Column,
    s: &Column,
    same_family: bool,
) -> Result<(LogicalType, Option<u8>), String> {
    let (Some(pt), Some(st)) = (p.logical, s.logical) else {
        unreachable!("unsupported columns are filtered first")
    };
    match (pt, st) {
        (LogicalType::Json, LogicalType::Json) if same_family && p.db_type != s.db_type => Err(
            format!("{} vs {}: their text forms differ", p.db_type, s.db_type),
        ),
        (t @ (LogicalType::Time | LogicalType::Timestamp | LogicalType::TimestampTz), u)
            if t == u =>
        {
            match (p.fraction_digits, s.fraction_digits) {
                (Some(a), Some(b)) if a != b => Ok((t, Some(a.min(b)))),
                _ => Ok((t, None)),
            }
        }
        (a, b) if a == b => Ok((a, None)),
        (LogicalType::Int, LogicalType::Decimal) | (LogicalType::Decimal, LogicalType::Int) => {
            Ok((LogicalType::Decimal, None))
        }
        _ => Err(format!("{} ({pt}) vs {} ({st})", p.db_type, s.db_type)),
    }
}

/// Why two temporal columns of different precisions are not compared, or not as a key.
fn precision_differs(p: &Column, s: &Column) -> String {
    let digits = |c: &Column| c.fraction_digits.unwrap_or_default();
    format!(
        "{} vs {}: {} against {} fractional-second digits",
        p.db_type,
        s.db_type,
        digits(p),
        digits(s)
    )
}

/// What a pair of tables is compared as: the key, the common columns and their types,
/// the strategy, and the drift to report; an error when the pair cannot be compared.
pub fn reconcile(
    cfg: &TableConfig,
    publisher: &Side,
    subscriber: &Side,
) -> Result<Comparison, SchemaError> {
    let same_family = publisher.family == subscriber.family;
    let (pcols, scols) = (&publisher.schema.columns, &subscriber.schema.columns);
    let key_names = key_names(cfg, publisher)?;
    check_named_columns(cfg, publisher, subscriber)?;
    let (pq, sq, report) = match_columns(cfg, &key_names, publisher, subscriber)?;
    let key = key_positions(&key_names, &pq, publisher)?;
    let time_column = match &cfg.time_column {
        Some(tc) => Some(pq.iter().position(|c| c.name.eq_ignore_ascii_case(tc)).ok_or_else(|| {
            SchemaError(format!("time_column {tc} is not compared (it is excluded, unsupported or missing on {})", subscriber.database))
        })?),
        None => None,
    };
    // Collations must agree for ranges to mean the same rows on both sides; across
    // engines, or where they differ, keys are ordered bytewise.
    let collations_differ = key.iter().any(|&i| {
        let p = find(pcols, &pq[i].name).and_then(|c| c.collation.clone());
        let s = find(scols, &sq[i].name).and_then(|c| c.collation.clone());
        p != s
    });
    let binary_collation = !same_family || collations_differ;
    let strategy = strategy(cfg, publisher, subscriber, &pq, &sq)?;
    let filter = cfg.filter.clone();
    Ok(Comparison {
        publisher: TableQuery {
            table: publisher.table.clone(),
            columns: pq,
            key: key.clone(),
            filter: filter.clone(),
            binary_collation,
        },
        subscriber: TableQuery {
            table: subscriber.table.clone(),
            columns: sq,
            key,
            filter,
            binary_collation,
        },
        strategy,
        schema: report,
        time_column,
    })
}

/// The key is the config's, else the publisher's primary key: chunks are key ranges, so
/// a table without either cannot be compared.
fn key_names(cfg: &TableConfig, publisher: &Side) -> Result<Vec<String>, SchemaError> {
    match &cfg.key {
        Some(k) => Ok(k.clone()),
        None if publisher.schema.primary_key.is_empty() => Err(SchemaError(format!(
            "table {} on {} has no primary key: set `key` for it in the config",
            publisher.table, publisher.database
        ))),
        None => Ok(publisher.schema.primary_key.clone()),
    }
}

/// A column the config names but no side has is a typo: say so rather than compare
/// without it.
fn check_named_columns(
    cfg: &TableConfig,
    publisher: &Side,
    subscriber: &Side,
) -> Result<(), SchemaError> {
    let (pcols, scols) = (&publisher.schema.columns, &subscriber.schema.columns);
    // An excluded column may be on one side only: that is often why it is excluded.
    for name in &cfg.exclude_columns {
        if find(pcols, name).is_none() && find(scols, name).is_none() {
            return Err(SchemaError(format!(
                "column {name} named in exclude_columns exists neither in {} on {} nor in {} on {}",
                publisher.table, publisher.database, subscriber.table, subscriber.database
            )));
        }
    }
    for name in cfg.time_column.iter() {
        if find(pcols, name).is_none() {
            return Err(SchemaError(format!(
                "column {name} named in the config does not exist in {} on {}",
                publisher.table, publisher.database
            )));
        }
    }
    Ok(())
}

/// Pairs the publisher's columns with the subscriber's by name, keeping the comparable
/// ones and reporting the rest as drift; a key column that cannot be compared is an error,
/// since chunks are bounded by it.
fn match_columns(
    cfg: &TableConfig,
    key_names: &[String],
    publisher: &Side,
    subscriber: &Side,
) -> Result<(Vec<QueryColumn>, Vec<QueryColumn>, SchemaReport), SchemaError> {
    let same_family = publisher.family == subscriber.family;
    let (pcols, scols) = (&publisher.schema.columns, &subscriber.schema.columns);
    let excluded = |name: &str| {
        cfg.exclude_columns
            .iter()
            .any(|e| e.eq_ignore_ascii_case(name))
    };
    let mut report = SchemaReport::default();
    let mut pq = Vec::new();
    let mut sq = Vec::new();
    for p in pcols {
        let is_key = key_names.iter().any(|k| k.eq_ignore_ascii_case(&p.name));
        if excluded(&p.name) {
            if is_key {
                return Err(SchemaError(format!(
                    "key column {} cannot be excluded",
                    p.name
                )));
            }
            report.excluded.push(p.name.clone());
            continue;
        }
        let Some(s) = find(scols, &p.name) else {
            if is_key {
                return Err(SchemaError(format!(
                    "key column {} is missing from {} on {}",
                    p.name, subscriber.table, subscriber.database
                )));
            }
            report.publisher_only.push(p.name.clone());
            continue;
        };
        if p.logical.is_none() || s.logical.is_none() {
            let ty = if p.logical.is_none() {
                &p.db_type
            } else {
                &s.db_type
            };
            if is_key {
                return Err(SchemaError(format!(
                    "key column {} has type {ty}, which driftwatch cannot compare",
                    p.name
                )));
            }
            report.unsupported.push(format!("{} ({ty})", p.name));
            continue;
        }
        if let Some((pc, sc)) = column_pair(cfg, p, s, is_key, same_family, &mut report)? {
            pq.push(pc);
            sq.push(sc);
        }
    }
    for s in scols {
        if find(pcols, &s.name).is_none() {
            if excluded(&s.name) {
                report.excluded.push(s.name.clone());
            } else {
                report.subscriber_only.push(s.name.clone());
            }
        }
    }
    Ok((pq, sq, report))
}

/// The two sides of one common, supported column as compared, or none when their types
/// cannot be compared exactly (then the report says why); temporal_precision decides
/// whether differing fractional-second precisions are compared at the coarser one.
fn column_pair(
    cfg: &TableConfig,
    p: &Column,
    s: &Column,
    is_key: bool,
    same_family: bool,
    report: &mut SchemaReport,
) -> Result<Option<(QueryColumn, QueryColumn)>, SchemaError> {
    match compare_type(p, s, same_family) {
        Ok((t, coarser)) => {
            let rounding = match cfg.temporal_precision {
                TemporalPrecision::Exact => None,
                TemporalPrecision::Round => Some(Rounding::Round),
                TemporalPrecision::Truncate => Some(Rounding::Truncate),
            };
            let compare_fraction = match (coarser, rounding) {
                (None, _) => None,
                // Each database bounds key ranges by its own values: a key must hold
                // the same values on both sides.
                (Some(_), _) if is_key => {
                    return Err(SchemaError(format!(
                        "key column {} cannot be compared: {}; a key is compared exactly, whatever temporal_precision says",
                        p.name,
                        precision_differs(p, s)
                    )))
                }
                (Some(digits), None) => {
                    report.type_mismatch.push(format!(
                        "{}: {}; set temporal_precision = \"round\" or \"truncate\" to compare them at {digits}",
                        p.name,
                        precision_differs(p, s)
                    ));
                    return Ok(None);
                }
                (Some(digits), Some(rounding)) => Some(Fraction { digits, rounding }),
            };
            let query_column = |c: &Column| QueryColumn {
                name: c.name.clone(),
                db_type: c.db_type.clone(),
                logical: c.logical.unwrap(),
                compare_as: t,
                identity: c.identity,
                fraction_digits: c.fraction_digits,
                compare_fraction,
                nullable: c.nullable,
                collation: c.collation.clone(),
                declared_alike: p.db_type.eq_ignore_ascii_case(&s.db_type),
            };
            Ok(Some((query_column(p), query_column(s))))
        }
        Err(why) if is_key => Err(SchemaError(format!(
            "key column {} cannot be compared: {why}",
            p.name
        ))),
        Err(why) => {
            report.type_mismatch.push(format!("{}: {why}", p.name));
            Ok(None)
        }
    }
}

/// The key as indexes into the compared columns, every key column among them: the
/// error says whether a missing one does not exist or was not comparable.
fn key_positions(
    key_names: &[String],
    pq: &[QueryColumn],
    publisher: &Side,
) -> Result<Vec<usize>, SchemaError> {
    let mut key = Vec::new();
    for k in key_names {
        match pq.iter().position(|c| c.name.eq_ignore_ascii_case(k)) {
            Some(i) => key.push(i),
            None if find(&publisher.schema.columns, k).is_none() => {
                return Err(SchemaError(format!(
                    "key column {k} does not exist in {} on {}",
                    publisher.table, publisher.database
                )))
            }
            None => return Err(SchemaError(format!("key column {k} cannot be compared"))),
        }
    }
    Ok(key)
}

/// Where chunk digests are computed: `auto` resolved by cost and by what both sides can
/// hash alike, `pushdown` refused where its digests could not agree.
fn strategy(
    cfg: &TableConfig,
    publisher: &Side,
    subscriber: &Side,
    pq: &[QueryColumn],
    sq: &[QueryColumn],
) -> Result<Resolved, SchemaError> {
    let same_family = publisher.family == subscriber.family;
    // A pushdown digest agrees across sides only where both hash the same types alike.
    let exact_types = pq
        .iter()
        .zip(sq)
        .all(|(p, s)| p.logical == p.compare_as && s.logical == s.compare_as);
    // A database hashes the values it holds: it cannot bring them to a coarser precision.
    let coarsened = pq
        .iter()
        .find_map(|c| Some((&c.name, c.compare_fraction?.digits)));
    // A database that cannot run its family's pushdown digest (the engine says why).
    let unavailable = [publisher, subscriber]
        .into_iter()
        .find_map(|side| Some((side.database, side.schema.pushdown_unavailable.as_ref()?)));
    // `auto` picks what costs the monitored servers least. A MySQL or MariaDB server spends
    // about two and a half times the CPU hashing a row (SHA-256 over its canonical text: no
    // cheaper 64-bit hash is built in) as sending it (measured on MariaDB 10.11, a million
    // rows of eight columns: 1.0 s against 0.4 s), so two servers of that family are
    // streamed; PostgreSQL's and SQL Server's hashes are native, SQLite hashes in-process.
    let pushdown_cheaper = publisher.family != Family::Mysql;
    Ok(match cfg.strategy {
        Strategy::Streamed => Resolved::Streamed,
        Strategy::Auto if same_family && pushdown_cheaper && exact_types && coarsened.is_none() => {
            match unavailable {
                Some((database, why)) => {
                    tracing::debug!(table = %cfg.name, database, "strategy auto: streamed digests, as {why}");
                    Resolved::Streamed
                }
                None => Resolved::Pushdown,
            }
        }
        Strategy::Auto => Resolved::Streamed,
        Strategy::Pushdown if !same_family => {
            return Err(SchemaError(format!(
                "strategy = \"pushdown\" needs engines of one family, but {} is {:?} and {} is {:?}: use \"streamed\" or \"auto\"",
                publisher.database, publisher.family, subscriber.database, subscriber.family
            )))
        }
        Strategy::Pushdown => match (unavailable, coarsened) {
            (Some((database, why)), _) => return Err(SchemaError(format!(
                "strategy = \"pushdown\" cannot run on {database}: {why}; use \"streamed\" or \"auto\""
            ))),
            (None, Some((name, digits))) => return Err(SchemaError(format!(
                "strategy = \"pushdown\" cannot compare column {name} at {digits} fractional-second digits (temporal_precision): a database hashes the values it holds; use \"streamed\" or \"auto\""
            ))),
            (None, None) if !exact_types => return Err(SchemaError("strategy = \"pushdown\" needs identical column types on both sides: use \"streamed\" or \"auto\"".into())),
            (None, None) => Resolved::Pushdown,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn col(name: &str, db_type: &str, t: Option<LogicalType>) -> Column {
        Column {
            nullable: true,
            name: name.into(),
            db_type: db_type.into(),
            logical: t,
            collation: None,
            identity: false,
            fraction_digits: None,
        }
    }

    fn cfg() -> TableConfig {
        TableConfig {
            name: "t".into(),
            publisher_table: TableRef::parse("t"),
            subscriber_table: TableRef::parse("t"),
            key: None,
            exclude_columns: vec![],
            filter: None,
            time_column: None,
            strategy: Strategy::Auto,
            temporal_precision: TemporalPrecision::Exact,
            interval: Duration::from_secs(60),
            chunk_rows: 1000,
            confirm_after: Duration::ZERO,
            target_query_time: Duration::from_millis(500),
            max_diff_rows: 100,
        }
    }

    #[test]
    fn drift_unsupported_and_widening_are_reported() {
        use LogicalType::*;
        let p = TableSchema {
            columns: vec![
                col("id", "bigint", Some(Int)),
                col("amount", "numeric(12,2)", Some(Decimal)),
                col("geo", "point", None),
                col("only_pub", "text", Some(Text)),
                col("at", "timestamptz", Some(TimestampTz)),
            ],
            primary_key: vec!["id".into()],
            pushdown_unavailable: None,
        };
        let s = TableSchema {
            columns: vec![
                col("ID", "INTEGER", Some(Int)),
                col("amount", "INTEGER", Some(Int)),
                col("geo", "TEXT", Some(Text)),
                col("at", "TIMESTAMP", Some(Timestamp)),
                col("only_sub", "TEXT", Some(Text)),
            ],
            primary_key: vec![],
            pushdown_unavailable: None,
        };
        let side = |db, family, schema| Side {
            database: db,
            family,
            table: TableRef::parse("t"),
            schema,
        };
        let c = reconcile(
            &cfg(),
            &side("pg", Family::Postgres, &p),
            &side("lite", Family::Sqlite, &s),
        )
        .unwrap();
        assert_eq!(c.column_names(), ["id", "amount"]);
        assert_eq!(c.subscriber.columns[1].compare_as, Decimal);
        assert_eq!(c.strategy, Resolved::Streamed);
        assert!(c.publisher.binary_collation);
        assert_eq!(c.schema.publisher_only, ["only_pub"]);
        assert_eq!(c.schema.subscriber_only, ["only_sub"]);
        assert_eq!(c.schema.unsupported, ["geo (point)"]);
        assert_eq!(c.schema.type_mismatch.len(), 1);
        assert!(c.schema.mismatch());

        let no_key = TableSchema {
            columns: s.columns.clone(),
            primary_key: vec![],
            pushdown_unavailable: None,
        };
        let e = reconcile(
            &cfg(),
            &side("lite", Family::Sqlite, &no_key),
            &side("lite2", Family::Sqlite, &s),
        )
        .unwrap_err();
        assert!(e.0.contains("no primary key"), "{e}");
        let forced = TableConfig {
            strategy: Strategy::Pushdown,
            ..cfg()
        };
        assert!(reconcile(
            &forced,
            &side("pg", Family::Postgres, &p),
            &side("lite", Family::Sqlite, &s)
        )
        .is_err());
    }

    fn temporal(name: &str, db_type: &str, t: LogicalType, digits: Option<u8>) -> Column {
        Column {
            fraction_digits: digits,
            ..col(name, db_type, Some(t))
        }
    }

    /// A PostgreSQL publisher with timestamp(6), timestamptz and time columns, and a
    /// subscriber of another engine holding them at other precisions (or not saying).
    fn precision_pair() -> (TableSchema, TableSchema) {
        use LogicalType::*;
        let p = TableSchema {
            columns: vec![
                col("id", "bigint", Some(Int)),
                temporal("at", "timestamp(6) without time zone", Timestamp, Some(6)),
                temporal("seen", "timestamp with time zone", TimestampTz, Some(6)),
                temporal("opens", "time(0) without time zone", Time, Some(0)),
                temporal("same", "timestamp(3) without time zone", Timestamp, Some(3)),
                temporal("edge", "timestamp without time zone", Timestamp, Some(6)),
            ],
            primary_key: vec!["id".into()],
            pushdown_unavailable: None,
        };
        let s = TableSchema {
            columns: vec![
                col("id", "bigint(20)", Some(Int)),
                temporal("at", "datetime(3)", Timestamp, Some(3)),
                temporal("seen", "timestamp(6)", TimestampTz, Some(6)),
                temporal("opens", "time(2)", Time, Some(2)),
                temporal("same", "datetime(3)", Timestamp, Some(3)),
                temporal("edge", "DATETIME", Timestamp, None),
            ],
            primary_key: vec!["id".into()],
            pushdown_unavailable: None,
        };
        (p, s)
    }

    fn sides<'a>(
        p: &'a TableSchema,
        pf: Family,
        s: &'a TableSchema,
        sf: Family,
    ) -> (Side<'a>, Side<'a>) {
        let side = |database, family, schema| Side {
            database,
            family,
            table: TableRef::parse("t"),
            schema,
        };
        (side("pub", pf, p), side("sub", sf, s))
    }

    #[test]
    fn a_database_that_cannot_push_down_is_streamed_by_auto_and_refused_by_pushdown() {
        use LogicalType::*;
        let schema = |unavailable: Option<&str>| TableSchema {
            columns: vec![
                col("id", "int", Some(Int)),
                col("name", "nvarchar(50)", Some(Text)),
            ],
            primary_key: vec!["id".into()],
            pushdown_unavailable: unavailable.map(str::to_string),
        };
        let (able, old) = (
            schema(None),
            schema(Some("it is SQL Server 12, older than 13.0")),
        );
        let (ps, ss) = sides(&able, Family::Mssql, &able, Family::Mssql);
        assert_eq!(
            reconcile(&cfg(), &ps, &ss).unwrap().strategy,
            Resolved::Pushdown
        );
        let forced = TableConfig {
            strategy: Strategy::Pushdown,
            ..cfg()
        };
        for (p, s) in [(&old, &able), (&able, &old)] {
            let (ps, ss) = sides(p, Family::Mssql, s, Family::Mssql);
            assert_eq!(
                reconcile(&cfg(), &ps, &ss).unwrap().strategy,
                Resolved::Streamed
            );
            let e = reconcile(&forced, &ps, &ss).unwrap_err();
            let db = if p.pushdown_unavailable.is_some() {
                "pub"
            } else {
                "sub"
            };
            assert_eq!(
                e.0,
                format!("strategy = \"pushdown\" cannot run on {db}: it is SQL Server 12, older than 13.0; use \"streamed\" or \"auto\"")
            );
        }
    }

    #[test]
    fn different_precisions_are_drift_unless_the_config_says_how_to_compare_them() {
        let (p, s) = precision_pair();
        let (ps, ss) = sides(&p, Family::Postgres, &s, Family::Mysql);
        let c = reconcile(&cfg(), &ps, &ss).unwrap();
        assert_eq!(c.column_names(), ["id", "seen", "same", "edge"]);
        assert_eq!(
            c.schema.type_mismatch,
            [
                "at: timestamp(6) without time zone vs datetime(3): 6 against 3 fractional-second digits; set temporal_precision = \"round\" or \"truncate\" to compare them at 3",
                "opens: time(0) without time zone vs time(2): 0 against 2 fractional-second digits; set temporal_precision = \"round\" or \"truncate\" to compare them at 0",
            ]
        );
        assert!(c.schema.mismatch());
        // Equal precisions, or one side that does not say (SQLite), compare exactly.
        assert!(c
            .publisher
            .columns
            .iter()
            .all(|c| c.compare_fraction.is_none()));
        assert_eq!(c.publisher.columns[1].fraction_digits, Some(6));

        for (mode, rounding) in [
            (TemporalPrecision::Round, Rounding::Round),
            (TemporalPrecision::Truncate, Rounding::Truncate),
        ] {
            let cfg = TableConfig {
                temporal_precision: mode,
                ..cfg()
            };
            let c = reconcile(&cfg, &ps, &ss).unwrap();
            assert_eq!(
                c.column_names(),
                ["id", "at", "seen", "opens", "same", "edge"]
            );
            assert!(!c.schema.mismatch(), "{:?}", c.schema);
            let fractions = |q: &TableQuery| -> Vec<Option<Fraction>> {
                q.columns.iter().map(|c| c.compare_fraction).collect()
            };
            let at = |digits| Some(Fraction { digits, rounding });
            // Both sides are brought to the coarser precision, the same way.
            let want = vec![None, at(3), None, at(0), None, None];
            assert_eq!(fractions(&c.publisher), want);
            assert_eq!(fractions(&c.subscriber), want);
            assert_eq!(c.subscriber.columns[1].fraction_digits, Some(3));
        }
    }

    #[test]
    fn auto_streams_between_mysql_servers_and_pushes_down_elsewhere() {
        use LogicalType::*;
        let t = TableSchema {
            columns: vec![col("id", "int", Some(Int)), col("a", "text", Some(Text))],
            primary_key: vec!["id".into()],
            pushdown_unavailable: None,
        };
        for (family, auto) in [
            (Family::Mysql, Resolved::Streamed),
            (Family::Postgres, Resolved::Pushdown),
            (Family::Sqlite, Resolved::Pushdown),
            (Family::Mssql, Resolved::Pushdown),
        ] {
            let (ps, ss) = sides(&t, family, &t, family);
            assert_eq!(
                reconcile(&cfg(), &ps, &ss).unwrap().strategy,
                auto,
                "{family:?}"
            );
            let forced = TableConfig {
                strategy: Strategy::Pushdown,
                ..cfg()
            };
            let c = reconcile(&forced, &ps, &ss).unwrap();
            assert_eq!(c.strategy, Resolved::Pushdown, "{family:?}");
        }
    }

    #[test]
    fn a_coarsened_column_is_streamed_and_never_pushed_down_nor_a_key() {
        use LogicalType::*;
        let p = TableSchema {
            columns: vec![
                col("id", "integer", Some(Int)),
                temporal("at", "timestamp(6) without time zone", Timestamp, Some(6)),
            ],
            primary_key: vec!["id".into()],
            pushdown_unavailable: None,
        };
        let s = TableSchema {
            columns: vec![
                col("id", "integer", Some(Int)),
                temporal("at", "timestamp(3) without time zone", Timestamp, Some(3)),
            ],
            primary_key: vec!["id".into()],
            pushdown_unavailable: None,
        };
        let (ps, ss) = sides(&p, Family::Postgres, &s, Family::Postgres);
        // Exact: the column is drift, and the rest is pushed down as before.
        let c = reconcile(&cfg(), &ps, &ss).unwrap();
        assert_eq!(c.column_names(), ["id"]);
        assert_eq!(c.strategy, Resolved::Pushdown);
        let round = TableConfig {
            temporal_precision: TemporalPrecision::Round,
            ..cfg()
        };
        let c = reconcile(&round, &ps, &ss).unwrap();
        assert_eq!(c.column_names(), ["id", "at"]);
        assert_eq!(c.strategy, Resolved::Streamed);
        let forced = TableConfig {
            strategy: Strategy::Pushdown,
            ..round.clone()
        };
        let e = reconcile(&forced, &ps, &ss).unwrap_err();
        assert!(
            e.0.contains("cannot compare column at at 3 fractional-second digits"),
            "{e}"
        );
        // A key is compared exactly, whatever the config says.
        let keyed = TableConfig {
            key: Some(vec!["id".into(), "at".into()]),
            ..round
        };
        let e = reconcile(&keyed, &ps, &ss).unwrap_err();
        assert!(
            e.0.starts_with("key column at cannot be compared: timestamp(6) without time zone vs timestamp(3) without time zone: 6 against 3 fractional-second digits"),
            "{e}"
        );
    }
}
