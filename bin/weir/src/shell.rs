//! Running statements for a person: scripts (`weir run`, `weir sql -f/-e`)
//! and the interactive shell. Results print as Flink's SQL client prints
//! them; errors print as `[ERROR]` with a caret under the position.
//!
//! Scripts always print query rows in tableau mode. The interactive shell on
//! a terminal follows 'sql-client.execution.result-mode': the table and
//! changelog modes open a full-screen live view ([`crate::live_view`]),
//! tableau prints rows as they arrive with a progress line under them. When
//! output is not a terminal everything is plain text, fit for pipes.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use rustyline::history::DefaultHistory;
use tokio::runtime::Runtime;
use weir_common::{ResultMode, RuntimeMode};
use weir_engine::{EngineError, QueryResult, Session, StatementResult};
use weir_sql::ParsedStatement;

use crate::editor::{ClientCommand, SqlHelper, statement_complete};
use crate::live_view::{self, ViewKind, ViewOutcome};
use crate::output::{TableauPrinter, print_table};
use crate::progress::{ProgressLine, REFRESH};

/// How query results are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    /// Scripts: tableau, with a progress line when on a terminal.
    Script,
    /// The interactive shell on a terminal: the session's result mode.
    Interactive,
}

fn on_terminal() -> bool {
    std::io::stdout().is_terminal() && std::io::stderr().is_terminal()
}

/// Runs a script file; returns whether every statement and job succeeded.
pub fn run_script_file(runtime: &Runtime, session: Session, path: &Path, wait: bool) -> bool {
    match std::fs::read_to_string(path) {
        Ok(sql) => run_script_text(runtime, session, &sql, wait),
        Err(e) => {
            eprintln!("[ERROR] cannot read the script '{}': {e}", path.display());
            false
        }
    }
}

/// Runs statements; with `wait`, also waits for the INSERT jobs they started.
pub fn run_script_text(runtime: &Runtime, mut session: Session, sql: &str, wait: bool) -> bool {
    runtime.block_on(async {
        if !run_statements(&mut session, sql, Output::Script).await {
            return false;
        }
        if !wait {
            return true;
        }
        // Ctrl-C stops the script's jobs: they are cancelled when the session
        // (which holds their handles) is dropped.
        tokio::select! {
            waited = session.wait_for_jobs() => match waited {
                Ok(()) => true,
                Err(e) => {
                    eprintln!("[ERROR] {e}");
                    false
                }
            },
            _ = tokio::signal::ctrl_c() => {
                eprintln!("[INFO] Interrupted: cancelling the jobs.");
                false
            }
        }
    })
}

/// Runs each statement of `sql`, printing results; stops at the first error
/// or when Ctrl-C cancels a statement.
async fn run_statements(session: &mut Session, sql: &str, output: Output) -> bool {
    let statements = match session.parse(sql) {
        Ok(statements) => statements,
        Err(e) => {
            report(&e, sql);
            return false;
        }
    };
    for statement in statements {
        match run_one(session, statement, output).await {
            Ok(Ran::Completed) => {}
            Ok(Ran::Cancelled) => return false,
            Err(e) => {
                report(&e, sql);
                return false;
            }
        }
    }
    true
}

/// How a statement ended without an error.
enum Ran {
    Completed,
    /// Ctrl-C stopped it (or the user left a running query's view).
    Cancelled,
}

fn report(e: &EngineError, sql: &str) {
    eprintln!("[ERROR] {}", e.render(sql));
}

fn io_error(e: std::io::Error) -> EngineError {
    EngineError::Session(format!("cannot write the result: {e}"))
}

async fn run_one(
    session: &mut Session,
    statement: ParsedStatement,
    output: Output,
) -> Result<Ran, EngineError> {
    // Ctrl-C stops whatever the statement waits for (a `table.dml-sync`
    // INSERT, a query); dropping the statement's future cancels its job.
    let result = tokio::select! {
        result = session.execute(statement) => result?,
        _ = tokio::signal::ctrl_c() => {
            println!("[INFO] Statement cancelled.");
            return Ok(Ran::Cancelled);
        }
    };
    let mut ran = Ran::Completed;
    match result {
        StatementResult::Ok(message) => println!("[INFO] {message}"),
        StatementResult::Text(text) => print!("{text}"),
        StatementResult::Table(table) => {
            print_table(std::io::stdout().lock(), &table).map_err(io_error)?
        }
        StatementResult::Job(job) => {
            if job.finished {
                println!("[INFO] Job {} ({}) finished.", job.id, job.name);
            } else {
                println!("[INFO] Submitting SQL update statement to the cluster...");
                println!(
                    "[INFO] SQL update statement has been successfully submitted to the cluster:"
                );
                println!("Job ID: {}", job.id);
            }
        }
        StatementResult::Query(query) => {
            let view = match (output, session.config().result_mode()) {
                (Output::Interactive, ResultMode::Table) => Some(ViewKind::Table),
                (Output::Interactive, ResultMode::Changelog) => Some(ViewKind::Changelog),
                _ => None,
            };
            match view {
                Some(kind) => {
                    let max_rows = session.config().max_table_result_rows();
                    if let ViewOutcome::Cancelled = live_view::show(query, kind, max_rows).await? {
                        println!("[INFO] Query cancelled.");
                        ran = Ran::Cancelled;
                    }
                }
                None => {
                    let streaming = session.config().runtime_mode() == RuntimeMode::Streaming;
                    ran = print_tableau(query, streaming).await?;
                }
            }
        }
    }
    std::io::stdout().flush().map_err(io_error)?;
    Ok(ran)
}

/// Prints a query's rows as they arrive; Ctrl-C cancels the query.
async fn print_tableau(mut query: QueryResult, streaming: bool) -> Result<Ran, EngineError> {
    let stdout = std::io::stdout();
    let mut printer = TableauPrinter::new(stdout.lock(), &query.schema, streaming);
    let mut progress = on_terminal().then(ProgressLine::new);
    let mut refresh = tokio::time::interval(REFRESH);
    // One listener for the whole loop: a Ctrl-C that comes while a batch
    // prints must still be seen (a listener made anew each turn misses it).
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let outcome = loop {
        tokio::select! {
            next = query.next() => match next {
                Some(Ok(batch)) => {
                    let printed = match &progress {
                        Some(line) => line.suspend(|| printer.print_batch(&batch)),
                        None => printer.print_batch(&batch),
                    };
                    printed.map_err(io_error)?;
                }
                Some(Err(e)) => break Err(e),
                None => break Ok(()),
            },
            _ = refresh.tick(), if progress.is_some() => {
                if let Some(line) = &mut progress {
                    line.update(&query.progress());
                }
            }
            _ = &mut ctrl_c => {
                query.cancel();
                if let Some(line) = &mut progress {
                    line.clear();
                }
                printer.finish().map_err(io_error)?;
                println!("[INFO] Query cancelled.");
                return Ok(Ran::Cancelled);
            }
        }
    };
    if let Some(line) = &mut progress {
        line.clear();
    }
    printer.finish().map_err(io_error)?;
    outcome.map(|()| Ran::Completed)
}

const HELP: &str = "\
The following commands are available:

CLEAR;                 Clears the terminal.
HELP;                  Shows this list.
QUIT; or EXIT;         Leaves the shell (so does Ctrl-D).
CREATE TABLE ...;      Declares a table over a connector: CREATE TABLE t (...) WITH ('connector' = '...', ...).
CREATE VIEW ...;       Names a query: CREATE VIEW v AS SELECT ...
DROP TABLE|VIEW name;  Removes a table or view.
DESCRIBE name;         Shows a table's or view's columns.
SHOW TABLES|VIEWS|FUNCTIONS|JOBS;
SHOW CREATE TABLE name;
EXPLAIN statement;     Shows the plans of a query or INSERT.
SELECT ...;            Runs a query and shows its rows as they change.
INSERT INTO ...;       Submits a job that writes into a table.
EXECUTE STATEMENT SET BEGIN INSERT ...; INSERT ...; END;
                       Submits several INSERTs as one job.
SET;                   Lists the session's options.
SET 'key' = 'value';   Sets an option, e.g. 'sql-client.execution.result-mode' = 'table' | 'changelog' | 'tableau'.
RESET; or RESET 'key'; Resets every option, or one.
STOP JOB 'id';         Stops a job started in this session.
STOP JOB 'id' WITH SAVEPOINT;
                       Takes a savepoint, then stops the job; prints the savepoint's path.

Statements end with ';' and may span lines. Tab completes keywords and names.
Ctrl-C cancels the running statement or the line being typed.
In the table and changelog views: Q leaves, N/P page, F/L first/last page.
";

/// Where the shell keeps its history, like Flink's ~/.flink-sql-history.
fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| Path::new(&home).join(".weir-sql-history"))
}

/// The interactive shell: statements end with `;`, Ctrl-C cancels, Ctrl-D exits.
pub fn interactive(runtime: &Runtime, mut session: Session, init: Option<&Path>) -> bool {
    if let Some(init) = init {
        match std::fs::read_to_string(init) {
            Ok(sql) => {
                if !runtime.block_on(run_statements(&mut session, &sql, Output::Script)) {
                    return false;
                }
            }
            Err(e) => {
                eprintln!(
                    "[ERROR] cannot read the init script '{}': {e}",
                    init.display()
                );
                return false;
            }
        }
    }
    let config = rustyline::Config::builder()
        .auto_add_history(false)
        .max_history_size(10_000)
        .and_then(|b| b.history_ignore_dups(true))
        .map(|b| b.build());
    let editor = config.and_then(rustyline::Editor::<SqlHelper, DefaultHistory>::with_config);
    let mut editor = match editor {
        Ok(editor) => editor,
        Err(e) => {
            eprintln!("[ERROR] cannot open the terminal: {e}");
            return false;
        }
    };
    editor.set_helper(Some(SqlHelper::default()));
    let history = history_path();
    if let Some(history) = &history {
        // A first start has no history yet.
        let _ = editor.load_history(history);
    }
    let output = if std::io::stdin().is_terminal() && on_terminal() {
        Output::Interactive
    } else {
        Output::Script
    };
    println!(
        "Weir SQL shell {}. Statements end with ';'. HELP; lists commands, Ctrl-D exits.",
        env!("CARGO_PKG_VERSION")
    );
    // Lines of a statement read so far, when input is not a terminal (on a
    // terminal the editor itself keeps reading until the statement ends).
    let mut buffer = String::new();
    loop {
        if let Some(helper) = editor.helper_mut() {
            helper.set_names(session.completion_names());
        }
        let prompt = if buffer.is_empty() {
            "Weir SQL> "
        } else {
            "> "
        };
        match editor.readline(prompt) {
            Ok(line) => {
                if buffer.is_empty() && line.trim().is_empty() {
                    continue;
                }
                buffer.push_str(&line);
                buffer.push('\n');
                let command = ClientCommand::parse(&buffer);
                if command.is_none() && !statement_complete(&buffer) {
                    continue;
                }
                let sql = std::mem::take(&mut buffer);
                let _ = editor.add_history_entry(sql.trim_end());
                if let Some(history) = &history {
                    // Saved after every statement, so a killed shell keeps it.
                    let _ = editor.save_history(history);
                }
                match command {
                    Some(ClientCommand::Quit) => break,
                    Some(ClientCommand::Help) => print!("{HELP}"),
                    Some(ClientCommand::Clear) => {
                        if on_terminal() {
                            let _ = editor.clear_screen();
                        }
                    }
                    None => {
                        runtime.block_on(run_statements(&mut session, &sql, output));
                    }
                }
            }
            Err(rustyline::error::ReadlineError::Interrupted) => buffer.clear(),
            Err(rustyline::error::ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("[ERROR] cannot read input: {e}");
                break;
            }
        }
    }
    println!("Shutting down the session...");
    println!("done.");
    true
}
