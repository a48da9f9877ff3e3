//! Errors of the SQL front end, with the position in the script they refer to.

use std::fmt;

/// A 1-based line and column in a SQL script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

impl From<sqlparser::tokenizer::Location> for Position {
    fn from(l: sqlparser::tokenizer::Location) -> Self {
        Position {
            line: l.line,
            column: l.column,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The text is not valid SQL.
    #[error("SQL parse error at {position}: {message}")]
    Parse { message: String, position: Position },
    /// Valid SQL that does not plan: unknown table or column, type mismatch.
    #[error("{message}")]
    Plan {
        message: String,
        position: Option<Position>,
    },
    /// A table, view or option that does not exist or already exists.
    #[error("{0}")]
    Catalog(String),
    /// SQL Weir does not run yet.
    #[error("{0} is not supported yet")]
    Unsupported(String),
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error(transparent)]
    Function(#[from] weir_functions::FunctionError),
}

impl SqlError {
    pub(crate) fn parse(message: impl Into<String>, position: impl Into<Position>) -> Self {
        SqlError::Parse {
            message: message.into(),
            position: position.into(),
        }
    }

    /// The position the error points at, if it has one.
    pub fn position(&self) -> Option<Position> {
        match self {
            SqlError::Parse { position, .. } => Some(*position),
            SqlError::Plan { position, .. } => *position,
            _ => None,
        }
    }

    /// The message without its position.
    pub fn message(&self) -> String {
        match self {
            SqlError::Parse { message, .. } | SqlError::Plan { message, .. } => message.clone(),
            SqlError::DataFusion(e) => datafusion_message(e),
            other => other.to_string(),
        }
    }
}

/// Converts a sqlparser error, moving its "at Line: x, Column: y" into a [`Position`].
pub(crate) fn from_parser_error(e: sqlparser::parser::ParserError, fallback: Position) -> SqlError {
    let text = match e {
        sqlparser::parser::ParserError::TokenizerError(m)
        | sqlparser::parser::ParserError::ParserError(m) => m,
        sqlparser::parser::ParserError::RecursionLimitExceeded => {
            "the statement is nested too deeply".to_string()
        }
    };
    match split_position(&text) {
        Some((message, position)) => SqlError::parse(message, position),
        None => SqlError::parse(text, fallback),
    }
}

fn split_position(text: &str) -> Option<(String, Position)> {
    let at = text.rfind(" at Line: ")?;
    let rest = &text[at + " at Line: ".len()..];
    let (line, column) = rest.split_once(", Column: ")?;
    let line = line.trim().parse().ok()?;
    let column = column
        .trim()
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()?;
    Some((text[..at].to_string(), Position { line, column }))
}

/// DataFusion's message without its "Error during planning: " style prefixes.
fn datafusion_message(e: &datafusion::error::DataFusionError) -> String {
    let mut text = e.strip_backtrace();
    for prefix in [
        "Error during planning: ",
        "Schema error: ",
        "This feature is not implemented: ",
        "Optimizer rule",
    ] {
        if let Some(rest) = text.strip_prefix(prefix) {
            text = rest.to_string();
        }
    }
    text
}

/// Renders the line `position` points into, with a caret under the column:
///
/// ```text
/// SELECT auction, prise FROM bids
///                 ^
/// ```
pub fn caret_snippet(sql: &str, position: Position) -> Option<String> {
    let line = sql.lines().nth(position.line.checked_sub(1)? as usize)?;
    let column = position.column.max(1) as usize - 1;
    let pad: String = line
        .chars()
        .take(column)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    Some(format!("{line}\n{pad}^"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_positions_are_extracted() {
        let e = from_parser_error(
            sqlparser::parser::ParserError::ParserError(
                "Expected: an expression, found: FROM at Line: 2, Column: 8".into(),
            ),
            Position::default(),
        );
        assert_eq!(e.position(), Some(Position { line: 2, column: 8 }));
        assert_eq!(e.message(), "Expected: an expression, found: FROM");
        let snippet = caret_snippet(
            "SET 'a' = 'b';\nSELECT FROM t",
            Position { line: 2, column: 8 },
        );
        assert_eq!(snippet.as_deref(), Some("SELECT FROM t\n       ^"));
    }
}
