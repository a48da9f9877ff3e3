//! Printing results as Flink's SQL client does in tableau mode: a bordered
//! table whose rows appear as they arrive, with the row kind in an `op`
//! column for streaming queries.

use std::io::Write;

use arrow::datatypes::{DataType, SchemaRef};
use weir_common::StreamBatch;
use weir_engine::ResultTable;
use weir_format::display::sql_value;

/// Prints a stream of batches as a table, row by row.
pub struct TableauPrinter<W: Write> {
    out: W,
    widths: Vec<usize>,
    headers: Vec<String>,
    show_kind: bool,
    rows: usize,
    started: bool,
}

const NULL: &str = "<NULL>";

impl<W: Write> TableauPrinter<W> {
    pub fn new(out: W, schema: &SchemaRef, show_kind: bool) -> Self {
        let mut headers: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let mut widths: Vec<usize> = schema
            .fields()
            .iter()
            .map(|f| {
                // A nullable column has room for `<NULL>`, as in Flink's client.
                let null = if f.is_nullable() { NULL.len() } else { 0 };
                type_width(f.data_type())
                    .max(null)
                    .max(f.name().chars().count())
            })
            .collect();
        if show_kind {
            headers.insert(0, "op".to_string());
            widths.insert(0, 2);
        }
        Self {
            out,
            widths,
            headers,
            show_kind,
            rows: 0,
            started: false,
        }
    }

    fn border(&mut self) -> std::io::Result<()> {
        let line: Vec<String> = self.widths.iter().map(|w| "-".repeat(w + 2)).collect();
        writeln!(self.out, "+{}+", line.join("+"))
    }

    fn line(&mut self, cells: &[String]) -> std::io::Result<()> {
        let mut text = String::from("|");
        for (cell, width) in cells.iter().zip(&self.widths) {
            text.push(' ');
            text.push_str(&fit(cell, *width));
            text.push_str(" |");
        }
        writeln!(self.out, "{text}")
    }

    fn start(&mut self) -> std::io::Result<()> {
        if !self.started {
            self.started = true;
            self.border()?;
            let headers = self.headers.clone();
            self.line(&headers)?;
            self.border()?;
        }
        Ok(())
    }

    pub fn print_batch(&mut self, batch: &StreamBatch) -> std::io::Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.start()?;
        for row in 0..batch.num_rows() {
            let cells = row_cells(batch, row, self.show_kind);
            self.line(&cells)?;
        }
        self.rows += batch.num_rows();
        self.out.flush()
    }

    /// Closes the table and prints the row count.
    pub fn finish(&mut self) -> std::io::Result<()> {
        if self.rows == 0 {
            writeln!(self.out, "Empty set")?;
        } else {
            self.border()?;
            let noun = if self.rows == 1 { "row" } else { "rows" };
            writeln!(self.out, "{} {noun} in set", self.rows)?;
        }
        self.out.flush()
    }
}

/// The values of one row as the client shows them, after its kind if asked.
pub fn row_cells(batch: &StreamBatch, row: usize, with_kind: bool) -> Vec<String> {
    let data = batch.data();
    let mut cells = Vec::with_capacity(data.num_columns() + usize::from(with_kind));
    if with_kind {
        cells.push(batch.row_kind(row).short_string().to_string());
    }
    for column in data.columns() {
        cells.push(sql_value(column, row).unwrap_or_else(|| NULL.to_string()));
    }
    cells
}

/// Prints a finished result table.
pub fn print_table(out: impl Write, table: &ResultTable) -> std::io::Result<()> {
    let mut printer = TableauPrinter::new(out, &table.schema, false);
    for batch in &table.batches {
        // Result tables are short strings: size columns to their content.
        for (i, column) in batch.columns().iter().enumerate() {
            for row in 0..batch.num_rows() {
                let len = sql_value(column, row).map_or(NULL.len(), |v| v.chars().count());
                printer.widths[i] = printer.widths[i].max(len);
            }
        }
    }
    for batch in &table.batches {
        printer.print_batch(&StreamBatch::inserts(batch.clone()))?;
    }
    printer.finish()
}

/// Column widths by type, as Flink's client sizes them.
fn type_width(data_type: &DataType) -> usize {
    match data_type {
        DataType::Boolean => 5,
        DataType::Int8 => 4,
        DataType::Int16 => 6,
        DataType::Int32 => 11,
        DataType::Int64 | DataType::UInt64 => 20,
        DataType::Float32 | DataType::Float64 => 22,
        DataType::Decimal128(p, _) | DataType::Decimal256(p, _) => *p as usize + 2,
        DataType::Date32 | DataType::Date64 => 10,
        DataType::Timestamp(_, _) => 23,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => 25,
        _ => 20,
    }
}

/// Right-aligns `text` in `width` characters, cutting long values with `...`.
pub(crate) fn fit(text: &str, width: usize) -> String {
    let len = text.chars().count();
    if len <= width {
        format!("{}{text}", " ".repeat(width - len))
    } else {
        let kept: String = text.chars().take(width.saturating_sub(3)).collect();
        format!("{kept}...")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int32Array, RecordBatch, StringArray, UInt8Array};
    use arrow::datatypes::{Field, Schema};

    use super::*;

    #[test]
    fn prints_rows_with_their_kinds_and_nulls() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let data = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int32Array::from(vec![Some(1), None])),
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    Some("a very long name that does not fit"),
                ])),
            ],
        )
        .expect("batch");
        let batch =
            StreamBatch::try_new_changelog(data, UInt8Array::from(vec![0, 1])).expect("kinds");
        let mut out = Vec::new();
        let mut printer = TableauPrinter::new(&mut out, &schema, true);
        printer.print_batch(&batch).expect("print");
        printer.finish().expect("finish");
        let text = String::from_utf8(out).expect("utf8");
        let expected = "\
+----+-------------+---------------------------+
| op |          id |                      name |
+----+-------------+---------------------------+
| +I |           1 |                         a |
| -U |      <NULL> | a very long name that ... |
+----+-------------+---------------------------+
2 rows in set
";
        assert_eq!(text, expected);
    }

    #[test]
    fn a_nullable_narrow_column_has_room_for_null() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("b", DataType::Boolean, true),
            Field::new("n", DataType::Boolean, false),
        ]));
        let printer = TableauPrinter::new(Vec::new(), &schema, false);
        assert_eq!(printer.widths, vec![6, 5]);
    }
}
