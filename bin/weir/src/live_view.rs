//! The full-screen result views of Flink's SQL client, for the interactive
//! shell on a terminal.
//!
//! - **Table mode** keeps the query's current result: inserts add a row,
//!   `-U`/`-D` remove the row they retract, and the `+U` after a `-U` takes
//!   the retracted row's place, so a changing count updates in place.
//! - **Changelog mode** lists every change with its kind.
//!
//! Both keep at most 'sql-client.execution.max-table-result.rows' rows,
//! dropping the oldest. Batches are applied as they arrive; the screen is
//! redrawn a few times a second with the job's progress in the header. `Q`
//! (or Esc, or Ctrl-C) leaves the view and cancels the query if it still runs.

use std::collections::VecDeque;
use std::io::Write;

use arrow::datatypes::SchemaRef;
use crossterm::event::{Event, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::{cursor, queue, style, terminal};
use futures::StreamExt;
use weir_common::{RowKind, StreamBatch};
use weir_engine::{EngineError, QueryResult};

use crate::output::row_cells;
use crate::progress::{ProgressTracker, REFRESH, Status, thousands};

/// Which of Flink's full-screen views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewKind {
    Table,
    Changelog,
}

/// The rows a view shows, changed batch by batch.
#[derive(Debug)]
pub struct ResultView {
    kind: ViewKind,
    headers: Vec<String>,
    rows: VecDeque<Vec<String>>,
    max_rows: usize,
    /// Where the last `-U` removed its row: the `+U` that follows goes there.
    retracted_at: Option<usize>,
}

impl ResultView {
    pub fn new(kind: ViewKind, schema: &SchemaRef, max_rows: usize) -> Self {
        let mut headers: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        if kind == ViewKind::Changelog {
            headers.insert(0, "op".to_string());
        }
        Self {
            kind,
            headers,
            rows: VecDeque::new(),
            max_rows: max_rows.max(1),
            retracted_at: None,
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn apply(&mut self, batch: &StreamBatch) {
        for row in 0..batch.num_rows() {
            match self.kind {
                ViewKind::Changelog => self.push(row_cells(batch, row, true)),
                ViewKind::Table => {
                    let cells = row_cells(batch, row, false);
                    match batch.row_kind(row) {
                        RowKind::Insert => self.push(cells),
                        RowKind::UpdateAfter => match self.retracted_at.take() {
                            Some(at) if at <= self.rows.len() => self.rows.insert(at, cells),
                            _ => self.push(cells),
                        },
                        RowKind::UpdateBefore | RowKind::Delete => {
                            let at = self.rows.iter().rposition(|r| *r == cells);
                            if let Some(at) = at {
                                self.rows.remove(at);
                            }
                            self.retracted_at = match batch.row_kind(row) {
                                RowKind::UpdateBefore => at,
                                _ => None,
                            };
                        }
                    }
                }
            }
        }
    }

    fn push(&mut self, cells: Vec<String>) {
        self.retracted_at = None;
        self.rows.push_back(cells);
        while self.rows.len() > self.max_rows {
            self.rows.pop_front();
        }
    }

    /// The lines of rows `top..top + count`, headers first, each cut to `width`.
    fn render_rows(&self, top: usize, count: usize, width: usize) -> Vec<String> {
        let visible: Vec<&Vec<String>> = self.rows.iter().skip(top).take(count).collect();
        let widths: Vec<usize> = (0..self.headers.len())
            .map(|i| {
                visible
                    .iter()
                    .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                    .chain(std::iter::once(self.headers[i].chars().count()))
                    .max()
                    .unwrap_or(0)
                    .min(MAX_CELL_WIDTH)
            })
            .collect();
        let line = |cells: &[String]| {
            let text: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| crate::output::fit(c, *w))
                .collect();
            cut(&text.join("  "), width)
        };
        let mut lines = vec![line(&self.headers)];
        lines.extend(visible.iter().map(|r| line(r)));
        lines
    }
}

/// Long values are cut so that several columns fit on a screen.
const MAX_CELL_WIDTH: usize = 40;

fn cut(text: &str, width: usize) -> String {
    text.chars().take(width).collect()
}

/// Where the view is scrolled to.
#[derive(Debug, Clone, Copy)]
struct Scroll {
    top: usize,
    /// Keep the newest rows in view as they arrive (changelog mode starts so).
    follow: bool,
}

/// What a key press asks of the view.
enum KeyAction {
    Leave,
    Scroll(fn(&mut Scroll, usize, usize)),
    Nothing,
}

fn key_action(key: KeyEvent) -> KeyAction {
    if key.kind == KeyEventKind::Release {
        return KeyAction::Nothing;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    match key.code {
        KeyCode::Char('c') if ctrl => KeyAction::Leave,
        KeyCode::Char('q' | 'Q') | KeyCode::Esc => KeyAction::Leave,
        KeyCode::Char('n' | 'N') | KeyCode::PageDown | KeyCode::Char(' ') => {
            KeyAction::Scroll(|s, page, rows| {
                s.top = (s.top + page).min(last_top(page, rows));
                s.follow = s.top == last_top(page, rows);
            })
        }
        KeyCode::Char('p' | 'P') | KeyCode::PageUp => KeyAction::Scroll(|s, page, _| {
            s.top = s.top.saturating_sub(page);
            s.follow = false;
        }),
        KeyCode::Down | KeyCode::Char('j') => KeyAction::Scroll(|s, page, rows| {
            s.top = (s.top + 1).min(last_top(page, rows));
            s.follow = s.top == last_top(page, rows);
        }),
        KeyCode::Up | KeyCode::Char('k') => KeyAction::Scroll(|s, _, _| {
            s.top = s.top.saturating_sub(1);
            s.follow = false;
        }),
        KeyCode::Char('f' | 'F') | KeyCode::Home => KeyAction::Scroll(|s, _, _| {
            s.top = 0;
            s.follow = false;
        }),
        KeyCode::Char('l' | 'L') | KeyCode::End => KeyAction::Scroll(|s, page, rows| {
            s.top = last_top(page, rows);
            s.follow = true;
        }),
        _ => KeyAction::Nothing,
    }
}

fn last_top(page: usize, rows: usize) -> usize {
    rows.saturating_sub(page)
}

/// How the query stands, for the header.
enum QueryState {
    Running,
    Finished,
    Failed,
}

/// The terminal while a view is open: raw mode and the alternate screen,
/// restored when dropped, also on an error.
struct Screen;

impl Screen {
    fn open(out: &mut impl Write) -> std::io::Result<Self> {
        terminal::enable_raw_mode()?;
        let screen = Screen;
        crossterm::execute!(out, terminal::EnterAlternateScreen, cursor::Hide)?;
        Ok(screen)
    }

    /// Columns and rows; pseudo-terminals nobody sized report zero.
    fn size() -> (usize, usize) {
        match terminal::size() {
            Ok((w, h)) if w > 0 && h > 0 => (usize::from(w), usize::from(h)),
            _ => (80, 24),
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let mut out = std::io::stdout();
        let _ = crossterm::execute!(out, terminal::LeaveAlternateScreen, cursor::Show);
        let _ = terminal::disable_raw_mode();
    }
}

/// Lines above and below the rows: title, state, progress, blank / keys.
const CHROME_LINES: usize = 5;

/// Rows of results a screen of `height` lines shows (the header takes one).
fn page_rows(height: usize) -> usize {
    height.saturating_sub(CHROME_LINES + 1).max(1)
}

fn draw(
    out: &mut impl Write,
    view: &ResultView,
    scroll: &mut Scroll,
    state: &QueryState,
    status: &Status,
) -> std::io::Result<()> {
    let (width, height) = Screen::size();
    let page = page_rows(height);
    if scroll.follow {
        scroll.top = last_top(page, view.len());
    }
    scroll.top = scroll.top.min(last_top(page, view.len()));
    let title = match view.kind {
        ViewKind::Table => "SQL Query Result (Table)",
        ViewKind::Changelog => "SQL Query Result (Changelog)",
    };
    let state = match state {
        QueryState::Running => "Running",
        QueryState::Finished => "Finished",
        QueryState::Failed => "Failed",
    };
    let pages = view.len().div_ceil(page).max(1);
    let current = (scroll.top.div_ceil(page) + 1).min(pages);
    let mut lines = vec![
        cut(title, width),
        cut(
            &format!(
                "{state} | Rows: {} | Page: {current} of {pages}",
                thousands(view.len() as u64)
            ),
            width,
        ),
        cut(&status.to_string(), width),
        String::new(),
    ];
    let header_at = lines.len();
    lines.extend(view.render_rows(scroll.top, page, width));
    for (i, line) in lines.iter().enumerate().take(height.saturating_sub(1)) {
        queue!(
            out,
            cursor::MoveTo(0, u16::try_from(i).unwrap_or(u16::MAX)),
            terminal::Clear(terminal::ClearType::UntilNewLine)
        )?;
        if i == header_at {
            queue!(
                out,
                style::SetAttribute(style::Attribute::Reverse),
                style::Print(line),
                style::SetAttribute(style::Attribute::Reset)
            )?;
        } else {
            queue!(out, style::Print(line))?;
        }
    }
    queue!(
        out,
        cursor::MoveTo(0, u16::try_from(lines.len()).unwrap_or(u16::MAX)),
        terminal::Clear(terminal::ClearType::FromCursorDown),
        cursor::MoveTo(0, u16::try_from(height - 1).unwrap_or(u16::MAX)),
        style::Print(cut(
            "Q Quit  N Next Page  P Prev Page  F First Page  L Last Page  \u{2191}\u{2193} Scroll",
            width
        ))
    )?;
    out.flush()
}

/// How a view ended.
pub enum ViewOutcome {
    /// The query ended and the user left the view.
    Finished,
    /// The user left while the query ran; it was cancelled.
    Cancelled,
}

/// Shows `query` in a full-screen view until the user leaves it.
pub async fn show(
    mut query: QueryResult,
    kind: ViewKind,
    max_rows: usize,
) -> Result<ViewOutcome, EngineError> {
    let io = |e: std::io::Error| EngineError::Session(format!("cannot draw the result: {e}"));
    let mut view = ResultView::new(kind, &query.schema, max_rows);
    let mut scroll = Scroll {
        top: 0,
        follow: kind == ViewKind::Changelog,
    };
    let mut out = std::io::stdout();
    let screen = Screen::open(&mut out).map_err(io)?;
    let mut events = EventStream::new();
    let mut refresh = tokio::time::interval(REFRESH);
    let mut tracker = ProgressTracker::new();
    let mut state = QueryState::Running;
    let mut failure = None;
    let mut status = tracker.sample(&query.progress());
    // Whether the screen is behind the view; while the query runs, the
    // progress changes, so it is redrawn on every refresh.
    let mut dirty = true;
    loop {
        tokio::select! {
            next = query.next(), if matches!(state, QueryState::Running) => {
                match next {
                    Some(Ok(batch)) => view.apply(&batch),
                    Some(Err(e)) => {
                        state = QueryState::Failed;
                        failure = Some(e);
                    }
                    None => state = QueryState::Finished,
                }
                if !matches!(state, QueryState::Running) {
                    status = tracker.sample(&query.progress());
                }
                dirty = true;
            },
            event = events.next() => match event {
                Some(Ok(Event::Key(key))) => match key_action(key) {
                    KeyAction::Leave => break,
                    KeyAction::Scroll(scroll_by) => {
                        scroll_by(&mut scroll, page_rows(Screen::size().1), view.len());
                        draw(&mut out, &view, &mut scroll, &state, &status).map_err(io)?;
                    }
                    KeyAction::Nothing => {}
                },
                Some(Ok(Event::Resize(..))) => {
                    draw(&mut out, &view, &mut scroll, &state, &status).map_err(io)?;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(io(e)),
                // No more terminal input: nothing can leave the view, so stop.
                None => break,
            },
            _ = refresh.tick() => {
                if matches!(state, QueryState::Running) {
                    status = tracker.sample(&query.progress());
                    dirty = true;
                }
                if std::mem::take(&mut dirty) {
                    draw(&mut out, &view, &mut scroll, &state, &status).map_err(io)?;
                }
            }
        }
    }
    drop(screen);
    if let Some(e) = failure {
        return Err(e);
    }
    match state {
        QueryState::Running => {
            query.cancel();
            Ok(ViewOutcome::Cancelled)
        }
        _ => Ok(ViewOutcome::Finished),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch, StringArray, UInt8Array};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("word", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
        ]))
    }

    fn changes(rows: &[(RowKind, &str, i64)]) -> StreamBatch {
        let data = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .expect("batch");
        let kinds = UInt8Array::from_iter_values(rows.iter().map(|r| r.0 as u8));
        StreamBatch::try_new_changelog(data, kinds).expect("kinds")
    }

    fn cells(view: &ResultView) -> Vec<String> {
        view.rows.iter().map(|r| r.join(" ")).collect()
    }

    #[test]
    fn table_mode_updates_rows_in_place() {
        let mut view = ResultView::new(ViewKind::Table, &schema(), 100);
        view.apply(&changes(&[
            (RowKind::Insert, "a", 1),
            (RowKind::Insert, "b", 1),
            (RowKind::UpdateBefore, "a", 1),
            (RowKind::UpdateAfter, "a", 2),
        ]));
        assert_eq!(cells(&view), ["a 2", "b 1"]);
        view.apply(&changes(&[(RowKind::Delete, "a", 2)]));
        assert_eq!(cells(&view), ["b 1"]);
        // A retraction of a row the view no longer has changes nothing.
        view.apply(&changes(&[(RowKind::Delete, "z", 9)]));
        assert_eq!(cells(&view), ["b 1"]);
    }

    #[test]
    fn changelog_mode_keeps_every_change_up_to_the_limit() {
        let mut view = ResultView::new(ViewKind::Changelog, &schema(), 2);
        view.apply(&changes(&[
            (RowKind::Insert, "a", 1),
            (RowKind::UpdateBefore, "a", 1),
            (RowKind::UpdateAfter, "a", 2),
        ]));
        assert_eq!(cells(&view), ["-U a 1", "+U a 2"]);
        let lines = view.render_rows(0, 10, 80);
        assert_eq!(lines, ["op  word  n", "-U     a  1", "+U     a  2"]);
    }

    #[test]
    fn pages_stop_at_the_last_rows() {
        let mut scroll = Scroll {
            top: 0,
            follow: false,
        };
        let KeyAction::Scroll(next) = key_action(KeyEvent::from(KeyCode::Char('n'))) else {
            panic!("N scrolls");
        };
        next(&mut scroll, 10, 25);
        assert_eq!(scroll.top, 10);
        next(&mut scroll, 10, 25);
        assert_eq!((scroll.top, scroll.follow), (15, true));
        assert!(matches!(
            key_action(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            KeyAction::Leave
        ));
    }
}
