//! Runs SQL the way the engine will: a DataFusion session with ident normalization off, the
//! Flink session time zone, every UDF from [`crate::flink_scalar_functions`] registered, and
//! [`crate::rewrite_flink_syntax`] applied to each statement before planning.

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParser, Statement};
use sqlparser::dialect::GenericDialect;

fn context(time_zone: &str) -> SessionContext {
    let config = SessionConfig::new()
        .set_bool("datafusion.sql_parser.enable_ident_normalization", false)
        .set_str("datafusion.execution.time_zone", time_zone);
    let ctx = SessionContext::new_with_config(config);
    for udf in crate::flink_scalar_functions() {
        ctx.register_udf(udf);
    }
    ctx
}

async fn run(time_zone: &str, sql: &str) -> Result<(Vec<DataType>, Vec<RecordBatch>)> {
    let ctx = context(time_zone);
    let mut statements = DFParser::parse_sql_with_dialect(sql, &GenericDialect {})?;
    let Some(mut statement) = statements.pop_front() else {
        return Err(DataFusionError::Plan(format!("no statement in {sql}")));
    };
    if let Statement::Statement(inner) = &mut statement {
        crate::rewrite_flink_syntax(inner)?;
    }
    let plan = ctx.state().statement_to_plan(statement).await?;
    let frame = ctx.execute_logical_plan(plan).await?;
    let types = frame
        .schema()
        .fields()
        .iter()
        .map(|field| field.data_type().clone())
        .collect();
    Ok((types, frame.collect().await?))
}

/// Every row of the result in `time_zone`, each value displayed as text and NULL as `NULL`.
pub(crate) async fn rows_in(time_zone: &str, sql: &str) -> Vec<Vec<String>> {
    let (_, batches) = match run(time_zone, sql).await {
        Ok(result) => result,
        Err(error) => panic!("{sql}\nfailed: {error}"),
    };
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in &batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|column| ArrayFormatter::try_new(column.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .unwrap_or_else(|error| panic!("cannot display result of {sql}: {error}"));
        for row in 0..batch.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect(),
            );
        }
    }
    rows
}

/// Every row of the result in UTC.
pub(crate) async fn rows(sql: &str) -> Vec<Vec<String>> {
    rows_in("UTC", sql).await
}

/// The only row of the result in `time_zone`.
pub(crate) async fn row_in(time_zone: &str, sql: &str) -> Vec<String> {
    let mut rows = rows_in(time_zone, sql).await;
    assert_eq!(rows.len(), 1, "{sql} should return one row");
    rows.remove(0)
}

/// The only row of the result in UTC.
pub(crate) async fn row(sql: &str) -> Vec<String> {
    row_in("UTC", sql).await
}

/// The column types of the result.
pub(crate) async fn types(sql: &str) -> Vec<DataType> {
    match run("UTC", sql).await {
        Ok((types, _)) => types,
        Err(error) => panic!("{sql}\nfailed: {error}"),
    }
}

/// The error the statement fails with in UTC, planning or running.
pub(crate) async fn error(sql: &str) -> String {
    error_in("UTC", sql).await
}

/// The error the statement fails with in `time_zone`, planning or running.
pub(crate) async fn error_in(time_zone: &str, sql: &str) -> String {
    match run(time_zone, sql).await {
        Ok((_, batches)) => panic!("{sql}\nshould fail but returned {batches:?}"),
        Err(error) => error.to_string(),
    }
}
