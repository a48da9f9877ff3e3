//! The `print` sink: every row to standard output (or standard error) as
//! Flink's print connector writes it, e.g. `sink:2> +U[1, abc]`.
//!
//! Each subtask's writer renders a whole batch into one buffer (the prefix of
//! Flink's `PrintSinkOutputWriter` plus `weir_format::display::flink_row`)
//! and hands it to tokio's asynchronous stdout/stderr in one write, so the
//! lines of a batch stay together and no runtime thread blocks on the
//! terminal.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use weir_common::StreamBatch;
use weir_connector::{
    Connector, ConnectorError, OptionRules, SinkContext, SinkFactory, SinkWriter, SourceFactory,
    TableSpec,
};
use weir_format::display::flink_row;

const CONNECTOR: &str = "print";
const PRINT_IDENTIFIER: &str = "print-identifier";
const STANDARD_ERROR: &str = "standard-error";
/// Read by the planner; checked here so that a typo fails at `CREATE TABLE`.
const SINK_PARALLELISM: &str = "sink.parallelism";

/// The `print` connector.
#[derive(Debug, Default)]
pub struct PrintConnector;

impl Connector for PrintConnector {
    fn name(&self) -> &'static str {
        CONNECTOR
    }

    fn option_rules(&self, _table: &TableSpec) -> Result<OptionRules, ConnectorError> {
        Ok(OptionRules::new([
            PRINT_IDENTIFIER,
            STANDARD_ERROR,
            SINK_PARALLELISM,
        ]))
    }

    fn validate(&self, table: &TableSpec) -> Result<(), ConnectorError> {
        PrintOptions::parse(table).map(|_| ())
    }

    fn create_source(&self, _table: &TableSpec) -> Result<Arc<dyn SourceFactory>, ConnectorError> {
        Err(ConnectorError::Unsupported {
            connector: CONNECTOR.to_string(),
            what: "can only be used as a sink; it cannot be read from".to_string(),
        })
    }

    fn create_sink(&self, table: &TableSpec) -> Result<Arc<dyn SinkFactory>, ConnectorError> {
        Ok(Arc::new(PrintSink {
            options: PrintOptions::parse(table)?,
        }))
    }
}

/// Where the rows go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

/// A print table's options, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PrintOptions {
    /// Empty when not set, as in Flink.
    identifier: String,
    stream: Stream,
}

impl PrintOptions {
    fn parse(table: &TableSpec) -> Result<Self, ConnectorError> {
        let options = &table.options;
        PrintConnector
            .option_rules(table)?
            .check(CONNECTOR, options)?;
        let stream = match options.get(STANDARD_ERROR).map(str::trim) {
            None => Stream::Stdout,
            Some(v) if v.eq_ignore_ascii_case("false") => Stream::Stdout,
            Some(v) if v.eq_ignore_ascii_case("true") => Stream::Stderr,
            Some(v) => {
                return Err(ConnectorError::InvalidOption {
                    key: STANDARD_ERROR.to_string(),
                    value: v.to_string(),
                    reason: "expected 'true' or 'false'".to_string(),
                });
            }
        };
        if options.parse::<usize>(SINK_PARALLELISM, "a positive whole number")? == Some(0) {
            return Err(ConnectorError::InvalidOption {
                key: SINK_PARALLELISM.to_string(),
                value: options
                    .get(SINK_PARALLELISM)
                    .unwrap_or_default()
                    .to_string(),
                reason: "expected a positive whole number".to_string(),
            });
        }
        Ok(Self {
            identifier: options
                .get(PRINT_IDENTIFIER)
                .unwrap_or_default()
                .to_string(),
            stream,
        })
    }
}

/// Creates the print writers of one table.
#[derive(Debug)]
struct PrintSink {
    options: PrintOptions,
}

#[async_trait]
impl SinkFactory for PrintSink {
    fn accepts_updates(&self) -> bool {
        true
    }

    async fn create_writer(
        &self,
        context: SinkContext,
    ) -> Result<Box<dyn SinkWriter>, ConnectorError> {
        let out: Box<dyn AsyncWrite + Send + Unpin> = match self.options.stream {
            Stream::Stdout => Box::new(tokio::io::stdout()),
            Stream::Stderr => Box::new(tokio::io::stderr()),
        };
        let prefix = line_prefix(
            &self.options.identifier,
            context.subtask,
            context.parallelism,
        );
        Ok(Box::new(PrintWriter::new(prefix, out)))
    }
}

/// The start of every line, as Flink's `PrintSinkOutputWriter#open`: the
/// identifier, then `:` and the 1-based subtask number when there are several
/// subtasks, then `> ` unless both are absent.
fn line_prefix(identifier: &str, subtask: usize, parallelism: usize) -> String {
    let mut prefix = identifier.to_string();
    if parallelism > 1 {
        if !prefix.is_empty() {
            prefix.push(':');
        }
        prefix.push_str(&(subtask + 1).to_string());
    }
    if !prefix.is_empty() {
        prefix.push_str("> ");
    }
    prefix
}

/// Prints the rows of one subtask.
struct PrintWriter {
    prefix: String,
    out: Box<dyn AsyncWrite + Send + Unpin>,
    /// Reused between batches to spare an allocation per batch.
    buffer: String,
}

impl fmt::Debug for PrintWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrintWriter")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl PrintWriter {
    /// A writer printing to `out`; tests pass a buffer instead of stdout.
    fn new(prefix: String, out: Box<dyn AsyncWrite + Send + Unpin>) -> Self {
        Self {
            prefix,
            out,
            buffer: String::new(),
        }
    }

    fn io_error(source: std::io::Error) -> ConnectorError {
        ConnectorError::Io {
            context: "print: cannot write rows".to_string(),
            source,
        }
    }
}

#[async_trait]
impl SinkWriter for PrintWriter {
    async fn write(&mut self, batch: StreamBatch) -> Result<(), ConnectorError> {
        self.buffer.clear();
        let data = batch.data();
        for row in 0..batch.num_rows() {
            self.buffer.push_str(&self.prefix);
            self.buffer
                .push_str(&flink_row(batch.row_kind(row).short_string(), data, row));
            self.buffer.push('\n');
        }
        self.out
            .write_all(self.buffer.as_bytes())
            .await
            .map_err(Self::io_error)?;
        // Print is for watching a job: rows should show up as they arrive.
        self.out.flush().await.map_err(Self::io_error)
    }

    async fn finish(&mut self) -> Result<(), ConnectorError> {
        self.out.flush().await.map_err(Self::io_error)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::pin::Pin;
    use std::sync::Mutex;
    use std::task::{Context, Poll};

    use arrow::array::{Int32Array, StringArray, UInt8Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    use weir_common::RowKind;
    use weir_connector::TableOptions;

    use super::*;

    /// An output whose bytes the test can read after the writer is done.
    #[derive(Clone, Default)]
    struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

    impl SharedBuffer {
        fn text(&self) -> String {
            let bytes = self.0.lock().expect("buffer lock").clone();
            String::from_utf8(bytes).expect("printed text is UTF-8")
        }
    }

    impl AsyncWrite for SharedBuffer {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.0.lock().expect("buffer lock").extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn table(options: &[(&str, &str)]) -> TableSpec {
        let mut map: BTreeMap<String, String> = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        map.insert("connector".to_string(), CONNECTOR.to_string());
        TableSpec::new(
            "out",
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int32, false),
                Field::new("name", DataType::Utf8, true),
            ])),
            TableOptions::new(map),
        )
    }

    /// One row of each kind: `+I[1, a]`, `-U[1, a]`, `+U[1, b]`, `-D[2, null]`.
    fn changelog() -> StreamBatch {
        let schema = table(&[]).schema;
        let data = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(vec![1, 1, 1, 2])),
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    Some("a"),
                    Some("b"),
                    None,
                ])),
            ],
        )
        .expect("valid batch");
        let kinds = [
            RowKind::Insert,
            RowKind::UpdateBefore,
            RowKind::UpdateAfter,
            RowKind::Delete,
        ];
        StreamBatch::try_new_changelog(data, UInt8Array::from_iter_values(kinds.map(|k| k as u8)))
            .expect("valid changelog")
    }

    async fn printed(identifier: &str, subtask: usize, parallelism: usize) -> String {
        let out = SharedBuffer::default();
        let mut writer = PrintWriter::new(
            line_prefix(identifier, subtask, parallelism),
            Box::new(out.clone()),
        );
        writer.write(changelog()).await.expect("write");
        writer.finish().await.expect("finish");
        out.text()
    }

    #[tokio::test]
    async fn rows_without_identifier_and_one_subtask_have_no_prefix() {
        assert_eq!(
            printed("", 0, 1).await,
            "+I[1, a]\n-U[1, a]\n+U[1, b]\n-D[2, null]\n"
        );
    }

    #[tokio::test]
    async fn identifier_alone_prefixes_rows_with_one_subtask() {
        assert_eq!(
            printed("sink", 0, 1).await,
            "sink> +I[1, a]\nsink> -U[1, a]\nsink> +U[1, b]\nsink> -D[2, null]\n"
        );
    }

    #[tokio::test]
    async fn several_subtasks_add_the_one_based_subtask_number() {
        assert_eq!(
            printed("sink", 1, 2).await,
            "sink:2> +I[1, a]\nsink:2> -U[1, a]\nsink:2> +U[1, b]\nsink:2> -D[2, null]\n"
        );
        assert_eq!(
            printed("", 0, 2).await,
            "1> +I[1, a]\n1> -U[1, a]\n1> +U[1, b]\n1> -D[2, null]\n"
        );
    }

    #[tokio::test]
    async fn sink_accepts_updates_and_options_are_checked() {
        let connector = PrintConnector;
        let sink = connector
            .create_sink(&table(&[
                ("print-identifier", "x"),
                ("standard-error", "TRUE"),
                ("sink.parallelism", "2"),
            ]))
            .expect("valid options");
        assert!(sink.accepts_updates());

        let err = connector
            .validate(&table(&[("print-identifer", "x")]))
            .expect_err("misspelt key");
        let text = err.to_string();
        assert!(text.contains("'print-identifer'"), "{text}");
        assert!(
            text.contains("connector, print-identifier, sink.parallelism, standard-error"),
            "{text}"
        );

        let err = connector
            .validate(&table(&[("standard-error", "yes")]))
            .expect_err("not a boolean");
        assert!(err.to_string().contains("'standard-error'"), "{err}");
        let err = connector
            .validate(&table(&[("sink.parallelism", "0")]))
            .expect_err("zero subtasks");
        assert!(err.to_string().contains("'sink.parallelism'"), "{err}");

        let err = connector.create_source(&table(&[])).expect_err("no source");
        assert!(matches!(err, ConnectorError::Unsupported { .. }), "{err}");
    }

    #[test]
    fn options_choose_the_stream_and_identifier() {
        let options = PrintOptions::parse(&table(&[("standard-error", "true")])).expect("valid");
        assert_eq!(options.stream, Stream::Stderr);
        assert_eq!(options.identifier, "");
        let options = PrintOptions::parse(&table(&[("print-identifier", "p")])).expect("valid");
        assert_eq!(options.stream, Stream::Stdout);
        assert_eq!(options.identifier, "p");
    }
}
