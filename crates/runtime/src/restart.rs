//! When a failed job runs again: the job's 'restart-strategy.*'.
//!
//! The embedded cluster and a cluster's job master ask
//! [`Restarts::after_failure`] each time an attempt of a job fails; the
//! answer is how long to wait before the next attempt (which restores the
//! latest completed checkpoint, if the job takes them), or `None` when the
//! strategy gives up and the job fails.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use weir_common::RestartStrategy;

/// A job's restarts so far, under its strategy.
#[derive(Debug)]
pub struct Restarts {
    strategy: RestartStrategy,
    /// Restarts made (since the last backoff reset, for exponential delay).
    attempts: usize,
    /// When recent failures happened, for the failure rate.
    failures: VecDeque<Instant>,
    /// The next exponential delay, before jitter.
    backoff: Option<Duration>,
}

impl Restarts {
    pub fn new(strategy: RestartStrategy) -> Self {
        Self {
            strategy,
            attempts: 0,
            failures: VecDeque::new(),
            backoff: None,
        }
    }

    /// An attempt that ran for `ran` failed at `now`: the delay before the
    /// next attempt, or `None` to fail the job.
    pub fn after_failure(&mut self, ran: Duration, now: Instant) -> Option<Duration> {
        match self.strategy {
            RestartStrategy::None => None,
            RestartStrategy::FixedDelay { attempts, delay } => {
                self.attempts += 1;
                (self.attempts <= attempts).then_some(delay)
            }
            RestartStrategy::FailureRate {
                max_failures,
                interval,
                delay,
            } => {
                self.failures.push_back(now);
                while self
                    .failures
                    .front()
                    .is_some_and(|at| now.duration_since(*at) > interval)
                {
                    self.failures.pop_front();
                }
                (self.failures.len() <= max_failures).then_some(delay)
            }
            RestartStrategy::ExponentialDelay {
                initial,
                max,
                multiplier,
                reset_threshold,
                jitter,
                attempts,
            } => {
                if ran >= reset_threshold {
                    self.attempts = 0;
                    self.backoff = None;
                }
                self.attempts += 1;
                if self.attempts > attempts {
                    return None;
                }
                let delay = self.backoff.unwrap_or(initial).min(max);
                let next = Duration::try_from_secs_f64(delay.as_secs_f64() * multiplier)
                    .map_or(max, |next| next.min(max));
                self.backoff = Some(next);
                Some(with_jitter(delay, jitter))
            }
        }
    }
}

/// `delay` moved by up to `jitter` of itself either way, so that jobs that
/// failed together do not all come back at once.
fn with_jitter(delay: Duration, jitter: f64) -> Duration {
    if jitter <= 0.0 {
        return delay;
    }
    let unit = (uuid::Uuid::new_v4().as_u128() as u64 >> 11) as f64 / (1u64 << 53) as f64;
    let factor = (1.0 + jitter.min(1.0) * (2.0 * unit - 1.0)).max(0.0);
    Duration::try_from_secs_f64(delay.as_secs_f64() * factor).unwrap_or(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn fixed_delay_gives_up_after_its_attempts() {
        let mut restarts = Restarts::new(RestartStrategy::FixedDelay {
            attempts: 2,
            delay: SECOND,
        });
        let now = Instant::now();
        assert_eq!(restarts.after_failure(SECOND, now), Some(SECOND));
        assert_eq!(restarts.after_failure(SECOND, now), Some(SECOND));
        assert_eq!(restarts.after_failure(SECOND, now), None);
        assert_eq!(
            Restarts::new(RestartStrategy::None).after_failure(SECOND, now),
            None
        );
    }

    #[test]
    fn failure_rate_counts_failures_within_the_interval() {
        let mut restarts = Restarts::new(RestartStrategy::FailureRate {
            max_failures: 2,
            interval: Duration::from_secs(60),
            delay: SECOND,
        });
        let start = Instant::now();
        assert!(restarts.after_failure(SECOND, start).is_some());
        assert!(
            restarts
                .after_failure(SECOND, start + 10 * SECOND)
                .is_some()
        );
        // The first failure has left the interval.
        assert!(
            restarts
                .after_failure(SECOND, start + 61 * SECOND)
                .is_some()
        );
        assert!(
            restarts
                .after_failure(SECOND, start + 62 * SECOND)
                .is_none()
        );
    }

    #[test]
    fn exponential_delay_grows_to_its_maximum_and_resets_after_a_long_run() {
        let mut restarts = Restarts::new(RestartStrategy::ExponentialDelay {
            initial: SECOND,
            max: 3 * SECOND,
            multiplier: 2.0,
            reset_threshold: Duration::from_secs(3600),
            jitter: 0.0,
            attempts: usize::MAX,
        });
        let now = Instant::now();
        let delays: Vec<Option<Duration>> = (0..4)
            .map(|_| restarts.after_failure(SECOND, now))
            .collect();
        assert_eq!(
            delays,
            [
                Some(SECOND),
                Some(2 * SECOND),
                Some(3 * SECOND),
                Some(3 * SECOND)
            ]
        );
        assert_eq!(
            restarts.after_failure(Duration::from_secs(7200), now),
            Some(SECOND)
        );
        let jittered = with_jitter(Duration::from_secs(10), 0.1);
        assert!((9..=11).contains(&jittered.as_secs()), "{jittered:?}");
    }
}
