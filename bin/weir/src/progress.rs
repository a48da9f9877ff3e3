//! Live progress of a running query, as the shell shows it on a terminal:
//! rows read, rows per second, how far the sources' event time has come,
//! elapsed time and, when every input is bounded, the share read.
//!
//! The shell samples the job's metrics a few times a second; the full-screen
//! result views put the status in their header, tableau mode draws it on a
//! line under the rows.

use std::fmt;
use std::time::{Duration, Instant};

use std::io::Write;
use weir_common::Watermark;
use weir_engine::JobProgress;

/// How often the shell redraws live output.
pub const REFRESH: Duration = Duration::from_millis(200);

/// The rate is measured over windows of this length, so it follows changes.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// One sample of a query's progress.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Status {
    pub rows: u64,
    /// Known once the query has run for a second.
    pub rows_per_second: Option<f64>,
    pub watermark: Option<Watermark>,
    pub elapsed: Duration,
    /// The share of the input read, 0 to 1; `None` for endless inputs.
    pub done: Option<f64>,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} rows read", thousands(self.rows))?;
        if let Some(rate) = self.rows_per_second {
            write!(f, ", {} rows/s", thousands(rate.round() as u64))?;
        }
        match self.watermark {
            Some(Watermark::END_OF_TIME) => write!(f, ", watermark: end of input")?,
            Some(w) => write!(f, ", watermark: {w}")?,
            None => {}
        }
        let secs = self.elapsed.as_secs();
        write!(
            f,
            ", {:02}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }
}

/// Turns successive metric snapshots into [`Status`]es with a recent rate.
#[derive(Debug)]
pub struct ProgressTracker {
    started: Instant,
    window_start: (Instant, u64),
    rate: Option<f64>,
}

impl ProgressTracker {
    pub fn new() -> Self {
        let now = Instant::now();
        Self {
            started: now,
            window_start: (now, 0),
            rate: None,
        }
    }

    pub fn sample(&mut self, progress: &JobProgress) -> Status {
        self.sample_at(progress, Instant::now())
    }

    fn sample_at(&mut self, progress: &JobProgress, now: Instant) -> Status {
        let rows = progress.source_rows;
        let (since, rows_then) = self.window_start;
        let window = now.saturating_duration_since(since);
        if window >= RATE_WINDOW {
            self.rate = Some(rows.saturating_sub(rows_then) as f64 / window.as_secs_f64());
            self.window_start = (now, rows);
        }
        Status {
            rows,
            rows_per_second: self.rate,
            watermark: progress.watermark,
            elapsed: now.saturating_duration_since(self.started),
            done: progress.done,
        }
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A progress line on stderr under rows printed to stdout: a bar with the
/// share read for bounded inputs, a spinner otherwise.
///
/// The line stays shorter than the terminal, so that the `^C` the terminal
/// echoes does not wrap onto a line `clear` cannot reach.
pub struct ProgressLine {
    tracker: ProgressTracker,
    /// The text on screen, redrawn after rows are printed over it.
    shown: Option<String>,
    frame: usize,
}

const SPINNER: &[char] = &['|', '/', '-', '\\'];
const BAR_WIDTH: usize = 30;

impl ProgressLine {
    pub fn new() -> Self {
        Self {
            tracker: ProgressTracker::new(),
            shown: None,
            frame: 0,
        }
    }

    pub fn update(&mut self, progress: &JobProgress) {
        let status = self.tracker.sample(progress);
        let text = match status.done {
            Some(done) => format!("{} {status}", bar(done)),
            None => {
                self.frame = (self.frame + 1) % SPINNER.len();
                format!("{} {status}", SPINNER[self.frame])
            }
        };
        let width = crossterm::terminal::size().map_or(80, |(w, _)| usize::from(w));
        let text: String = text.chars().take(width.saturating_sub(3)).collect();
        draw_line(&text);
        self.shown = Some(text);
    }

    /// Runs `print` with the progress line out of the way.
    pub fn suspend<R>(&self, print: impl FnOnce() -> R) -> R {
        if self.shown.is_some() {
            draw_line("");
        }
        let result = print();
        if let Some(text) = &self.shown {
            draw_line(text);
        }
        result
    }

    pub fn clear(&mut self) {
        if self.shown.take().is_some() {
            draw_line("");
        }
    }
}

/// `[=====>    ]  50%`
fn bar(done: f64) -> String {
    let filled = ((done * BAR_WIDTH as f64) as usize).min(BAR_WIDTH);
    let mut bar = "=".repeat(filled);
    if filled < BAR_WIDTH {
        bar.push('>');
    }
    format!("[{bar:<BAR_WIDTH$}] {:>3}%", (done * 100.0) as u32)
}

/// Replaces the cursor's line on stderr with `text`.
fn draw_line(text: &str) {
    let mut err = std::io::stderr().lock();
    // A progress line that cannot be drawn is not worth failing a query for.
    let _ = write!(err, "\r{text}\x1b[K");
    let _ = err.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_with_the_share_read() {
        assert_eq!(bar(0.0), format!("[>{}]   0%", " ".repeat(29)));
        assert_eq!(
            bar(0.5),
            format!("[{}>{}]  50%", "=".repeat(15), " ".repeat(14))
        );
        assert_eq!(bar(1.0), format!("[{}] 100%", "=".repeat(30)));
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn the_rate_follows_the_last_window() {
        let mut tracker = ProgressTracker::new();
        let start = tracker.started;
        let progress = |rows| JobProgress {
            source_rows: rows,
            ..JobProgress::default()
        };
        let first = tracker.sample_at(&progress(500), start + Duration::from_millis(500));
        assert_eq!(first.rows_per_second, None);
        assert_eq!(first.to_string(), "500 rows read, 00:00:00");
        let second = tracker.sample_at(&progress(2000), start + Duration::from_secs(1));
        assert_eq!(second.rows_per_second, Some(2000.0));
        // 1000 rows in the next two seconds: the rate drops to 500/s.
        let third = tracker.sample_at(&progress(3000), start + Duration::from_secs(3));
        assert_eq!(third.rows_per_second, Some(500.0));
        assert_eq!(third.to_string(), "3,000 rows read, 500 rows/s, 00:00:03");
        let ended = Status {
            watermark: Some(Watermark::END_OF_TIME),
            ..third
        };
        assert_eq!(
            ended.to_string(),
            "3,000 rows read, 500 rows/s, watermark: end of input, 00:00:03"
        );
    }
}
