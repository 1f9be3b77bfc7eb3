//! The driftwatch command line: a thin layer over the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use driftwatch::telemetry::{self, LogFormat};

#[derive(Parser)]
#[command(
    name = "driftwatch",
    version,
    about = "Continuous convergence validation of replicated tables"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate every configured table continuously and serve metrics, status and the HTML page.
    Serve {
        #[arg(long)]
        config: PathBuf,
        /// Overrides server.listen.
        #[arg(long)]
        listen: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        log_format: LogFormat,
    },
    /// Create an embedded SQLite publisher and subscriber with known drift, then serve them.
    Demo {
        #[arg(long, default_value = "driftwatch-demo")]
        dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8477")]
        listen: String,
    },
    /// Run one pass and exit: 0 converged, 1 divergent (confirmed), 2 error.
    Check {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        group: Option<String>,
        #[arg(long)]
        table: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Overrides every table's confirm_after (e.g. 10s): how long a difference must
        /// stand still before it is confirmed without replication positions.
        #[arg(long, value_parser = humantime::parse_duration)]
        confirm_after: Option<std::time::Duration>,
        #[arg(long, value_enum, default_value_t)]
        log_format: LogFormat,
    },
    /// Diff one table now and write the script that converges it. Exit: 0 no difference,
    /// 1 differences (scripted), 2 error.
    Diff {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        group: String,
        #[arg(long)]
        table: String,
        /// Default: the group's first subscriber.
        #[arg(long)]
        subscriber: Option<String>,
        /// tsql | postgres | mysql | sqlite (default: the engine the script runs on: the
        /// subscriber's in fix mode, the publisher's in redrive mode).
        #[arg(long)]
        dialect: Option<String>,
        /// fix (make the subscriber equal to the publisher) | redrive (Data Sync).
        #[arg(long, default_value = "fix")]
        mode: String,
        /// Plain statements, as tablediff writes them: no check that a row is unchanged.
        #[arg(long)]
        no_guards: bool,
        /// Statements per transaction (default: server.script_batch_statements).
        #[arg(long)]
        batch: Option<usize>,
        /// Write here (the header then carries the counts); default: standard output.
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
        /// Overrides every table's confirm_after (see check).
        #[arg(long, value_parser = humantime::parse_duration)]
        confirm_after: Option<std::time::Duration>,
        /// Script rows that are not verified too: in flight, or not re-checked yet.
        /// Inserting a row replication is about to deliver breaks replication.
        #[arg(long)]
        include_in_flight: bool,
        /// Leave out the rows with a value the dialect cannot hold, list them in the script,
        /// and exit 2 (default: stop at the first such row).
        #[arg(long)]
        skip_unrepresentable: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    // `check` is one pass whose databases do the heavy work: one thread for the async
    // side (rayon still hashes in parallel) spares the cross-thread wake-ups of every
    // row message. The service serves HTTP and many tables at once: a thread per core.
    let runtime = match cli.command {
        Command::Check { .. } | Command::Diff { .. } => {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        }
        _ => tokio::runtime::Runtime::new(),
    }
    .expect("a tokio runtime starts");
    let log_format = match &cli.command {
        Command::Serve { log_format, .. } | Command::Check { log_format, .. } => *log_format,
        _ => LogFormat::Text,
    };
    let telemetry = match telemetry::init(log_format) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("driftwatch: {e}");
            std::process::exit(2);
        }
    };
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("driftwatch: {e:#}");
            2
        }
    };
    telemetry.shutdown();
    std::process::exit(code);
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Serve { config, listen, .. } => {
            let mut config = driftwatch::config::load(&config)?;
            if let Some(l) = listen {
                config.server.listen = l.parse().with_context(|| {
                    format!("--listen {l:?} is not an address like 127.0.0.1:8477")
                })?;
            }
            serve(config).await
        }
        Command::Demo { dir, listen } => demo(dir, listen).await,
        Command::Check {
            config,
            group,
            table,
            json,
            confirm_after,
            ..
        } => {
            let mut config = driftwatch::config::load(&config)?;
            override_confirm_after(&mut config, confirm_after);
            let report =
                driftwatch::check::check(config, group.as_deref(), table.as_deref()).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&driftwatch::api::CheckReport::from(&report))?
                );
            } else {
                print!("{}", report.human());
            }
            Ok(report.exit_code())
        }
        Command::Diff {
            config,
            group,
            table,
            subscriber,
            dialect,
            mode,
            no_guards,
            batch,
            output,
            confirm_after,
            include_in_flight,
            skip_unrepresentable,
        } => {
            let mut config = driftwatch::config::load(&config)?;
            override_confirm_after(&mut config, confirm_after);
            diff(
                config,
                &group,
                &table,
                subscriber.as_deref(),
                dialect.as_deref(),
                &mode,
                !no_guards,
                include_in_flight,
                batch,
                output.as_deref(),
                skip_unrepresentable,
            )
            .await
        }
    }
}

/// The demo command apart from the others: it creates its own databases and config, and
/// shows a newcomer what to try before serving them.
async fn demo(dir: PathBuf, listen: String) -> anyhow::Result<i32> {
    // Bound before anything is printed: every URL shown below answers.
    let listener = tokio::net::TcpListener::bind(listen.as_str())
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
                "{listen} is already in use (another demo still running?); \
                 pick a free address with --listen, e.g. --listen 127.0.0.1:0 for any free port"
            ),
            _ => anyhow::Error::new(e).context(format!("cannot listen on {listen}")),
        })?;
    let addr = listener.local_addr()?;
    let setup = driftwatch::demo::create(&dir, &addr.to_string())
        .with_context(|| format!("creating the demo in {}", dir.display()))?;
    let config = driftwatch::config::load(&setup.config_path)?;
    let base = format!("http://{addr}");
    println!(
        "driftwatch demo: publisher {} and subscriber {}",
        setup.publisher_path.display(),
        setup.subscriber_path.display()
    );
    println!("config: {}\n", setup.config_path.display());
    println!("open   {base}/            the state of every table");
    println!("       {base}/metrics     Prometheus metrics");
    println!("try    curl -s {base}/metrics | grep '^driftwatch_table_divergent_rows'");
    println!("       curl -s {base}/api/v1/status");
    println!("       curl -s -X POST {base}/api/v1/groups/demo/tables/order_lines/validate");
    // Under `cargo run` no `driftwatch` is on the PATH: name this very binary.
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "driftwatch".into());
    let config_path = setup.config_path.display();
    // Into the demo's own directory, never wherever the newcomer happens to stand
    // (often the repository itself).
    let fix = setup.config_path.with_file_name("fix.sql");
    println!("       {exe} check --config {config_path}");
    println!(
        "       {exe} diff --config {config_path} --group demo --table order_lines -o {}\n",
        fix.display()
    );
    std::io::Write::flush(&mut std::io::stdout())?;
    serve_on(config, listener).await
}

fn override_confirm_after(
    config: &mut driftwatch::config::Config,
    confirm_after: Option<std::time::Duration>,
) {
    if let Some(d) = confirm_after {
        for t in config.groups.iter_mut().flat_map(|g| g.tables.iter_mut()) {
            t.confirm_after = d;
        }
    }
}

#[allow(clippy::too_many_arguments)] // the subcommand's flags, passed on as they are
async fn diff(
    config: driftwatch::config::Config,
    group: &str,
    table: &str,
    subscriber: Option<&str>,
    dialect: Option<&str>,
    mode: &str,
    guards: bool,
    include_in_flight: bool,
    batch: Option<usize>,
    output: Option<&std::path::Path>,
    skip_unrepresentable: bool,
) -> anyhow::Result<i32> {
    use driftwatch::diff;
    use driftwatch::script::{self, Dialect, Mode};
    let rt = driftwatch::runtime::Runtime::new(config)?;
    let subscriber = diff::subscriber_of(&rt, group, table, subscriber)?;
    let mode = Mode::parse(mode).with_context(|| format!("--mode {mode:?}: fix or redrive"))?;
    let dialect = match dialect {
        None => diff::default_dialect(&rt, group, &subscriber, mode),
        Some(d) => Dialect::parse(d)
            .with_context(|| format!("--dialect {d:?}: {}", Dialect::names(", ", " or ")))?,
    };
    let server = &rt.config.server;
    let options = script::Options {
        dialect,
        mode,
        guards,
        batch_statements: batch.unwrap_or(server.script_batch_statements).max(1),
        redrive_batch_keys: server.redrive_batch_keys,
        counts_in_header: output.is_some(),
        include_in_flight,
        skip_unrepresentable,
    };
    let summary = diff::write(&rt, group, table, &subscriber, &options, output).await?;
    let incomplete = summary.incomplete();
    eprintln!(
        "driftwatch: {group}/{table} → {subscriber}: {} missing, {} extra, {} changed ({} statements; {} rows in flight, not scripted)",
        summary.missing, summary.extra, summary.changed, summary.statements, summary.in_flight
    );
    if let Some(why) = incomplete {
        eprintln!("driftwatch: {why}");
        return Ok(2);
    }
    Ok(
        if summary.missing + summary.extra + summary.changed + summary.in_flight > 0 {
            1
        } else {
            0
        },
    )
}

async fn serve(config: driftwatch::config::Config) -> anyhow::Result<i32> {
    let addr = config.server.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    serve_on(config, listener).await
}

async fn serve_on(
    config: driftwatch::config::Config,
    listener: tokio::net::TcpListener,
) -> anyhow::Result<i32> {
    driftwatch::serve(config, listener, driftwatch::shutdown_signal()).await?;
    Ok(0)
}
