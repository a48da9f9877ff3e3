//! `weir run` as a person runs it from a terminal: Ctrl-C stops a script
//! whose jobs would never end, and the exit status says it did not finish.

use std::process::Command;

use rexpect::process::WaitStatus;
use rexpect::reader::Options;
use rexpect::session::spawn_with_options;

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn ctrl_c_stops_an_endless_script_with_a_failure_status() -> TestResult {
    let dir = tempfile::TempDir::new()?;
    let script = dir.path().join("endless.sql");
    std::fs::write(
        &script,
        "CREATE TABLE ticks (k INT) WITH ('connector' = 'datagen', 'rows-per-second' = '100');\n\
         CREATE TABLE sink (k INT) WITH ('connector' = 'blackhole');\n\
         INSERT INTO sink SELECT k FROM ticks;\n",
    )?;
    let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
    command.arg("run").arg(&script).env_remove("WEIR_LOG");
    let options = Options {
        timeout_ms: Some(60_000),
        strip_ansi_escape_codes: true,
    };
    let mut p = spawn_with_options(command, options)?;
    p.exp_string("Job ID:")?;
    p.send_control('c')?;
    p.exp_string("[INFO] Interrupted: cancelling the jobs.")?;
    p.exp_eof()?;
    match p.process().wait()? {
        WaitStatus::Exited(_, code) => assert_ne!(code, 0, "an interrupted run fails"),
        other => panic!("weir run ended with {other:?}"),
    }
    Ok(())
}
