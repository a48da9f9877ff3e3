//! Line editing for the shell: Enter inside an unfinished statement starts
//! a new line of the same statement (so history keeps whole statements), and
//! Tab completes keywords and the names of tables, views, columns and
//! functions.

use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper};

/// Words the shell completes that are not names: Flink SQL keywords, types
/// and the client's own commands.
const KEYWORDS: &[&str] = &[
    "ALL",
    "AND",
    "ARRAY",
    "AS",
    "ASC",
    "BEGIN",
    "BETWEEN",
    "BIGINT",
    "BOOLEAN",
    "BY",
    "CASE",
    "CAST",
    "CHAR",
    "CLEAR",
    "CREATE",
    "CROSS",
    "CUMULATE",
    "CURRENT",
    "DATE",
    "DAY",
    "DECIMAL",
    "DESC",
    "DESCRIBE",
    "DESCRIPTOR",
    "DISTINCT",
    "DOUBLE",
    "DROP",
    "ELSE",
    "END",
    "ENFORCED",
    "EXECUTE",
    "EXISTS",
    "EXIT",
    "EXPLAIN",
    "FALSE",
    "FILTER",
    "FLOAT",
    "FOR",
    "FROM",
    "FULL",
    "FUNCTIONS",
    "GROUP",
    "HAVING",
    "HELP",
    "HOP",
    "HOUR",
    "IF",
    "IN",
    "INNER",
    "INSERT",
    "INT",
    "INTEGER",
    "INTERVAL",
    "INTO",
    "IS",
    "JOB",
    "JOBS",
    "JOIN",
    "KEY",
    "LATERAL",
    "LEFT",
    "LIKE",
    "LIMIT",
    "MAP",
    "METADATA",
    "MINUTE",
    "NOT",
    "NULL",
    "OF",
    "ON",
    "OR",
    "ORDER",
    "OUTER",
    "OVER",
    "PARTITION",
    "PRECEDING",
    "PRIMARY",
    "QUIT",
    "RANGE",
    "RESET",
    "RIGHT",
    "ROW",
    "ROWS",
    "SECOND",
    "SELECT",
    "SESSION",
    "SET",
    "SHOW",
    "SMALLINT",
    "STATEMENT",
    "STOP",
    "STRING",
    "SYSTEM_TIME",
    "TABLE",
    "TABLES",
    "TEMPORARY",
    "THEN",
    "TIME",
    "TIMESTAMP",
    "TIMESTAMP_LTZ",
    "TINYINT",
    "TRUE",
    "TUMBLE",
    "UNION",
    "VALUES",
    "VARCHAR",
    "VIEW",
    "VIEWS",
    "VIRTUAL",
    "WATERMARK",
    "WHEN",
    "WHERE",
    "WITH",
];

/// The shell's commands, run by the client rather than the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCommand {
    Help,
    Quit,
    Clear,
}

impl ClientCommand {
    /// `HELP;`, `QUIT;`, `EXIT;` or `CLEAR;` (the `;` may be left out).
    pub fn parse(input: &str) -> Option<Self> {
        let word = input.trim().trim_end_matches(';').trim();
        match word.to_ascii_uppercase().as_str() {
            "HELP" => Some(Self::Help),
            "QUIT" | "EXIT" => Some(Self::Quit),
            "CLEAR" => Some(Self::Clear),
            _ => None,
        }
    }
}

/// True when the text ends a statement: a `;` outside quotes and comments.
pub fn statement_complete(buffer: &str) -> bool {
    let mut in_single = false;
    let mut in_back = false;
    let mut last_significant = None;
    for line in buffer.lines() {
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\'' if !in_back => in_single = !in_single,
                '`' if !in_single => in_back = !in_back,
                '-' if !in_single && !in_back && chars.peek() == Some(&'-') => break,
                c if !c.is_whitespace() => last_significant = Some(c),
                _ => {}
            }
            if !c.is_whitespace() && (in_single || in_back) {
                last_significant = Some(c);
            }
        }
    }
    !in_single && !in_back && last_significant == Some(';')
}

/// The shell's rustyline helper.
#[derive(Debug, Default)]
pub struct SqlHelper {
    /// Tables, views, columns and functions of the session, refreshed
    /// before each statement is read.
    names: Vec<String>,
}

impl SqlHelper {
    pub fn set_names(&mut self, names: Vec<String>) {
        self.names = names;
    }

    fn candidates(&self, prefix: &str) -> Vec<Pair> {
        let lower = prefix.to_ascii_lowercase();
        // Keywords follow the case the user types in.
        let keywords_lower = prefix.chars().all(|c| !c.is_ascii_uppercase());
        let keywords = KEYWORDS
            .iter()
            .filter(|k| k.to_ascii_lowercase().starts_with(&lower))
            .map(|k| {
                if keywords_lower {
                    k.to_ascii_lowercase()
                } else {
                    (*k).to_string()
                }
            });
        let names = self
            .names
            .iter()
            .filter(|n| n.to_ascii_lowercase().starts_with(&lower))
            .cloned();
        let mut words: Vec<String> = names.chain(keywords).collect();
        words.sort_by_key(|w| w.to_ascii_lowercase());
        words.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        words
            .into_iter()
            .map(|w| Pair {
                display: w.clone(),
                replacement: w,
            })
            .collect()
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

impl Completer for SqlHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before
            .char_indices()
            .rev()
            .take_while(|(_, c)| is_word_char(*c))
            .last()
            .map_or(pos, |(i, _)| i);
        let prefix = &before[start..];
        if prefix.is_empty() {
            return Ok((pos, Vec::new()));
        }
        Ok((start, self.candidates(prefix)))
    }
}

impl Validator for SqlHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        let input = ctx.input();
        if input.trim().is_empty()
            || statement_complete(input)
            || ClientCommand::parse(input).is_some()
        {
            Ok(ValidationResult::Valid(None))
        } else {
            Ok(ValidationResult::Incomplete)
        }
    }
}

impl Hinter for SqlHelper {
    type Hint = String;
}

impl Highlighter for SqlHelper {}

impl Helper for SqlHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_end_at_a_semicolon_outside_quotes() {
        assert!(statement_complete("SELECT 1;"));
        assert!(statement_complete("SELECT 1;  \n"));
        assert!(!statement_complete("SELECT ';"));
        assert!(!statement_complete("SELECT 1 -- done;"));
        assert!(statement_complete("SELECT ';';"));
        assert!(!statement_complete("SELECT 1"));
    }

    #[test]
    fn client_commands_are_recognised_with_or_without_a_semicolon() {
        assert_eq!(ClientCommand::parse(" help; "), Some(ClientCommand::Help));
        assert_eq!(ClientCommand::parse("EXIT"), Some(ClientCommand::Quit));
        assert_eq!(ClientCommand::parse("quit;"), Some(ClientCommand::Quit));
        assert_eq!(ClientCommand::parse("SELECT 1;"), None);
    }

    #[test]
    fn completes_keywords_in_the_typed_case_and_names_as_they_are() {
        let mut helper = SqlHelper::default();
        helper.set_names(vec!["bids".into(), "bidder".into(), "Orders".into()]);
        let words = |prefix: &str| -> Vec<String> {
            helper
                .candidates(prefix)
                .into_iter()
                .map(|p| p.replacement)
                .collect()
        };
        assert_eq!(words("SEL"), ["SELECT"]);
        assert_eq!(words("sel"), ["select"]);
        assert_eq!(words("bid"), ["bidder", "bids"]);
        assert_eq!(words("ord"), ["order", "Orders"]);
    }
}
