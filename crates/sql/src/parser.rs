//! Parses Flink SQL scripts into [`FlinkStatement`]s.
//!
//! sqlparser tokenizes the whole script, so every position is a line and
//! column in the script as the user wrote it. Statements Flink has and
//! sqlparser does not (Flink's CREATE TABLE with computed columns and
//! watermarks, SET/RESET with quoted keys, SHOW/DESCRIBE, EXECUTE STATEMENT
//! SET, STOP JOB) are parsed here with sqlparser's building blocks; queries,
//! INSERTs and expressions are left to sqlparser itself.

use sqlparser::ast::{Expr, Ident, ObjectName, Query, Statement};
use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

use crate::error::{Position, SqlError, from_parser_error};
use crate::types::{FlinkType, parse_type};

/// Flink SQL as sqlparser reads it: backquoted identifiers, single-quoted strings.
pub type FlinkDialect = GenericDialect;

/// One statement of a script, with where it starts.
#[derive(Debug, Clone)]
pub struct ParsedStatement {
    pub statement: FlinkStatement,
    pub position: Position,
    /// The statement's text, without its `;`: what a cluster ships to plan
    /// the statement again in another process.
    pub text: String,
}

/// The statements of Flink's SQL surface that Weir runs.
#[derive(Debug, Clone)]
pub enum FlinkStatement {
    CreateTable(CreateTable),
    CreateView(CreateView),
    Drop(DropObject),
    ShowTables,
    ShowViews,
    ShowFunctions,
    ShowJobs,
    ShowCreateTable(ObjectName),
    Describe(ObjectName),
    /// `SET` lists the options; `SET 'k' = 'v'` sets one.
    Set(Option<(String, String)>),
    /// `RESET` clears every option; `RESET 'k'` one.
    Reset(Option<String>),
    /// An `INSERT INTO ... SELECT ...`.
    Insert(Box<Statement>),
    /// A query whose rows go back to the client.
    Query(Box<Query>),
    /// `EXECUTE STATEMENT SET BEGIN INSERT ...; INSERT ...; END`: one job.
    StatementSet(Vec<Statement>),
    Explain(Box<FlinkStatement>),
    StopJob {
        job_id: String,
        with_savepoint: bool,
    },
}

#[derive(Debug, Clone)]
pub struct CreateTable {
    pub name: ObjectName,
    pub temporary: bool,
    pub if_not_exists: bool,
    pub columns: Vec<ColumnDefinition>,
    pub watermark: Option<WatermarkDefinition>,
    pub primary_key: Vec<Ident>,
    pub partitioned_by: Vec<Ident>,
    pub comment: Option<String>,
    pub options: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct ColumnDefinition {
    pub name: Ident,
    pub kind: ColumnKind,
    pub comment: Option<String>,
    pub position: Position,
}

#[derive(Debug, Clone)]
pub enum ColumnKind {
    /// Stored by the connector.
    Physical(FlinkType),
    /// `name AS expr`, computed from the other columns when read.
    Computed(Expr),
    /// `name type METADATA [FROM 'key'] [VIRTUAL]`: provided by the connector.
    Metadata {
        data_type: FlinkType,
        key: Option<String>,
        is_virtual: bool,
    },
}

#[derive(Debug, Clone)]
pub struct WatermarkDefinition {
    pub column: Ident,
    pub expr: Expr,
    pub position: Position,
}

#[derive(Debug, Clone)]
pub struct CreateView {
    pub name: ObjectName,
    pub temporary: bool,
    pub if_not_exists: bool,
    pub columns: Vec<Ident>,
    pub query: Box<Query>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Table,
    View,
}

#[derive(Debug, Clone)]
pub struct DropObject {
    pub kind: ObjectKind,
    pub name: ObjectName,
    pub if_exists: bool,
}

/// Parses every statement of a script; statements end with `;` (the last may omit it).
pub fn parse_script(sql: &str) -> Result<Vec<ParsedStatement>, SqlError> {
    parse_statements(sql).map_err(|e| match e {
        // sqlparser places the end of input at line 0; point past the last character instead.
        SqlError::Parse { message, position } if position.line == 0 => SqlError::Parse {
            message,
            position: end_of(sql),
        },
        other => other,
    })
}

fn end_of(sql: &str) -> Position {
    let trimmed = sql.trim_end();
    let line = trimmed.lines().count().max(1) as u64;
    let column = trimmed.lines().last().map_or(0, |l| l.chars().count()) as u64 + 1;
    Position { line, column }
}

fn parse_statements(sql: &str) -> Result<Vec<ParsedStatement>, SqlError> {
    let dialect = FlinkDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .with_unescape(true)
        .tokenize_with_location()
        .map_err(|e| from_parser_error(e.into(), Position { line: 1, column: 1 }))?;
    let tokens = crate::temporal::mark_temporal_tables(tokens)?;
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(table_arguments(tokens));
    let mut statements = Vec::new();
    loop {
        while parser.consume_token(&Token::SemiColon) {}
        let start = parser.peek_token();
        if start.token == Token::EOF {
            return Ok(statements);
        }
        let statement = parse_statement(&mut parser)?;
        let next = parser.peek_token();
        let from = offset_of(sql, start.span.start);
        let to = match next.token {
            Token::EOF => sql.len(),
            _ => offset_of(sql, next.span.start),
        };
        statements.push(ParsedStatement {
            statement,
            position: start.span.start.into(),
            text: sql.get(from..to).unwrap_or_default().trim().to_string(),
        });
        match next.token {
            Token::SemiColon | Token::EOF => {}
            other => {
                return Err(SqlError::parse(
                    format!("expected ';' after the statement, found {other}"),
                    next.span.start,
                ));
            }
        }
    }
}

/// The byte offset of a token location (1-based line and character column).
fn offset_of(sql: &str, location: sqlparser::tokenizer::Location) -> usize {
    let mut offset = 0;
    for (number, line) in sql.split_inclusive('\n').enumerate() {
        if number as u64 + 1 == location.line {
            let column = usize::try_from(location.column.saturating_sub(1)).unwrap_or(0);
            return offset
                + line
                    .char_indices()
                    .nth(column)
                    .map_or(line.len(), |(at, _)| at);
        }
        offset += line.len();
    }
    sql.len()
}

/// Drops the `TABLE` keyword of table arguments (`TUMBLE(TABLE bids, ...)`,
/// `DATA => TABLE bids`), which sqlparser does not parse; the window
/// functions' planning takes the bare name as the table. A table argument's
/// `PARTITION BY k` or `PARTITION BY (k1, k2)` (SESSION) becomes an extra
/// `DESCRIPTOR(k1, k2)` argument right after the table.
fn table_arguments(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let significant: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i].token, Token::Whitespace(_)))
        .collect();
    let word = |i: usize, keyword: Keyword| {
        significant
            .get(i)
            .is_some_and(|&t| matches!(&tokens[t].token, Token::Word(w) if w.keyword == keyword))
    };
    // Replacements by token index: `None` drops the token.
    let mut replace: Vec<(usize, Option<Vec<Token>>)> = Vec::new();
    for at in 1..significant.len().saturating_sub(1) {
        let before = &tokens[significant[at - 1]].token;
        let after = &tokens[significant[at + 1]].token;
        if !(word(at, Keyword::TABLE)
            && matches!(before, Token::LParen | Token::Comma | Token::RArrow)
            && matches!(after, Token::Word(_)))
        {
            continue;
        }
        replace.push((significant[at], None));
        if !(word(at + 2, Keyword::PARTITION) && word(at + 3, Keyword::BY)) {
            continue;
        }
        let descriptor = vec![Token::Comma, Token::make_word("DESCRIPTOR", None)];
        replace.push((significant[at + 2], Some(descriptor)));
        let parenthesized = significant
            .get(at + 4)
            .is_some_and(|&t| tokens[t].token == Token::LParen);
        if parenthesized {
            replace.push((significant[at + 3], None));
        } else if let Some(&key) = significant.get(at + 4) {
            replace.push((significant[at + 3], Some(vec![Token::LParen])));
            replace.push((key, Some(vec![tokens[key].token.clone(), Token::RParen])));
        }
    }
    let mut out = Vec::with_capacity(tokens.len());
    for (index, token) in tokens.into_iter().enumerate() {
        match replace.iter().find(|(i, _)| *i == index) {
            None => out.push(token),
            Some((_, None)) => {}
            Some((_, Some(with))) => out.extend(with.iter().map(|t| TokenWithSpan {
                token: t.clone(),
                span: token.span,
            })),
        }
    }
    out
}

struct StatementParser<'p, 'a> {
    parser: &'p mut Parser<'a>,
}

fn parse_statement(parser: &mut Parser<'_>) -> Result<FlinkStatement, SqlError> {
    StatementParser { parser }.statement()
}

impl StatementParser<'_, '_> {
    fn here(&self) -> Location {
        self.parser.peek_token().span.start
    }

    fn wrap<T>(&self, result: Result<T, sqlparser::parser::ParserError>) -> Result<T, SqlError> {
        let here = self.here();
        result.map_err(|e| from_parser_error(e, here.into()))
    }

    /// Consumes the next token if it is the (non-reserved) word `word`.
    fn parse_word(&mut self, word: &str) -> bool {
        match &self.parser.peek_token().token {
            Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word) => {
                self.parser.next_token();
                true
            }
            _ => false,
        }
    }

    fn expect_word(&mut self, word: &str) -> Result<(), SqlError> {
        if self.parse_word(word) {
            Ok(())
        } else {
            let found = self.parser.peek_token();
            Err(SqlError::parse(
                format!("expected {word}, found {}", found.token),
                found.span.start,
            ))
        }
    }

    fn expect_token(&mut self, token: &Token) -> Result<(), SqlError> {
        let result = self.parser.expect_token(token).map(|_| ());
        self.wrap(result)
    }

    fn string(&mut self) -> Result<String, SqlError> {
        let result = self.parser.parse_literal_string();
        self.wrap(result)
    }

    fn identifier(&mut self) -> Result<Ident, SqlError> {
        let result = self.parser.parse_identifier();
        self.wrap(result)
    }

    fn object_name(&mut self) -> Result<ObjectName, SqlError> {
        let result = self.parser.parse_object_name(false);
        self.wrap(result)
    }

    fn expr(&mut self) -> Result<Expr, SqlError> {
        let result = self.parser.parse_expr();
        self.wrap(result)
    }

    fn query(&mut self) -> Result<Box<Query>, SqlError> {
        let result = self.parser.parse_query();
        self.wrap(result)
    }

    fn statement(&mut self) -> Result<FlinkStatement, SqlError> {
        let token = self.parser.peek_token();
        let Token::Word(word) = &token.token else {
            if token.token == Token::LParen {
                return Ok(FlinkStatement::Query(self.query()?));
            }
            return Err(SqlError::parse(
                format!("expected a statement, found {}", token.token),
                token.span.start,
            ));
        };
        match word.keyword {
            Keyword::SELECT | Keyword::WITH | Keyword::VALUES => {
                Ok(FlinkStatement::Query(self.query()?))
            }
            Keyword::INSERT => {
                let result = self.parser.parse_statement();
                Ok(FlinkStatement::Insert(Box::new(self.wrap(result)?)))
            }
            Keyword::CREATE => {
                self.parser.next_token();
                self.create()
            }
            Keyword::DROP => {
                self.parser.next_token();
                self.drop()
            }
            Keyword::SET => {
                self.parser.next_token();
                self.set()
            }
            Keyword::RESET => {
                self.parser.next_token();
                if matches!(
                    self.parser.peek_token().token,
                    Token::SemiColon | Token::EOF
                ) {
                    Ok(FlinkStatement::Reset(None))
                } else {
                    Ok(FlinkStatement::Reset(Some(self.key()?)))
                }
            }
            Keyword::SHOW => {
                self.parser.next_token();
                self.show()
            }
            Keyword::DESCRIBE | Keyword::DESC => {
                self.parser.next_token();
                Ok(FlinkStatement::Describe(self.object_name()?))
            }
            Keyword::EXPLAIN => {
                self.parser.next_token();
                // Flink's EXPLAIN PLAN FOR and EXPLAIN CHANGELOG_MODE, ... forms.
                let _ = self.parser.parse_keywords(&[Keyword::PLAN, Keyword::FOR]);
                while self.parse_word("CHANGELOG_MODE")
                    || self.parse_word("ESTIMATED_COST")
                    || self.parse_word("JSON_EXECUTION_PLAN")
                {
                    let _ = self.parser.consume_token(&Token::Comma);
                }
                Ok(FlinkStatement::Explain(Box::new(self.statement()?)))
            }
            Keyword::EXECUTE => {
                self.parser.next_token();
                if self.parser.parse_keyword(Keyword::STATEMENT) {
                    self.expect_token(&Token::Word(sqlparser::tokenizer::Word {
                        value: "SET".into(),
                        quote_style: None,
                        keyword: Keyword::SET,
                    }))?;
                    return self.statement_set();
                }
                // `EXECUTE INSERT INTO ...` / `EXECUTE SELECT ...` run the statement.
                self.statement()
            }
            Keyword::BEGIN => {
                self.parser.next_token();
                self.parser
                    .expect_keyword_is(Keyword::STATEMENT)
                    .map_err(|e| from_parser_error(e, token.span.start.into()))?;
                self.parser
                    .expect_keyword_is(Keyword::SET)
                    .map_err(|e| from_parser_error(e, token.span.start.into()))?;
                let _ = self.parser.consume_token(&Token::SemiColon);
                self.statement_set_body()
            }
            _ if word.value.eq_ignore_ascii_case("STOP") => {
                self.parser.next_token();
                self.expect_word("JOB")?;
                let job_id = self.string()?;
                let with_savepoint = self.parser.parse_keyword(Keyword::WITH) && {
                    self.expect_word("SAVEPOINT")?;
                    true
                };
                Ok(FlinkStatement::StopJob {
                    job_id,
                    with_savepoint,
                })
            }
            _ => Err(SqlError::parse(
                format!(
                    "unknown statement '{}'; Weir runs SELECT, INSERT INTO, CREATE TABLE/VIEW, DROP TABLE/VIEW, SHOW, DESCRIBE, EXPLAIN, SET, RESET, EXECUTE STATEMENT SET and STOP JOB",
                    word.value
                ),
                token.span.start,
            )),
        }
    }

    /// An option key: `'key'` as Flink writes it, or a bare dotted name.
    fn key(&mut self) -> Result<String, SqlError> {
        if matches!(self.parser.peek_token().token, Token::SingleQuotedString(_)) {
            return self.string();
        }
        let mut key = String::new();
        loop {
            let token = self.parser.next_token();
            match token.token {
                Token::Word(w) => key.push_str(&w.value),
                Token::Minus => key.push('-'),
                Token::Period => key.push('.'),
                Token::Number(n, _) => key.push_str(&n),
                _ => {
                    self.parser.prev_token();
                    break;
                }
            }
        }
        if key.is_empty() {
            let found = self.parser.peek_token();
            return Err(SqlError::parse(
                format!(
                    "expected an option key such as 'parallelism.default', found {}",
                    found.token
                ),
                found.span.start,
            ));
        }
        Ok(key)
    }

    fn set(&mut self) -> Result<FlinkStatement, SqlError> {
        if matches!(
            self.parser.peek_token().token,
            Token::SemiColon | Token::EOF
        ) {
            return Ok(FlinkStatement::Set(None));
        }
        let key = self.key()?;
        self.expect_token(&Token::Eq)?;
        let token = self.parser.next_token();
        let value = match token.token {
            Token::SingleQuotedString(s) => s,
            Token::Number(n, _) => n,
            Token::Word(w) => w.value,
            other => {
                return Err(SqlError::parse(
                    format!("expected a quoted value for '{key}', found {other}"),
                    token.span.start,
                ));
            }
        };
        Ok(FlinkStatement::Set(Some((key, value))))
    }

    fn show(&mut self) -> Result<FlinkStatement, SqlError> {
        if self.parser.parse_keyword(Keyword::TABLES) {
            return Ok(FlinkStatement::ShowTables);
        }
        if self.parser.parse_keyword(Keyword::VIEWS) {
            return Ok(FlinkStatement::ShowViews);
        }
        if self.parser.parse_keyword(Keyword::FUNCTIONS) {
            return Ok(FlinkStatement::ShowFunctions);
        }
        if self.parse_word("JOBS") {
            return Ok(FlinkStatement::ShowJobs);
        }
        if self
            .parser
            .parse_keywords(&[Keyword::CREATE, Keyword::TABLE])
        {
            return Ok(FlinkStatement::ShowCreateTable(self.object_name()?));
        }
        let found = self.parser.peek_token();
        Err(SqlError::parse(
            format!(
                "expected TABLES, VIEWS, FUNCTIONS, JOBS or CREATE TABLE after SHOW, found {}",
                found.token
            ),
            found.span.start,
        ))
    }

    fn drop(&mut self) -> Result<FlinkStatement, SqlError> {
        let _ = self.parser.parse_keyword(Keyword::TEMPORARY);
        let kind = if self.parser.parse_keyword(Keyword::TABLE) {
            ObjectKind::Table
        } else if self.parser.parse_keyword(Keyword::VIEW) {
            ObjectKind::View
        } else {
            let found = self.parser.peek_token();
            return Err(SqlError::parse(
                format!("expected TABLE or VIEW after DROP, found {}", found.token),
                found.span.start,
            ));
        };
        let if_exists = self.parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
        Ok(FlinkStatement::Drop(DropObject {
            kind,
            name: self.object_name()?,
            if_exists,
        }))
    }

    fn create(&mut self) -> Result<FlinkStatement, SqlError> {
        let temporary = self.parser.parse_keyword(Keyword::TEMPORARY);
        if self.parser.parse_keyword(Keyword::VIEW) {
            let if_not_exists =
                self.parser
                    .parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
            let name = self.object_name()?;
            let mut columns = Vec::new();
            if self.parser.consume_token(&Token::LParen) {
                loop {
                    columns.push(self.identifier()?);
                    if !self.parser.consume_token(&Token::Comma) {
                        break;
                    }
                }
                self.expect_token(&Token::RParen)?;
            }
            let result = self.parser.expect_keyword_is(Keyword::AS);
            self.wrap(result)?;
            return Ok(FlinkStatement::CreateView(CreateView {
                name,
                temporary,
                if_not_exists,
                columns,
                query: self.query()?,
            }));
        }
        if !self.parser.parse_keyword(Keyword::TABLE) {
            let found = self.parser.peek_token();
            return Err(SqlError::parse(
                format!("expected TABLE or VIEW after CREATE, found {}", found.token),
                found.span.start,
            ));
        }
        let if_not_exists =
            self.parser
                .parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
        let name = self.object_name()?;
        self.expect_token(&Token::LParen)?;
        let mut table = CreateTable {
            name,
            temporary,
            if_not_exists,
            columns: Vec::new(),
            watermark: None,
            primary_key: Vec::new(),
            partitioned_by: Vec::new(),
            comment: None,
            options: Vec::new(),
        };
        loop {
            self.table_element(&mut table)?;
            if !self.parser.consume_token(&Token::Comma) {
                break;
            }
        }
        self.expect_token(&Token::RParen)?;
        if self.parser.parse_keyword(Keyword::COMMENT) {
            table.comment = Some(self.string()?);
        }
        if self
            .parser
            .parse_keywords(&[Keyword::PARTITIONED, Keyword::BY])
        {
            self.expect_token(&Token::LParen)?;
            loop {
                table.partitioned_by.push(self.identifier()?);
                if !self.parser.consume_token(&Token::Comma) {
                    break;
                }
            }
            self.expect_token(&Token::RParen)?;
        }
        if self.parser.parse_keyword(Keyword::WITH) {
            table.options = self.options()?;
        }
        Ok(FlinkStatement::CreateTable(table))
    }

    /// `WITH ('k' = 'v', ...)`.
    fn options(&mut self) -> Result<Vec<(String, String)>, SqlError> {
        self.expect_token(&Token::LParen)?;
        let mut options = Vec::new();
        if self.parser.consume_token(&Token::RParen) {
            return Ok(options);
        }
        loop {
            let key = self.string()?;
            self.expect_token(&Token::Eq)?;
            let value = self.string()?;
            options.push((key, value));
            if !self.parser.consume_token(&Token::Comma) {
                break;
            }
        }
        self.expect_token(&Token::RParen)?;
        Ok(options)
    }

    fn table_element(&mut self, table: &mut CreateTable) -> Result<(), SqlError> {
        let start = self.here();
        if self.parse_word("WATERMARK") {
            let result = self.parser.expect_keyword_is(Keyword::FOR);
            self.wrap(result)?;
            let column = self.identifier()?;
            let result = self.parser.expect_keyword_is(Keyword::AS);
            self.wrap(result)?;
            let expr = self.expr()?;
            if table.watermark.is_some() {
                return Err(SqlError::parse(
                    "a table can have only one WATERMARK",
                    start,
                ));
            }
            table.watermark = Some(WatermarkDefinition {
                column,
                expr,
                position: start.into(),
            });
            return Ok(());
        }
        if self.parser.parse_keyword(Keyword::CONSTRAINT) {
            self.identifier()?;
        }
        if self
            .parser
            .parse_keywords(&[Keyword::PRIMARY, Keyword::KEY])
        {
            self.expect_token(&Token::LParen)?;
            let mut key = Vec::new();
            loop {
                key.push(self.identifier()?);
                if !self.parser.consume_token(&Token::Comma) {
                    break;
                }
            }
            self.expect_token(&Token::RParen)?;
            self.not_enforced()?;
            return self.set_primary_key(table, key, start);
        }
        let name = self.identifier()?;
        let kind = if self.parser.parse_keyword(Keyword::AS) {
            ColumnKind::Computed(self.expr()?)
        } else {
            let data_type = parse_type(self.parser)?;
            if self.parser.parse_keyword(Keyword::METADATA) {
                let key = if self.parser.parse_keyword(Keyword::FROM) {
                    Some(self.string()?)
                } else {
                    None
                };
                let is_virtual = self.parser.parse_keyword(Keyword::VIRTUAL);
                ColumnKind::Metadata {
                    data_type,
                    key,
                    is_virtual,
                }
            } else {
                ColumnKind::Physical(data_type)
            }
        };
        if self
            .parser
            .parse_keywords(&[Keyword::PRIMARY, Keyword::KEY])
        {
            self.not_enforced()?;
            self.set_primary_key(table, vec![name.clone()], start)?;
        }
        let comment = if self.parser.parse_keyword(Keyword::COMMENT) {
            Some(self.string()?)
        } else {
            None
        };
        table.columns.push(ColumnDefinition {
            name,
            kind,
            comment,
            position: start.into(),
        });
        Ok(())
    }

    fn not_enforced(&mut self) -> Result<(), SqlError> {
        let here = self.here();
        if self
            .parser
            .parse_keywords(&[Keyword::NOT, Keyword::ENFORCED])
        {
            Ok(())
        } else {
            Err(SqlError::parse(
                "Flink does not enforce primary keys: write PRIMARY KEY (...) NOT ENFORCED",
                here,
            ))
        }
    }

    fn set_primary_key(
        &mut self,
        table: &mut CreateTable,
        key: Vec<Ident>,
        at: Location,
    ) -> Result<(), SqlError> {
        if !table.primary_key.is_empty() {
            return Err(SqlError::parse("a table can have only one PRIMARY KEY", at));
        }
        table.primary_key = key;
        Ok(())
    }

    /// After `EXECUTE STATEMENT SET`: `BEGIN INSERT ...; ...; END`.
    fn statement_set(&mut self) -> Result<FlinkStatement, SqlError> {
        let result = self.parser.expect_keyword_is(Keyword::BEGIN);
        self.wrap(result)?;
        self.statement_set_body()
    }

    fn statement_set_body(&mut self) -> Result<FlinkStatement, SqlError> {
        let mut inserts = Vec::new();
        loop {
            while self.parser.consume_token(&Token::SemiColon) {}
            if self.parser.parse_keyword(Keyword::END) {
                break;
            }
            let token = self.parser.peek_token();
            match self.statement()? {
                FlinkStatement::Insert(insert) => inserts.push(*insert),
                _ => {
                    return Err(SqlError::parse(
                        "a statement set holds only INSERT statements, each ending with ';', and ends with END",
                        token.span.start,
                    ));
                }
            }
        }
        if inserts.is_empty() {
            return Err(SqlError::parse(
                "the statement set has no INSERT statement",
                self.here(),
            ));
        }
        Ok(FlinkStatement::StatementSet(inserts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> FlinkStatement {
        let mut statements = parse_script(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(statements.len(), 1, "{sql}");
        statements.remove(0).statement
    }

    #[test]
    fn statements_keep_their_text() {
        let script =
            "SET 'a' = 'b';\n-- a comment\nCREATE VIEW v AS\n  SELECT 'é;' AS x ;\nSELECT * FROM v";
        let texts: Vec<String> = parse_script(script)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|s| s.text)
            .collect();
        assert_eq!(
            texts,
            [
                "SET 'a' = 'b'",
                "CREATE VIEW v AS\n  SELECT 'é;' AS x",
                "SELECT * FROM v"
            ]
        );
    }

    #[test]
    fn flink_create_table() {
        let FlinkStatement::CreateTable(t) = one("CREATE TABLE bids (
               auction BIGINT, price DECIMAL(10, 2) NOT NULL, `date_time` TIMESTAMP(3),
               cost AS price * 2,
               ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
               PRIMARY KEY (auction) NOT ENFORCED,
               WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
             ) COMMENT 'bids' WITH ('connector' = 'filesystem', 'path' = 'data/bids')")
        else {
            panic!("not a CREATE TABLE")
        };
        assert_eq!(t.columns.len(), 5);
        assert!(matches!(t.columns[3].kind, ColumnKind::Computed(_)));
        assert!(
            matches!(&t.columns[4].kind, ColumnKind::Metadata { key: Some(k), is_virtual: true, .. } if k == "timestamp")
        );
        assert_eq!(t.primary_key[0].value, "auction");
        assert_eq!(
            t.watermark.as_ref().map(|w| w.column.value.as_str()),
            Some("date_time")
        );
        assert_eq!(t.options[1], ("path".to_string(), "data/bids".to_string()));
        assert_eq!(t.comment.as_deref(), Some("bids"));
    }

    #[test]
    fn set_reset_show_describe_and_statement_sets() {
        assert!(
            matches!(one("SET 'parallelism.default' = '2'"), FlinkStatement::Set(Some((k, v))) if k == "parallelism.default" && v == "2")
        );
        assert!(
            matches!(one("SET execution.runtime-mode = batch"), FlinkStatement::Set(Some((k, v))) if k == "execution.runtime-mode" && v == "batch")
        );
        assert!(matches!(one("SET"), FlinkStatement::Set(None)));
        assert!(matches!(one("RESET 'a.b'"), FlinkStatement::Reset(Some(k)) if k == "a.b"));
        assert!(matches!(one("SHOW TABLES"), FlinkStatement::ShowTables));
        assert!(matches!(one("DESCRIBE bids"), FlinkStatement::Describe(_)));
        assert!(matches!(
            one("STOP JOB 'abc' WITH SAVEPOINT"),
            FlinkStatement::StopJob {
                with_savepoint: true,
                ..
            }
        ));
        let set = one(
            "EXECUTE STATEMENT SET BEGIN INSERT INTO a SELECT * FROM b; INSERT INTO c SELECT * FROM b; END",
        );
        assert!(matches!(set, FlinkStatement::StatementSet(s) if s.len() == 2));
        assert!(matches!(
            one("EXPLAIN SELECT 1"),
            FlinkStatement::Explain(_)
        ));
    }

    #[test]
    fn scripts_split_on_semicolons_with_positions() {
        let statements = parse_script("SET 'a' = '1';\n\nSELECT 1;\nSELECT 2").expect("parses");
        assert_eq!(statements.len(), 3);
        assert_eq!(statements[1].position, Position { line: 3, column: 1 });
    }

    #[test]
    fn errors_point_at_line_and_column() {
        let err =
            parse_script("SET 'a' = '1';\nCREATE TABLE t (a BIGINT,, b INT)").expect_err("bad");
        assert_eq!(
            err.position(),
            Some(Position {
                line: 2,
                column: 26
            }),
            "{err}"
        );
        let err = parse_script("SELEKT 1").expect_err("bad");
        assert!(
            err.to_string().contains("unknown statement 'SELEKT'"),
            "{err}"
        );
        let err = parse_script("CREATE TABLE t (a INT PRIMARY KEY)").expect_err("bad");
        assert!(err.to_string().contains("NOT ENFORCED"), "{err}");
    }
}
