//! `weir bench nexmark`: the Nexmark benchmark runner.
//!
//! Each query of `benches/nexmark/` (built into the binary, so the bench
//! runs from any directory) is run as a fresh `weir run` process, whole and
//! cold: start-up, planning and generating the events count. The runner sets
//! the events ('events.num') and the parallelism, points q10's sink and
//! q13's side input at a scratch directory, and measures each run:
//! - wall time, from spawning the process to its exit;
//! - CPU seconds (user + system), from the kernel's accounting of waited-for
//!   children (`getrusage(RUSAGE_CHILDREN)` before and after);
//! - peak RSS, the process's high-water mark (`VmHWM`), sampled until it
//!   exits (Linux; the children's `ru_maxrss` when that is higher).
//!
//! It prints the medians per query as a table and writes them as JSON
//! (`results.json`) and as an SVG bar chart of events/s
//! (`events_per_second.svg`) into the output directory.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};
use serde_json::json;

/// The queries, in order, with their SQL.
const QUERIES: [(&str, &str); 23] = [
    ("q0", include_str!("../../../benches/nexmark/q0.sql")),
    ("q1", include_str!("../../../benches/nexmark/q1.sql")),
    ("q2", include_str!("../../../benches/nexmark/q2.sql")),
    ("q3", include_str!("../../../benches/nexmark/q3.sql")),
    ("q4", include_str!("../../../benches/nexmark/q4.sql")),
    ("q5", include_str!("../../../benches/nexmark/q5.sql")),
    ("q6", include_str!("../../../benches/nexmark/q6.sql")),
    ("q7", include_str!("../../../benches/nexmark/q7.sql")),
    ("q8", include_str!("../../../benches/nexmark/q8.sql")),
    ("q9", include_str!("../../../benches/nexmark/q9.sql")),
    ("q10", include_str!("../../../benches/nexmark/q10.sql")),
    ("q11", include_str!("../../../benches/nexmark/q11.sql")),
    ("q12", include_str!("../../../benches/nexmark/q12.sql")),
    ("q13", include_str!("../../../benches/nexmark/q13.sql")),
    ("q14", include_str!("../../../benches/nexmark/q14.sql")),
    ("q15", include_str!("../../../benches/nexmark/q15.sql")),
    ("q16", include_str!("../../../benches/nexmark/q16.sql")),
    ("q17", include_str!("../../../benches/nexmark/q17.sql")),
    ("q18", include_str!("../../../benches/nexmark/q18.sql")),
    ("q19", include_str!("../../../benches/nexmark/q19.sql")),
    ("q20", include_str!("../../../benches/nexmark/q20.sql")),
    ("q21", include_str!("../../../benches/nexmark/q21.sql")),
    ("q22", include_str!("../../../benches/nexmark/q22.sql")),
];

/// q13's side input (10,000 keys, as nexmark-flink's `side_input_gen.sh`).
const SIDE_INPUT: &str = include_str!("../../../benches/nexmark/side_input.csv");

/// How often a running query's peak RSS is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("unknown query '{0}'; the queries are q0 to q22 (a comma-separated list, or 'all')")]
    UnknownQuery(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("cannot read the CPU time of finished runs: {0}")]
    Usage(#[from] nix::Error),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
    let what = what.into();
    move |source| BenchError::Io { what, source }
}

/// What `weir bench nexmark` was asked to do.
#[derive(Debug)]
pub struct NexmarkBench {
    /// `all`, or names such as `q0,q5,q7`.
    pub queries: String,
    pub events: u64,
    pub parallelism: usize,
    pub runs: usize,
    pub out: PathBuf,
}

/// One run's measurements.
#[derive(Debug, Clone, Copy)]
struct Measured {
    wall_seconds: f64,
    cpu_seconds: f64,
    peak_rss_mb: f64,
}

/// A query's result over its runs.
#[derive(Debug)]
enum Outcome {
    Ran(Vec<Measured>),
    /// The first failed run's last error line.
    Failed(String),
}

impl NexmarkBench {
    fn selected(&self) -> Result<Vec<(&'static str, &'static str)>, BenchError> {
        if self.queries.trim() == "all" {
            return Ok(QUERIES.to_vec());
        }
        self.queries
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(|name| {
                QUERIES
                    .iter()
                    .find(|(q, _)| q.eq_ignore_ascii_case(name))
                    .copied()
                    .ok_or_else(|| BenchError::UnknownQuery(name.to_string()))
            })
            .collect()
    }

    /// The script run for a query: its SQL with the bench's settings.
    fn script(&self, sql: &str, scratch: &Path) -> String {
        let mut script = format!("SET 'parallelism.default' = '{}';\n", self.parallelism);
        let scratch = scratch.display().to_string().replace('\'', "''");
        for line in sql.lines() {
            let line = replace_events(line, self.events)
                .replace(
                    "'benches/nexmark/side_input.csv'",
                    &format!("'{scratch}/side_input.csv'"),
                )
                .replace("'target/nexmark/q10'", &format!("'{scratch}/q10'"));
            script.push_str(&line);
            script.push('\n');
        }
        script
    }

    /// Runs the selected queries and reports them; false if any failed.
    pub fn run(&self) -> Result<bool, BenchError> {
        let queries = self.selected()?;
        let exe = std::env::current_exe().map_err(io("cannot find the weir binary"))?;
        std::fs::create_dir_all(&self.out)
            .map_err(io(format!("cannot create '{}'", self.out.display())))?;
        let scratch = self.out.join("scratch");
        std::fs::create_dir_all(&scratch)
            .map_err(io(format!("cannot create '{}'", scratch.display())))?;
        std::fs::write(scratch.join("side_input.csv"), SIDE_INPUT)
            .map_err(io("cannot write q13's side input"))?;
        let mut results = Vec::new();
        for (name, sql) in queries {
            let script = scratch.join(format!("{name}.sql"));
            std::fs::write(&script, self.script(sql, &scratch))
                .map_err(io(format!("cannot write '{}'", script.display())))?;
            let mut runs = Vec::new();
            let mut failure = None;
            for run in 1..=self.runs.max(1) {
                // q10 writes files; each run starts from none.
                let _ = std::fs::remove_dir_all(scratch.join("q10"));
                match measure(&exe, &script, &scratch.join(format!("{name}.log")))? {
                    Ok(measured) => {
                        eprintln!(
                            "{name} run {run}: {:.2}s wall, {:.0} MB peak RSS",
                            measured.wall_seconds, measured.peak_rss_mb
                        );
                        runs.push(measured);
                    }
                    Err(why) => {
                        eprintln!("{name} run {run} failed: {why}");
                        failure = Some(why);
                        break;
                    }
                }
            }
            let _ = std::fs::remove_dir_all(scratch.join("q10"));
            results.push((
                name,
                match failure {
                    Some(why) => Outcome::Failed(why),
                    None => Outcome::Ran(runs),
                },
            ));
        }
        let rows = self.report(&results);
        let json_path = self.out.join("results.json");
        let text = serde_json::to_string_pretty(&rows).unwrap_or_default();
        std::fs::write(&json_path, text + "\n")
            .map_err(io(format!("cannot write '{}'", json_path.display())))?;
        let svg_path = self.out.join("events_per_second.svg");
        std::fs::write(&svg_path, self.chart(&rows))
            .map_err(io(format!("cannot write '{}'", svg_path.display())))?;
        println!(
            "\nJSON: {}, chart: {}",
            json_path.display(),
            svg_path.display()
        );
        Ok(results
            .iter()
            .all(|(_, outcome)| matches!(outcome, Outcome::Ran(_))))
    }

    /// Prints the table and returns the JSON rows.
    fn report(&self, results: &[(&str, Outcome)]) -> Vec<serde_json::Value> {
        println!(
            "Nexmark, {} events, parallelism {} (medians of {} runs)",
            self.events,
            self.parallelism,
            self.runs.max(1)
        );
        println!("| query | events/s | wall s | CPU s | peak RSS MB |");
        println!("|---|---:|---:|---:|---:|");
        let mut rows = Vec::new();
        for (name, outcome) in results {
            match outcome {
                Outcome::Failed(why) => {
                    println!("| {name} | failed: {why} | | | |");
                    rows.push(json!({ "query": name, "failed": why }));
                }
                Outcome::Ran(runs) => {
                    let wall = median(runs.iter().map(|r| r.wall_seconds));
                    let cpu = median(runs.iter().map(|r| r.cpu_seconds));
                    let rss = median(runs.iter().map(|r| r.peak_rss_mb));
                    let rate = (self.events as f64 / wall.max(1e-9)).round() as u64;
                    println!(
                        "| {name} | {} | {wall:.2} | {cpu:.2} | {rss:.0} |",
                        thousands(rate)
                    );
                    rows.push(json!({
                        "query": name,
                        "events": self.events,
                        "parallelism": self.parallelism,
                        "runs": runs.len(),
                        "wall_seconds": round2(wall),
                        "events_per_second": rate,
                        "cpu_seconds": round2(cpu),
                        "peak_rss_mb": (rss * 10.0).round() / 10.0,
                    }));
                }
            }
        }
        rows
    }

    /// A bar chart of events/s per query, plain SVG.
    fn chart(&self, rows: &[serde_json::Value]) -> String {
        let bars: Vec<(&str, u64)> = rows
            .iter()
            .filter_map(|r| Some((r["query"].as_str()?, r["events_per_second"].as_u64()?)))
            .collect();
        let top = bars.iter().map(|(_, v)| *v).max().unwrap_or(1).max(1) as f64;
        let (bar, gap, height, left) = (28.0, 8.0, 300.0, 70.0);
        let width = left + bars.len() as f64 * (bar + gap) + 20.0;
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{}" font-family="sans-serif" font-size="11">"#,
            height + 70.0
        );
        let _ = writeln!(
            svg,
            r#"<text x="{left}" y="16" font-size="13">Weir Nexmark: events/s per query ({} events, parallelism {})</text>"#,
            thousands(self.events),
            self.parallelism
        );
        for i in 0..5 {
            let value = top * f64::from(i) / 4.0;
            let y = 30.0 + height - height * f64::from(i) / 4.0;
            let _ = writeln!(
                svg,
                r##"<line x1="{left}" x2="{}" y1="{y:.0}" y2="{y:.0}" stroke="#ddd"/>"##,
                width - 10.0
            );
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{:.0}" text-anchor="end">{:.1}M</text>"#,
                left - 6.0,
                y + 4.0,
                value / 1e6
            );
        }
        for (i, (name, rate)) in bars.iter().enumerate() {
            let h = height * *rate as f64 / top;
            let x = left + gap + i as f64 * (bar + gap);
            let _ = writeln!(
                svg,
                r##"<rect x="{x}" y="{:.0}" width="{bar}" height="{h:.0}" fill="#3b6ea5"><title>{name}: {} events/s</title></rect>"##,
                30.0 + height - h,
                thousands(*rate)
            );
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="middle">{name}</text>"#,
                x + bar / 2.0,
                height + 46.0
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

/// Runs one script as a fresh `weir run` process. The outer error is the
/// bench's own; the inner one is the run's failure (its last error line).
fn measure(exe: &Path, script: &Path, log: &Path) -> Result<Result<Measured, String>, BenchError> {
    let stderr =
        std::fs::File::create(log).map_err(io(format!("cannot create '{}'", log.display())))?;
    let before = getrusage(UsageWho::RUSAGE_CHILDREN)?;
    let started = Instant::now();
    let mut child = Command::new(exe)
        .arg("run")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(io(format!("cannot start '{}'", exe.display())))?;
    let status_file = PathBuf::from(format!("/proc/{}/status", child.id()));
    let mut peak_kb = 0;
    let status = loop {
        if let Some(kb) = high_water_mark_kb(&status_file) {
            peak_kb = peak_kb.max(kb);
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => std::thread::sleep(SAMPLE_EVERY),
            Err(e) => return Err(io("cannot wait for a run")(e)),
        }
    };
    let wall_seconds = started.elapsed().as_secs_f64();
    let after = getrusage(UsageWho::RUSAGE_CHILDREN)?;
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let why = text
            .lines()
            .rev()
            .find(|line| line.starts_with("[ERROR]"))
            .or_else(|| text.lines().next_back())
            .unwrap_or("no output")
            .to_string();
        return Ok(Err(format!("{why} ({status})")));
    }
    let seconds = |usage: &nix::sys::resource::Usage| {
        let time = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        time(usage.user_time()) + time(usage.system_time())
    };
    // The children's maximum is this run's peak when this run raised it.
    if after.max_rss() > before.max_rss() {
        peak_kb = peak_kb.max(u64::try_from(after.max_rss()).unwrap_or(0));
    }
    Ok(Ok(Measured {
        wall_seconds,
        cpu_seconds: seconds(&after) - seconds(&before),
        peak_rss_mb: peak_kb as f64 / 1024.0,
    }))
}

/// `VmHWM` of `/proc/<pid>/status`, in KB; `None` once the process is gone
/// (or off Linux).
fn high_water_mark_kb(status_file: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(status_file).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The line with its 'events.num' set to `events`.
fn replace_events(line: &str, events: u64) -> String {
    const KEY: &str = "'events.num' = '";
    let Some(start) = line.find(KEY).map(|i| i + KEY.len()) else {
        return line.to_string();
    };
    let Some(len) = line[start..].find('\'') else {
        return line.to_string();
    };
    format!("{}{events}{}", &line[..start], &line[start + len..])
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// `1234567` as `1,234,567`.
fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bench(queries: &str) -> NexmarkBench {
        NexmarkBench {
            queries: queries.to_string(),
            events: 1000,
            parallelism: 2,
            runs: 1,
            out: PathBuf::from("/tmp/out"),
        }
    }

    #[test]
    fn queries_are_picked_by_name() {
        assert_eq!(bench("all").selected().map(|q| q.len()).ok(), Some(23));
        let picked: Vec<&str> = bench("q0, Q5,q22")
            .selected()
            .map(|q| q.into_iter().map(|(name, _)| name).collect())
            .unwrap_or_default();
        assert_eq!(picked, vec!["q0", "q5", "q22"]);
        assert!(matches!(
            bench("q23").selected(),
            Err(BenchError::UnknownQuery(q)) if q == "q23"
        ));
    }

    #[test]
    fn a_script_gets_the_bench_settings() {
        let b = bench("all");
        let scratch = Path::new("/tmp/scratch");
        let q10 = b.script(QUERIES[10].1, scratch);
        assert!(q10.starts_with("SET 'parallelism.default' = '2';\n"));
        assert!(q10.contains("'events.num' = '1000'"));
        assert!(!q10.contains("'events.num' = '10000000'"));
        assert!(q10.contains("'path' = '/tmp/scratch/q10'"));
        let q13 = b.script(QUERIES[13].1, scratch);
        assert!(q13.contains("'/tmp/scratch/side_input.csv'"), "{q13}");
    }

    #[test]
    fn figures_are_spelled_for_people() {
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), 2.0);
        assert_eq!(median([4.0, 1.0].into_iter()), 2.5);
        let svg = bench("all").chart(&[json!({"query": "q0", "events_per_second": 5})]);
        assert!(svg.contains("<title>q0: 5 events/s</title>"));
    }
}
