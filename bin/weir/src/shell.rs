//! Running statements for a person: scripts (`weir run`, `weir sql -f/-e`)
//! and the interactive shell. Results print as Flink's SQL client prints
//! them; errors print as `[ERROR]` with a caret under the position.

use std::io::Write;
use std::path::Path;

use tokio::runtime::Runtime;
use weir_common::RuntimeMode;
use weir_engine::{EngineError, Session, StatementResult};
use weir_sql::ParsedStatement;

use crate::output::{TableauPrinter, print_table};

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
        if !run_statements(&mut session, sql).await {
            return false;
        }
        if wait && let Err(e) = session.wait_for_jobs().await {
            eprintln!("[ERROR] {e}");
            return false;
        }
        true
    })
}

/// Runs each statement of `sql`, printing results; stops at the first error.
async fn run_statements(session: &mut Session, sql: &str) -> bool {
    let statements = match session.parse(sql) {
        Ok(statements) => statements,
        Err(e) => {
            report(&e, sql);
            return false;
        }
    };
    for statement in statements {
        if let Err(e) = run_one(session, statement).await {
            report(&e, sql);
            return false;
        }
    }
    true
}

fn report(e: &EngineError, sql: &str) {
    eprintln!("[ERROR] {}", e.render(sql));
}

async fn run_one(session: &mut Session, statement: ParsedStatement) -> Result<(), EngineError> {
    let streaming = session.config().runtime_mode() == RuntimeMode::Streaming;
    let result = session.execute(statement).await?;
    let stdout = std::io::stdout();
    let io = |e: std::io::Error| EngineError::Session(format!("cannot write the result: {e}"));
    match result {
        StatementResult::Ok(message) => println!("[INFO] {message}"),
        StatementResult::Text(text) => print!("{text}"),
        StatementResult::Table(table) => print_table(stdout.lock(), &table).map_err(io)?,
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
        StatementResult::Query(mut query) => {
            let mut printer = TableauPrinter::new(stdout.lock(), &query.schema, streaming);
            loop {
                tokio::select! {
                    next = query.next() => match next {
                        Some(batch) => printer.print_batch(&batch?).map_err(io)?,
                        None => break,
                    },
                    _ = tokio::signal::ctrl_c() => {
                        query.cancel();
                        println!("Query cancelled.");
                        break;
                    }
                }
            }
            printer.finish().map_err(io)?;
        }
    }
    std::io::stdout().flush().map_err(io)
}

/// True when the buffered text ends a statement: a `;` outside quotes and comments.
fn statement_complete(buffer: &str) -> bool {
    let mut in_single = false;
    let mut in_back = false;
    let mut last_significant = None;
    for line in buffer.lines() {
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\'' if !in_back => in_single = !in_single,
                '`' if !in_single => in_back = !in_back,
                '-' if !in_single && !in_back && chars.peek() == Some(&'-') => break,
                c if !c.is_whitespace() => last_significant = Some(c),
                _ => {}
            }
            if !c.is_whitespace() && (in_single || in_back) {
                last_significant = Some(c);
            }
        }
    }
    !in_single && !in_back && last_significant == Some(';')
}

/// The interactive shell: statements end with `;`, Ctrl-C cancels, Ctrl-D exits.
pub fn interactive(runtime: &Runtime, mut session: Session, init: Option<&Path>) -> bool {
    if let Some(init) = init {
        match std::fs::read_to_string(init) {
            Ok(sql) => {
                if !runtime.block_on(run_statements(&mut session, &sql)) {
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
    let mut editor = match rustyline::DefaultEditor::new() {
        Ok(editor) => editor,
        Err(e) => {
            eprintln!("[ERROR] cannot open the terminal: {e}");
            return false;
        }
    };
    let history = std::env::var_os("HOME").map(|home| Path::new(&home).join(".weir_history"));
    if let Some(history) = &history {
        let _ = editor.load_history(history);
    }
    println!(
        "Weir SQL shell {}. Statements end with ';'. Ctrl-D exits.",
        env!("CARGO_PKG_VERSION")
    );
    let mut buffer = String::new();
    loop {
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
                if !statement_complete(&buffer) {
                    continue;
                }
                let sql = std::mem::take(&mut buffer);
                let _ = editor.add_history_entry(sql.trim_end());
                if matches!(
                    sql.trim()
                        .trim_end_matches(';')
                        .trim()
                        .to_ascii_lowercase()
                        .as_str(),
                    "quit" | "exit"
                ) {
                    break;
                }
                runtime.block_on(run_statements(&mut session, &sql));
            }
            Err(rustyline::error::ReadlineError::Interrupted) => buffer.clear(),
            Err(rustyline::error::ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("[ERROR] cannot read input: {e}");
                break;
            }
        }
    }
    if let Some(history) = &history {
        let _ = editor.save_history(history);
    }
    println!("Shutting down the session... done.");
    true
}

#[cfg(test)]
mod tests {
    use super::statement_complete;

    #[test]
    fn statements_end_at_a_semicolon_outside_quotes() {
        assert!(statement_complete("SELECT 1;"));
        assert!(statement_complete("SELECT 1;  \n"));
        assert!(!statement_complete("SELECT ';"));
        assert!(!statement_complete("SELECT 1 -- done;"));
        assert!(statement_complete("SELECT ';';"));
        assert!(!statement_complete("SELECT 1"));
    }
}
