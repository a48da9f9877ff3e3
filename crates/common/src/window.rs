//! Window assignment for Flink's window table functions, by slices.
//!
//! Every window kind is cut into *slices*, the largest intervals no window
//! boundary crosses: a TUMBLE window is one slice, a HOP window of size `s`
//! and slide `d` is `s / d` slices of length `d`, and a CUMULATE window is
//! the slices of length `step` from its start. A row belongs to exactly one
//! slice, so aggregating operators keep one accumulator per key and slice
//! and merge slices when a window fires, never copying a row into each of
//! its windows. All times are milliseconds since the epoch, as watermarks.
//!
//! Window bounds follow Flink: `[window_start, window_end)`, aligned to the
//! epoch plus `offset`, and a window fires when the watermark reaches
//! `window_end - 1`.
//!
//! SESSION windows are not sliced: each row opens a window `[ts, ts + gap)`
//! and windows of one key that touch are merged ([`WindowFunction`]).

use std::fmt;

use arrow::array::timezone::Tz;
use chrono::{DateTime, LocalResult, Offset, TimeZone};

use crate::CommonError;

/// A window table function: sliced (TUMBLE, HOP, CUMULATE) or SESSION.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WindowFunction {
    Sliced(WindowSpec),
    /// SESSION with this gap in milliseconds.
    Session {
        gap: i64,
    },
}

impl WindowFunction {
    pub fn session(gap: i64) -> Result<Self, CommonError> {
        positive("SESSION", "gap", gap)?;
        Ok(WindowFunction::Session { gap })
    }
}

impl fmt::Display for WindowFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowFunction::Sliced(spec) => spec.fmt(f),
            WindowFunction::Session { gap } => write!(f, "SESSION(gap={gap}ms)"),
        }
    }
}

/// Which window table function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WindowKind {
    Tumble,
    Hop,
    Cumulate,
}

/// A window table function's parameters, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WindowSpec {
    pub kind: WindowKind,
    /// The window size (CUMULATE: the max size).
    pub size: i64,
    /// The slice length: the size for TUMBLE, the slide for HOP, the step for CUMULATE.
    pub slice: i64,
    pub offset: i64,
}

impl WindowSpec {
    pub fn tumble(size: i64, offset: i64) -> Result<Self, CommonError> {
        positive("TUMBLE", "size", size)?;
        Ok(Self {
            kind: WindowKind::Tumble,
            size,
            slice: size,
            offset,
        })
    }

    pub fn hop(slide: i64, size: i64, offset: i64) -> Result<Self, CommonError> {
        positive("HOP", "slide", slide)?;
        positive("HOP", "size", size)?;
        if size % slide != 0 {
            return Err(CommonError::InvalidWindow(format!(
                "HOP window size ({size} ms) must be an integral multiple of its slide ({slide} ms)"
            )));
        }
        Ok(Self {
            kind: WindowKind::Hop,
            size,
            slice: slide,
            offset,
        })
    }

    pub fn cumulate(step: i64, size: i64, offset: i64) -> Result<Self, CommonError> {
        positive("CUMULATE", "step", step)?;
        positive("CUMULATE", "max size", size)?;
        if size % step != 0 {
            return Err(CommonError::InvalidWindow(format!(
                "CUMULATE window max size ({size} ms) must be an integral multiple of its step ({step} ms)"
            )));
        }
        Ok(Self {
            kind: WindowKind::Cumulate,
            size,
            slice: step,
            offset,
        })
    }

    /// The end of the slice holding event time `ts`.
    pub fn slice_end(&self, ts: i64) -> i64 {
        align(ts, self.slice, self.offset).saturating_add(self.slice)
    }

    /// The ends of the windows a slice belongs to, in ascending order.
    pub fn windows_of_slice(&self, slice_end: i64) -> impl Iterator<Item = i64> + use<> {
        let last = self.last_window_of_slice(slice_end);
        let step = self.slice;
        // Stops at i64::MAX rather than saturating there forever.
        (0..)
            .map_while(move |k: i64| k.checked_mul(step).and_then(|d| slice_end.checked_add(d)))
            .take_while(move |e| *e <= last)
    }

    /// The end of the last window a slice belongs to: the slice can be
    /// dropped once that window has fired.
    pub fn last_window_of_slice(&self, slice_end: i64) -> i64 {
        match self.kind {
            WindowKind::Tumble => slice_end,
            WindowKind::Hop => slice_end
                .saturating_sub(self.slice)
                .saturating_add(self.size),
            WindowKind::Cumulate => {
                align(slice_end.saturating_sub(self.slice), self.size, self.offset)
                    .saturating_add(self.size)
            }
        }
    }

    pub fn window_start(&self, window_end: i64) -> i64 {
        match self.kind {
            WindowKind::Tumble | WindowKind::Hop => window_end.saturating_sub(self.size),
            WindowKind::Cumulate => align(window_end.saturating_sub(1), self.size, self.offset),
        }
    }

    /// Whether the window ending at `window_end` has fired at `watermark`.
    pub fn is_fired(window_end: i64, watermark: i64) -> bool {
        window_end.saturating_sub(1) <= watermark
    }
}

impl fmt::Display for WindowSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let offset = if self.offset != 0 {
            format!(", offset={}ms", self.offset)
        } else {
            String::new()
        };
        match self.kind {
            WindowKind::Tumble => write!(f, "TUMBLE(size={}ms{offset})", self.size),
            WindowKind::Hop => write!(
                f,
                "HOP(slide={}ms, size={}ms{offset})",
                self.slice, self.size
            ),
            WindowKind::Cumulate => write!(
                f,
                "CUMULATE(step={}ms, max_size={}ms{offset})",
                self.slice, self.size
            ),
        }
    }
}

/// Windows over a TIMESTAMP_LTZ column are aligned to the session time zone's
/// wall clock, as in Flink: times are shifted to local milliseconds before
/// slicing, and window ends shifted back to instants to compare with
/// watermarks.
#[derive(Debug, Clone, Copy)]
pub struct ZoneShift(Tz);

impl ZoneShift {
    /// A zone name (`Asia/Shanghai`) or a fixed offset (`+08:00`).
    pub fn parse(zone: &str) -> Result<Self, CommonError> {
        zone.parse::<Tz>()
            .map(Self)
            .map_err(|e| CommonError::InvalidWindow(format!("invalid time zone '{zone}': {e}")))
    }

    /// Epoch milliseconds as milliseconds of the zone's wall clock.
    pub fn to_local(&self, epoch_ms: i64) -> i64 {
        match DateTime::from_timestamp_millis(epoch_ms) {
            Some(t) => {
                let offset = self.0.offset_from_utc_datetime(&t.naive_utc()).fix();
                epoch_ms.saturating_add(i64::from(offset.local_minus_utc()) * 1000)
            }
            None => epoch_ms,
        }
    }

    /// Wall-clock milliseconds back to epoch milliseconds (the earlier
    /// instant when a DST change makes the wall clock ambiguous).
    pub fn to_utc(&self, local_ms: i64) -> i64 {
        let Some(t) = DateTime::from_timestamp_millis(local_ms) else {
            return local_ms;
        };
        let naive = t.naive_utc();
        let offset = match self.0.offset_from_local_datetime(&naive) {
            LocalResult::Single(o) | LocalResult::Ambiguous(o, _) => o.fix(),
            // Skipped by a DST change: use the offset in force before it.
            LocalResult::None => self.0.offset_from_utc_datetime(&naive).fix(),
        };
        local_ms.saturating_sub(i64::from(offset.local_minus_utc()) * 1000)
    }
}

/// Event-time instants (epoch ms) of wall-clock window bounds: the identity
/// unless the windows are in a session time zone.
pub fn instant(zone: Option<&ZoneShift>, bound: i64) -> i64 {
    zone.map_or(bound, |z| z.to_utc(bound))
}

/// The start of the `length`-long interval holding `ts`, intervals aligned to `offset`.
fn align(ts: i64, length: i64, offset: i64) -> i64 {
    ts.saturating_sub(ts.saturating_sub(offset).rem_euclid(length))
}

fn positive(function: &str, what: &str, value: i64) -> Result<(), CommonError> {
    if value <= 0 {
        return Err(CommonError::InvalidWindow(format!(
            "{function} window {what} must be positive, got {value} ms"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumble_bounds_are_half_open_and_work_before_1970() {
        let w = WindowSpec::tumble(10, 0).expect("valid");
        assert_eq!(w.slice_end(0), 10);
        assert_eq!(w.slice_end(9), 10);
        assert_eq!(w.slice_end(10), 20);
        assert_eq!(w.slice_end(-1), 0);
        assert_eq!(w.slice_end(-10), 0);
        assert_eq!(w.slice_end(-11), -10);
        assert_eq!(w.windows_of_slice(10).collect::<Vec<_>>(), vec![10]);
        assert_eq!(w.window_start(10), 0);
        let shifted = WindowSpec::tumble(10, 3).expect("valid");
        assert_eq!(shifted.slice_end(2), 3);
        assert_eq!(shifted.slice_end(3), 13);
    }

    #[test]
    fn hop_slices_belong_to_size_over_slide_windows() {
        let w = WindowSpec::hop(2, 6, 0).expect("valid");
        assert_eq!(w.slice_end(5), 6);
        assert_eq!(w.windows_of_slice(6).collect::<Vec<_>>(), vec![6, 8, 10]);
        assert_eq!(w.window_start(10), 4);
        assert!(WindowSpec::hop(4, 6, 0).is_err());
    }

    #[test]
    fn cumulate_slices_belong_to_the_later_windows_of_their_max_window() {
        let w = WindowSpec::cumulate(2, 6, 0).expect("valid");
        assert_eq!(w.slice_end(1), 2);
        assert_eq!(w.windows_of_slice(2).collect::<Vec<_>>(), vec![2, 4, 6]);
        assert_eq!(w.windows_of_slice(6).collect::<Vec<_>>(), vec![6]);
        assert_eq!(w.windows_of_slice(8).collect::<Vec<_>>(), vec![8, 10, 12]);
        assert_eq!(w.window_start(4), 0);
        assert_eq!(w.window_start(6), 0);
        assert_eq!(w.window_start(8), 6);
    }

    #[test]
    fn zone_shifts_round_trip_through_the_wall_clock() {
        let shanghai = ZoneShift::parse("Asia/Shanghai").expect("zone");
        // 1970-01-01 00:00 UTC is 08:00 in Shanghai.
        assert_eq!(shanghai.to_local(0), 8 * 3_600_000);
        assert_eq!(shanghai.to_utc(8 * 3_600_000), 0);
        let fixed = ZoneShift::parse("-05:00").expect("offset");
        assert_eq!(fixed.to_local(0), -5 * 3_600_000);
        assert!(ZoneShift::parse("Mars/Olympus").is_err());
    }

    #[test]
    fn times_near_the_end_of_time_have_finitely_many_windows() {
        let w = WindowSpec::hop(2, 6, 0).expect("valid");
        let end = w.slice_end(i64::MAX - 1);
        assert!(w.windows_of_slice(end).count() <= 3);
    }

    #[test]
    fn windows_fire_when_the_watermark_reaches_their_last_millisecond() {
        assert!(!WindowSpec::is_fired(10, 8));
        assert!(WindowSpec::is_fired(10, 9));
    }
}
