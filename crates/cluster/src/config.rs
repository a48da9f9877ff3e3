//! The options of coordinators, workers and cluster clients, named as Flink
//! names them. They come from a configuration file (flat `key: value` lines,
//! as Flink's `config.yaml`), from `-D key=value` on the command line, which
//! wins, and for the token also from `WEIR_CLUSTER_TOKEN`.

use std::path::Path;
use std::time::Duration;

use weir_common::duration::parse_duration;
use weir_common::{Configuration, RestartStrategy};

use crate::ClusterError;

/// The shared secret every RPC and REST call must carry when set.
pub const AUTH_TOKEN: &str = "cluster.auth.token";
/// The environment variable the token may come from instead.
pub const AUTH_TOKEN_ENV: &str = "WEIR_CLUSTER_TOKEN";
pub const HEARTBEAT_INTERVAL: &str = "heartbeat.interval";
pub const HEARTBEAT_TIMEOUT: &str = "heartbeat.timeout";
/// How long a job waits for enough free slots before it fails.
pub const SLOT_REQUEST_TIMEOUT: &str = "slot.request.timeout";

/// The options a cluster process reads.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    pub token: Option<String>,
    pub heartbeat_interval: Duration,
    pub heartbeat_timeout: Duration,
    pub slot_request_timeout: Duration,
    /// How a job master restarts a failed job ('restart-strategy.*'), when
    /// the cluster's configuration says; a job's own setting wins.
    pub restart: Option<RestartStrategy>,
    /// Whether the coordinator and every worker share this process (the
    /// embedded cluster), so a job's checkpoints may stay in its memory.
    pub in_process: bool,
}

impl Default for ClusterConfig {
    /// Flink's defaults.
    fn default() -> Self {
        Self {
            token: None,
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(50),
            slot_request_timeout: Duration::from_secs(300),
            restart: None,
            in_process: false,
        }
    }
}

impl ClusterConfig {
    /// Reads the file (when given), then the `-D` options, then the
    /// environment's token when no token was configured.
    pub fn load(file: Option<&Path>, dynamic: &[(String, String)]) -> Result<Self, ClusterError> {
        let mut options = Configuration::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ClusterError::Config(format!("cannot read {}: {e}", path.display()))
            })?;
            for (key, value) in parse_flat_yaml(&text) {
                set(&mut options, &key, &value)?;
            }
        }
        for (key, value) in dynamic {
            set(&mut options, key, value)?;
        }
        let mut config = Self::from_options(&options)?;
        if config.token.is_none() {
            config.token = std::env::var(AUTH_TOKEN_ENV).ok().filter(|t| !t.is_empty());
        }
        Ok(config)
    }

    fn from_options(options: &Configuration) -> Result<Self, ClusterError> {
        let defaults = Self::default();
        let duration = |key: &str, default: Duration| -> Result<Duration, ClusterError> {
            options.get(key).map_or(Ok(default), |v| {
                parse_duration(v).map_err(|e| ClusterError::Config(format!("'{key}': {e}")))
            })
        };
        Ok(Self {
            token: options
                .get(AUTH_TOKEN)
                .map(str::to_string)
                .filter(|t| !t.is_empty()),
            heartbeat_interval: duration(HEARTBEAT_INTERVAL, defaults.heartbeat_interval)?,
            heartbeat_timeout: duration(HEARTBEAT_TIMEOUT, defaults.heartbeat_timeout)?,
            slot_request_timeout: duration(SLOT_REQUEST_TIMEOUT, defaults.slot_request_timeout)?,
            restart: options
                .get(weir_common::config::RESTART_STRATEGY)
                .map(|_| options.restart_strategy(false)),
            in_process: false,
        })
    }
}

fn set(options: &mut Configuration, key: &str, value: &str) -> Result<(), ClusterError> {
    options
        .set(key, value)
        .map_err(|e| ClusterError::Config(e.to_string()))
}

/// `key: value` lines; `#` starts a comment; values may be quoted.
fn parse_flat_yaml(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let (key, value) = line.split_once(':')?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            Some((key.trim().to_string(), value.to_string()))
        })
        .collect()
}

/// Splits a `-D key=value` argument.
pub fn parse_dynamic(arg: &str) -> Result<(String, String), ClusterError> {
    arg.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .ok_or_else(|| ClusterError::Config(format!("-D expects key=value, not '{arg}'")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_dynamic_options() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("config.yaml");
        std::fs::write(
            &path,
            "# cluster\nheartbeat.interval: 2 s\ncluster.auth.token: 'secret'\nrestart-strategy.type: fixed-delay\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let config = ClusterConfig::load(
            Some(&path),
            &[(HEARTBEAT_INTERVAL.to_string(), "500 ms".to_string())],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.heartbeat_interval, Duration::from_millis(500));
        assert_eq!(config.token.as_deref(), Some("secret"));
        assert_eq!(
            config.restart,
            Some(RestartStrategy::FixedDelay {
                attempts: 1,
                delay: Duration::from_secs(1)
            })
        );
    }

    #[test]
    fn bad_values_are_named() {
        let err = ClusterConfig::load(
            None,
            &[("restart-strategy.type".to_string(), "sometimes".to_string())],
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            err.contains("valid values are 'none', 'fixed-delay'"),
            "{err}"
        );
    }
}
