//! `weir`: runs Flink SQL on an embedded Weir cluster, or on a cluster of
//! coordinator and worker processes.
//!
//! - `weir run script.sql` runs a script and exits when its jobs end.
//! - `weir sql` opens the interactive shell; `-f`, `-i` and `-e` run scripts
//!   and statements as Flink's SQL client does.
//! - With `--coordinator ADDR`, both submit their jobs to a cluster: INSERT
//!   jobs run on detached and their ids are printed, queries stream back.
//! - `weir coordinator` and `weir worker` start the cluster's processes;
//!   `weir jobs list|status|cancel` ask the coordinator about its jobs.
//! - `weir bench nexmark` runs the Nexmark queries as fresh `weir run`
//!   processes and reports their figures ([`bench`]).

mod bench;
mod cluster;
mod editor;
mod live_view;
mod output;
mod progress;
mod shell;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use weir_cluster::{ClusterClient, ClusterConfig, ClusterError, EmbeddedCluster};
use weir_engine::{Dispatcher, Session};

#[derive(Debug, Parser)]
#[command(
    name = "weir",
    version,
    about = "Flink SQL on a Rust/Arrow streaming engine"
)]
struct Cli {
    #[command(flatten)]
    options: ClusterOptions,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Cluster options, as Flink takes them: a configuration file and `-D`.
#[derive(Debug, Clone, Args)]
struct ClusterOptions {
    /// A configuration file of `key: value` lines (e.g. cluster.auth.token).
    #[arg(short = 'c', long = "config", global = true)]
    config: Option<PathBuf>,
    /// Sets an option, e.g. -D heartbeat.timeout=5s (wins over the file).
    #[arg(short = 'D', value_name = "KEY=VALUE", global = true)]
    dynamic: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a SQL script; exits when every job it started has ended.
    Run {
        /// Submit the jobs to this coordinator instead of running them here.
        #[arg(long)]
        coordinator: Option<String>,
        /// The script to run.
        script: PathBuf,
    },
    /// Open the interactive SQL shell.
    Sql {
        /// Submit the jobs to this coordinator instead of running them here.
        #[arg(long)]
        coordinator: Option<String>,
        /// Run this script instead of reading statements interactively.
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        /// Run this script first, then continue interactively.
        #[arg(short = 'i', long = "init")]
        init: Option<PathBuf>,
        /// Run these statements and exit.
        #[arg(short = 'e', long = "execute")]
        execute: Option<String>,
    },
    /// Start a coordinator: dispatcher, resource manager and job masters.
    Coordinator {
        /// The RPC address workers and clients connect to.
        #[arg(long, default_value = "127.0.0.1:6123")]
        listen: String,
        /// The REST API's address.
        #[arg(long, default_value = "127.0.0.1:8081")]
        rest_listen: String,
    },
    /// Start a worker that runs subtasks in its slots.
    Worker {
        /// The coordinator's RPC address.
        #[arg(long)]
        coordinator: String,
        /// How many slots the worker offers.
        #[arg(long, default_value_t = 1)]
        slots: u32,
        /// The address to serve other workers on (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// The address others reach this worker at, if not the listening one.
        #[arg(long)]
        advertise: Option<String>,
    },
    /// List, inspect and cancel a coordinator's jobs.
    Jobs {
        #[command(subcommand)]
        action: JobsAction,
    },
    /// Run a benchmark and report its figures.
    Bench {
        #[command(subcommand)]
        bench: BenchKind,
    },
    /// Take a savepoint of a running job (Flink's `flink savepoint`).
    Savepoint {
        /// The coordinator's RPC address.
        #[arg(long)]
        coordinator: String,
        job_id: String,
        /// Where the savepoint directory goes; the job's
        /// 'execution.checkpointing.savepoint-dir' if not given.
        dir: Option<String>,
        /// Stop the job once the savepoint is taken (Flink's `flink stop`).
        #[arg(long)]
        stop: bool,
    },
}

#[derive(Debug, Subcommand)]
enum BenchKind {
    /// Run Nexmark queries, each as a fresh `weir run` process, and print
    /// events/s, wall and CPU seconds and peak RSS per query (medians), as
    /// a table, as JSON and as an SVG chart.
    Nexmark {
        /// The queries: `all`, or names such as q0,q5,q7.
        #[arg(default_value = "all")]
        queries: String,
        /// Events per query ('events.num').
        #[arg(long, default_value_t = 10_000_000)]
        events: u64,
        /// 'parallelism.default' of every query.
        #[arg(long, default_value_t = 1)]
        parallelism: usize,
        /// Runs per query; the figures are medians.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Where results.json, events_per_second.svg and the runs' scripts
        /// and logs go.
        #[arg(long, default_value = "target/nexmark")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum JobsAction {
    /// Every job with its status.
    List {
        /// The coordinator's RPC address.
        #[arg(long)]
        coordinator: String,
    },
    /// One job's status.
    Status {
        /// The coordinator's RPC address.
        #[arg(long)]
        coordinator: String,
        job_id: String,
    },
    /// Cancel a job.
    Cancel {
        /// The coordinator's RPC address.
        #[arg(long)]
        coordinator: String,
        job_id: String,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("[ERROR] cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = match cluster::load_config(&cli.options) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("[ERROR] {e}");
            return ExitCode::FAILURE;
        }
    };
    let ok = match cli.command {
        Some(Command::Coordinator {
            listen,
            rest_listen,
        }) => cluster::coordinator(&runtime, config, &listen, &rest_listen),
        Some(Command::Worker {
            coordinator,
            slots,
            listen,
            advertise,
        }) => cluster::worker(&runtime, config, coordinator, slots, &listen, advertise),
        Some(Command::Jobs { action }) => cluster::jobs(&runtime, &config, action),
        // The bench starts `weir run` processes and waits for them here.
        Some(Command::Bench {
            bench:
                BenchKind::Nexmark {
                    queries,
                    events,
                    parallelism,
                    runs,
                    out,
                },
        }) => {
            let bench = bench::NexmarkBench {
                queries,
                events,
                parallelism,
                runs,
                out,
            };
            match bench.run() {
                Ok(ok) => ok,
                Err(e) => {
                    eprintln!("[ERROR] {e}");
                    false
                }
            }
        }
        Some(Command::Savepoint {
            coordinator,
            job_id,
            dir,
            stop,
        }) => cluster::savepoint(&runtime, &config, &coordinator, &job_id, dir, stop),
        Some(Command::Run {
            coordinator,
            script,
        }) => match session(&runtime, coordinator.as_deref(), &config) {
            Some(session) => shell::run_script_file(&runtime, session, &script, true),
            None => false,
        },
        Some(Command::Sql {
            coordinator,
            file,
            init,
            execute,
        }) => match session(&runtime, coordinator.as_deref(), &config) {
            None => false,
            Some(session) => match (file, execute) {
                (Some(file), _) => shell::run_script_file(&runtime, session, &file, true),
                (None, Some(sql)) => shell::run_script_text(&runtime, session, &sql, true),
                (None, None) => shell::interactive(&runtime, session, init.as_deref()),
            },
        },
        None => match session(&runtime, None, &config) {
            Some(session) => shell::interactive(&runtime, session, None),
            None => false,
        },
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A session on the embedded cluster, or on the coordinator when given.
fn session(
    runtime: &tokio::runtime::Runtime,
    coordinator: Option<&str>,
    config: &ClusterConfig,
) -> Option<Session> {
    let dispatcher: Result<Arc<dyn Dispatcher>, ClusterError> = match coordinator {
        None => runtime
            .block_on(EmbeddedCluster::start(config.clone()))
            .map(|cluster| Arc::new(cluster) as Arc<dyn Dispatcher>),
        Some(address) => {
            // The client's channel is created on the runtime it will run on.
            let _guard = runtime.enter();
            ClusterClient::new(address, config.token.as_deref())
                .map(|client| Arc::new(client) as Arc<dyn Dispatcher>)
        }
    };
    let session = match dispatcher {
        Ok(dispatcher) => Session::with_dispatcher(dispatcher),
        Err(e) => {
            eprintln!("[ERROR] {e}");
            return None;
        }
    };
    match session {
        Ok(session) => Some(session),
        Err(e) => {
            eprintln!("[ERROR] {e}");
            None
        }
    }
}
