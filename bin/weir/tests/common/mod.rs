//! What the process-level tests share.

/// A small deterministic generator for where crash tests kill, seeded from
/// `WEIR_CRASH_SEED` or else the clock, and printed, so a failing run can
/// be repeated.
pub struct CrashRandom(u64);

impl CrashRandom {
    pub fn from_env_or_clock() -> Self {
        let seed = std::env::var("WEIR_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(7, |d| d.as_nanos() as u64)
            });
        eprintln!("crash seed {seed} (set WEIR_CRASH_SEED to repeat)");
        Self(seed)
    }

    /// A number below `below` (which is not 0).
    pub fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below.max(1)
    }
}
