//! `weir run` as a person runs it from a terminal: Ctrl-C stops a script
//! whose jobs would never end, and the exit status says it did not finish.
//! And `weir bench nexmark`, which runs `weir run` processes.

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

#[test]
fn the_nexmark_bench_reports_each_query() -> TestResult {
    let dir = tempfile::TempDir::new()?;
    let output = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "bench", "nexmark", "q2,q10", "--events", "5000", "--runs", "2",
        ])
        .arg("--out")
        .arg(dir.path())
        .env_remove("WEIR_LOG")
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("| query | events/s | wall s | CPU s | peak RSS MB |"),
        "{stdout}"
    );
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("results.json"))?)?;
    let rows = results.as_array().ok_or("results.json holds a list")?;
    assert_eq!(rows.len(), 2, "{results}");
    for row in rows {
        assert_eq!(row["runs"], 2, "{row}");
        assert_eq!(row["events"], 5000, "{row}");
        assert!(row["events_per_second"].as_u64() > Some(0), "{row}");
        assert!(row["cpu_seconds"].as_f64() > Some(0.0), "{row}");
        // A weir process holds tens of MB at least.
        assert!(row["peak_rss_mb"].as_f64() > Some(10.0), "{row}");
    }
    let chart = std::fs::read_to_string(dir.path().join("events_per_second.svg"))?;
    assert!(chart.contains("<title>q10: "), "{chart}");

    // A query that is not one is refused before anything runs.
    let output = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["bench", "nexmark", "q23"])
        .arg("--out")
        .arg(dir.path())
        .output()?;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown query 'q23'"));
    Ok(())
}
