//! 'table.exec.state.ttl': keyed state that was not touched for the TTL is
//! forgotten, as with Flink's state TTL. Operators keep per key id the last
//! processing time it was touched and sweep at most twice per TTL.

use std::time::{Duration, Instant};

/// Milliseconds of processing time since an operator started.
#[derive(Debug)]
pub(crate) struct ProcessingClock(Instant);

impl ProcessingClock {
    pub(crate) fn start() -> Self {
        Self(Instant::now())
    }

    pub(crate) fn now(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Forgets keys idle for longer than 'table.exec.state.ttl', as Flink's
/// state TTL: a forgotten key that comes back starts over with `+I`. Times
/// are processing-time milliseconds since the operator started.
///
/// What is freed is the keys' aggregate state; their entries in the key
/// index (a few bytes each) stay, so a stream of ever-new keys still grows
/// slowly.
#[derive(Debug)]
pub(crate) struct Expiry {
    ttl_ms: u64,
    last_access: Vec<u64>,
    next_sweep: u64,
}

impl Expiry {
    pub(crate) fn new(ttl: Option<Duration>, final_only: bool) -> Option<Self> {
        // A batch job's result is final: nothing expires.
        let ttl = ttl.filter(|_| !final_only)?;
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        Some(Self {
            ttl_ms,
            last_access: Vec::new(),
            next_sweep: ttl_ms,
        })
    }

    pub(crate) fn touch(&mut self, groups: &[usize], now: u64) {
        for group in groups {
            if self.last_access.len() <= *group {
                self.last_access.resize(group + 1, now);
            }
            self.last_access[*group] = now;
        }
    }

    /// Groups idle for longer than the TTL; checked at most twice per TTL.
    pub(crate) fn expired(&mut self, now: u64) -> Vec<usize> {
        if now < self.next_sweep {
            return Vec::new();
        }
        self.next_sweep = now.saturating_add(self.ttl_ms / 2);
        let ttl = self.ttl_ms;
        let expired: Vec<usize> = self
            .last_access
            .iter()
            .enumerate()
            .filter(|(_, at)| now.saturating_sub(**at) > ttl && **at != u64::MAX)
            .map(|(g, _)| g)
            .collect();
        for g in &expired {
            // Forgotten until touched again.
            self.last_access[*g] = u64::MAX;
        }
        expired
    }
}
