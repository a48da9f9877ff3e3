//! Flink SQL data types: parsing them from DDL and mapping them onto Arrow;
//! `weir_format::display::sql_type_name` prints them back in Flink's spelling.
//!
//! | Flink | Arrow |
//! |---|---|
//! | CHAR(n), VARCHAR(n), STRING | Utf8 |
//! | BINARY(n), VARBINARY(n), BYTES | Binary |
//! | BOOLEAN | Boolean |
//! | TINYINT, SMALLINT, INT, BIGINT | Int8, Int16, Int32, Int64 |
//! | FLOAT, DOUBLE | Float32, Float64 |
//! | DECIMAL(p, s) | Decimal128(p, s) |
//! | DATE | Date32 |
//! | TIME(p) | Time32(ms) or Time64(µs/ns) |
//! | TIMESTAMP(p) | Timestamp(unit, none): ms for p ≤ 3, µs for p ≤ 6, else ns |
//! | TIMESTAMP_LTZ(p), TIMESTAMP(p) WITH LOCAL TIME ZONE | Timestamp(unit, "UTC") |
//! | ARRAY<T>, MAP<K, V>, ROW<n T, ...> | List, Map, Struct |

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use crate::SqlError;
use crate::error::from_parser_error;

/// The zone TIMESTAMP_LTZ values are stored in: they are instants.
pub const LTZ_ZONE: &str = "UTC";

/// A column type as declared in DDL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlinkType {
    pub data_type: DataType,
    pub nullable: bool,
}

/// Parses a Flink type at the parser's position, including `NOT NULL`.
pub fn parse_type(parser: &mut Parser<'_>) -> Result<FlinkType, SqlError> {
    let data_type = parse_data_type(parser)?;
    let nullable = if parser.parse_keywords(&[Keyword::NOT, Keyword::NULL]) {
        false
    } else {
        let _ = parser.parse_keyword(Keyword::NULL);
        true
    };
    Ok(FlinkType {
        data_type,
        nullable,
    })
}

fn parse_data_type(parser: &mut Parser<'_>) -> Result<DataType, SqlError> {
    let token = parser.next_token();
    let position = token.span.start;
    let Token::Word(word) = &token.token else {
        return Err(SqlError::parse(
            format!("expected a data type, found {}", token.token),
            position,
        ));
    };
    let name = word.value.to_ascii_uppercase();
    let data_type = match name.as_str() {
        "STRING" | "VARCHAR" | "CHAR" | "CHARACTER" => {
            if name == "CHARACTER" {
                let _ = parser.parse_keyword(Keyword::VARYING);
            }
            optional_args(parser)?;
            DataType::Utf8
        }
        "BYTES" | "BINARY" | "VARBINARY" => {
            optional_args(parser)?;
            DataType::Binary
        }
        "BOOLEAN" | "BOOL" => DataType::Boolean,
        "TINYINT" => DataType::Int8,
        "SMALLINT" => DataType::Int16,
        "INT" | "INTEGER" => DataType::Int32,
        "BIGINT" => DataType::Int64,
        "FLOAT" | "REAL" => DataType::Float32,
        "DOUBLE" => {
            let _ = parser.parse_keyword(Keyword::PRECISION);
            DataType::Float64
        }
        "DECIMAL" | "DEC" | "NUMERIC" => {
            let args = optional_args(parser)?;
            let precision = args.first().copied().unwrap_or(10);
            let scale = args.get(1).copied().unwrap_or(0);
            if !(1..=38).contains(&precision) || scale > precision {
                return Err(SqlError::parse(
                    format!(
                        "DECIMAL({precision}, {scale}) is out of range: precision must be 1 to 38 and scale at most the precision"
                    ),
                    position,
                ));
            }
            DataType::Decimal128(precision as u8, scale as i8)
        }
        "DATE" => DataType::Date32,
        "TIME" => {
            let precision = single_precision(parser, 0)?;
            let _ = parser.parse_keywords(&[Keyword::WITHOUT, Keyword::TIME, Keyword::ZONE]);
            match time_unit(precision) {
                TimeUnit::Millisecond => DataType::Time32(TimeUnit::Millisecond),
                unit => DataType::Time64(unit),
            }
        }
        "TIMESTAMP" => {
            let precision = single_precision(parser, 6)?;
            let unit = time_unit(precision);
            if parser.parse_keywords(&[Keyword::WITH, Keyword::LOCAL, Keyword::TIME, Keyword::ZONE])
            {
                DataType::Timestamp(unit, Some(LTZ_ZONE.into()))
            } else {
                let _ = parser.parse_keywords(&[Keyword::WITHOUT, Keyword::TIME, Keyword::ZONE]);
                DataType::Timestamp(unit, None)
            }
        }
        "TIMESTAMP_LTZ" => {
            let precision = single_precision(parser, 6)?;
            DataType::Timestamp(time_unit(precision), Some(LTZ_ZONE.into()))
        }
        "ARRAY" => {
            expect_open_angle(parser)?;
            let element = parse_type(parser)?;
            expect_close_angle(parser)?;
            DataType::List(Arc::new(Field::new(
                "element",
                element.data_type,
                element.nullable,
            )))
        }
        "MAP" => {
            expect_open_angle(parser)?;
            let key = parse_type(parser)?;
            expect_token(parser, &Token::Comma)?;
            let value = parse_type(parser)?;
            expect_close_angle(parser)?;
            let entries = Field::new(
                "entries",
                DataType::Struct(Fields::from(vec![
                    Field::new("key", key.data_type, false),
                    Field::new("value", value.data_type, value.nullable),
                ])),
                false,
            );
            DataType::Map(Arc::new(entries), false)
        }
        "ROW" => {
            let close = if parser.consume_token(&Token::Lt) {
                CloseWith::Angle
            } else {
                expect_token(parser, &Token::LParen)?;
                CloseWith::Paren
            };
            let mut fields = Vec::new();
            loop {
                let name = parser
                    .parse_identifier()
                    .map_err(|e| from_parser_error(e, position.into()))?;
                let ty = parse_type(parser)?;
                fields.push(Field::new(name.value, ty.data_type, ty.nullable));
                if !parser.consume_token(&Token::Comma) {
                    break;
                }
            }
            match close {
                CloseWith::Angle => expect_close_angle(parser)?,
                CloseWith::Paren => expect_token(parser, &Token::RParen)?,
            }
            DataType::Struct(Fields::from(fields))
        }
        _ => {
            return Err(SqlError::parse(
                format!(
                    "unknown data type '{}'; valid types are STRING, VARCHAR(n), CHAR(n), BYTES, BOOLEAN, TINYINT, SMALLINT, INT, BIGINT, FLOAT, DOUBLE, DECIMAL(p, s), DATE, TIME(p), TIMESTAMP(p), TIMESTAMP_LTZ(p), ARRAY<T>, MAP<K, V>, ROW<...>",
                    word.value
                ),
                position,
            ));
        }
    };
    Ok(data_type)
}

enum CloseWith {
    Angle,
    Paren,
}

fn expect_token(parser: &mut Parser<'_>, token: &Token) -> Result<(), SqlError> {
    let position = parser.peek_token().span.start;
    parser
        .expect_token(token)
        .map(|_| ())
        .map_err(|e| from_parser_error(e, position.into()))
}

fn expect_open_angle(parser: &mut Parser<'_>) -> Result<(), SqlError> {
    expect_token(parser, &Token::Lt)
}

/// Nested types end in `>>`, which the tokenizer reads as one shift token.
fn expect_close_angle(parser: &mut Parser<'_>) -> Result<(), SqlError> {
    let token = parser.peek_token();
    match token.token {
        Token::Gt => {
            parser.next_token();
            Ok(())
        }
        Token::ShiftRight => Err(SqlError::parse(
            "write nested type brackets with a space, as '> >'",
            token.span.start,
        )),
        other => Err(SqlError::parse(
            format!("expected '>', found {other}"),
            token.span.start,
        )),
    }
}

/// Numbers in parentheses after a type name, if any: `(10, 2)`.
fn optional_args(parser: &mut Parser<'_>) -> Result<Vec<u64>, SqlError> {
    if !parser.consume_token(&Token::LParen) {
        return Ok(Vec::new());
    }
    let mut args = Vec::new();
    loop {
        let position = parser.peek_token().span.start;
        args.push(
            parser
                .parse_literal_uint()
                .map_err(|e| from_parser_error(e, position.into()))?,
        );
        if !parser.consume_token(&Token::Comma) {
            break;
        }
    }
    expect_token(parser, &Token::RParen)?;
    Ok(args)
}

fn single_precision(parser: &mut Parser<'_>, default: u64) -> Result<u64, SqlError> {
    let position = parser.peek_token().span.start;
    let args = optional_args(parser)?;
    match args.as_slice() {
        [] => Ok(default),
        [p] if *p <= 9 => Ok(*p),
        _ => Err(SqlError::parse(
            "a time precision is one number from 0 to 9",
            position,
        )),
    }
}

fn time_unit(precision: u64) -> TimeUnit {
    match precision {
        0..=3 => TimeUnit::Millisecond,
        4..=6 => TimeUnit::Microsecond,
        _ => TimeUnit::Nanosecond,
    }
}

#[cfg(test)]
mod tests {
    use sqlparser::dialect::GenericDialect;
    use weir_format::display::sql_type_name;

    use super::*;

    fn parse(text: &str) -> Result<FlinkType, SqlError> {
        let dialect = GenericDialect {};
        let mut parser = Parser::new(&dialect).try_with_sql(text).expect("tokenizes");
        parse_type(&mut parser)
    }

    #[test]
    fn flink_types_map_to_arrow_and_back() {
        for (text, display) in [
            ("STRING", "STRING"),
            ("VARCHAR(20)", "STRING"),
            ("BIGINT NOT NULL", "BIGINT"),
            ("DECIMAL(10, 2)", "DECIMAL(10, 2)"),
            ("TIMESTAMP(3)", "TIMESTAMP(3)"),
            ("TIMESTAMP", "TIMESTAMP(6)"),
            ("TIMESTAMP_LTZ(3)", "TIMESTAMP_LTZ(3)"),
            ("TIMESTAMP(3) WITH LOCAL TIME ZONE", "TIMESTAMP_LTZ(3)"),
            ("DOUBLE PRECISION", "DOUBLE"),
            ("ARRAY<INT>", "ARRAY<INT>"),
            ("MAP<STRING, BIGINT>", "MAP<STRING, BIGINT>"),
            ("ROW<a INT, b STRING>", "ROW<`a` INT, `b` STRING>"),
        ] {
            let ty = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(sql_type_name(&ty.data_type), display, "{text}");
        }
        assert!(!parse("BIGINT NOT NULL").expect("parses").nullable);
    }

    #[test]
    fn unknown_types_list_the_valid_ones() {
        let err = parse("BIGNUM").expect_err("unknown type");
        assert!(
            err.to_string().contains("unknown data type 'BIGNUM'"),
            "{err}"
        );
        assert_eq!(err.position().map(|p| p.column), Some(1));
        assert!(parse("DECIMAL(40, 2)").is_err());
    }
}
