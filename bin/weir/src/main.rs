//! `weir`: runs Flink SQL on the embedded Weir cluster.
//!
//! - `weir run script.sql` runs a script and exits when its jobs end.
//! - `weir sql` opens the interactive shell; `-f`, `-i` and `-e` run scripts
//!   and statements as Flink's SQL client does.

mod editor;
mod live_view;
mod output;
mod progress;
mod shell;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use weir_engine::Session;

#[derive(Debug, Parser)]
#[command(
    name = "weir",
    version,
    about = "Flink SQL on a Rust/Arrow streaming engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a SQL script; exits when every job it started has ended.
    Run {
        /// The script to run.
        script: PathBuf,
    },
    /// Open the interactive SQL shell.
    Sql {
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
    let session = match Session::new() {
        Ok(session) => session,
        Err(e) => {
            eprintln!("[ERROR] {e}");
            return ExitCode::FAILURE;
        }
    };
    let ok = match cli.command {
        Some(Command::Run { script }) => shell::run_script_file(&runtime, session, &script, true),
        Some(Command::Sql {
            file: Some(file), ..
        }) => shell::run_script_file(&runtime, session, &file, true),
        Some(Command::Sql {
            execute: Some(sql), ..
        }) => shell::run_script_text(&runtime, session, &sql, true),
        Some(Command::Sql { init, .. }) => shell::interactive(&runtime, session, init.as_deref()),
        None => shell::interactive(&runtime, session, None),
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
