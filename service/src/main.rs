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
    },
}

fn main() {
    let cli = Cli::parse();
    // `check` is one pass whose databases do the heavy work: one thread for the async
    // side (rayon still hashes in parallel) spares the cross-thread wake-ups of every
    // row message. The service serves HTTP and many tables at once: a thread per core.
    let runtime = match cli.command {
        Command::Check { .. } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Runtime::new(),
    }
    .expect("a tokio runtime starts");
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("driftwatch: {e:#}");
            2
        }
    };
    std::process::exit(code);
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Serve {
            config,
            listen,
            log_format,
        } => {
            telemetry::init(log_format);
            let mut config = driftwatch::config::load(&config)?;
            if let Some(l) = listen {
                config.server.listen = l.parse().with_context(|| {
                    format!("--listen {l:?} is not an address like 127.0.0.1:8477")
                })?;
            }
            serve(config).await
        }
        Command::Demo { dir, listen } => {
            telemetry::init(LogFormat::Text);
            let setup = driftwatch::demo::create(&dir, &listen)
                .with_context(|| format!("creating the demo in {}", dir.display()))?;
            let config = driftwatch::config::load(&setup.config_path)?;
            let base = format!("http://{}", config.server.listen);
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
            println!(
                "       curl -s -X POST {base}/api/v1/groups/demo/tables/order_lines/validate"
            );
            println!(
                "       driftwatch check --config {}\n",
                setup.config_path.display()
            );
            serve(config).await
        }
        Command::Check {
            config,
            group,
            table,
            json,
        } => {
            telemetry::init(LogFormat::Text);
            let config = driftwatch::config::load(&config)?;
            let report =
                driftwatch::check::check(config, group.as_deref(), table.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.human());
            }
            Ok(report.exit_code())
        }
    }
}

async fn serve(config: driftwatch::config::Config) -> anyhow::Result<i32> {
    let addr = config.server.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    driftwatch::serve(config, listener, driftwatch::shutdown_signal()).await?;
    Ok(0)
}
