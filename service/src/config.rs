//! The TOML config, read into a validated topology: databases, groups, tables.
//!
//! Every error names the file, the line and the key at fault. This module resolves
//! secrets (password_env, password_file, api_token_file) but must not connect anywhere:
//! whether a database answers is the engines' business, at run time.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::table::TableRef;

/// A config error: the file, and the line and key at fault (`line` 0 and an empty `key`
/// when the error is about the whole file, like a file that does not exist).
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// How chunk digests are computed for a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Pushdown between engines of one family, streamed across families.
    #[default]
    Auto,
    /// The database hashes; only digests travel.
    Pushdown,
    /// Rows travel and are hashed here; works across engines.
    Streamed,
}

/// How temporal columns whose two sides hold different fractional-second precisions
/// (datetime2(7) against timestamp(6)) are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TemporalPrecision {
    /// Not at all: the precision loss is reported as schema drift.
    #[default]
    Exact,
    /// At the coarser precision, the finer side's values rounded (a half to the later time).
    Round,
    /// At the coarser precision, the finer side's values truncated.
    Truncate,
}

/// Where a subscriber's applied replication position is read, so that rechecks confirm
/// at a consistent point (see `crate::replication`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Replication {
    /// The one subscription or GTID replication the subscriber shows, else none.
    #[default]
    Auto,
    /// None: confirmation rests on `confirm_after` alone.
    Off,
    /// PostgreSQL logical replication through this slot on the publisher.
    PostgresSlot(String),
    /// MySQL or MariaDB GTID replication.
    Gtid,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub server: ServerConfig,
    pub databases: BTreeMap<String, DatabaseConfig>,
    pub groups: Vec<GroupConfig>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub api_token: Option<String>,
    /// Script requests served at once; the next gets 429.
    pub max_concurrent_scripts: usize,
    /// How long one script request may take.
    pub script_time_limit: Duration,
    /// Statements per transaction in a fix script.
    pub script_batch_statements: usize,
    /// Keys per no-op UPDATE in a redrive script.
    pub redrive_batch_keys: usize,
    /// Where the service keeps each table's differences across restarts (none: memory).
    pub state_dir: Option<PathBuf>,
    /// The Grafana dashboard a table links to from the status page (http or https).
    pub grafana_url: Option<String>,
    /// A request's head must arrive within this, counted from the connection's opening
    /// or from the end of the previous response (so it also ends idle connections).
    pub header_read_timeout: Duration,
    /// Connections served at once; further ones wait to be accepted.
    pub max_connections: usize,
}

#[derive(Clone)]
pub struct DatabaseConfig {
    pub url: String,
    pub password: Option<String>,
    pub max_concurrent_queries: usize,
    pub max_rows_per_second: u64,
    /// The server-side limit on one statement; a safety net for a runaway query.
    pub statement_timeout: Duration,
    /// As a subscriber: where its applied replication position is read.
    pub replication: Replication,
}

impl std::fmt::Debug for DatabaseConfig {
    // Never print the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("max_concurrent_queries", &self.max_concurrent_queries)
            .field("max_rows_per_second", &self.max_rows_per_second)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub name: String,
    pub publisher: String,
    pub subscribers: Vec<String>,
    pub tables: Vec<TableConfig>,
}

#[derive(Debug, Clone)]
pub struct TableConfig {
    pub name: String,
    /// The table on the publisher (`name`) and on the subscribers (`subscriber_name`,
    /// or `name`), parsed once here rather than on every pass.
    pub publisher_table: TableRef,
    pub subscriber_table: TableRef,
    pub key: Option<Vec<String>>,
    pub exclude_columns: Vec<String>,
    pub filter: Option<String>,
    pub time_column: Option<String>,
    pub strategy: Strategy,
    pub temporal_precision: TemporalPrecision,
    pub interval: Duration,
    pub chunk_rows: u64,
    pub confirm_after: Duration,
    pub target_query_time: Duration,
    pub max_diff_rows: usize,
}

/// A group, table or subscriber that a request or a command line names and the config
/// lacks: the one wording of each, wherever the name came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("no group {0:?} in the config")]
    Group(String),
    #[error("no table {table:?} in group {group:?}")]
    Table { group: String, table: String },
    #[error("{subscriber:?} is not a subscriber of group {group:?}")]
    Subscriber { group: String, subscriber: String },
}

impl GroupConfig {
    pub fn table(&self, name: &str) -> Option<&TableConfig> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// The subscriber named, or the group's first when none is.
    pub fn subscriber<'a>(&'a self, name: Option<&str>) -> Result<&'a str, LookupError> {
        match name {
            None => Ok(&self.subscribers[0]),
            Some(s) => self
                .subscribers
                .iter()
                .find(|x| *x == s)
                .map(String::as_str)
                .ok_or_else(|| LookupError::Subscriber {
                    group: self.name.clone(),
                    subscriber: s.into(),
                }),
        }
    }
}

impl Config {
    pub fn group(&self, name: &str) -> Result<&GroupConfig, LookupError> {
        self.groups
            .iter()
            .find(|g| g.name == name)
            .ok_or_else(|| LookupError::Group(name.into()))
    }

    /// The one lookup of a table by the names a request or a command line gives.
    pub fn find(
        &self,
        group: &str,
        table: &str,
    ) -> Result<(&GroupConfig, &TableConfig), LookupError> {
        let g = self.group(group)?;
        let t = g.table(table).ok_or_else(|| LookupError::Table {
            group: group.into(),
            table: table.into(),
        })?;
        Ok((g, t))
    }
}

// ---- the file's shape -------------------------------------------------------------

// Every value is `Spanned`, so that an error points at its key's own line. (serde cannot
// flatten `Spanned` fields, so the tuning keys a table shares with [defaults] are listed
// in both structs by one macro, and `deny_unknown_fields` names the keys valid in each.)

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    databases: BTreeMap<String, Spanned<RawDatabase>>,
    #[serde(default)]
    groups: Vec<Spanned<RawGroup>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<Spanned<String>>,
    api_token_file: Option<Spanned<String>>,
    max_concurrent_scripts: Option<Spanned<usize>>,
    script_time_limit: Option<Spanned<String>>,
    script_batch_statements: Option<Spanned<usize>>,
    redrive_batch_keys: Option<Spanned<usize>>,
    state_dir: Option<Spanned<String>>,
    grafana_url: Option<Spanned<String>>,
    header_read_timeout: Option<Spanned<String>>,
    max_connections: Option<Spanned<usize>>,
}

/// A struct of the table settings that [defaults] sets for every table and a table may
/// override, beside the fields given.
macro_rules! with_table_tuning {
    ($(#[$m:meta])* struct $name:ident { $($(#[$fm:meta])* $field:ident: $ty:ty,)* }) => {
        $(#[$m])*
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $name {
            $($(#[$fm])* $field: $ty,)*
            interval: Option<Spanned<String>>,
            chunk_rows: Option<Spanned<u64>>,
            confirm_after: Option<Spanned<String>>,
            target_query_time: Option<Spanned<String>>,
            max_diff_rows: Option<Spanned<usize>>,
            strategy: Option<Spanned<Strategy>>,
            temporal_precision: Option<Spanned<TemporalPrecision>>,
        }
    };
}

with_table_tuning! {
    /// [defaults]: the table settings, and the database limits every database inherits.
    #[derive(Default)]
    struct RawDefaults {
        max_rows_per_second: Option<Spanned<u64>>,
        max_concurrent_queries: Option<Spanned<usize>>,
        statement_timeout: Option<Spanned<String>>,
    }
}

with_table_tuning! {
    struct RawTable {
        name: Spanned<String>,
        subscriber_name: Option<Spanned<String>>,
        key: Option<Spanned<Vec<String>>>,
        #[serde(default)]
        exclude_columns: Vec<String>,
        filter: Option<Spanned<String>>,
        time_column: Option<Spanned<String>>,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: Spanned<String>,
    password_env: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
    max_rows_per_second: Option<Spanned<u64>>,
    max_concurrent_queries: Option<Spanned<usize>>,
    statement_timeout: Option<Spanned<String>>,
    replication: Option<Spanned<String>>,
    replication_slot: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: Spanned<String>,
    publisher: Spanned<String>,
    subscribers: Vec<Spanned<String>>,
    #[serde(default)]
    tables: Vec<Spanned<RawTable>>,
}

/// A setting as it applies: the table's (or database's) own, else [defaults]', with the
/// span and key of where it was set, so that a bad value is blamed where it is written.
struct Setting<'a, T> {
    value: &'a T,
    span: Range<usize>,
    key: String,
}

/// A setting that needs no check: the table's own, else [defaults]'.
fn plain<T: Copy>(own: &Option<Spanned<T>>, default: &Option<Spanned<T>>) -> Option<T> {
    own.as_ref().or(default.as_ref()).map(|v| *v.get_ref())
}

fn setting<'a, T>(
    own: &'a Option<Spanned<T>>,
    own_key: impl FnOnce() -> String,
    default: &'a Option<Spanned<T>>,
    name: &str,
) -> Option<Setting<'a, T>> {
    match (own, default) {
        (Some(v), _) => Some(Setting {
            value: v.get_ref(),
            span: v.span(),
            key: own_key(),
        }),
        (None, Some(v)) => Some(Setting {
            value: v.get_ref(),
            span: v.span(),
            key: format!("defaults.{name}"),
        }),
        (None, None) => None,
    }
}

// ---- loading -------------------------------------------------------------------------

struct Source<'a> {
    file: String,
    text: &'a str,
}

impl Source<'_> {
    fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    }

    fn err(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: self.line_of(span.start),
            key: key.into(),
            message: message.into(),
        }
    }

    fn duration(&self, v: &str, span: Range<usize>, key: &str) -> Result<Duration, ConfigError> {
        humantime::parse_duration(v).map_err(|e| {
            self.err(
                span,
                key,
                format!("{v:?} is not a duration like \"500ms\", \"2m\" or \"1h\": {e}"),
            )
        })
    }
}

pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        line: 0,
        key: String::new(),
        message: match e.kind() {
            std::io::ErrorKind::NotFound => "the config file does not exist".to_string(),
            _ => format!("cannot read the config file: {e}"),
        },
    })?;
    parse(&text, path)
}

pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let src = Source {
        file: path.display().to_string(),
        text,
    };
    let raw: RawConfig = {
        let de =
            toml::Deserializer::parse(text).map_err(|e| toml_error(&src, &e, String::new()))?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            // `Spanned` shows up in serde's path as a private field: leave it out.
            let key = e
                .path()
                .to_string()
                .replace(".$__serde_spanned_private_value", "")
                .replace("$__serde_spanned_private_value", "");
            let mut err = toml_error(&src, e.inner(), key);
            let limit = [
                "max_rows_per_second",
                "max_concurrent_queries",
                "statement_timeout",
            ]
            .iter()
            .any(|l| err.key.ends_with(&format!("].{l}")));
            if limit && err.key.contains(".tables[") {
                err.message
                    .push_str(" (database limits are set per database or in [defaults])");
            }
            err
        })?
    };
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    validate(&src, raw, &base_dir)
}

fn toml_error(src: &Source, e: &toml::de::Error, key: String) -> ConfigError {
    let line = e.span().map(|s| src.line_of(s.start)).unwrap_or(0);
    let key = if key == "." { String::new() } else { key };
    ConfigError {
        file: src.file.clone(),
        line,
        key,
        message: e.message().trim().to_string(),
    }
}

fn read_secret(
    src: &Source,
    base_dir: &Path,
    v: &Spanned<String>,
    key: &str,
) -> Result<String, ConfigError> {
    let p = base_dir.join(v.get_ref());
    std::fs::read_to_string(&p)
        .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
        .map_err(|e| src.err(v.span(), key, format!("cannot read {}: {e}", p.display())))
}

/// Turns the file's shape into the topology, in the order its errors are reported: the
/// server's address, token and dashboard link, the databases, the groups, then the
/// server's limits.
fn validate(src: &Source, raw: RawConfig, base_dir: &Path) -> Result<Config, ConfigError> {
    let access = server_access(src, &raw.server, base_dir)?;
    let mut databases = BTreeMap::new();
    for (name, db) in &raw.databases {
        databases.insert(
            name.clone(),
            database(src, name, db.get_ref(), &raw.defaults, base_dir)?,
        );
    }
    let groups = groups(src, &raw.groups, &raw.defaults, &databases)?;
    Ok(Config {
        file: PathBuf::from(&src.file),
        server: server_limits(src, &raw.server, base_dir, access)?,
        databases,
        groups,
    })
}

/// The server settings checked before anything else, so that a bad address or an
/// unreadable token is the first error reported.
struct ServerAccess {
    listen: SocketAddr,
    api_token: Option<String>,
    grafana_url: Option<String>,
}

/// Who may reach the server and where it links to: checked first, as they always were.
fn server_access(
    src: &Source,
    server: &RawServer,
    base_dir: &Path,
) -> Result<ServerAccess, ConfigError> {
    let listen = match &server.listen {
        Some(l) => l.get_ref().parse().map_err(|e| {
            src.err(
                l.span(),
                "server.listen",
                format!(
                    "{:?} is not an address like 127.0.0.1:8477: {e}",
                    l.get_ref()
                ),
            )
        })?,
        None => SocketAddr::from(([127, 0, 0, 1], 8477)),
    };
    let api_token = match &server.api_token_file {
        Some(f) => {
            let token = read_secret(src, base_dir, f, "server.api_token_file")?;
            if token.is_empty() {
                return Err(src.err(f.span(), "server.api_token_file", "the token file is empty"));
            }
            Some(token)
        }
        None => None,
    };
    Ok(ServerAccess {
        listen,
        api_token,
        grafana_url: grafana_url(src, server)?,
    })
}

/// The status page links to Grafana from a browser: only an http(s) URL makes a link.
fn grafana_url(src: &Source, server: &RawServer) -> Result<Option<String>, ConfigError> {
    match &server.grafana_url {
        Some(u) => match url::Url::parse(u.get_ref()) {
            Ok(parsed) if ["http", "https"].contains(&parsed.scheme()) => {
                Ok(Some(u.get_ref().clone()))
            }
            Ok(_) => Err(src.err(
                u.span(),
                "server.grafana_url",
                "must be an http:// or https:// URL",
            )),
            Err(e) => Err(src.err(
                u.span(),
                "server.grafana_url",
                format!("{:?} is not a URL: {e}", u.get_ref()),
            )),
        },
        None => Ok(None),
    }
}

/// The server's limits and timeouts, checked after the groups (their errors come last).
fn server_limits(
    src: &Source,
    server: &RawServer,
    base_dir: &Path,
    access: ServerAccess,
) -> Result<ServerConfig, ConfigError> {
    Ok(ServerConfig {
        listen: access.listen,
        api_token: access.api_token,
        max_concurrent_scripts: positive(
            src,
            &server.max_concurrent_scripts,
            "server.max_concurrent_scripts",
            2,
        )?,
        script_time_limit: match &server.script_time_limit {
            Some(v) => src.duration(v.get_ref(), v.span(), "server.script_time_limit")?,
            None => Duration::from_secs(600),
        },
        script_batch_statements: positive(
            src,
            &server.script_batch_statements,
            "server.script_batch_statements",
            100,
        )?,
        redrive_batch_keys: positive(
            src,
            &server.redrive_batch_keys,
            "server.redrive_batch_keys",
            1000,
        )?,
        state_dir: server
            .state_dir
            .as_ref()
            .map(|d| base_dir.join(d.get_ref())),
        grafana_url: access.grafana_url,
        header_read_timeout: match &server.header_read_timeout {
            Some(v) => {
                let key = "server.header_read_timeout";
                match src.duration(v.get_ref(), v.span(), key)? {
                    d if d.is_zero() => return Err(src.err(v.span(), key, "must be more than 0s")),
                    d => d,
                }
            }
            None => Duration::from_secs(10),
        },
        max_connections: positive(src, &server.max_connections, "server.max_connections", 256)?,
    })
}

/// One database: its URL and secret, its limits (its own, else [defaults]') and where its
/// replication position is read.
fn database(
    src: &Source,
    name: &str,
    d: &RawDatabase,
    defaults: &RawDefaults,
    base_dir: &Path,
) -> Result<DatabaseConfig, ConfigError> {
    let key = |k: &str| format!("databases.{name}.{k}");
    let url = d.url.get_ref().trim().to_string();
    if url_has_password(&url) {
        return Err(src.err(
            d.url.span(),
            key("url"),
            format!(
                "the URL of database {name:?} carries a password: set password_env or \
                 password_file instead (a URL is printed in logs and errors)"
            ),
        ));
    }
    let password = password(src, name, d, base_dir)?;
    let max_concurrent_queries = match setting(
        &d.max_concurrent_queries,
        || key("max_concurrent_queries"),
        &defaults.max_concurrent_queries,
        "max_concurrent_queries",
    ) {
        Some(s) if *s.value == 0 => return Err(src.err(s.span, s.key, "must be at least 1")),
        Some(s) => *s.value,
        None => 4,
    };
    let replication = replication(src, name, d)?;
    let statement_timeout = match setting(
        &d.statement_timeout,
        || key("statement_timeout"),
        &defaults.statement_timeout,
        "statement_timeout",
    ) {
        Some(s) => src.duration(s.value, s.span, &s.key)?,
        None => Duration::from_secs(300),
    };
    let max_rows_per_second = setting(
        &d.max_rows_per_second,
        || key("max_rows_per_second"),
        &defaults.max_rows_per_second,
        "max_rows_per_second",
    )
    .map_or(0, |s| *s.value);
    Ok(DatabaseConfig {
        url,
        password,
        replication,
        max_concurrent_queries,
        max_rows_per_second,
        statement_timeout,
    })
}

/// A password comes from one place only, so that which one applies is never a guess.
fn password(
    src: &Source,
    name: &str,
    d: &RawDatabase,
    base_dir: &Path,
) -> Result<Option<String>, ConfigError> {
    let key = |k: &str| format!("databases.{name}.{k}");
    match (&d.password_env, &d.password_file) {
        (Some(_), Some(f)) => Err(src.err(
            f.span(),
            key("password_file"),
            "set password_env or password_file, not both",
        )),
        (Some(env), None) => Ok(Some(std::env::var(env.get_ref()).map_err(|_| {
            src.err(
                env.span(),
                key("password_env"),
                format!("the environment variable {} is not set", env.get_ref()),
            )
        })?)),
        (None, Some(f)) => Ok(Some(read_secret(src, base_dir, f, &key("password_file"))?)),
        (None, None) => Ok(None),
    }
}

/// replication and replication_slot together say where a subscriber's position is read:
/// a slot implies PostgreSQL, so the two must agree.
fn replication(src: &Source, name: &str, d: &RawDatabase) -> Result<Replication, ConfigError> {
    let key = |k: &str| format!("databases.{name}.{k}");
    Ok(match (&d.replication, &d.replication_slot) {
        (_, Some(slot)) if slot.get_ref().trim().is_empty() => {
            return Err(src.err(slot.span(), key("replication_slot"), "a slot name cannot be empty"))
        }
        (None, Some(slot)) => Replication::PostgresSlot(slot.get_ref().trim().to_string()),
        (Some(r), Some(_)) if r.get_ref() != "postgres" => {
            return Err(src.err(
                r.span(),
                key("replication"),
                "replication_slot names a PostgreSQL slot: leave replication out or set it to \"postgres\"",
            ))
        }
        (Some(_), Some(slot)) => Replication::PostgresSlot(slot.get_ref().trim().to_string()),
        (Some(r), None) => match r.get_ref().as_str() {
            "auto" => Replication::Auto,
            "off" => Replication::Off,
            "gtid" => Replication::Gtid,
            other => {
                return Err(src.err(
                    r.span(),
                    key("replication"),
                    format!("{other:?} is not one of \"auto\", \"off\", \"gtid\" (or set replication_slot for PostgreSQL)"),
                ))
            }
        },
        (None, None) => Replication::Auto,
    })
}

/// The groups, each named once: a name is how requests, URLs and metrics find a group.
fn groups(
    src: &Source,
    raw: &[Spanned<RawGroup>],
    defaults: &RawDefaults,
    databases: &BTreeMap<String, DatabaseConfig>,
) -> Result<Vec<GroupConfig>, ConfigError> {
    let mut groups = Vec::new();
    let mut group_names = HashSet::new();
    for (gi, g) in raw.iter().enumerate() {
        let gr = g.get_ref();
        let gkey = |k: &str| format!("groups[{gi}].{k}");
        let name = gr.name.get_ref().clone();
        if !group_names.insert(name.clone()) {
            return Err(src.err(
                gr.name.span(),
                gkey("name"),
                format!("group {name:?} is defined twice"),
            ));
        }
        check_label(src, &gr.name, &gkey("name"))?;
        let (publisher, subscribers) = members(src, gi, g, databases)?;
        let mut tables = Vec::new();
        for (ti, t) in gr.tables.iter().enumerate() {
            let table = table(src, gi, ti, t.get_ref(), defaults, &name, &tables)?;
            tables.push(table);
        }
        groups.push(GroupConfig {
            name,
            publisher,
            subscribers,
            tables,
        });
    }
    Ok(groups)
}

/// A group's publisher and subscribers: defined databases, each once, none its own
/// subscriber, at least one subscriber (a group compares pairs).
fn members(
    src: &Source,
    gi: usize,
    g: &Spanned<RawGroup>,
    databases: &BTreeMap<String, DatabaseConfig>,
) -> Result<(String, Vec<String>), ConfigError> {
    let gr = g.get_ref();
    let gkey = |k: &str| format!("groups[{gi}].{k}");
    let known = |v: &Spanned<String>, key: String| {
        if databases.contains_key(v.get_ref()) {
            Ok(v.get_ref().clone())
        } else {
            let names: Vec<&str> = databases.keys().map(String::as_str).collect();
            Err(src.err(
                v.span(),
                key,
                format!(
                    "unknown database {:?} (defined: {})",
                    v.get_ref(),
                    names.join(", ")
                ),
            ))
        }
    };
    let publisher = known(&gr.publisher, gkey("publisher"))?;
    let mut subscribers = Vec::new();
    for (si, s) in gr.subscribers.iter().enumerate() {
        let sub = known(s, gkey(&format!("subscribers[{si}]")))?;
        if sub == publisher {
            return Err(src.err(
                s.span(),
                gkey(&format!("subscribers[{si}]")),
                "a database cannot subscribe to itself",
            ));
        }
        if subscribers.contains(&sub) {
            return Err(src.err(
                s.span(),
                gkey(&format!("subscribers[{si}]")),
                format!("{sub:?} is listed twice"),
            ));
        }
        subscribers.push(sub);
    }
    if subscribers.is_empty() {
        return Err(src.err(
            g.span(),
            gkey("subscribers"),
            "a group needs at least one subscriber",
        ));
    }
    Ok((publisher, subscribers))
}

/// One table of a group: named once in it, its tuning (its own, else [defaults]') within
/// the bounds a pass can work with, its key and filter as given.
fn table(
    src: &Source,
    gi: usize,
    ti: usize,
    tr: &RawTable,
    defaults: &RawDefaults,
    group: &str,
    earlier: &[TableConfig],
) -> Result<TableConfig, ConfigError> {
    let tkey = |k: &str| format!("groups[{gi}].tables[{ti}].{k}");
    let tname = tr.name.get_ref().trim().to_string();
    if tname.is_empty() {
        return Err(src.err(tr.name.span(), tkey("name"), "a table name cannot be empty"));
    }
    if earlier.iter().any(|x| x.name == tname) {
        return Err(src.err(
            tr.name.span(),
            tkey("name"),
            format!("table {tname:?} is listed twice in group {group:?}"),
        ));
    }
    let dur = |own: &Option<Spanned<String>>,
               def: &Option<Spanned<String>>,
               k: &str,
               fallback: Duration| {
        match setting(own, || tkey(k), def, k) {
            Some(s) => src
                .duration(s.value, s.span.clone(), &s.key)
                .map(|d| (d, Some((s.span, s.key)))),
            None => Ok((fallback, None)),
        }
    };
    let (interval, set) = dur(
        &tr.interval,
        &defaults.interval,
        "interval",
        Duration::from_secs(300),
    )?;
    if let Some((span, key)) = set.filter(|_| interval < Duration::from_secs(1)) {
        return Err(src.err(span, key, "must be at least 1s"));
    }
    let chunk_rows = match setting(
        &tr.chunk_rows,
        || tkey("chunk_rows"),
        &defaults.chunk_rows,
        "chunk_rows",
    ) {
        Some(s) if *s.value < 100 => return Err(src.err(s.span, s.key, "must be at least 100")),
        Some(s) => *s.value,
        None => 10_000,
    };
    if let Some(k) = &tr.key {
        if k.get_ref().is_empty() {
            return Err(src.err(k.span(), tkey("key"), "a key needs at least one column"));
        }
    }
    let subscriber_name = tr.subscriber_name.as_ref().map(|s| s.get_ref().as_str());
    Ok(TableConfig {
        publisher_table: TableRef::parse(&tname),
        subscriber_table: TableRef::parse(subscriber_name.unwrap_or(&tname)),
        name: tname,
        key: tr.key.as_ref().map(|k| k.get_ref().clone()),
        exclude_columns: tr.exclude_columns.clone(),
        filter: tr
            .filter
            .as_ref()
            .map(|f| f.get_ref().clone())
            .filter(|f| !f.trim().is_empty()),
        time_column: tr.time_column.as_ref().map(|c| c.get_ref().clone()),
        strategy: plain(&tr.strategy, &defaults.strategy).unwrap_or_default(),
        temporal_precision: plain(&tr.temporal_precision, &defaults.temporal_precision)
            .unwrap_or_default(),
        interval,
        chunk_rows,
        confirm_after: dur(
            &tr.confirm_after,
            &defaults.confirm_after,
            "confirm_after",
            Duration::from_secs(120),
        )?
        .0,
        target_query_time: dur(
            &tr.target_query_time,
            &defaults.target_query_time,
            "target_query_time",
            Duration::from_millis(500),
        )?
        .0,
        max_diff_rows: plain(&tr.max_diff_rows, &defaults.max_diff_rows).unwrap_or(100_000),
    })
}

fn positive(
    src: &Source,
    v: &Option<Spanned<usize>>,
    key: &str,
    default: usize,
) -> Result<usize, ConfigError> {
    match v {
        Some(n) if *n.get_ref() == 0 => Err(src.err(n.span(), key, "must be at least 1")),
        Some(n) => Ok(*n.get_ref()),
        None => Ok(default),
    }
}

/// Whether a database URL carries a password: `scheme://user:password@host/…`, or a
/// `password` parameter (PostgreSQL's URLs take one). Passwords come from password_env or
/// password_file only, so that no URL printed in a log or an error holds one.
fn url_has_password(url: &str) -> bool {
    let (rest, query) = match url.split_once('?') {
        Some((r, q)) => (r, q),
        None => (url, ""),
    };
    let authority = rest
        .split_once("://")
        .map(|(_, r)| r.split(['/', '#']).next().unwrap_or(""))
        .unwrap_or("");
    let in_userinfo = authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'));
    let in_query = query.split(['&', '#']).any(|p| {
        p.split('=')
            .next()
            .is_some_and(|k| k.trim().eq_ignore_ascii_case("password"))
    });
    in_userinfo || in_query
}

/// Group names travel in URLs and metric labels: keep them printable.
fn check_label(src: &Source, v: &Spanned<String>, key: &str) -> Result<(), ConfigError> {
    let s = v.get_ref();
    if s.is_empty() || s.chars().any(|c| c.is_control() || c == '/') {
        return Err(src.err(
            v.span(),
            key,
            format!("{s:?} is not a usable name (no '/', no control characters, not empty)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<Config, ConfigError> {
        parse(s, Path::new("/etc/driftwatch/test.toml"))
    }

    const GOOD: &str = r#"
[defaults]
interval = "1m"
confirm_after = "0s"

[databases.hub]
url = "postgres://postgres@127.0.0.1/a"
[databases.member]
url = "sqlite:///tmp/member.db"

[[groups]]
name = "sales"
publisher = "hub"
subscribers = ["member"]

[[groups.tables]]
name = "public.orders"
key = ["id"]
chunk_rows = 500
strategy = "streamed"
"#;

    #[test]
    fn a_good_config_loads_with_defaults_and_overrides() {
        let c = parse_str(GOOD).unwrap();
        let t = &c.groups[0].tables[0];
        assert_eq!(t.interval, Duration::from_secs(60));
        assert_eq!(t.chunk_rows, 500);
        assert_eq!(t.strategy, Strategy::Streamed);
        assert_eq!(t.confirm_after, Duration::ZERO);
        assert_eq!(c.server.listen.port(), 8477);
        assert_eq!(c.databases["hub"].max_concurrent_queries, 4);
        assert_eq!(t.temporal_precision, TemporalPrecision::Exact);
    }

    #[test]
    fn temporal_precision_is_set_in_defaults_or_per_table() {
        let in_defaults = GOOD.replace(
            "interval = \"1m\"",
            "interval = \"1m\"\ntemporal_precision = \"round\"",
        );
        let c = parse_str(&in_defaults).unwrap();
        assert_eq!(
            c.groups[0].tables[0].temporal_precision,
            TemporalPrecision::Round
        );
        let per_table = in_defaults.replace(
            "strategy = \"streamed\"",
            "temporal_precision = \"truncate\"",
        );
        let c = parse_str(&per_table).unwrap();
        assert_eq!(
            c.groups[0].tables[0].temporal_precision,
            TemporalPrecision::Truncate
        );
    }

    #[test]
    fn grafana_url_is_optional_and_must_be_http() {
        assert_eq!(parse_str(GOOD).unwrap().server.grafana_url, None);
        let url = "https://grafana.example/d/driftwatch-table/driftwatch-table";
        let with = format!("[server]\ngrafana_url = \"{url}\"\n{GOOD}");
        assert_eq!(
            parse_str(&with).unwrap().server.grafana_url.as_deref(),
            Some(url)
        );
        let e = parse_str(&with.replace("https://", "file://")).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "server.grafana_url"), "{e}");
        let e = parse_str(&with.replace(url, "grafana")).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "server.grafana_url"), "{e}");
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let bad = GOOD.replace("subscribers = [\"member\"]", "subscribers = [\"membr\"]");
        let e = parse_str(&bad).unwrap_err();
        assert_eq!(e.line, 14, "{e}");
        assert_eq!(e.key, "groups[0].subscribers[0]");
        assert!(e.to_string().starts_with("/etc/driftwatch/test.toml:14: groups[0].subscribers[0]: unknown database \"membr\""), "{e}");

        let e = parse_str(&GOOD.replace("chunk_rows = 500", "chunk_rows = \"many\"")).unwrap_err();
        assert_eq!(
            (e.line, e.key.as_str()),
            (19, "groups[0].tables[0].chunk_rows"),
            "{e}"
        );

        let e = parse_str(&GOOD.replace("interval = \"1m\"", "interval = \"soon\"")).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (3, "defaults.interval"), "{e}");

        let e = parse_str(&GOOD.replace("key = [\"id\"]", "kee = [\"id\"]")).unwrap_err();
        assert!(e.message.contains("kee"), "{e}");

        let e = parse_str(&GOOD.replace(
            "url = \"sqlite",
            "password_env = \"DRIFTWATCH_SURELY_UNSET\"\nurl = \"sqlite",
        ))
        .unwrap_err();
        assert_eq!(e.key, "databases.member.password_env", "{e}");
        assert!(e.message.contains("DRIFTWATCH_SURELY_UNSET"));

        let e = parse_str(&GOOD.replace(
            "strategy = \"streamed\"",
            "temporal_precision = \"nearest\"",
        ))
        .unwrap_err();
        assert_eq!(
            (e.line, e.key.as_str()),
            (20, "groups[0].tables[0].temporal_precision"),
            "{e}"
        );
        assert!(e.message.contains("`exact`, `round`, `truncate`"), "{e}");
        let e = parse_str(&GOOD.replace(
            "interval = \"1m\"",
            "interval = \"1m\"\ntemporal_precision = \"ceil\"",
        ))
        .unwrap_err();
        assert_eq!(
            (e.line, e.key.as_str()),
            (4, "defaults.temporal_precision"),
            "{e}"
        );

        let e = parse_str("[server]\nlisten = \"nowhere\"\n").unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "server.listen"));

        let e = parse_str("[[groups]]\nname = 'x'\n").unwrap_err();
        assert!(e.message.contains("missing field"), "{e}");
    }

    #[test]
    fn each_error_is_blamed_on_the_key_at_its_own_line() {
        // A bad duration in [defaults], on its own line, not the section's header.
        let e = parse_str(&GOOD.replace("confirm_after = \"0s\"", "confirm_after = \"soon\""))
            .unwrap_err();
        assert_eq!(
            (e.line, e.key.as_str()),
            (4, "defaults.confirm_after"),
            "{e}"
        );
        assert!(
            e.to_string()
                .starts_with("/etc/driftwatch/test.toml:4: defaults.confirm_after: \"soon\""),
            "{e}"
        );
        // A value [defaults] sets that no table overrides is the defaults' fault.
        let e = parse_str(&GOOD.replace("interval = \"1m\"", "interval = \"0s\"")).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (3, "defaults.interval"), "{e}");
        assert!(e.message.contains("at least 1s"), "{e}");
        // The same value set by the table is the table's, at its line.
        let e = parse_str(&GOOD.replace("chunk_rows = 500", "interval = \"0s\"")).unwrap_err();
        assert_eq!(
            (e.line, e.key.as_str()),
            (19, "groups[0].tables[0].interval"),
            "{e}"
        );
        let e = parse_str(&GOOD.replace("chunk_rows = 500", "chunk_rows = 5")).unwrap_err();
        assert_eq!(
            (e.line, e.key.as_str()),
            (19, "groups[0].tables[0].chunk_rows"),
            "{e}"
        );
        let e = parse_str(&GOOD.replace(
            "url = \"sqlite:///tmp/member.db\"",
            "url = \"sqlite:///tmp/member.db\"\nmax_concurrent_queries = 0",
        ))
        .unwrap_err();
        assert_eq!(
            (e.line, e.key.as_str()),
            (10, "databases.member.max_concurrent_queries"),
            "{e}"
        );
        let e = parse_str(&GOOD.replace(
            "confirm_after = \"0s\"",
            "confirm_after = \"0s\"\nstatement_timeout = \"later\"",
        ))
        .unwrap_err();
        assert_eq!(
            (e.line, e.key.as_str()),
            (5, "defaults.statement_timeout"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_key_is_named_with_the_keys_valid_at_its_place() {
        let e = parse_str(&GOOD.replace("key = [\"id\"]", "colums = [\"id\"]")).unwrap_err();
        assert_eq!(e.line, 18, "{e}");
        assert!(e.key.starts_with("groups[0].tables[0]"), "{e}");
        assert!(e.message.contains("`colums`"), "{e}");
        for valid in [
            "name",
            "key",
            "exclude_columns",
            "filter",
            "time_column",
            "chunk_rows",
        ] {
            assert!(e.message.contains(&format!("`{valid}`")), "{valid}: {e}");
        }
        // Database limits are not a table's: not offered there.
        assert!(!e.message.contains("max_rows_per_second"), "{e}");
        let e = parse_str(&GOOD.replace("interval = \"1m\"", "intervall = \"1m\"")).unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(
            e.message.contains("`intervall`") && e.message.contains("`max_rows_per_second`"),
            "{e}"
        );
        assert!(!e.message.contains("`exclude_columns`"), "{e}");
        let e =
            parse_str(&GOOD.replace("chunk_rows = 500", "max_rows_per_second = 5")).unwrap_err();
        assert_eq!(
            (e.line, e.key.as_str()),
            (19, "groups[0].tables[0].max_rows_per_second"),
            "{e}"
        );
        assert!(
            e.message.contains("set per database or in [defaults]"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_file_is_said_to_be_missing() {
        let e = load(Path::new("/nonexistent/driftwatch.toml")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/nonexistent/driftwatch.toml: the config file does not exist"
        );
    }

    #[test]
    fn a_password_in_a_database_url_is_refused_naming_the_database() {
        for url in [
            "postgres://validator:secret@127.0.0.1/a",
            "postgresql://validator:secret@127.0.0.1:5432/a?sslmode=require",
            "postgres://validator@127.0.0.1/a?sslmode=disable&password=secret",
            "mysql://validator:secret@127.0.0.1:3306/shop",
            "mysql://validator:@127.0.0.1:3306/shop",
            "mssql://validator:secret@sql2.example:1433/Sales?encrypt=true",
            "sqlserver://validator:secret@sql2.example/Sales",
        ] {
            let e = parse_str(&GOOD.replace("postgres://postgres@127.0.0.1/a", url)).unwrap_err();
            assert_eq!(
                (e.line, e.key.as_str()),
                (7, "databases.hub.url"),
                "{url}: {e}"
            );
            assert!(
                e.message.contains("\"hub\"") && e.message.contains("password_env"),
                "{url}: {e}"
            );
            assert!(!e.to_string().contains("secret"), "{url}: {e}");
        }
        for url in [
            "postgres://validator@127.0.0.1/a?sslmode=verify-full",
            "mysql://validator@127.0.0.1:3306/shop",
            "mssql://validator@sql2.example:1433/Sales?authentication=access_token",
            "sqlite:///var/lib/edge/a:b@c.db",
        ] {
            let c = parse_str(&GOOD.replace("postgres://postgres@127.0.0.1/a", url));
            assert!(c.is_ok(), "{url}: {:?}", c.err());
        }
    }
}
