//! Runs Weir's sqllogictest suites: a [`WeirDb`] connection that executes
//! `.slt` records on a fresh [`Session`] per file.
//!
//! Each file runs twice, at `parallelism.default` 1 and 4, and must give the
//! same results both times (queries whose row order depends on parallelism
//! use `rowsort`). Changelog results are compared as the final table they
//! describe. Statement errors are matched against the message a user
//! would see, caret included.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Schema};
use async_trait::async_trait;
use sqllogictest::{DBOutput, DefaultColumnType};
use weir_cluster::{ClusterConfig, EmbeddedCluster};
use weir_common::StreamBatch;
use weir_engine::{EngineError, ResultTable, Session, StatementResult};
use weir_format::display::sql_value;

/// An error as the test file sees it: the rendered message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WeirTestError(pub String);

/// One test file's connection to Weir.
pub struct WeirDb {
    session: Session,
}

impl WeirDb {
    /// A session on an embedded cluster of its own, at `parallelism`, whose
    /// INSERTs wait for their jobs.
    pub async fn new(parallelism: usize) -> Result<Self, WeirTestError> {
        let cluster = EmbeddedCluster::start(ClusterConfig::default())
            .await
            .map_err(|e| WeirTestError(e.to_string()))?;
        let mut session = Session::with_dispatcher(Arc::new(cluster))
            .map_err(|e| WeirTestError(e.to_string()))?;
        let setup =
            format!("SET 'table.dml-sync' = 'true'; SET 'parallelism.default' = '{parallelism}';");
        session
            .execute_script(&setup)
            .await
            .map_err(|e| WeirTestError(e.to_string()))?;
        Ok(Self { session })
    }

    /// Runs `sql` (one or more statements) and returns the last one's rows,
    /// a changelog materialized, values rendered as in `.slt` files; for
    /// tests that drive Weir from Rust (e.g. against a Kafka broker).
    pub async fn rows(&mut self, sql: &str) -> Result<Vec<Vec<String>>, WeirTestError> {
        match self.run_sql(sql).await {
            Ok(DBOutput::Rows { rows, .. }) => Ok(rows),
            Ok(_) => Ok(Vec::new()),
            Err(e) => Err(WeirTestError(e.to_string())),
        }
    }

    /// Waits for the session's INSERT jobs to end; the first failure is returned.
    pub async fn wait_for_jobs(&mut self) -> Result<(), WeirTestError> {
        self.session
            .wait_for_jobs()
            .await
            .map_err(|e| WeirTestError(e.to_string()))
    }

    async fn run_sql(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, EngineError> {
        let mut output = DBOutput::StatementComplete(0);
        for statement in self.session.parse(sql)? {
            output = match self.session.execute(statement).await? {
                StatementResult::Query(query) => {
                    let schema = std::sync::Arc::clone(&query.schema);
                    let batches = query.collect().await?;
                    if batches.iter().all(StreamBatch::is_insert_only) {
                        let data = batches.into_iter().map(|b| b.into_data()).collect();
                        rows(&ResultTable {
                            schema,
                            batches: data,
                        })
                    } else {
                        materialize(&schema, &batches)
                            .map_err(|e| EngineError::Internal(e.to_string()))?
                    }
                }
                StatementResult::Table(table) => rows(&table),
                StatementResult::Text(text) => DBOutput::Rows {
                    types: vec![DefaultColumnType::Text],
                    // Blank lines would end the record in an .slt file.
                    rows: text
                        .lines()
                        .filter(|l| !l.trim().is_empty())
                        .map(|l| vec![l.trim_end().to_string()])
                        .collect(),
                },
                StatementResult::Ok(_) | StatementResult::Job(_) => DBOutput::StatementComplete(0),
            };
        }
        Ok(output)
    }
}

fn column_types(schema: &Schema) -> Vec<DefaultColumnType> {
    schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            t if t.is_integer() => DefaultColumnType::Integer,
            DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal128(_, _) => DefaultColumnType::FloatingPoint,
            _ => DefaultColumnType::Text,
        })
        .collect()
}

fn row_values(batch: &RecordBatch, row: usize) -> Vec<String> {
    batch
        .columns()
        .iter()
        .map(|c| match sql_value(c, row) {
            None => "NULL".to_string(),
            Some(v) if v.is_empty() => "(empty)".to_string(),
            Some(v) => v,
        })
        .collect()
}

fn rows(table: &ResultTable) -> DBOutput<DefaultColumnType> {
    let mut rows = Vec::new();
    for batch in &table.batches {
        for row in 0..batch.num_rows() {
            rows.push(row_values(batch, row));
        }
    }
    DBOutput::Rows {
        types: column_types(&table.schema),
        rows,
    }
}

/// The final result of a changelog, as Flink's table result mode shows it:
/// `+I`/`+U` add a row, `-U`/`-D` remove an equal one. A retraction of a row
/// not in the result is an error, so tests also check the changelog is sound.
fn materialize(
    schema: &Schema,
    batches: &[StreamBatch],
) -> Result<DBOutput<DefaultColumnType>, WeirTestError> {
    let mut rows: Vec<Vec<String>> = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            let values = row_values(batch.data(), row);
            if batch.row_kind(row).is_accumulate() {
                rows.push(values);
            } else {
                let at = rows.iter().position(|r| *r == values).ok_or_else(|| {
                    WeirTestError(format!(
                        "the changelog retracts {} [{}], which is not in the result",
                        batch.row_kind(row),
                        values.join(", ")
                    ))
                })?;
                rows.remove(at);
            }
        }
    }
    Ok(DBOutput::Rows {
        types: column_types(schema),
        rows,
    })
}

#[async_trait]
impl sqllogictest::AsyncDB for WeirDb {
    type Error = WeirTestError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        self.run_sql(sql)
            .await
            .map_err(|e| WeirTestError(e.render(sql)))
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "weir"
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await;
    }
}
