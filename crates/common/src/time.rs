//! Event time: watermarks are milliseconds since the epoch, as in Flink.

use std::fmt;

/// A watermark: no row with an event time at or before it is expected any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Watermark(pub i64);

impl Watermark {
    /// The watermark sent when a bounded input ends: every window fires.
    pub const END_OF_TIME: Watermark = Watermark(i64::MAX);
    /// No watermark yet.
    pub const MIN: Watermark = Watermark(i64::MIN);

    pub fn millis(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Watermark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Watermark::END_OF_TIME => f.write_str("+inf"),
            Watermark::MIN => f.write_str("-inf"),
            Watermark(ms) => match chrono::DateTime::from_timestamp_millis(ms) {
                Some(t) => write!(f, "{}", t.naive_utc().format("%Y-%m-%d %H:%M:%S%.3f")),
                None => write!(f, "{ms}"),
            },
        }
    }
}
