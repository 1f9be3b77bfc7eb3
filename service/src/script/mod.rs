//! Convergence scripts, tablediff-style: the text of the statements that make the
//! subscriber equal to the publisher (fix mode), or that make Azure SQL Data Sync carry the
//! missing rows again (redrive mode), rendered from row changes as they come.
//!
//! Pure rendering: it is handed row changes (by `diff`, which runs the comparison, or by a
//! caller holding a diff already) and returns text, a change at a time, so that a script's
//! first bytes go out early and memory stays bounded. It must not look anything up in the
//! config, reach a database, or decide which rows are verified: `diff` tells it which rows
//! to hold back, and it lists them by key.
//!
//! Only verified differences are scripted because a row in flight written by hand breaks
//! replication: inserting a row that replication is about to deliver stops PostgreSQL and
//! MySQL replication on a duplicate key, and updating one races it.

pub mod dialect;

use std::io::{Seek, Write};
use std::time::SystemTime;

use crate::compare::localize::{Kind, RowChange};
use crate::compare::schema::Comparison;
use crate::table::QueryColumn;
use crate::value::{Rounding, Value};
pub use dialect::Dialect;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Make the subscriber equal to the publisher (tablediff's -f).
    Fix,
    /// Re-fire the hub's change tracking with no-op updates (Azure SQL Data Sync).
    Redrive,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "fix" => Some(Mode::Fix),
            "redrive" => Some(Mode::Redrive),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Fix => "fix",
            Mode::Redrive => "redrive",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub dialect: Dialect,
    pub mode: Mode,
    /// Guarded statements (see the header of a script); off gives tablediff's plain form.
    pub guards: bool,
    /// Statements per transaction.
    pub batch_statements: usize,
    /// Keys per no-op UPDATE in redrive mode.
    pub redrive_batch_keys: usize,
    /// Write the counts in the header (the caller holds the body until the diff ends).
    pub counts_in_header: bool,
    /// Script rows that are not verified too (in flight, or not re-checked yet).
    pub include_in_flight: bool,
    /// A row with a value the dialect cannot hold is left out and listed (see
    /// [`Summary::unrepresentable`]) instead of stopping the script.
    pub skip_unrepresentable: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("table {table}, key ({key}), column {column}: {why}: the script stops here rather than write a wrong value")]
    Unrepresentable {
        table: String,
        key: String,
        column: String,
        why: String,
    },
    #[error("writing the script: {0}")]
    Io(#[from] std::io::Error),
}

/// What a script holds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Summary {
    pub missing: u64,
    pub extra: u64,
    pub changed: u64,
    pub statements: u64,
    /// Differing rows left out because they are not verified.
    pub in_flight: u64,
    /// Rows left out because the dialect cannot hold one of their values (with
    /// `skip_unrepresentable`): the script does not converge them.
    pub unrepresentable: u64,
}

impl Summary {
    /// Why a script that ran to its end still does not converge the table, if it does not.
    pub fn incomplete(&self) -> Option<String> {
        (self.unrepresentable > 0).then(|| {
            format!(
                "{} rows could not be written in this dialect and are not in the script (listed above)",
                self.unrepresentable
            )
        })
    }
}

/// The end of a script that failed, or that leaves rows out: its last lines say so, so that
/// no script that stopped short can be taken for a whole one.
pub fn error_trailer(error: &str) -> String {
    let error = comment_text(error);
    format!("\n-- ERROR: {error}\n-- This script is INCOMPLETE: it does not converge the table.\n")
}

/// Keys listed in the "in flight, not scripted" section, at most (the count is exact).
const IN_FLIGHT_LISTED: usize = 1000;

/// A side's column types are its engine's names, which mean nothing in another dialect
/// (SQLite's DATETIME or DOUBLE in PostgreSQL): there they are dropped, and the dialect
/// writes the type of each column's logical type instead.
pub fn types_for(side: &mut crate::table::TableQuery, family: crate::table::Family, d: Dialect) {
    if Dialect::of(family) != d {
        for c in &mut side.columns {
            c.db_type.clear();
        }
    }
}

/// Renders a script from a diff already in hand (no database involved): the same text
/// [`generate`] streams, with the counts in the header when `counts_in_header`.
pub fn render(
    options: &Options,
    comparison: &Comparison,
    publisher: &str,
    subscriber: &str,
    changes: impl IntoIterator<Item = RowChange>,
) -> Result<String, ScriptError> {
    let mut w = Writer::new(options, comparison, publisher, subscriber)?;
    let mut body = String::new();
    for c in changes {
        body.push_str(&w.change(&c)?);
    }
    for piece in w.end()? {
        body.push_str(&piece?);
    }
    let header = w.header(options.counts_in_header.then_some(&w.summary));
    Ok(header + &body)
}

/// Text for a `--` comment: no control character may end the comment early.
fn comment_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The header's counts line: known only when the script was held until the diff ended,
/// else the script's end carries them.
fn header_counts(counts: Option<&Summary>) -> String {
    match counts {
        Some(c) => {
            let mut h = format!(
                "-- Counts: {} missing, {} extra, {} changed ({} statements)\n",
                c.missing, c.extra, c.changed, c.statements
            );
            if c.in_flight > 0 {
                h.push_str(&format!(
                    "-- In flight, not scripted: {} rows (listed at the end)\n",
                    c.in_flight
                ));
            }
            h
        }
        None => "-- Counts: at the end of the script (it is written while the comparison runs).\n"
            .to_string(),
    }
}

/// Turns row changes into statements for one comparison, as they come: the header, one
/// piece of text per change, then [`Writer::end`].
pub struct Writer<'a> {
    options: &'a Options,
    cmp: &'a Comparison,
    publisher: &'a str,
    subscriber: &'a str,
    /// What the script holds so far.
    pub summary: Summary,
    in_batch: usize,
    /// Redrive: keys waiting for their no-op UPDATE.
    pending_keys: Vec<Vec<Value>>,
    /// Redrive: the member's section, spilled to disk so memory stays bounded.
    member: Option<std::fs::File>,
    /// The rows left out (`skip_unrepresentable`), one line each, spilled to disk too...
    skipped: Option<std::fs::File>,
    /// ...and the first of them, for the header.
    skipped_first: Vec<String>,
    started: bool,
    /// Keys of rows left out as not verified (the first [`IN_FLIGHT_LISTED`]).
    held: Vec<String>,
}

/// Rows left out that the header lists (all of them are listed at the end).
const HEADER_SKIPPED_ROWS: usize = 100;

impl<'a> Writer<'a> {
    pub fn new(
        options: &'a Options,
        cmp: &'a Comparison,
        publisher: &'a str,
        subscriber: &'a str,
    ) -> Result<Self, ScriptError> {
        let member = match options.mode {
            Mode::Redrive => Some(tempfile::tempfile()?),
            Mode::Fix => None,
        };
        Ok(Writer {
            options,
            cmp,
            publisher,
            subscriber,
            summary: Summary::default(),
            in_batch: 0,
            pending_keys: Vec::new(),
            member,
            skipped: None,
            skipped_first: Vec::new(),
            started: false,
            held: Vec::new(),
        })
    }

    /// Leaves a row out as not verified; it is listed in the in-flight section.
    pub fn hold(&mut self, change: &RowChange) {
        self.summary.in_flight += 1;
        if self.held.len() < IN_FLIGHT_LISTED {
            let key: Vec<String> = change.key.iter().map(|v| v.to_string()).collect();
            let key = key.join(", ").replace(['\n', '\r'], " ");
            self.held
                .push(format!("--   ({key}) {}\n", change.kind.as_str()));
        }
    }

    /// The commented list of rows left out as not verified (empty when there are none).
    fn in_flight_section(&self) -> String {
        if self.summary.in_flight == 0 {
            return String::new();
        }
        let mut s = format!(
            "\n-- In flight, not scripted: {} differing rows are not verified (their publisher side changed\n\
             -- between sightings, or they were not yet re-checked at a consistent point). Replication may\n\
             -- still deliver them; writing them could break it. Fetch the script again later, or ask for\n\
             -- them on purpose (include_in_flight=true, --include-in-flight).\n",
            self.summary.in_flight
        );
        for line in &self.held {
            s.push_str(line);
        }
        if self.summary.in_flight > self.held.len() as u64 {
            s.push_str(&format!(
                "--   … and {} more\n",
                self.summary.in_flight - self.held.len() as u64
            ));
        }
        s
    }

    fn d(&self) -> Dialect {
        self.options.dialect
    }

    fn guards(&self) -> bool {
        self.options.guards && self.options.mode == Mode::Fix
    }

    /// The commented head of a script, so that whoever applies it knows what it does,
    /// where it goes and what it leaves out; `counts` when the diff has already ended.
    pub fn header(&self, counts: Option<&Summary>) -> String {
        let mut h = self.header_purpose();
        h.push_str(&self.header_origin());
        h.push_str(&self.header_columns());
        if self.guards() {
            h.push_str(
                "-- Guarded: an UPDATE or DELETE applies only while the row still holds the values the diff\n\
                 -- saw, an INSERT only while its key is absent; a statement that finds its row changed since\n\
                 -- (replication goes on) is skipped, and the number skipped is reported at the end.\n",
            );
        }
        if self.options.skip_unrepresentable {
            h.push_str(&self.header_unrepresentable(counts));
        }
        h.push_str(&header_counts(counts));
        h.push('\n');
        h
    }

    /// What the script is for and where each part is applied: the two modes are applied
    /// to different databases.
    fn header_purpose(&self) -> String {
        let mut h = format!(
            "-- driftwatch convergence script: {} mode, {} dialect\n",
            self.options.mode.name(),
            self.d().name()
        );
        match self.options.mode {
            Mode::Fix => h.push_str(
                "-- Makes the subscriber's table equal to the publisher's: DELETE for rows extra on the\n\
                 -- subscriber, INSERT for rows missing from it, UPDATE of the changed columns. Apply it to\n\
                 -- the DESTINATION below.\n",
            ),
            Mode::Redrive => h.push_str(
                "-- For Azure SQL Data Sync / Sync Framework: apply part 1 to the HUB (the SOURCE below). Its\n\
                 -- no-op updates (SET c = c) make the service's own change tracking carry the rows missing or\n\
                 -- changed on the member again. It touches no *_dss_tracking table and no _dss_ trigger.\n\
                 -- Part 2, commented out at the end, is for the MEMBER: rows it holds that the hub does not.\n",
            ),
        }
        h
    }

    /// When the comparison ran and between which tables, so that a script applied late
    /// or to the wrong database can be told.
    fn header_origin(&self) -> String {
        let clean = comment_text;
        let (pt, st) = (&self.cmp.publisher.table, &self.cmp.subscriber.table);
        let mut h = format!(
            "-- Generated: {} from a fresh comparison.\n",
            chrono::DateTime::<chrono::Utc>::from(SystemTime::now())
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        h.push_str(&format!(
            "-- Source (publisher): database {}, table {}\n",
            clean(self.publisher),
            clean(&pt.to_string())
        ));
        h.push_str(&format!(
            "-- Destination (subscriber): database {}, table {}\n",
            clean(self.subscriber),
            clean(&st.to_string())
        ));
        h
    }

    /// Which columns the script converges, and at what precision: a column not compared
    /// is not written either, so the script leaves it as it is.
    fn header_columns(&self) -> String {
        let clean = comment_text;
        let mut h = format!(
            "-- Columns compared: {}\n",
            clean(&self.cmp.column_names().join(", "))
        );
        // Values of these columns were compared, and are written, at the coarser precision.
        let coarsened: Vec<String> = self
            .cmp
            .publisher
            .columns
            .iter()
            .filter_map(|c| {
                let f = c.compare_fraction?;
                let how = match f.rounding {
                    Rounding::Round => "rounded",
                    Rounding::Truncate => "truncated",
                };
                Some(format!(
                    "{} ({how} to {} fractional digits)",
                    c.name, f.digits
                ))
            })
            .collect();
        if !coarsened.is_empty() {
            h.push_str(&format!(
                "-- Compared and written at the coarser precision (temporal_precision): {}\n",
                clean(&coarsened.join(", "))
            ));
        }
        let s = &self.cmp.schema;
        let skipped: Vec<String> = s
            .publisher_only
            .iter()
            .map(|c| format!("{c} (publisher only)"))
            .chain(
                s.subscriber_only
                    .iter()
                    .map(|c| format!("{c} (subscriber only)")),
            )
            .chain(
                s.type_mismatch
                    .iter()
                    .map(|c| format!("{c} (types differ)")),
            )
            .chain(
                s.unsupported
                    .iter()
                    .map(|c| format!("{c} (not comparable)")),
            )
            .chain(s.excluded.iter().map(|c| format!("{c} (excluded)")))
            .collect();
        if !skipped.is_empty() {
            h.push_str(&format!(
                "-- Columns not compared, and not written: {}\n",
                clean(&skipped.join(", "))
            ));
        }
        h
    }

    /// With skip_unrepresentable, the rows the script does not converge must be visible
    /// before it is applied: listed when the diff has ended, announced otherwise.
    fn header_unrepresentable(&self, counts: Option<&Summary>) -> String {
        match counts {
            Some(c) if c.unrepresentable > 0 => {
                let mut h = format!(
                    "-- NOT WRITTEN: {} rows hold a value the {} dialect cannot represent; the script does\n\
                     -- not converge them (key and column, all of them also at the end):\n",
                    c.unrepresentable,
                    self.d().name()
                );
                for line in &self.skipped_first {
                    h.push_str(line);
                }
                let more = c.unrepresentable - self.skipped_first.len() as u64;
                if more > 0 {
                    h.push_str(&format!("--   … and {more} more\n"));
                }
                h
            }
            Some(_) => "-- Every row could be written (rows with a value this dialect cannot hold would be listed here).\n".to_string(),
            None => "-- A row with a value this dialect cannot hold is left out, and listed at the end.\n".to_string(),
        }
    }

    fn unrepresentable(&self, change: &RowChange, column: &str, why: String) -> ScriptError {
        ScriptError::Unrepresentable {
            table: self.cmp.subscriber.table.to_string(),
            key: change
                .key
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            column: column.to_string(),
            why,
        }
    }

    fn lit(
        &self,
        change: &RowChange,
        column: &QueryColumn,
        v: &Value,
    ) -> Result<String, ScriptError> {
        self.d()
            .literal(column, v)
            .map_err(|why| self.unrepresentable(change, &column.name, why))
    }

    fn matches(
        &self,
        change: &RowChange,
        column: &QueryColumn,
        v: &Value,
    ) -> Result<String, ScriptError> {
        self.d()
            .matches(column, v)
            .map_err(|why| self.unrepresentable(change, &column.name, why))
    }

    /// `k1 = v1 AND k2 = v2` on `side`'s key columns.
    fn key_match(
        &self,
        change: &RowChange,
        side: &crate::table::TableQuery,
    ) -> Result<String, ScriptError> {
        let parts: Result<Vec<String>, _> = side
            .key
            .iter()
            .zip(&change.key)
            .map(|(&i, v)| self.matches(change, &side.columns[i], v))
            .collect();
        Ok(parts?.join(" AND "))
    }

    /// The subscriber's row as the diff saw it, on every non-key column (guards).
    fn row_match(&self, change: &RowChange, row: &[Value]) -> Result<String, ScriptError> {
        let q = &self.cmp.subscriber;
        let mut parts = Vec::new();
        for (i, column) in q.columns.iter().enumerate() {
            if !q.key.contains(&i) {
                parts.push(self.matches(change, column, &row[i])?);
            }
        }
        Ok(parts.join(" AND "))
    }

    /// Opens the script body, and a new transaction every `batch_statements` statements.
    fn statement(&mut self, text: String) -> String {
        let d = self.d();
        let mut out = String::new();
        if !self.started {
            self.started = true;
            out.push_str(&d.prologue(self.guards()));
            if self.options.mode == Mode::Fix
                && d == Dialect::Tsql
                && self.cmp.subscriber.columns.iter().any(|c| c.identity)
            {
                out.push_str(&format!(
                    "SET IDENTITY_INSERT {} ON;\nGO\n",
                    d.table(&self.cmp.subscriber.table)
                ));
            }
        }
        if self.in_batch == 0 {
            out.push_str(d.begin());
        }
        out.push_str(&text);
        self.summary.statements += 1;
        self.in_batch += 1;
        if self.in_batch >= self.options.batch_statements.max(1) {
            out.push_str(d.commit());
            self.in_batch = 0;
        }
        out
    }

    /// The text of one row change (statements, or nothing while a redrive batch fills).
    pub fn change(&mut self, change: &RowChange) -> Result<String, ScriptError> {
        match change.kind {
            Kind::Missing => self.summary.missing += 1,
            Kind::Extra => self.summary.extra += 1,
            Kind::Changed => self.summary.changed += 1,
        }
        let written = match self.options.mode {
            Mode::Fix => self.fix(change),
            Mode::Redrive => self.redrive(change),
        };
        match written {
            Err(ScriptError::Unrepresentable {
                key, column, why, ..
            }) if self.options.skip_unrepresentable => {
                self.skip(&key, &column, &why)?;
                Ok(String::new())
            }
            other => other,
        }
    }

    /// Leaves a row out: counted, and listed in the header and at the end.
    fn skip(&mut self, key: &str, column: &str, why: &str) -> Result<(), ScriptError> {
        self.summary.unrepresentable += 1;
        let line = format!(
            "--   key ({}), column {}: {}\n",
            comment_text(key),
            comment_text(column),
            comment_text(why)
        );
        if self.skipped_first.len() < HEADER_SKIPPED_ROWS {
            self.skipped_first.push(line.clone());
        }
        if self.skipped.is_none() {
            self.skipped = Some(tempfile::tempfile()?);
        }
        self.skipped
            .as_mut()
            .expect("created above")
            .write_all(line.as_bytes())?;
        Ok(())
    }

    fn fix(&mut self, change: &RowChange) -> Result<String, ScriptError> {
        let d = self.d();
        let q = &self.cmp.subscriber;
        let table = d.table(&q.table);
        let guards = self.guards();
        let key = self.key_match(change, q)?;
        let text = match (change.kind, &change.publisher, &change.subscriber) {
            (Kind::Missing, Some(row), _) => {
                let columns: Vec<String> = q.columns.iter().map(|c| d.ident(&c.name)).collect();
                let values: Result<Vec<String>, _> = q
                    .columns
                    .iter()
                    .zip(row)
                    .map(|(c, v)| self.lit(change, c, v))
                    .collect();
                let overriding = q.columns.iter().any(|c| c.identity);
                d.insert(
                    &table,
                    &columns.join(", "),
                    &values?.join(", "),
                    &key,
                    guards,
                    overriding,
                )
            }
            (Kind::Extra, _, Some(theirs)) => {
                let mut cond = key;
                if guards {
                    let row = self.row_match(change, theirs)?;
                    if !row.is_empty() {
                        cond = format!("{cond} AND {row}");
                    }
                }
                d.counted(&format!("DELETE FROM {table} WHERE {cond}"), guards)
            }
            (Kind::Changed, Some(ours), Some(theirs)) => {
                let set: Result<Vec<String>, ScriptError> = change
                    .changed
                    .iter()
                    .map(|&i| {
                        Ok(format!(
                            "{} = {}",
                            d.ident(&q.columns[i].name),
                            self.lit(change, &q.columns[i], &ours[i])?
                        ))
                    })
                    .collect();
                let mut cond = key;
                if guards {
                    let row = self.row_match(change, theirs)?;
                    if !row.is_empty() {
                        cond = format!("{cond} AND {row}");
                    }
                }
                d.counted(
                    &format!("UPDATE {table} SET {} WHERE {cond}", set?.join(", ")),
                    guards,
                )
            }
            _ => return Ok(String::new()),
        };
        Ok(self.statement(text))
    }

    fn redrive(&mut self, change: &RowChange) -> Result<String, ScriptError> {
        match change.kind {
            Kind::Missing | Kind::Changed => {
                // Literals are checked now, so an unrepresentable key fails at its row.
                let q = &self.cmp.publisher;
                for (&i, v) in q.key.iter().zip(&change.key) {
                    self.lit(change, &q.columns[i], v)?;
                }
                self.pending_keys.push(change.key.clone());
                if self.pending_keys.len() >= self.options.redrive_batch_keys.max(1) {
                    return Ok(self.flush_redrive());
                }
                Ok(String::new())
            }
            Kind::Extra => {
                let d = self.d();
                let q = &self.cmp.subscriber;
                let key = self.key_match(change, q)?;
                let line = format!("-- DELETE FROM {} WHERE {key};\n", d.table(&q.table));
                self.member
                    .as_mut()
                    .expect("redrive keeps a member section")
                    .write_all(line.as_bytes())?;
                Ok(String::new())
            }
        }
    }

    /// One no-op UPDATE of the hub for the keys waiting.
    fn flush_redrive(&mut self) -> String {
        if self.pending_keys.is_empty() {
            return String::new();
        }
        let d = self.d();
        let q = &self.cmp.publisher;
        let keys = std::mem::take(&mut self.pending_keys);
        let cols: Vec<&QueryColumn> = q.key.iter().map(|&i| &q.columns[i]).collect();
        // Literals were checked when each key arrived.
        let lit = |c: &QueryColumn, v: &Value| d.literal(c, v).unwrap_or_else(|_| "NULL".into());
        let target = q
            .columns
            .iter()
            .enumerate()
            .find(|(i, _)| !q.key.contains(i))
            .map(|(_, c)| c)
            .unwrap_or(cols[0]);
        let noop = d.ident(&target.name);
        let cond = if cols.len() == 1 {
            let values: Vec<String> = keys.iter().map(|k| lit(cols[0], &k[0])).collect();
            format!("{} IN ({})", d.ident(&cols[0].name), values.join(", "))
        } else if d == Dialect::Tsql {
            let rows: Vec<String> = keys
                .iter()
                .map(|k| {
                    let parts: Vec<String> = cols
                        .iter()
                        .zip(k)
                        .map(|(c, v)| format!("{} = {}", d.ident(&c.name), lit(c, v)))
                        .collect();
                    format!("({})", parts.join(" AND "))
                })
                .collect();
            rows.join("\n   OR ")
        } else {
            let names: Vec<String> = cols.iter().map(|c| d.ident(&c.name)).collect();
            let rows: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "({})",
                        cols.iter()
                            .zip(k)
                            .map(|(c, v)| lit(c, v))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
                .collect();
            format!("({}) IN ({})", names.join(", "), rows.join(", "))
        };
        let text = format!(
            "UPDATE {} SET {noop} = {noop} WHERE {cond};\n",
            d.table(&q.table)
        );
        let mut out = self.statement(text);
        // One no-op UPDATE per transaction keeps each one short on the hub.
        if self.in_batch != 0 {
            out.push_str(d.commit());
            self.in_batch = 0;
        }
        out
    }

    /// The end of the hub's (or subscriber's) part: the last batch, the skipped count.
    fn finish(&mut self) -> String {
        let d = self.d();
        let mut out = String::new();
        if self.options.mode == Mode::Redrive {
            out.push_str(&self.flush_redrive());
        }
        if self.in_batch != 0 {
            out.push_str(d.commit());
            self.in_batch = 0;
        }
        if self.started {
            if self.options.mode == Mode::Fix
                && d == Dialect::Tsql
                && self.cmp.subscriber.columns.iter().any(|c| c.identity)
            {
                out.push_str(&format!(
                    "SET IDENTITY_INSERT {} OFF;\nGO\n",
                    d.table(&self.cmp.subscriber.table)
                ));
            }
            out.push_str(&d.epilogue(self.guards()));
        }
        out
    }

    /// The sections spilled to disk, each a banner and its file: redrive's part 2 (rows
    /// extra on the member), then the rows left out.
    fn sections(&mut self) -> Result<Vec<(String, std::fs::File)>, ScriptError> {
        let mut out = Vec::new();
        if let Some(member) = self.member_section()? {
            out.push(member);
        }
        if let Some(mut skipped) = self.skipped.take() {
            skipped.rewind()?;
            let banner = format!(
                "\n-- ===== NOT WRITTEN: {} rows hold a value the {} dialect cannot represent =====\n\
                 -- The statements above leave them as they are: converge them by hand.\n",
                self.summary.unrepresentable,
                self.d().name()
            );
            out.push((banner, skipped));
        }
        Ok(out)
    }

    /// Redrive's part 2, if any rows are extra on the member: its banner and the file.
    fn member_section(&mut self) -> Result<Option<(String, std::fs::File)>, ScriptError> {
        let Some(mut member) = self.member.take() else {
            return Ok(None);
        };
        if member.stream_position()? == 0 {
            return Ok(None);
        }
        member.rewind()?;
        let banner = format!(
            "\n-- ===== Part 2: for the MEMBER (database {}, table {}), not the hub =====\n\
             -- WARNING: {} rows exist on the member and not on the hub. Check them before deleting:\n\
             -- they may be writes the member made that never reached the hub. To delete them, run\n\
             -- these statements ON THE MEMBER (remove the leading \"-- \").\n",
            self.subscriber, self.cmp.subscriber.table, self.summary.extra
        );
        Ok(Some((banner, member)))
    }

    /// What follows the last change, in order: the last statements, the rows left out,
    /// the sections spilled to disk, the closing counts. In pieces, so that a section of
    /// millions of rows never sits in memory whole.
    pub fn end(&mut self) -> Result<End, ScriptError> {
        let mut parts = vec![
            Part::Text(self.finish()),
            Part::Text(self.in_flight_section()),
        ];
        for (banner, file) in self.sections()? {
            parts.push(Part::Text(banner));
            parts.push(Part::File(std::io::BufReader::new(file)));
        }
        parts.push(Part::Text(self.trailer()));
        parts.reverse();
        Ok(End { parts })
    }

    fn trailer(&self) -> String {
        let s = &self.summary;
        format!(
            "\n-- driftwatch: {} missing, {} extra, {} changed; {} statements.\n",
            s.missing, s.extra, s.changed, s.statements
        )
    }
}

/// The end of a script, piece by piece (see [`Writer::end`]).
pub struct End {
    /// In reverse order, the next on top.
    parts: Vec<Part>,
}

enum Part {
    Text(String),
    File(std::io::BufReader<std::fs::File>),
}

/// A spilled section is sent in pieces of about this size.
const PIECE_BYTES: usize = 64 * 1024;

impl Iterator for End {
    type Item = std::io::Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.parts.last_mut()? {
                Part::Text(_) => {
                    let Some(Part::Text(text)) = self.parts.pop() else {
                        unreachable!("the top part is text")
                    };
                    if !text.is_empty() {
                        return Some(Ok(text));
                    }
                }
                Part::File(file) => {
                    let mut piece = String::new();
                    while piece.len() < PIECE_BYTES {
                        match std::io::BufRead::read_line(file, &mut piece) {
                            Ok(0) => break,
                            Ok(_) => {}
                            Err(e) => return Some(Err(e)),
                        }
                    }
                    if piece.is_empty() {
                        self.parts.pop();
                    } else {
                        return Some(Ok(piece));
                    }
                }
            }
        }
    }
}
