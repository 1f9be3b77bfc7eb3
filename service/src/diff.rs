//! One table's diff against one subscriber, written as a convergence script: what the
//! CLI's `diff` and the HTTP script route both call. It looks the table up, proves the
//! differences through the runtime (re-checks what the service tracks, confirms from
//! scratch for a one-off command), runs a fresh comparison, and hands every row change to
//! `script`'s writer, which only renders text.
//!
//! It must not write to any database: its only output is text, on a channel or in a file
//! that becomes the output once whole.

use std::io::Write;
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use crate::compare::confirm::Verified;
use crate::compare::localize::RowChange;
use crate::compare::schema::Comparison;
use crate::compare::{PassError, TableTarget};
use crate::config::{GroupConfig, LookupError, TableConfig};
use crate::runtime::Runtime;
use crate::script::{self, Dialect, Mode, Options, ScriptError, Summary, Writer};
use crate::status::PairId;
use crate::table::{Family, TableQuery};

#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error(transparent)]
    Lookup(#[from] LookupError),
    #[error(transparent)]
    Compare(#[from] PassError),
    #[error(transparent)]
    Script(#[from] ScriptError),
    #[error("the receiver of the script went away")]
    Gone,
    #[error("{what}: {source}")]
    Output {
        what: String,
        source: std::io::Error,
    },
}

/// The subscriber a script is for: the one named, or the group's first.
pub fn subscriber_of(
    rt: &Runtime,
    group: &str,
    table: &str,
    subscriber: Option<&str>,
) -> Result<String, LookupError> {
    let (g, _) = rt.config.find(group, table)?;
    g.subscriber(subscriber).map(str::to_string)
}

/// The dialect of the database a script runs on: the subscriber's engine in fix mode, the
/// publisher's (the hub) in redrive mode.
pub fn default_dialect(rt: &Runtime, group: &str, subscriber: &str, mode: Mode) -> Dialect {
    let target = match (mode, rt.config.group(group)) {
        (Mode::Redrive, Ok(g)) => g.publisher.as_str(),
        _ => subscriber,
    };
    Dialect::of(rt.databases[target].family())
}

/// Runs a fresh diff of one table against one subscriber and writes its script to `out`
/// as it goes. Returns what the script holds, and (with `counts_in_header`) the header,
/// which the caller writes before the body.
pub async fn generate(
    rt: &Runtime,
    group: &str,
    table: &str,
    subscriber: &str,
    options: &Options,
    out: &mpsc::Sender<String>,
) -> Result<(Summary, Option<String>), DiffError> {
    let (g, t) = rt.config.find(group, table)?;
    let subscriber = g.subscriber(Some(subscriber))?;
    let (tx, mut rx) = mpsc::channel::<RowChange>(256);
    let target = TableTarget {
        group,
        config: t,
        publisher: &rt.databases[&g.publisher],
        subscribers: vec![&rt.databases[subscriber]],
        changes: Some(tx),
    };
    let comparison = target
        .compare_schemas()
        .await
        .remove(0)
        .map_err(DiffError::Compare)?;
    let written = as_written(
        &comparison,
        target.publisher.family(),
        rt.databases[subscriber].family(),
        options.dialect,
    );
    let mut writer = Writer::new(options, &written, &g.publisher, subscriber)?;
    if !options.counts_in_header {
        out.send(writer.header(None))
            .await
            .map_err(|_| DiffError::Gone)?;
    }
    let id = PairId::new(group, table, subscriber);
    let verified = prove(rt, g, t, &id, options).await;
    let ordered = keys_ordered(&comparison.publisher);
    let pass = async {
        let result = target.full_pass(vec![Ok(comparison)]).await.remove(0);
        drop(target); // closes the change channel
        result.map(|_| ()).map_err(DiffError::Compare)
    };
    let write = async {
        let mut buf = Vec::new();
        while let Some(change) = rx.recv().await {
            let publisher = change
                .publisher
                .as_ref()
                .map(|r| crate::value::row_hash(r, &mut buf));
            if !options.include_in_flight && !verified.covers(&change.key, publisher, ordered) {
                writer.hold(&change);
                continue;
            }
            let text = writer.change(&change)?;
            // A receiver that hung up ends the diff too (try_join drops the pass).
            if !text.is_empty() && out.send(text).await.is_err() {
                return Err(DiffError::Gone);
            }
        }
        Ok::<_, DiffError>(())
    };
    tokio::try_join!(pass, write)?;
    for piece in writer.end()? {
        let piece = piece.map_err(ScriptError::from)?;
        let _ = out.send(piece).await;
    }
    let header = options
        .counts_in_header
        .then(|| writer.header(Some(&writer.summary)));
    Ok((writer.summary, header))
}

/// The comparison with each side's types as the script's dialect writes them: the
/// script renders values for the database it runs on, not for the ones compared.
fn as_written(
    comparison: &Comparison,
    publisher: Family,
    subscriber: Family,
    dialect: Dialect,
) -> Comparison {
    let mut written = comparison.clone();
    script::types_for(&mut written.publisher, publisher, dialect);
    script::types_for(&mut written.subscriber, subscriber, dialect);
    written
}

/// Differences are proven before they are scripted, so that a script does not write rows
/// replication is still delivering: the CLI (a runtime of its own) confirms from scratch,
/// the service re-checks what it tracks, at a consistent point where it can.
async fn prove(
    rt: &Runtime,
    g: &GroupConfig,
    t: &TableConfig,
    id: &PairId,
    options: &Options,
) -> Verified {
    let passed = rt
        .status
        .with(id, |e| e.public.last_success.is_some())
        .unwrap_or(false);
    if !options.include_in_flight {
        if passed {
            rt.recheck(g, t).await;
        } else {
            rt.confirm(g, t).await;
        }
    }
    rt.status
        .with(id, |e| e.diff.verified())
        .unwrap_or_default()
}

/// Whether the value model orders these keys as the databases do (no collated text),
/// which lets a confirmed range vouch for rows past its cap.
fn keys_ordered(q: &TableQuery) -> bool {
    q.binary_collation
        || q.key.iter().all(|&i| {
            !matches!(
                q.columns[i].compare_as,
                crate::value::LogicalType::Text | crate::value::LogicalType::Json
            )
        })
}

/// Writes a table's script to standard output as it comes, or to `output`: there the body
/// goes to a file beside it, which becomes `output` (header first, with the counts) only
/// once the script is whole. A script that stops short ends with its error trailer on
/// standard output, and writes no file at all.
pub async fn write(
    rt: &Runtime,
    group: &str,
    table: &str,
    subscriber: &str,
    options: &Options,
    output: Option<&Path>,
) -> Result<Summary, DiffError> {
    let out_err = |what: &str| {
        let what = what.to_string();
        move |source| DiffError::Output { what, source }
    };
    let dir = output.map(|o| match o.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    });
    let mut spool = match &dir {
        Some(dir) => Some(
            tempfile::NamedTempFile::new_in(dir)
                .map_err(out_err("a temporary file beside the output"))?,
        ),
        None => None,
    };
    let options = Options {
        counts_in_header: output.is_some(),
        ..options.clone()
    };
    let (tx, mut rx) = mpsc::channel::<String>(16);
    let generate = async move { generate(rt, group, table, subscriber, &options, &tx).await };
    let written = async {
        let mut stdout = std::io::stdout().lock();
        while let Some(piece) = rx.recv().await {
            match spool.as_mut() {
                Some(f) => f.write_all(piece.as_bytes())?,
                None => stdout.write_all(piece.as_bytes())?,
            }
        }
        stdout.flush()
    };
    let (generated, written) = tokio::join!(generate, written);
    written.map_err(out_err("writing the script"))?;
    let stdout_trailer = |why: &str| {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(script::error_trailer(why).as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(out_err("writing the script"))
    };
    let (summary, header) = match generated {
        Ok(done) => done,
        Err(e) => {
            // Standard output already holds part of the script: end it as the HTTP
            // endpoint does, so that it cannot be taken for a whole one.
            if spool.is_none() {
                stdout_trailer(&e.to_string())?;
            }
            return Err(e);
        }
    };
    let incomplete = summary.incomplete();
    match (output, dir, spool) {
        (Some(output), Some(dir), Some(mut spool)) => {
            let what = format!("writing {}", output.display());
            let mut file = tempfile::NamedTempFile::new_in(dir).map_err(out_err(&what))?;
            file.write_all(header.unwrap_or_default().as_bytes())
                .and_then(|()| spool.flush())
                .and_then(|()| std::io::copy(&mut spool.reopen()?, &mut file).map(drop))
                .and_then(|()| match &incomplete {
                    Some(why) => file.write_all(script::error_trailer(why).as_bytes()),
                    None => Ok(()),
                })
                .map_err(out_err(&what))?;
            file.persist(output).map_err(|e| DiffError::Output {
                what,
                source: e.error,
            })?;
        }
        _ => {
            if let Some(why) = &incomplete {
                stdout_trailer(why)?;
            }
        }
    }
    Ok(summary)
}
