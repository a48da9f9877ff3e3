//! The session configuration: Flink's option keys, set with
//! `SET 'key' = 'value'` and cleared with `RESET`.
//!
//! Like Flink, any key may be set (connectors and later features read their
//! own); the keys Weir itself interprets are validated when they are set, so
//! a typo in a value fails at the `SET`, not when a job starts.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::CommonError;
use crate::duration::parse_duration;

/// `parallelism.default`: subtasks per operator when a query does not say.
pub const PARALLELISM_DEFAULT: &str = "parallelism.default";
/// `execution.runtime-mode`: `streaming` or `batch`.
pub const RUNTIME_MODE: &str = "execution.runtime-mode";
/// `table.local-time-zone`: the zone for TIMESTAMP_LTZ display and conversions.
pub const LOCAL_TIME_ZONE: &str = "table.local-time-zone";
/// `table.dml-sync`: whether INSERT statements wait for their job to end.
pub const DML_SYNC: &str = "table.dml-sync";
/// `table.exec.source.idle-timeout`: when an idle split stops holding back time.
pub const SOURCE_IDLE_TIMEOUT: &str = "table.exec.source.idle-timeout";
/// `table.exec.state.ttl`: how long an idle key's state is kept (0: forever).
pub const STATE_TTL: &str = "table.exec.state.ttl";
/// `sql-client.execution.result-mode`: `table`, `changelog` or `tableau`.
pub const RESULT_MODE: &str = "sql-client.execution.result-mode";
/// `sql-client.execution.max-table-result.rows`: rows the table and changelog
/// result views keep; the oldest go first when more arrive.
pub const MAX_TABLE_RESULT_ROWS: &str = "sql-client.execution.max-table-result.rows";
/// `pipeline.name`: the job name.
pub const PIPELINE_NAME: &str = "pipeline.name";
/// `execution.checkpointing.interval`: how often checkpoints are taken;
/// unset (or 0) means none.
pub const CHECKPOINTING_INTERVAL: &str = "execution.checkpointing.interval";
/// `execution.checkpointing.timeout`: a checkpoint not complete by then fails.
pub const CHECKPOINTING_TIMEOUT: &str = "execution.checkpointing.timeout";
/// `execution.checkpointing.min-pause`: the least time between the end of one
/// checkpoint and the start of the next.
pub const CHECKPOINTING_MIN_PAUSE: &str = "execution.checkpointing.min-pause";
/// `execution.checkpointing.max-concurrent-checkpoints`.
pub const CHECKPOINTING_MAX_CONCURRENT: &str = "execution.checkpointing.max-concurrent-checkpoints";
/// `execution.checkpointing.dir` (Flink 1.x: `state.checkpoints.dir`): where
/// checkpoints are written; without it they are kept in memory and survive
/// task failures but not the process.
pub const CHECKPOINTING_DIR: &str = "execution.checkpointing.dir";
/// Flink 1.x's name for [`CHECKPOINTING_DIR`].
pub const CHECKPOINTS_DIR_LEGACY: &str = "state.checkpoints.dir";
/// `execution.checkpointing.num-retained` (Flink 1.x: `state.checkpoints.num-retained`).
pub const CHECKPOINTING_NUM_RETAINED: &str = "execution.checkpointing.num-retained";
/// Flink 1.x's name for [`CHECKPOINTING_NUM_RETAINED`].
pub const NUM_RETAINED_LEGACY: &str = "state.checkpoints.num-retained";
/// `execution.checkpointing.tolerable-failed-checkpoints`: consecutive failed
/// checkpoints a job survives.
pub const CHECKPOINTING_TOLERABLE_FAILURES: &str =
    "execution.checkpointing.tolerable-failed-checkpoints";
/// `execution.checkpointing.savepoint-dir` (Flink 1.x: `state.savepoints.dir`):
/// where `STOP JOB ... WITH SAVEPOINT` writes savepoints.
pub const SAVEPOINT_DIR: &str = "execution.checkpointing.savepoint-dir";
/// Flink 1.x's name for [`SAVEPOINT_DIR`].
pub const SAVEPOINT_DIR_LEGACY: &str = "state.savepoints.dir";
/// `execution.savepoint.path`: the savepoint the next INSERT jobs start from.
pub const SAVEPOINT_PATH: &str = "execution.savepoint.path";
/// `execution.savepoint.ignore-unclaimed-state`: restore a savepoint even if
/// some of its state belongs to no operator of the job.
pub const SAVEPOINT_IGNORE_UNCLAIMED: &str = "execution.savepoint.ignore-unclaimed-state";

/// `restart-strategy.type`: how a failed job restarts (from its latest
/// checkpoint): `none`, `fixed-delay`, `failure-rate` or
/// `exponential-delay` (the default for a job that takes checkpoints).
pub const RESTART_STRATEGY: &str = "restart-strategy.type";
pub const FIXED_DELAY_ATTEMPTS: &str = "restart-strategy.fixed-delay.attempts";
pub const FIXED_DELAY_DELAY: &str = "restart-strategy.fixed-delay.delay";
pub const FAILURE_RATE_MAX_FAILURES: &str =
    "restart-strategy.failure-rate.max-failures-per-interval";
pub const FAILURE_RATE_INTERVAL: &str = "restart-strategy.failure-rate.failure-rate-interval";
pub const FAILURE_RATE_DELAY: &str = "restart-strategy.failure-rate.delay";
pub const EXPONENTIAL_INITIAL_BACKOFF: &str = "restart-strategy.exponential-delay.initial-backoff";
pub const EXPONENTIAL_MAX_BACKOFF: &str = "restart-strategy.exponential-delay.max-backoff";
pub const EXPONENTIAL_MULTIPLIER: &str = "restart-strategy.exponential-delay.backoff-multiplier";
pub const EXPONENTIAL_RESET_THRESHOLD: &str =
    "restart-strategy.exponential-delay.reset-backoff-threshold";
pub const EXPONENTIAL_JITTER: &str = "restart-strategy.exponential-delay.jitter-factor";
pub const EXPONENTIAL_ATTEMPTS: &str =
    "restart-strategy.exponential-delay.attempts-before-reset-backoff";

/// How a failed job is restarted, as Flink's 'restart-strategy.*' options
/// say (with Flink's defaults).
#[derive(Debug, Clone, PartialEq)]
pub enum RestartStrategy {
    /// A failed job stays failed.
    None,
    /// Up to `attempts` restarts, `delay` apart.
    FixedDelay { attempts: usize, delay: Duration },
    /// Restarts `delay` apart while at most `max_failures` fall within
    /// `interval`.
    FailureRate {
        max_failures: usize,
        interval: Duration,
        delay: Duration,
    },
    /// Delays growing from `initial` by `multiplier` up to `max`, each
    /// varied by up to `jitter` of itself; back to `initial` after a run of
    /// `reset_threshold` without failure; at most `attempts` restarts
    /// before such a reset.
    ExponentialDelay {
        initial: Duration,
        max: Duration,
        multiplier: f64,
        reset_threshold: Duration,
        jitter: f64,
        attempts: usize,
    },
}

/// How a job treats its inputs; both run the same operators (Kappa).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeMode {
    Streaming,
    /// Bounded inputs only; updating results are written once, final.
    Batch,
}

/// The defaults of the options Weir interprets, as Flink names them.
const DEFAULTS: &[(&str, &str)] = &[
    (PARALLELISM_DEFAULT, "1"),
    (RUNTIME_MODE, "streaming"),
    (LOCAL_TIME_ZONE, "default"),
    (DML_SYNC, "false"),
    (SOURCE_IDLE_TIMEOUT, "0 ms"),
    (STATE_TTL, "0 ms"),
    (RESULT_MODE, "table"),
    (MAX_TABLE_RESULT_ROWS, "1000000"),
];

/// How a job takes checkpoints (the `execution.checkpointing.*` options).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointingOptions {
    pub interval: Duration,
    pub timeout: Duration,
    pub min_pause: Duration,
    pub max_concurrent: usize,
    /// Where checkpoints go: a path or URL; `None` keeps them in memory.
    pub dir: Option<String>,
    pub num_retained: usize,
    pub tolerable_failures: usize,
    /// Where savepoints go unless a statement names a directory.
    pub savepoint_dir: Option<String>,
    /// The savepoint the job starts from.
    pub restore: Option<SavepointRestore>,
    /// How the job restarts from its latest checkpoint when it fails.
    pub restart: RestartStrategy,
}

/// `execution.savepoint.path` and how strictly its state must match the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavepointRestore {
    pub path: String,
    /// `execution.savepoint.ignore-unclaimed-state`.
    pub ignore_unclaimed: bool,
}

/// How the SQL client shows a query's rows (`sql-client.execution.result-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultMode {
    /// A live view of the current result, updated in place (Flink's default).
    Table,
    /// A live view of every change with its kind (+I, -U, +U, -D).
    Changelog,
    /// Rows printed as they arrive in a bordered table.
    Tableau,
}

/// Options set in a session, with typed accessors for the ones Weir reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Configuration {
    values: BTreeMap<String, String>,
}

impl Configuration {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` after checking the value of options Weir interprets.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), CommonError> {
        validate(key, value)?;
        self.values.insert(key.to_string(), value.to_string());
        Ok(())
    }

    /// Removes `key`, returning to its default.
    pub fn reset(&mut self, key: &str) {
        self.values.remove(key);
    }

    pub fn reset_all(&mut self) {
        self.values.clear();
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// The options Weir interprets at their current values (defaults
    /// included) and every other option set, sorted by key: what `SET;` lists.
    pub fn effective_entries(&self) -> BTreeMap<&str, &str> {
        let mut entries: BTreeMap<&str, &str> = DEFAULTS.iter().copied().collect();
        entries.extend(self.entries());
        entries
    }

    /// Every explicitly set option, sorted by key.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn parallelism(&self) -> usize {
        self.get(PARALLELISM_DEFAULT)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(1)
    }

    pub fn runtime_mode(&self) -> RuntimeMode {
        match self
            .get(RUNTIME_MODE)
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("batch") => RuntimeMode::Batch,
            _ => RuntimeMode::Streaming,
        }
    }

    /// The session time zone; Flink's `default` (the JVM's zone) is UTC here,
    /// so results do not depend on the machine.
    pub fn local_time_zone(&self) -> &str {
        match self.get(LOCAL_TIME_ZONE) {
            None | Some("default") => "UTC",
            Some(zone) => zone,
        }
    }

    pub fn dml_sync(&self) -> bool {
        self.get(DML_SYNC)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// `None` when idle sources are never marked idle (Flink's default, `0`).
    pub fn source_idle_timeout(&self) -> Option<Duration> {
        self.get(SOURCE_IDLE_TIMEOUT)
            .and_then(|v| parse_duration(v).ok())
            .filter(|d| !d.is_zero())
    }

    /// `None` when state is kept forever (Flink's default, `0`).
    pub fn state_ttl(&self) -> Option<Duration> {
        self.get(STATE_TTL)
            .and_then(|v| parse_duration(v).ok())
            .filter(|d| !d.is_zero())
    }

    pub fn result_mode(&self) -> ResultMode {
        match self
            .get(RESULT_MODE)
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            Some("changelog") => ResultMode::Changelog,
            Some("tableau") => ResultMode::Tableau,
            _ => ResultMode::Table,
        }
    }

    /// Flink's default is a million rows.
    pub fn max_table_result_rows(&self) -> usize {
        self.get(MAX_TABLE_RESULT_ROWS)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(1_000_000)
    }

    pub fn pipeline_name(&self) -> Option<&str> {
        self.get(PIPELINE_NAME)
    }

    /// `None` unless 'execution.checkpointing.interval' is set above 0.
    pub fn checkpointing(&self) -> Option<CheckpointingOptions> {
        let duration = |key: &str, default: Duration| {
            self.get(key)
                .and_then(|v| parse_duration(v).ok())
                .unwrap_or(default)
        };
        let count = |keys: &[&str], default: usize| {
            keys.iter()
                .find_map(|k| self.get(k))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(default)
        };
        let text = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| self.get(k))
                .map(|d| d.trim().to_string())
                .filter(|d| !d.is_empty())
        };
        let interval = duration(CHECKPOINTING_INTERVAL, Duration::ZERO);
        if interval.is_zero() {
            return None;
        }
        Some(CheckpointingOptions {
            interval,
            timeout: duration(CHECKPOINTING_TIMEOUT, Duration::from_secs(600)),
            min_pause: duration(CHECKPOINTING_MIN_PAUSE, Duration::ZERO),
            max_concurrent: count(&[CHECKPOINTING_MAX_CONCURRENT], 1).max(1),
            dir: text(&[CHECKPOINTING_DIR, CHECKPOINTS_DIR_LEGACY]),
            num_retained: count(&[CHECKPOINTING_NUM_RETAINED, NUM_RETAINED_LEGACY], 1).max(1),
            tolerable_failures: count(&[CHECKPOINTING_TOLERABLE_FAILURES], 0),
            savepoint_dir: text(&[SAVEPOINT_DIR, SAVEPOINT_DIR_LEGACY]),
            restore: text(&[SAVEPOINT_PATH]).map(|path| SavepointRestore {
                path,
                ignore_unclaimed: self
                    .get(SAVEPOINT_IGNORE_UNCLAIMED)
                    .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
            }),
            restart: self.restart_strategy(true),
        })
    }

    /// 'restart-strategy.type' and its options. Unset, as in Flink: a job
    /// that takes checkpoints restarts with exponential delays, another
    /// does not restart.
    pub fn restart_strategy(&self, checkpointing: bool) -> RestartStrategy {
        let duration = |key: &str, default: Duration| {
            self.get(key)
                .and_then(|v| parse_duration(v).ok())
                .unwrap_or(default)
        };
        let count = |key: &str, default: usize| {
            self.get(key)
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(default)
        };
        let ratio = |key: &str, default: f64| {
            self.get(key)
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(default)
        };
        let default = if checkpointing {
            "exponential-delay"
        } else {
            "none"
        };
        let kind = self
            .get(RESTART_STRATEGY)
            .map(|v| v.trim().to_ascii_lowercase());
        match restart_kind(kind.as_deref().unwrap_or(default)) {
            Some(RestartKind::None) => RestartStrategy::None,
            Some(RestartKind::FixedDelay) => RestartStrategy::FixedDelay {
                attempts: count(FIXED_DELAY_ATTEMPTS, 1),
                delay: duration(FIXED_DELAY_DELAY, Duration::from_secs(1)),
            },
            Some(RestartKind::FailureRate) => RestartStrategy::FailureRate {
                max_failures: count(FAILURE_RATE_MAX_FAILURES, 1),
                interval: duration(FAILURE_RATE_INTERVAL, Duration::from_secs(60)),
                delay: duration(FAILURE_RATE_DELAY, Duration::from_secs(1)),
            },
            Some(RestartKind::ExponentialDelay) | None => RestartStrategy::ExponentialDelay {
                initial: duration(EXPONENTIAL_INITIAL_BACKOFF, Duration::from_secs(1)),
                max: duration(EXPONENTIAL_MAX_BACKOFF, Duration::from_secs(60)),
                multiplier: ratio(EXPONENTIAL_MULTIPLIER, 1.5),
                reset_threshold: duration(EXPONENTIAL_RESET_THRESHOLD, Duration::from_secs(3600)),
                jitter: ratio(EXPONENTIAL_JITTER, 0.1),
                attempts: count(EXPONENTIAL_ATTEMPTS, usize::MAX),
            },
        }
    }
}

enum RestartKind {
    None,
    FixedDelay,
    FailureRate,
    ExponentialDelay,
}

/// The strategy a 'restart-strategy.type' value names, in Flink's spellings.
fn restart_kind(value: &str) -> Option<RestartKind> {
    match value {
        "none" | "off" | "disable" => Some(RestartKind::None),
        "fixed-delay" | "fixeddelay" => Some(RestartKind::FixedDelay),
        "failure-rate" | "failurerate" => Some(RestartKind::FailureRate),
        "exponential-delay" | "exponentialdelay" => Some(RestartKind::ExponentialDelay),
        _ => None,
    }
}

fn validate(key: &str, value: &str) -> Result<(), CommonError> {
    let invalid = |reason: &str| CommonError::InvalidOption {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let v = value.trim();
    match key {
        PARALLELISM_DEFAULT => match v.parse::<usize>() {
            Ok(n) if (1..=1024).contains(&n) => Ok(()),
            _ => Err(invalid("expected a whole number from 1 to 1024")),
        },
        RUNTIME_MODE => match v.to_ascii_lowercase().as_str() {
            "streaming" | "batch" => Ok(()),
            _ => Err(invalid("valid values are 'streaming' and 'batch'")),
        },
        DML_SYNC | SAVEPOINT_IGNORE_UNCLAIMED => match v.to_ascii_lowercase().as_str() {
            "true" | "false" => Ok(()),
            _ => Err(invalid("valid values are 'true' and 'false'")),
        },
        RESULT_MODE => match v.to_ascii_lowercase().as_str() {
            "table" | "changelog" | "tableau" => Ok(()),
            _ => Err(invalid(
                "valid values are 'table', 'changelog' and 'tableau'",
            )),
        },
        MAX_TABLE_RESULT_ROWS => match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(()),
            _ => Err(invalid("expected a whole number greater than 0")),
        },
        LOCAL_TIME_ZONE => {
            if v == "default" || v.parse::<chrono_tz::Tz>().is_ok() || is_fixed_offset(v) {
                Ok(())
            } else {
                Err(invalid(
                    "expected an IANA zone such as 'UTC', 'Europe/Berlin' or 'Asia/Shanghai', or an offset such as '+08:00'",
                ))
            }
        }
        SOURCE_IDLE_TIMEOUT
        | STATE_TTL
        | CHECKPOINTING_INTERVAL
        | CHECKPOINTING_TIMEOUT
        | CHECKPOINTING_MIN_PAUSE
        | FIXED_DELAY_DELAY
        | FAILURE_RATE_INTERVAL
        | FAILURE_RATE_DELAY
        | EXPONENTIAL_INITIAL_BACKOFF
        | EXPONENTIAL_MAX_BACKOFF
        | EXPONENTIAL_RESET_THRESHOLD => parse_duration(v).map(|_| ()),
        RESTART_STRATEGY => match restart_kind(&v.to_ascii_lowercase()) {
            Some(_) => Ok(()),
            None => Err(invalid(
                "valid values are 'none', 'fixed-delay', 'failure-rate' and 'exponential-delay'",
            )),
        },
        FIXED_DELAY_ATTEMPTS | EXPONENTIAL_ATTEMPTS => match v.parse::<usize>() {
            Ok(_) => Ok(()),
            _ => Err(invalid("expected a whole number")),
        },
        FAILURE_RATE_MAX_FAILURES => match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(()),
            _ => Err(invalid("expected a whole number greater than 0")),
        },
        EXPONENTIAL_MULTIPLIER => match v.parse::<f64>() {
            Ok(m) if m.is_finite() && m >= 1.0 => Ok(()),
            _ => Err(invalid("expected a number of at least 1")),
        },
        EXPONENTIAL_JITTER => match v.parse::<f64>() {
            Ok(j) if (0.0..=1.0).contains(&j) => Ok(()),
            _ => Err(invalid("expected a number from 0 to 1")),
        },
        CHECKPOINTING_MAX_CONCURRENT | CHECKPOINTING_NUM_RETAINED | NUM_RETAINED_LEGACY => {
            match v.parse::<usize>() {
                Ok(n) if n > 0 => Ok(()),
                _ => Err(invalid("expected a whole number greater than 0")),
            }
        }
        CHECKPOINTING_TOLERABLE_FAILURES => match v.parse::<usize>() {
            Ok(_) => Ok(()),
            _ => Err(invalid("expected a whole number")),
        },
        _ => Ok(()),
    }
}

fn is_fixed_offset(v: &str) -> bool {
    let bytes = v.as_bytes();
    bytes.len() == 6
        && matches!(bytes[0], b'+' | b'-')
        && bytes[3] == b':'
        && [1, 2, 4, 5].iter().all(|&i| bytes[i].is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_options_are_validated() {
        let mut c = Configuration::new();
        assert_eq!(c.parallelism(), 1);
        c.set(PARALLELISM_DEFAULT, "4").expect("valid");
        assert_eq!(c.parallelism(), 4);
        assert!(c.set(PARALLELISM_DEFAULT, "zero").is_err());
        assert!(c.set(RUNTIME_MODE, "micro-batch").is_err());
        c.set(RUNTIME_MODE, "BATCH").expect("case-insensitive");
        assert_eq!(c.runtime_mode(), RuntimeMode::Batch);
        assert!(c.set(LOCAL_TIME_ZONE, "Mars/Olympus").is_err());
        c.set(LOCAL_TIME_ZONE, "Asia/Shanghai").expect("valid zone");
        assert_eq!(c.local_time_zone(), "Asia/Shanghai");
        assert_eq!(c.result_mode(), ResultMode::Table);
        c.set(RESULT_MODE, "TABLEAU").expect("case-insensitive");
        assert_eq!(c.result_mode(), ResultMode::Tableau);
        assert!(c.set(MAX_TABLE_RESULT_ROWS, "0").is_err());
        c.set(MAX_TABLE_RESULT_ROWS, "5").expect("valid");
        assert_eq!(c.max_table_result_rows(), 5);
        c.set("some.connector.option", "anything")
            .expect("unknown keys pass");
        c.reset(PARALLELISM_DEFAULT);
        assert_eq!(c.parallelism(), 1);
        assert!(c.checkpointing().is_none(), "no interval, no checkpoints");
        assert!(c.set(CHECKPOINTING_INTERVAL, "often").is_err());
        assert!(c.set(CHECKPOINTING_NUM_RETAINED, "0").is_err());
        c.set(CHECKPOINTING_INTERVAL, "500 ms").expect("valid");
        c.set(CHECKPOINTS_DIR_LEGACY, "/tmp/chk").expect("valid");
        let checkpointing = c.checkpointing().expect("enabled");
        assert_eq!(checkpointing.interval, Duration::from_millis(500));
        assert_eq!(checkpointing.dir.as_deref(), Some("/tmp/chk"));
        assert_eq!(checkpointing.max_concurrent, 1);
        assert!(matches!(
            checkpointing.restart,
            RestartStrategy::ExponentialDelay { initial, .. } if initial == Duration::from_secs(1)
        ));
        assert!(c.set(RESTART_STRATEGY, "sometimes").is_err());
        assert!(c.set(EXPONENTIAL_JITTER, "2").is_err());
        c.set(RESTART_STRATEGY, "fixeddelay")
            .expect("Flink's old spelling");
        c.set(FIXED_DELAY_ATTEMPTS, "3").expect("valid");
        c.set(FIXED_DELAY_DELAY, "2 s").expect("valid");
        assert_eq!(
            c.checkpointing().expect("enabled").restart,
            RestartStrategy::FixedDelay {
                attempts: 3,
                delay: Duration::from_secs(2)
            }
        );
        c.reset(CHECKPOINTING_INTERVAL);
        c.reset(CHECKPOINTS_DIR_LEGACY);
        let listed = c.effective_entries();
        assert_eq!(listed.get(PARALLELISM_DEFAULT), Some(&"1"));
        assert_eq!(listed.get(RESULT_MODE), Some(&"TABLEAU"));
        assert_eq!(listed.get("some.connector.option"), Some(&"anything"));
    }
}
