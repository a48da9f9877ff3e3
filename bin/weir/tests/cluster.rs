//! A real cluster: a coordinator and two worker processes of the `weir`
//! binary on loopback ports they pick. Clients are the binary too:
//! `weir run --coordinator`, `weir sql --coordinator` and `weir jobs`.
//! The REST API is read over plain HTTP.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{
    CrashRandom, KAFKA_BIDS, create_bid_topics, kafka_totals_script, produce_bids, topic_as_table,
};
use rdkafka::mocking::MockCluster;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

/// A child process killed when the test ends, however it ends.
struct Process {
    child: Child,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `weir args...` in `dir` and returns it with the first line it
/// prints; its log goes to `<dir>/<command>-<nanos>.log`.
fn start(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<(Process, String), Box<dyn std::error::Error>> {
    let mut command = Command::new(WEIR);
    command
        .args(args)
        .current_dir(dir)
        .env_remove("WEIR_CLUSTER_TOKEN")
        .env("WEIR_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join(format!(
            "{}-{}.log",
            args.first().copied().unwrap_or("weir"),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        )))?);
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let process = Process { child };
    let mut lines = BufReader::new(stdout);
    let mut first = String::new();
    lines.read_line(&mut first)?;
    // Keep reading so the process never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = lines.read_to_string(&mut rest);
    });
    Ok((process, first.trim().to_string()))
}

/// The address after `marker` in a line, up to a space or `)`.
fn address_after(line: &str, marker: &str) -> Result<String, String> {
    let at = line
        .find(marker)
        .ok_or_else(|| format!("no '{marker}' in '{line}'"))?;
    Ok(line[at + marker.len()..]
        .split([' ', ')'])
        .next()
        .unwrap_or_default()
        .to_string())
}

/// A worker process and the id it registered under.
struct WorkerProcess {
    id: String,
    _process: Process,
}

struct Cluster {
    rpc: String,
    rest: String,
    /// Workers after the coordinator, so they are killed first.
    workers: Vec<WorkerProcess>,
    _coordinator: Process,
    /// How workers are started, for replacements.
    dir: PathBuf,
    slots: String,
    options: Vec<String>,
}

impl Cluster {
    fn start(
        dir: &Path,
        workers: usize,
        slots: u32,
        options: &[&str],
    ) -> Result<Self, Box<dyn std::error::Error>> {
        let mut args = vec![
            "coordinator",
            "--listen",
            "127.0.0.1:0",
            "--rest-listen",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(options);
        let (coordinator, line) = start(dir, &args, &[])?;
        let rpc = address_after(&line, "listening on ")?;
        let rest = address_after(&line, "http://")?;
        let mut cluster = Self {
            rpc,
            rest,
            workers: Vec::new(),
            _coordinator: coordinator,
            dir: dir.to_path_buf(),
            slots: slots.to_string(),
            options: options.iter().map(|o| (*o).to_string()).collect(),
        };
        for _ in 0..workers {
            cluster.add_worker()?;
        }
        cluster.await_workers(workers)?;
        Ok(cluster)
    }

    /// Starts one more worker.
    fn add_worker(&mut self) -> TestResult {
        let mut args = vec![
            "worker",
            "--coordinator",
            self.rpc.as_str(),
            "--slots",
            self.slots.as_str(),
        ];
        args.extend(self.options.iter().map(String::as_str));
        let (process, line) = start(&self.dir, &args, &[])?;
        let id = line
            .strip_prefix("Worker ")
            .and_then(|rest| rest.split(' ').next())
            .ok_or_else(|| format!("not a worker's first line: {line}"))?
            .to_string();
        self.workers.push(WorkerProcess {
            id,
            _process: process,
        });
        Ok(())
    }

    /// The ids of the workers with a slot in use.
    fn busy_workers(&self) -> Result<Vec<String>, Box<dyn std::error::Error>> {
        let (_, body) = http_get(&self.rest, "/v1/workers", None)?;
        let json: serde_json::Value = serde_json::from_str(&body)?;
        Ok(json["workers"]
            .as_array()
            .map(|workers| {
                workers
                    .iter()
                    .filter(|w| w["free_slots"].as_u64() < w["slots"].as_u64())
                    .filter_map(|w| w["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    fn await_workers(&self, count: usize) -> TestResult {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let workers = http_get(&self.rest, "/v1/workers", None)?;
            let json: serde_json::Value = serde_json::from_str(&workers.1)?;
            if json["workers"].as_array().map_or(0, Vec::len) == count {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{count} workers did not register: {}", workers.1).into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Submits `script` (in `dir`) with `weir run --coordinator`, detached;
    /// the job's id.
    fn submit(&self, dir: &Path, script: &str) -> Result<String, Box<dyn std::error::Error>> {
        let run = weir(dir, &["run", "--coordinator", &self.rpc, script], &[])?;
        let stdout = text(&run.stdout);
        assert!(run.status.success(), "{stdout}{}", text(&run.stderr));
        Ok(address_after(&stdout, "Job ID: ")?.trim().to_string())
    }

    fn job(&self, id: &str) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
        let (status, body) = http_get(&self.rest, &format!("/v1/jobs/{id}"), None)?;
        assert_eq!(status, 200, "{body}");
        Ok(serde_json::from_str(&body)?)
    }

    /// Waits for the job's status to be `want`.
    fn await_status(
        &self,
        id: &str,
        want: &str,
    ) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
        self.await_one_of(id, &[want])
    }

    /// Waits for the job's status to be one of `wants`.
    fn await_one_of(
        &self,
        id: &str,
        wants: &[&str],
    ) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let job = self.job(id)?;
            let status = job["status"].as_str().unwrap_or("");
            if wants.contains(&status) {
                return Ok(job);
            }
            if ["FAILED", "CANCELED", "FINISHED"].contains(&status) || Instant::now() > deadline {
                return Err(format!("job {id} did not reach {wants:?}: {job}").into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A GET over HTTP/1.1; the status code and body.
fn http_get(
    address: &str,
    path: &str,
    token: Option<&str>,
) -> Result<(u16, String), Box<dyn std::error::Error>> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\n{auth}Connection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {response}"))?;
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Ok((status, body))
}

fn weir(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Output, std::io::Error> {
    let mut command = Command::new(WEIR);
    command
        .args(args)
        .current_dir(dir)
        .env_remove("WEIR_CLUSTER_TOKEN")
        .env_remove("WEIR_LOG");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The sorted lines of the visible files under `dir`.
fn output_lines(dir: &Path) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let mut lines = Vec::new();
    let mut pending: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        for entry in std::fs::read_dir(&path)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            if entry.file_type()?.is_dir() {
                pending.push(entry.path());
            } else {
                lines.extend(
                    std::fs::read_to_string(entry.path())?
                        .lines()
                        .map(str::to_string),
                );
            }
        }
    }
    lines.sort();
    Ok(lines)
}

/// Four CSV files of bids over two minutes of event time.
fn write_bids(dir: &Path) -> TestResult {
    let bids = dir.join("data/bids");
    std::fs::create_dir_all(&bids)?;
    for file in 0..4 {
        let mut csv = String::new();
        for i in 0..2_000u64 {
            let n = file * 2_000 + i;
            let millis = n * 15;
            csv.push_str(&format!(
                "{},{},2024-01-01 00:{:02}:{:02}.{:03}\n",
                n % 37,
                (n * 7) % 1_000,
                millis / 60_000,
                (millis / 1_000) % 60,
                millis % 1_000
            ));
        }
        std::fs::write(bids.join(format!("part-{file}.csv")), csv)?;
    }
    Ok(())
}

fn windowed_script(out: &str) -> String {
    format!(
        "SET 'parallelism.default' = '4';
SET 'table.dml-sync' = 'true';
CREATE TABLE bids (
  auction BIGINT, price BIGINT, date_time TIMESTAMP(3),
  WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH ('connector' = 'filesystem', 'path' = 'data/bids', 'format' = 'csv');
CREATE TABLE totals (window_start TIMESTAMP(3), auction BIGINT, bids BIGINT, volume BIGINT)
  WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'csv');
INSERT INTO totals
SELECT window_start, auction, COUNT(*), SUM(price)
FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(date_time), INTERVAL '10' SECOND))
GROUP BY window_start, window_end, auction;
"
    )
}

#[test]
fn a_windowed_aggregation_over_two_workers_equals_the_embedded_run() -> TestResult {
    let dir = tempfile::TempDir::new()?;
    write_bids(dir.path())?;
    std::fs::write(
        dir.path().join("embedded.sql"),
        windowed_script("out/embedded"),
    )?;
    std::fs::write(
        dir.path().join("cluster.sql"),
        windowed_script("out/cluster"),
    )?;

    let embedded = weir(dir.path(), &["run", "embedded.sql"], &[])?;
    assert!(embedded.status.success(), "{}", text(&embedded.stderr));

    let cluster = Cluster::start(dir.path(), 2, 2, &[])?;
    let run = weir(
        dir.path(),
        &["run", "--coordinator", &cluster.rpc, "cluster.sql"],
        &[],
    )?;
    let stdout = text(&run.stdout);
    assert!(run.status.success(), "{stdout}{}", text(&run.stderr));
    let expected = output_lines(&dir.path().join("out/embedded"))?;
    assert_eq!(expected.len(), 12 * 37, "one row per window and auction");
    assert_eq!(output_lines(&dir.path().join("out/cluster"))?, expected);

    // The job ran at parallelism 4 over both workers, and `weir jobs` lists it.
    let id = address_after(&stdout, "Job ")?;
    let job = cluster.job(&id)?;
    assert_eq!(job["status"], "FINISHED", "{job}");
    let workers: BTreeSet<&str> = job["slots"]
        .as_array()
        .map(|s| s.iter().filter_map(|w| w.as_str()).collect())
        .unwrap_or_default();
    assert_eq!(job["slots"].as_array().map(Vec::len), Some(4), "{job}");
    assert_eq!(workers.len(), 2, "{job}");
    // Both workers' final shares of the input are in the job's progress.
    assert!(job["progress"]["source_rows"].as_u64() > Some(0), "{job}");
    assert_eq!(job["progress"]["done"].as_f64(), Some(1.0), "{job}");
    let list = weir(
        dir.path(),
        &["jobs", "list", "--coordinator", &cluster.rpc],
        &[],
    )?;
    let listed = text(&list.stdout);
    assert!(
        listed.contains(&id) && listed.contains("FINISHED"),
        "{listed}"
    );

    // A query's rows stream back to the client.
    let query = weir(
        dir.path(),
        &[
            "sql",
            "--coordinator",
            &cluster.rpc,
            "-e",
            "SET 'parallelism.default' = '4';
             CREATE TABLE bids (auction BIGINT, price BIGINT, date_time TIMESTAMP(3))
               WITH ('connector' = 'filesystem', 'path' = 'data/bids', 'format' = 'csv');
             SELECT COUNT(*) AS n, SUM(price) AS volume FROM bids;",
        ],
        &[],
    )?;
    let rows = text(&query.stdout);
    assert!(query.status.success(), "{rows}{}", text(&query.stderr));
    let volume: u64 = (0..8_000u64).map(|n| (n * 7) % 1_000).sum();
    let last = rows
        .lines()
        .filter(|l| l.contains("8000"))
        .last()
        .unwrap_or_default();
    assert!(last.contains(&volume.to_string()), "{rows}");
    Ok(())
}

/// A worker is lost 2 s after its last heartbeat; its jobs restart every
/// half second until the job master places them on the workers left.
const RESTARTS_AFTER_A_LOST_WORKER: &[&str] = &[
    "-D",
    "heartbeat.interval=200ms",
    "-D",
    "heartbeat.timeout=2s",
    "-D",
    "restart-strategy.type=fixed-delay",
    "-D",
    "restart-strategy.fixed-delay.attempts=10",
    "-D",
    "restart-strategy.fixed-delay.delay=500ms",
];

#[test]
fn a_job_restarts_on_the_remaining_worker_when_one_is_killed() -> TestResult {
    let dir = tempfile::TempDir::new()?;
    let mut cluster = Cluster::start(dir.path(), 2, 4, RESTARTS_AFTER_A_LOST_WORKER)?;
    std::fs::write(
        dir.path().join("slow.sql"),
        "SET 'parallelism.default' = '4';
CREATE TABLE numbers (id BIGINT) WITH (
  'connector' = 'datagen', 'rows-per-second' = '500', 'number-of-rows' = '4000',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '4000');
CREATE TABLE copied (id BIGINT) WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');
INSERT INTO copied SELECT id FROM numbers;
",
    )?;
    // Without table.dml-sync the INSERT is detached: the client prints the
    // job id and exits while the job runs on.
    let id = cluster.submit(dir.path(), "slow.sql")?;
    let running = cluster.await_status(&id, "RUNNING")?;
    assert_eq!(running["attempt"], 0, "{running}");
    std::thread::sleep(Duration::from_secs(1));
    drop(cluster.workers.pop());

    let finished = cluster.await_status(&id, "FINISHED")?;
    assert!(finished["attempt"].as_u64().unwrap_or(0) >= 1, "{finished}");
    let expected: Vec<String> = {
        let mut ids: Vec<String> = (1..=4000).map(|i: u64| i.to_string()).collect();
        ids.sort();
        ids
    };
    assert_eq!(
        output_lines(&dir.path().join("out"))?,
        expected,
        "no row lost or repeated"
    );
    Ok(())
}

/// A source faster than the aggregation it feeds across workers waits for
/// room in the exchange: the REST API and `/metrics` show that wait as the
/// source task's backpressured time.
#[test]
fn a_slow_consumer_shows_as_backpressure_in_the_rest_api() -> TestResult {
    let dir = tempfile::TempDir::new()?;
    let cluster = Cluster::start(dir.path(), 2, 1, &[])?;
    std::fs::write(
        dir.path().join("fast.sql"),
        "SET 'parallelism.default' = '2';
CREATE TABLE numbers (id BIGINT) WITH (
  'connector' = 'datagen', 'rows-per-second' = '100000000',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '1000000000');
CREATE TABLE counts (id BIGINT, n BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO counts SELECT id, COUNT(*) FROM numbers GROUP BY id;
",
    )?;
    let id = cluster.submit(dir.path(), "fast.sql")?;
    cluster.await_status(&id, "RUNNING")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = cluster.job(&id)?;
        let source_waited = job["operators"].as_array().is_some_and(|ops| {
            ops.iter().any(|op| {
                op["operator"]
                    .as_str()
                    .is_some_and(|o| o.starts_with("Source: "))
                    && op["backpressured_ms"].as_u64().unwrap_or(0) > 0
            })
        });
        if source_waited {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no backpressure reported: {}",
            job["operators"]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, metrics) = http_get(&cluster.rest, "/metrics", None)?;
    assert_eq!(status, 200);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("weir_operator_backpressured_seconds_total{")),
        "{metrics}"
    );
    Ok(())
}

/// Per-key totals of ten-second windows over a datagen sequence that takes
/// about ten seconds, checkpointed into `checkpoints`, at `parallelism`,
/// optionally restored from a savepoint.
fn checkpointed_script(
    out: &str,
    checkpoints: &Path,
    parallelism: usize,
    savepoint: Option<&str>,
) -> String {
    let restore = savepoint.map_or(String::new(), |path| {
        format!("SET 'execution.savepoint.path' = '{path}';\n")
    });
    format!(
        "SET 'parallelism.default' = '{parallelism}';
SET 'execution.checkpointing.interval' = '200 ms';
SET 'execution.checkpointing.dir' = '{checkpoints}';
{restore}CREATE TABLE numbers (
  id BIGINT,
  ts AS TO_TIMESTAMP_LTZ(id * 100, 3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH (
  'connector' = 'datagen', 'rows-per-second' = '2000', 'number-of-rows' = '20000',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '20000');
CREATE TABLE totals (window_start TIMESTAMP(3), k BIGINT, n BIGINT, total BIGINT)
  WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'csv');
INSERT INTO totals
SELECT window_start, MOD(id, 7), COUNT(*), SUM(id)
FROM TABLE(TUMBLE(TABLE numbers, DESCRIPTOR(ts), INTERVAL '10' SECOND))
GROUP BY window_start, window_end, MOD(id, 7);
",
        checkpoints = checkpoints.display()
    )
}

/// Each sequence number from `numbers` (as in `checkpointed_script`)
/// divisible by 3, joined with its key's name from a file: a regular join
/// whose state holds every number and key.
fn checkpointed_join_script(out: &str, checkpoints: &Path) -> String {
    format!(
        "SET 'parallelism.default' = '2';
SET 'execution.checkpointing.interval' = '200 ms';
SET 'execution.checkpointing.dir' = '{checkpoints}';
CREATE TABLE numbers (id BIGINT) WITH (
  'connector' = 'datagen', 'rows-per-second' = '2000', 'number-of-rows' = '20000',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '20000');
CREATE TABLE names (k BIGINT, name STRING)
  WITH ('connector' = 'filesystem', 'path' = 'names', 'format' = 'csv');
CREATE TABLE named (id BIGINT, name STRING)
  WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'csv');
INSERT INTO named
SELECT n.id, k.name FROM numbers AS n JOIN names AS k ON MOD(n.id, 7) = k.k
WHERE MOD(n.id, 3) = 0;
",
        checkpoints = checkpoints.display()
    )
}

/// A windowed aggregation loses workers; see `loses_workers_at_random`.
#[test]
fn a_checkpointing_window_aggregation_that_loses_workers_resumes_from_its_latest_checkpoints()
-> TestResult {
    loses_workers_at_random(&Pipeline {
        script: &|name, checkpoints| {
            checkpointed_script(&format!("out/{name}"), checkpoints, 2, None)
        },
        before_run: &|_| {},
        output: &|dir, name| output_lines(&dir.join("out").join(name)),
        // Windows of 100 ids: 200 with every key, and id 20000's alone.
        expected_rows: 7 * 200 + 1,
    })
}

/// A regular join loses workers; see `loses_workers_at_random`.
#[test]
fn a_checkpointing_join_that_loses_workers_resumes_from_its_latest_checkpoints() -> TestResult {
    loses_workers_at_random(&Pipeline {
        script: &|name, checkpoints| checkpointed_join_script(&format!("out/{name}"), checkpoints),
        before_run: &|_| {},
        output: &|dir, name| output_lines(&dir.join("out").join(name)),
        expected_rows: 20_000 / 3,
    })
}

/// A Kafka-to-Kafka pipeline loses workers; see `loses_workers_at_random`.
/// One-minute totals per auction of bids that arrive in a six-partition
/// topic over about ten seconds, written as upserts to another topic (both
/// on a mock Kafka cluster in this process); the upsert topic read as a
/// table must equal the embedded run's. Sources resume from the offsets in
/// the checkpoint they restore: had they not, restored window state would
/// count bids twice and the totals would differ.
#[test]
fn a_checkpointing_kafka_pipeline_that_loses_workers_writes_the_undisturbed_table() -> TestResult {
    let kafka = MockCluster::new(1)?;
    let bootstrap = kafka.bootstrap_servers();
    create_bid_topics(&kafka, &["embedded", "cluster"])?;
    let script = |name: &str, checkpoints: &Path| {
        let settings = format!(
            "SET 'parallelism.default' = '2';\n\
             SET 'execution.checkpointing.interval' = '200 ms';\n\
             SET 'execution.checkpointing.dir' = '{}';\n",
            checkpoints.display()
        );
        kafka_totals_script(&settings, name, &bootstrap)
    };
    std::thread::scope(|scope| {
        loses_workers_at_random(&Pipeline {
            script: &script,
            before_run: &|name| {
                let bootstrap = bootstrap.clone();
                let topic = format!("bids-{name}");
                scope.spawn(move || produce_bids(&bootstrap, &topic, Duration::from_millis(250)));
            },
            output: &|_, name| Ok(topic_as_table(&bootstrap, name)),
            // One row per auction and minute.
            expected_rows: 13 * (KAFKA_BIDS / 10).div_ceil(60),
        })
    })
}

/// A checkpointing job run by `loses_workers_at_random`: `script(name,
/// checkpoints)` writes to the output called `name` ("embedded" or
/// "cluster"), `before_run(name)` starts its input, and `output(dir, name)`
/// reads the output back as sorted lines.
struct Pipeline<'a> {
    script: &'a dyn Fn(&str, &Path) -> String,
    before_run: &'a dyn Fn(&str),
    output: &'a dyn Fn(&Path, &str) -> Result<Vec<String>, Box<dyn std::error::Error>>,
    expected_rows: usize,
}

/// A checkpointing job loses a worker (SIGKILL) at a random point, three
/// times; each time a new worker takes the lost one's place and the job
/// master restarts the job from its latest checkpoint. The output is
/// exactly the embedded, undisturbed run's, `expected_rows` rows.
/// (Restarted from the start instead, what was committed before a kill
/// would be written twice.)
fn loses_workers_at_random(pipeline: &Pipeline<'_>) -> TestResult {
    let dir = tempfile::TempDir::new()?;
    let names: String = (0..7).map(|k| format!("{k},name-{k}\n")).collect();
    std::fs::create_dir_all(dir.path().join("names"))?;
    std::fs::write(dir.path().join("names/names.csv"), names)?;
    std::fs::write(
        dir.path().join("embedded.sql"),
        (pipeline.script)("embedded", &dir.path().join("chk-embedded")),
    )?;
    (pipeline.before_run)("embedded");
    let embedded = weir(dir.path(), &["run", "embedded.sql"], &[])?;
    assert!(embedded.status.success(), "{}", text(&embedded.stderr));
    let expected = (pipeline.output)(dir.path(), "embedded")?;
    assert_eq!(expected.len(), pipeline.expected_rows);

    let mut cluster = Cluster::start(dir.path(), 2, 2, RESTARTS_AFTER_A_LOST_WORKER)?;
    std::fs::write(
        dir.path().join("cluster.sql"),
        (pipeline.script)("cluster", &dir.path().join("chk-cluster")),
    )?;
    (pipeline.before_run)("cluster");
    let id = cluster.submit(dir.path(), "cluster.sql")?;
    let completed = |cluster: &Cluster| -> Result<u64, Box<dyn std::error::Error>> {
        let (status, body) = http_get(&cluster.rest, &format!("/v1/jobs/{id}/checkpoints"), None)?;
        assert_eq!(status, 200, "{body}");
        let history: serde_json::Value = serde_json::from_str(&body)?;
        Ok(history["counts"]["completed"].as_u64().unwrap_or(0))
    };
    let mut random = CrashRandom::from_env_or_clock();
    let mut kills = 0;
    for _ in 0..3 {
        // Each attempt first completes a checkpoint, so the job gets on.
        let job = cluster.await_one_of(&id, &["RUNNING", "FINISHED"])?;
        if job["status"] == "FINISHED" {
            break;
        }
        let attempt = job["attempt"].as_u64().unwrap_or(0);
        let before = completed(&cluster)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while completed(&cluster)? == before && cluster.job(&id)?["status"] == "RUNNING" {
            assert!(Instant::now() < deadline, "no checkpoint completed");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(random.next(1500)));
        let busy = cluster.busy_workers()?;
        if cluster.job(&id)?["status"] != "RUNNING" || busy.is_empty() {
            break;
        }
        let victim = &busy[random.next(busy.len() as u64) as usize];
        cluster.workers.retain(|w| &w.id != victim);
        kills += 1;
        cluster.add_worker()?;
        // The job master notices the loss and starts the next attempt.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let job = cluster.job(&id)?;
            if job["attempt"].as_u64().unwrap_or(0) > attempt || job["status"] == "FINISHED" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no restart after a lost worker: {job}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert!(kills > 0, "the job finished before a worker was killed");

    let finished = cluster.await_status(&id, "FINISHED")?;
    eprintln!(
        "{kills} workers killed; the job finished in attempt {}",
        finished["attempt"]
    );
    assert!(
        finished["attempt"].as_u64().unwrap_or(0) >= 1,
        "{kills} kills: {finished}"
    );
    assert_eq!(
        (pipeline.output)(dir.path(), "cluster")?,
        expected,
        "{kills} kills changed the output"
    );
    let left: Vec<PathBuf> = dir
        .path()
        .join("chk-cluster")
        .read_dir()?
        .flatten()
        .flat_map(|job| job.path().read_dir().into_iter().flatten().flatten())
        .map(|e| e.path())
        .collect();
    assert!(
        left.is_empty(),
        "a finished job deletes its checkpoints: {left:?}"
    );
    Ok(())
}

/// `weir savepoint` takes a savepoint of a running job, `--stop` stops it
/// with one, and the job submitted again from it at parallelism 3 ends with
/// the output of the embedded, undisturbed run.
#[test]
fn a_savepoint_of_a_cluster_job_restores_at_another_parallelism() -> TestResult {
    let dir = tempfile::TempDir::new()?;
    let chk = dir.path().join("chk");
    std::fs::write(
        dir.path().join("embedded.sql"),
        checkpointed_script("out/embedded", &chk, 2, None),
    )?;
    let embedded = weir(dir.path(), &["run", "embedded.sql"], &[])?;
    assert!(embedded.status.success(), "{}", text(&embedded.stderr));
    let expected = output_lines(&dir.path().join("out/embedded"))?;

    let cluster = Cluster::start(dir.path(), 2, 2, &[])?;
    std::fs::write(
        dir.path().join("first.sql"),
        checkpointed_script("out/cluster", &chk, 2, None),
    )?;
    let id = cluster.submit(dir.path(), "first.sql")?;
    cluster.await_status(&id, "RUNNING")?;
    std::thread::sleep(Duration::from_secs(1));
    let savepoints = dir.path().join("savepoints");
    let savepoints_arg = savepoints.display().to_string();
    // `weir savepoint [--stop]`: the path it prints.
    let savepoint = |stop: bool| -> Result<PathBuf, Box<dyn std::error::Error>> {
        let mut args = vec![
            "savepoint",
            "--coordinator",
            &cluster.rpc,
            &id,
            &savepoints_arg,
        ];
        if stop {
            args.insert(1, "--stop");
        }
        let output = weir(dir.path(), &args, &[])?;
        let stdout = text(&output.stdout);
        assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("Savepoint completed. Path: "))
            .ok_or_else(|| format!("no savepoint path in: {stdout}"))?;
        Ok(PathBuf::from(line.trim()))
    };
    assert!(savepoint(false)?.join("_metadata").is_file());
    assert_eq!(
        cluster.job(&id)?["status"],
        "RUNNING",
        "a savepoint leaves the job running"
    );
    let savepoint = savepoint(true)?;
    assert_eq!(cluster.job(&id)?["status"], "CANCELED");
    let partial = output_lines(&dir.path().join("out/cluster"))?;
    assert!(
        !partial.is_empty() && partial.len() < expected.len(),
        "stopped midway: {} of {} rows",
        partial.len(),
        expected.len()
    );

    std::fs::write(
        dir.path().join("second.sql"),
        checkpointed_script(
            "out/cluster",
            &chk,
            3,
            Some(&savepoint.display().to_string()),
        ),
    )?;
    let id = cluster.submit(dir.path(), "second.sql")?;
    cluster.await_status(&id, "FINISHED")?;
    assert_eq!(output_lines(&dir.path().join("out/cluster"))?, expected);
    Ok(())
}

#[test]
fn calls_without_the_cluster_token_are_refused() -> TestResult {
    let dir = tempfile::TempDir::new()?;
    let token = ["-D", "cluster.auth.token=s3cret"];
    let (_coordinator, line) = start(
        dir.path(),
        &[
            "coordinator",
            "--listen",
            "127.0.0.1:0",
            "--rest-listen",
            "127.0.0.1:0",
            token[0],
            token[1],
        ],
        &[],
    )?;
    let rpc = address_after(&line, "listening on ")?;
    let rest = address_after(&line, "http://")?;

    let refused = weir(dir.path(), &["jobs", "list", "--coordinator", &rpc], &[])?;
    assert!(!refused.status.success());
    let message = text(&refused.stderr);
    assert!(message.contains("token"), "{message}");
    let allowed = weir(
        dir.path(),
        &["jobs", "list", "--coordinator", &rpc],
        &[("WEIR_CLUSTER_TOKEN", "s3cret")],
    )?;
    assert!(allowed.status.success(), "{}", text(&allowed.stderr));

    let worker = weir(dir.path(), &["worker", "--coordinator", &rpc], &[])?;
    assert!(!worker.status.success());
    assert!(
        text(&worker.stderr).contains("refused"),
        "{}",
        text(&worker.stderr)
    );

    assert_eq!(http_get(&rest, "/v1/jobs", None)?.0, 401);
    assert_eq!(http_get(&rest, "/v1/jobs", Some("guess"))?.0, 401);
    assert_eq!(http_get(&rest, "/v1/jobs", Some("s3cret"))?.0, 200);
    Ok(())
}
