//! Crash recovery of the embedded cluster: `weir run` killed with SIGKILL at
//! random points and started again with the same checkpoint directory
//! ends with exactly the output of an undisturbed run: no row lost, none
//! written twice. Each job reads files, keeps keyed state behind a hash
//! exchange at parallelism 2 (event-time windows; an OVER aggregation; a
//! regular join), and writes files with the two-phase commit of the
//! filesystem sink; or reads a Kafka topic and writes an upsert-kafka topic
//! (the mock cluster).
//!
//! A savepoint taken from the shell with `STOP JOB '<id>' WITH SAVEPOINT`
//! at parallelism 1 and restored at parallelism 3 also ends with exactly
//! the output of an undisturbed run.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;

use common::{
    CrashRandom, KAFKA_BIDS, chrono_like, create_bid_topics, kafka_bids_table, kafka_totals_script,
    produce_bids, topic_as_table,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const FILES: usize = 4;
const ROWS_PER_FILE: usize = 300_000;
/// Auctions 0 to 9 exist; bids name auctions 0 to 12.
const AUCTIONS: usize = 10;

/// Bids in files covering consecutive stretches of time, each file in time
/// order, so no row is ever late and the output is deterministic; and next
/// to them, auctions with their sellers.
fn write_input(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let auctions: String = (0..AUCTIONS).map(|a| format!("{a},seller-{a}\n")).collect();
    let auction_dir = dir.with_file_name("auctions");
    std::fs::create_dir_all(&auction_dir)?;
    std::fs::write(auction_dir.join("auctions.csv"), auctions)?;
    for file in 0..FILES {
        let mut out =
            std::io::BufWriter::new(std::fs::File::create(dir.join(format!("bids-{file}.csv")))?);
        for row in 0..ROWS_PER_FILE {
            let n = file * ROWS_PER_FILE + row;
            // 10 rows per second of event time, from 2024-01-01.
            let millis = 1_704_067_200_000_i64 + (n as i64) * 100;
            let ts = chrono_like(millis);
            writeln!(out, "{},{},{ts}", n % 13, (n * 7919) % 1000)?;
        }
    }
    Ok(())
}

/// The settings every crash test's script starts with.
fn checkpointed(checkpoints: &Path) -> String {
    format!(
        "SET 'parallelism.default' = '2';\n\
         SET 'execution.checkpointing.interval' = '100 ms';\n\
         SET 'execution.checkpointing.dir' = '{}';\n",
        checkpoints.display()
    )
}

/// Per-auction totals of one-minute tumbling windows.
fn window_script(input: &Path, output: &Path, checkpoints: &Path) -> String {
    format!(
        "{settings}\
         CREATE TABLE bids (auction BIGINT, price BIGINT, ts TIMESTAMP(3),\n\
           WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)\n\
           WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'csv');\n\
         CREATE TABLE totals (auction BIGINT, window_start TIMESTAMP(3), bids BIGINT, total BIGINT)\n\
           WITH ('connector' = 'filesystem', 'path' = '{output}', 'format' = 'csv');\n\
         INSERT INTO totals\n\
           SELECT auction, window_start, COUNT(*), SUM(price)\n\
           FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '1' MINUTE))\n\
           GROUP BY auction, window_start, window_end;\n",
        settings = checkpointed(checkpoints),
        input = input.display(),
        output = output.display(),
    )
}

/// Each bid with the highest price of its auction in the ten seconds up to
/// it (an event-time OVER aggregation over a bounded RANGE frame, whose
/// sliding accumulators are rebuilt from the frame's rows on restore),
/// every tenth bid written.
fn over_script(input: &Path, output: &Path, checkpoints: &Path) -> String {
    format!(
        "{settings}\
         CREATE TABLE bids (auction BIGINT, price BIGINT, ts TIMESTAMP(3),\n\
           WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)\n\
           WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'csv');\n\
         CREATE TABLE highest (auction BIGINT, price BIGINT, ts TIMESTAMP(3), highest BIGINT)\n\
           WITH ('connector' = 'filesystem', 'path' = '{output}', 'format' = 'csv');\n\
         INSERT INTO highest\n\
           SELECT auction, price, ts, highest FROM (\n\
             SELECT auction, price, ts, MAX(price) OVER (PARTITION BY auction ORDER BY ts\n\
               RANGE BETWEEN INTERVAL '10' SECOND PRECEDING AND CURRENT ROW) AS highest\n\
             FROM bids)\n\
           WHERE MOD(price, 10) = 0;\n",
        settings = checkpointed(checkpoints),
        input = input.display(),
        output = output.display(),
    )
}

/// Bids over 500 joined with their auction's seller: a regular join whose
/// state holds every bid and auction.
fn join_script(input: &Path, output: &Path, checkpoints: &Path) -> String {
    format!(
        "{settings}\
         CREATE TABLE bids (auction BIGINT, price BIGINT, ts TIMESTAMP(3))\n\
           WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'csv');\n\
         CREATE TABLE auctions (id BIGINT, seller STRING)\n\
           WITH ('connector' = 'filesystem', 'path' = '{auctions}', 'format' = 'csv');\n\
         CREATE TABLE sold (auction BIGINT, seller STRING, price BIGINT, ts TIMESTAMP(3))\n\
           WITH ('connector' = 'filesystem', 'path' = '{output}', 'format' = 'csv');\n\
         INSERT INTO sold\n\
           SELECT b.auction, a.seller, b.price, b.ts\n\
           FROM bids AS b JOIN auctions AS a ON b.auction = a.id\n\
           WHERE b.price > 500;\n",
        settings = checkpointed(checkpoints),
        input = input.display(),
        auctions = input.with_file_name("auctions").display(),
        output = output.display(),
    )
}

/// Every line of the visible files under `dir` (hidden in-progress files are
/// not output), sorted; duplicates kept.
fn output_lines(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut lines = Vec::new();
    if !dir.exists() {
        return Ok(lines);
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if !hidden && path.is_file() {
            lines.extend(std::fs::read_to_string(&path)?.lines().map(str::to_string));
        }
    }
    lines.sort();
    Ok(lines)
}

fn weir_run(dir: &Path, script: &Path, log: &Path) -> std::io::Result<std::process::Child> {
    Command::new(WEIR)
        .arg("run")
        .arg(script)
        .current_dir(dir)
        .env("WEIR_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()
}

/// A crash test: a job over the bids in `dir`, written to an output of a
/// given name, and how many rows its output has.
struct Case<'a> {
    dir: &'a Path,
    /// The script that writes to the output named `output` and takes
    /// checkpoints under `checkpoints`.
    script: &'a dyn Fn(&str, &Path) -> String,
    /// Called with an output's name before the first run that writes it.
    before_first_run: &'a dyn Fn(&str),
    /// The output named `output`, one sorted line per row.
    output: &'a dyn Fn(&str) -> std::io::Result<Vec<String>>,
    expected_rows: usize,
}

/// A directory for a crash test; WEIR_CRASH_KEEP=1 keeps it (inputs,
/// outputs, checkpoints and logs) and prints where.
fn crash_dir() -> std::io::Result<tempfile::TempDir> {
    let mut dir = tempfile::TempDir::new()?;
    if std::env::var_os("WEIR_CRASH_KEEP").is_some() {
        dir.disable_cleanup(true);
        eprintln!("keeping {}", dir.path().display());
    }
    Ok(dir)
}

/// A crash test of a job from the bid files to files.
fn files_case(script: fn(&Path, &Path, &Path) -> String, expected_rows: usize) -> TestResult {
    let dir = crash_dir()?;
    let input = dir.path().join("bids");
    write_input(&input)?;
    crash_and_compare(Case {
        dir: dir.path(),
        script: &|output, checkpoints| script(&input, &dir.path().join(output), checkpoints),
        before_first_run: &|_| {},
        output: &|output| output_lines(&dir.path().join(output)),
        expected_rows,
    })
}

#[test]
fn a_killed_window_aggregation_restarted_from_its_checkpoints_writes_exactly_the_undisturbed_output()
-> TestResult {
    // One row per auction and minute.
    files_case(
        window_script,
        13 * (FILES * ROWS_PER_FILE / 10).div_ceil(60),
    )
}

#[test]
fn a_killed_over_aggregation_restarted_from_its_checkpoints_writes_exactly_the_undisturbed_output()
-> TestResult {
    files_case(
        over_script,
        (0..FILES * ROWS_PER_FILE)
            .filter(|n| (n * 7919) % 1000 % 10 == 0)
            .count(),
    )
}

#[test]
fn a_killed_join_restarted_from_its_checkpoints_writes_exactly_the_undisturbed_output() -> TestResult
{
    files_case(
        join_script,
        (0..FILES * ROWS_PER_FILE)
            .filter(|n| n % 13 < AUCTIONS && (n * 7919) % 1000 > 500)
            .count(),
    )
}

/// A job whose input files vanish while it runs fails; its restart
/// strategy runs it again from its latest checkpoint, and once the files
/// are back the output is exactly the undisturbed output.
#[test]
fn a_failed_job_restarts_from_its_latest_checkpoint_with_the_undisturbed_output() -> TestResult {
    let dir = crash_dir()?;
    let dir = dir.path();
    let input = dir.join("bids");
    write_input(&input)?;
    let run = |name: &str, settings: &str| -> std::io::Result<(std::process::Child, PathBuf)> {
        let script = dir.join(format!("{name}.sql"));
        std::fs::write(
            &script,
            format!(
                "{settings}{}",
                window_script(&input, &dir.join(name), &dir.join(format!("{name}-chk")))
            ),
        )?;
        let log = dir.join(format!("{name}.log"));
        Ok((weir_run(dir, &script, &log)?, log))
    };
    let (mut reference, log) = run("reference", "")?;
    assert!(
        reference.wait()?.success(),
        "{}",
        std::fs::read_to_string(&log)?
    );
    let expected = output_lines(&dir.join("reference"))?;

    // A machine so busy that the job reads all its input before its first
    // checkpoint completes cannot show the restart: that run is repeated.
    for run_number in 0..3 {
        let name = format!("out-{run_number}");
        let (mut child, log) = run(
            &name,
            "SET 'restart-strategy.type' = 'fixed-delay';\n\
             SET 'restart-strategy.fixed-delay.attempts' = '1';\n\
             SET 'restart-strategy.fixed-delay.delay' = '2 s';\n",
        )?;
        // Waits for `what`; false if the job ended first.
        let mut wait_for = |what: &dyn Fn() -> std::io::Result<bool>| -> std::io::Result<bool> {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !what()? {
                if child.try_wait()?.is_some() {
                    return Ok(false);
                }
                assert!(Instant::now() < deadline, "timed out");
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(true)
        };
        // Take the input away once the job has a checkpoint, and give it
        // back once the job has failed.
        let checkpoints = dir.join(format!("{name}-chk"));
        if !wait_for(&|| Ok(latest_checkpoint(&checkpoints)? > 0))? {
            continue;
        }
        let away = dir.join("bids.away");
        std::fs::rename(&input, &away)?;
        let failed = wait_for(&|| {
            Ok(std::fs::read_to_string(&log)?.contains("restarting from its latest checkpoint"))
        })?;
        std::fs::rename(&away, &input)?;
        let status = child.wait()?;
        let log = std::fs::read_to_string(&log)?;
        assert!(status.success(), "{log}");
        if !failed {
            continue;
        }
        assert!(
            log.contains("cannot read"),
            "the failure names the file: {log}"
        );
        assert!(log.contains("restoring from checkpoint"), "{log}");
        assert_eq!(output_lines(&dir.join(&name))?, expected);
        return Ok(());
    }
    panic!("the job read all its input before its first checkpoint in 3 runs");
}

/// Bids as JSON in a Kafka topic of [`BID_PARTITIONS`] partitions (each
/// in time order), one-minute totals per auction written to an upsert-kafka
/// topic keyed by auction and window. The broker is librdkafka's mock
/// cluster, run by this test and reached by `weir` over loopback. Each run
/// (undisturbed, then crashed) reads a topic of its own that the test fills
/// at a steady rate while the job runs, so kills land mid-stream; the job
/// ends at the offsets the test will have written ('specific-offsets').
///
/// A killed run may have written results the restarted run writes again
/// ('at-least-once', the sink's default); as upserts of the same keys and
/// values they leave the table unchanged, so the topic read as a table
/// (the last value per key) must equal the undisturbed run's, row for row.
/// Had a source not resumed from its checkpointed offsets, restored window
/// state would count rows twice and the totals would differ.
#[test]
fn a_killed_kafka_pipeline_restarted_from_its_checkpoints_writes_exactly_the_undisturbed_table()
-> TestResult {
    // One row per auction and minute.
    kafka_case(kafka_totals_script, 13 * (KAFKA_BIDS / 10).div_ceil(60))
}

/// An unbounded GROUP BY on two keys with DISTINCT counts, two of them
/// sharing their values under different FILTERs: its changelog, written as
/// upserts, leaves the undisturbed table only if a restored job knows
/// every value each key has seen (had it forgotten them, values seen
/// before the checkpoint would count again).
fn kafka_distinct_script(settings: &str, output: &str, bootstrap: &str) -> String {
    format!(
        "{settings}{bids}\
         CREATE TABLE spread (k BIGINT, high BOOLEAN, bids BIGINT, auctions BIGINT,\n\
           prices BIGINT, low_auction_prices BIGINT,\n\
           PRIMARY KEY (k, high) NOT ENFORCED)\n\
           WITH ('connector' = 'upsert-kafka', 'topic' = '{output}',\n\
             'properties.bootstrap.servers' = '{bootstrap}',\n\
             'key.format' = 'json', 'value.format' = 'json');\n\
         INSERT INTO spread\n\
           SELECT MOD(auction, 4), price >= 500, COUNT(*), COUNT(DISTINCT auction),\n\
             COUNT(DISTINCT price), COUNT(DISTINCT price) FILTER (WHERE auction < 6)\n\
           FROM bids\n\
           GROUP BY MOD(auction, 4), price >= 500;\n",
        bids = kafka_bids_table(output, bootstrap),
    )
}

#[test]
fn a_killed_distinct_aggregation_restarted_from_its_checkpoints_writes_exactly_the_undisturbed_table()
-> TestResult {
    // Four remainders, each with low and high prices.
    kafka_case(kafka_distinct_script, 8)
}

/// A crash test of `script`'s pipeline from a Kafka topic of bids to an
/// upsert-kafka topic, compared as tables.
fn kafka_case(script: fn(&str, &str, &str) -> String, expected_rows: usize) -> TestResult {
    let dir = crash_dir()?;
    let kafka = MockCluster::new(1)?;
    let bootstrap = kafka.bootstrap_servers();
    create_bid_topics(&kafka, &["reference", "out"])?;
    let script =
        |output: &str, checkpoints: &Path| script(&checkpointed(checkpoints), output, &bootstrap);
    std::thread::scope(|scope| {
        crash_and_compare(Case {
            dir: dir.path(),
            script: &script,
            before_first_run: &|output| {
                let bootstrap = bootstrap.clone();
                let topic = format!("bids-{output}");
                // Over about four seconds.
                scope.spawn(move || produce_bids(&bootstrap, &topic, Duration::from_millis(100)));
            },
            output: &|topic| Ok(topic_as_table(&bootstrap, topic)),
            expected_rows,
        })
    })
}

fn crash_and_compare(case: Case<'_>) -> TestResult {
    let dir = case.dir;
    // The undisturbed run (checkpointing too, so the last commit is tested).
    let reference_chk = dir.join("reference-chk");
    let reference_script = dir.join("reference.sql");
    std::fs::write(
        &reference_script,
        (case.script)("reference", &reference_chk),
    )?;
    (case.before_first_run)("reference");
    let started = Instant::now();
    let status = weir_run(dir, &reference_script, &dir.join("reference.log"))?.wait()?;
    let undisturbed = started.elapsed();
    assert!(
        status.success(),
        "the undisturbed run failed: {}",
        std::fs::read_to_string(dir.join("reference.log"))?
    );
    let expected = (case.output)("reference")?;
    assert_eq!(expected.len(), case.expected_rows);
    let leftovers: Vec<PathBuf> = walk(&reference_chk)?;
    assert!(
        leftovers.is_empty(),
        "a finished job deletes its checkpoints: {leftovers:?}"
    );

    // The same job, killed again and again.
    eprintln!("undisturbed run {undisturbed:?}");
    let mut random = CrashRandom::from_env_or_clock();
    let checkpoints = dir.join("chk");
    let crash_script = dir.join("crash.sql");
    std::fs::write(&crash_script, (case.script)("out", &checkpoints))?;
    (case.before_first_run)("out");
    let mut kills = 0;
    let mut restored = 0;
    let mut finished = false;
    for attempt in 0..4 {
        let log = dir.join(format!("attempt-{attempt}.log"));
        let before = latest_checkpoint(&checkpoints)?;
        let mut child = weir_run(dir, &crash_script, &log)?;
        if attempt == 0 {
            // Most likely before the first checkpoint: a restart from scratch.
            std::thread::sleep(Duration::from_millis(100 + random.next(500)));
        } else {
            // After this run completed a checkpoint of its own, at a random
            // point of the next interval.
            let deadline = Instant::now() + Duration::from_secs(120);
            while latest_checkpoint(&checkpoints)? <= before
                && child.try_wait()?.is_none()
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            std::thread::sleep(Duration::from_millis(random.next(800)));
        }
        let finished_by_itself = child.try_wait()?.is_some();
        if !finished_by_itself {
            child.kill()?;
            kills += 1;
        }
        child.wait()?;
        if std::fs::read_to_string(&log)?.contains("restoring from checkpoint") {
            restored += 1;
        }
        if finished_by_itself {
            finished = true;
            break;
        }
    }
    if !finished {
        let log = dir.join("final.log");
        let status = weir_run(dir, &crash_script, &log)?.wait()?;
        assert!(
            status.success(),
            "the last run failed: {}",
            std::fs::read_to_string(&log)?
        );
        if std::fs::read_to_string(&log)?.contains("restoring from checkpoint") {
            restored += 1;
        }
    }
    eprintln!("{kills} runs killed, {restored} restored from a checkpoint");
    let actual = (case.output)("out")?;
    let expected_set: BTreeSet<&String> = expected.iter().collect();
    let actual_set: BTreeSet<&String> = actual.iter().collect();
    let missing = expected_set.difference(&actual_set).count();
    let extra = actual_set.difference(&expected_set).count();
    assert_eq!(
        actual.len(),
        expected.len(),
        "{kills} kills: {missing} rows missing, {extra} unexpected, {} lines in all",
        actual.len()
    );
    let differing: Vec<(&String, &String)> = actual
        .iter()
        .zip(&expected)
        .filter(|(a, e)| a != e)
        .take(5)
        .collect();
    assert!(
        differing.is_empty(),
        "{kills} kills changed the output; (actual, expected) lines that differ: {differing:?}"
    );
    assert!(
        kills > 0 && restored > 0,
        "the test killed {kills} runs and {restored} restored from a checkpoint: too fast to test anything"
    );
    Ok(())
}

/// The id of the newest checkpoint with a manifest under `dir`, or 0.
fn latest_checkpoint(dir: &Path) -> std::io::Result<u64> {
    Ok(walk(dir)?
        .iter()
        .filter(|f| f.file_name().is_some_and(|n| n == "_metadata"))
        .filter_map(|f| {
            f.parent()?
                .file_name()?
                .to_str()?
                .strip_prefix("chk-")?
                .parse()
                .ok()
        })
        .max()
        .unwrap_or(0))
}

/// Every file under `dir`; a directory deleted meanwhile (by the running
/// job's checkpoint cleanup) is skipped.
fn walk(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(files);
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path)?);
        } else {
            files.push(path);
        }
    }
    Ok(files)
}

/// Per-key totals of one-second windows over a Nexmark bid stream that
/// takes about six seconds, at `parallelism`, optionally restored from a
/// savepoint.
fn nexmark_script(
    parallelism: usize,
    output: &Path,
    checkpoints: &Path,
    savepoints: &Path,
    restore: Option<&str>,
) -> String {
    let restore = restore.map_or(String::new(), |path| {
        format!("SET 'execution.savepoint.path' = '{path}';\n")
    });
    format!(
        "SET 'parallelism.default' = '{parallelism}';\n\
         SET 'execution.checkpointing.interval' = '200 ms';\n\
         SET 'execution.checkpointing.dir' = '{checkpoints}';\n\
         SET 'execution.checkpointing.savepoint-dir' = '{savepoints}';\n\
         {restore}\
         CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,\n\
           `dateTime` TIMESTAMP(3), extra STRING,\n\
           WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND)\n\
           WITH ('connector' = 'nexmark', 'table' = 'bid', 'rate.limited' = 'true',\n\
             'first-event.rate' = '5000', 'events.num' = '30000');\n\
         CREATE TABLE totals (k BIGINT, window_start TIMESTAMP(3), bids BIGINT, total BIGINT)\n\
           WITH ('connector' = 'filesystem', 'path' = '{output}', 'format' = 'csv');\n\
         INSERT INTO totals\n\
           SELECT MOD(auction, 7), window_start, COUNT(*), SUM(price)\n\
           FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '1' SECOND))\n\
           GROUP BY MOD(auction, 7), window_start, window_end;\n",
        checkpoints = checkpoints.display(),
        savepoints = savepoints.display(),
        output = output.display(),
    )
}

#[test]
fn a_savepoint_taken_at_parallelism_1_restores_at_parallelism_3_with_the_undisturbed_output()
-> TestResult {
    let dir = tempfile::TempDir::new()?;
    let savepoints = dir.path().join("savepoints");

    let reference = dir.path().join("reference");
    let reference_script = dir.path().join("reference.sql");
    std::fs::write(
        &reference_script,
        nexmark_script(
            1,
            &reference,
            &dir.path().join("reference-chk"),
            &savepoints,
            None,
        ),
    )?;
    let log = dir.path().join("reference.log");
    let status = weir_run(dir.path(), &reference_script, &log)?.wait()?;
    assert!(status.success(), "{}", std::fs::read_to_string(&log)?);
    let expected = output_lines(&reference)?;
    assert!(!expected.is_empty());

    // The same job from the shell, stopped with a savepoint while it runs.
    let output = dir.path().join("out");
    let checkpoints = dir.path().join("chk");
    let mut shell = rexpect::session::spawn_with_options(
        {
            let mut command = Command::new(WEIR);
            command
                .arg("sql")
                .current_dir(dir.path())
                .env("HOME", dir.path())
                .env("TERM", "xterm")
                .env_remove("WEIR_LOG");
            command
        },
        rexpect::reader::Options {
            timeout_ms: Some(60_000),
            strip_ansi_escape_codes: true,
        },
    )?;
    let script = nexmark_script(1, &output, &checkpoints, &savepoints, None);
    let statements: Vec<&str> = script.split_inclusive(";\n").collect();
    for (i, statement) in statements.iter().enumerate() {
        for line in statement.trim_end().lines() {
            shell.send_line(line)?;
        }
        // The shell takes the next statement once this one ran.
        if i + 1 < statements.len() {
            shell.exp_string("[INFO] Execute statement succeeded.")?;
        }
    }
    let (_, job) = shell.exp_regex(r"Job ID: [0-9a-f]{32}")?;
    let job = job.trim_start_matches("Job ID: ").to_string();
    std::thread::sleep(Duration::from_millis(1500));
    shell.send_line(&format!("STOP JOB '{job}' WITH SAVEPOINT;"))?;
    shell.exp_string("savepoint path")?;
    let (_, name) = shell.exp_regex(r"savepoint-[0-9a-f]{6}-[0-9a-f]{12}")?;
    assert!(
        name.starts_with(&format!("savepoint-{}", &job[..6])),
        "{name}"
    );
    let savepoint = savepoints.join(&name);
    assert!(
        savepoint.join("_metadata").is_file(),
        "{} has a manifest",
        savepoint.display()
    );
    shell.send_line("SHOW JOBS;")?;
    shell.exp_string("CANCELED")?;
    shell.send_control('d')?;
    shell.exp_eof()?;
    let stopped = output_lines(&output)?;
    assert!(
        stopped.len() < expected.len(),
        "the job was stopped before it ended: {} of {} rows written",
        stopped.len(),
        expected.len()
    );

    // Restored at parallelism 3 into the same table: the rest of the rows.
    let restore_script = dir.path().join("restore.sql");
    let path = savepoint.display().to_string();
    std::fs::write(
        &restore_script,
        nexmark_script(3, &output, &checkpoints, &savepoints, Some(&path)),
    )?;
    let log = dir.path().join("restore.log");
    let status = weir_run(dir.path(), &restore_script, &log)?.wait()?;
    let restore_log = std::fs::read_to_string(&log)?;
    assert!(status.success(), "{restore_log}");
    assert!(
        restore_log.contains("restoring from savepoint"),
        "{restore_log}"
    );
    assert_eq!(output_lines(&output)?, expected);
    Ok(())
}
