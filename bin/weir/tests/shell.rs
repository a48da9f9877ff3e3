//! Drives the real `weir sql` through a pseudo-terminal, as a person would:
//! multi-line statements, the table, changelog and tableau result modes, a
//! continuous query updating in place, Ctrl-C, errors with a caret,
//! completion, history and Ctrl-D.

use std::path::Path;
use std::process::Command;

use rexpect::reader::Options;
use rexpect::session::{PtySession, spawn_with_options};
use tempfile::TempDir;

const PROMPT: &str = "Weir SQL> ";

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A shell in a pseudo-terminal, with its own home for the history file.
fn shell(home: &Path) -> Result<PtySession, rexpect::error::Error> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
    command
        .arg("sql")
        .env("HOME", home)
        .env("TERM", "xterm")
        .env_remove("WEIR_LOG");
    let options = Options {
        timeout_ms: Some(60_000),
        strip_ansi_escape_codes: true,
    };
    let mut session = spawn_with_options(command, options)?;
    session.exp_string(PROMPT)?;
    Ok(session)
}

/// An endless source: one row every 20 ms, all with the key 1.
const ENDLESS_TABLE: &str = "CREATE TABLE ticks (k INT) WITH ('connector' = 'datagen', \
     'rows-per-second' = '50', 'fields.k.min' = '1', 'fields.k.max' = '1');";

#[test]
fn a_multi_line_query_shows_its_final_table_and_ctrl_d_exits() -> TestResult {
    let home = TempDir::new()?;
    let mut p = shell(home.path())?;
    p.send_line("SELECT word, COUNT(*) AS n")?;
    p.send_line("FROM (VALUES ('apple'), ('pear'), ('apple')) AS t(word)")?;
    p.send_line("GROUP BY word;")?;
    p.exp_string("SQL Query Result (Table)")?;
    p.exp_string("Finished | Rows: 2")?;
    // The count of 'apple' was updated in place: it stays on the first row.
    p.exp_regex(r"word\s+n\s*apple\s+2\s+pear\s+1")?;
    p.send("q")?;
    p.flush()?;
    p.exp_string(PROMPT)?;
    p.send_control('d')?;
    p.exp_string("Shutting down the session...")?;
    p.exp_eof()?;
    let history = std::fs::read_to_string(home.path().join(".weir-sql-history"))?;
    assert!(
        history.contains("GROUP BY word;"),
        "the statement is in the history: {history}"
    );
    Ok(())
}

#[test]
fn a_continuous_query_updates_in_place_until_ctrl_c() -> TestResult {
    let home = TempDir::new()?;
    let mut p = shell(home.path())?;
    p.send_line(ENDLESS_TABLE)?;
    p.exp_string("[INFO] Execute statement succeeded.")?;
    p.send_line("SELECT COUNT(*) AS total_rows FROM ticks;")?;
    p.exp_string("Running | Rows: 1")?;
    let (_, first) = p.exp_regex(r"total_rows\s+\d+")?;
    let count = |text: &str| -> Result<u64, std::num::ParseIntError> {
        text.trim_start_matches("total_rows").trim().parse()
    };
    let first = count(&first)?;
    // Later screens show a larger count on the same single row.
    let mut later = first;
    while later <= first {
        p.exp_string("Running | Rows: 1")?;
        let (_, text) = p.exp_regex(r"total_rows\s+\d+")?;
        later = count(&text)?;
    }
    p.exp_regex(r"rows read, \d[\d,]* rows/s")?;
    p.send_control('c')?;
    p.exp_string("[INFO] Query cancelled.")?;
    p.exp_string(PROMPT)?;
    p.send_line("QUIT;")?;
    p.exp_eof()?;
    Ok(())
}

#[test]
fn changelog_and_tableau_modes_show_row_kinds_and_ctrl_c_cancels() -> TestResult {
    let home = TempDir::new()?;
    let mut p = shell(home.path())?;
    p.send_line("SET 'sql-client.execution.result-mode' = 'changelog';")?;
    p.exp_string("[INFO] Execute statement succeeded.")?;
    p.send_line(ENDLESS_TABLE)?;
    p.exp_string("[INFO] Execute statement succeeded.")?;
    p.send_line("SELECT k, COUNT(*) AS n FROM ticks GROUP BY k;")?;
    p.exp_string("SQL Query Result (Changelog)")?;
    // The count's first row, then its update as a retraction and a new row.
    p.exp_regex(r"op\s+k\s+n\s*\+I\s+1\s+\d+\s*-U\s+1\s+\d+\s*\+U\s+1\s+\d+")?;
    p.send("q")?;
    p.flush()?;
    p.exp_string("[INFO] Query cancelled.")?;
    p.exp_string(PROMPT)?;

    p.send_line("SET 'sql-client.execution.result-mode' = 'tableau';")?;
    p.exp_string("[INFO] Execute statement succeeded.")?;
    p.send_line("SELECT k FROM ticks;")?;
    p.exp_regex(r"\| op \|\s+k \|")?;
    p.exp_regex(r"\| \+I \|\s+1 \|")?;
    p.send_control('c')?;
    p.exp_string("[INFO] Query cancelled.")?;
    p.exp_string(PROMPT)?;
    p.send_control('d')?;
    p.exp_eof()?;
    Ok(())
}

#[test]
fn errors_point_at_their_position_and_the_session_goes_on() -> TestResult {
    let home = TempDir::new()?;
    let mut p = shell(home.path())?;
    p.send_line("SELECT price")?;
    p.send_line("FROM nowhere;")?;
    p.exp_string("[ERROR]")?;
    p.exp_string("nowhere")?;
    p.exp_regex(r"\n\s*\^")?;
    p.exp_string(PROMPT)?;
    p.send_line("help;")?;
    p.exp_string("The following commands are available")?;
    p.exp_string(PROMPT)?;
    // Tab completes a table name the session knows.
    p.send_line(
        "CREATE TABLE bid_events (auction BIGINT, price BIGINT) \
         WITH ('connector' = 'datagen', 'number-of-rows' = '1');",
    )?;
    p.exp_string("[INFO] Execute statement succeeded.")?;
    p.send("DESCRIBE bid_e\t")?;
    p.flush()?;
    p.send_line(";")?;
    p.exp_regex(r"\|\s+auction \|\s+BIGINT \|")?;
    p.exp_string(PROMPT)?;
    p.send_line("EXIT;")?;
    p.exp_eof()?;
    Ok(())
}
