//! Flink's window table functions:
//! `TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), size [, offset]))`,
//! `HOP(TABLE t, DESCRIPTOR(ts), slide, size [, offset])` and
//! `CUMULATE(TABLE t, DESCRIPTOR(ts), step, max_size [, offset])`, with
//! positional or named (`DATA =>`, `TIMECOL =>`, `SIZE =>`, `SLIDE =>`,
//! `STEP =>`, `OFFSET =>`) arguments.
//!
//! Flink's older group-window syntax (`GROUP BY TUMBLE(ts, size)` with
//! `TUMBLE_START(...)` etc.) is rewritten onto the same table functions.
//!
//! The parser drops the `TABLE` keyword of the table argument; here
//! [`rewrite_window_functions`] turns the call into a table function
//! DataFusion plans through `ContextProvider::get_table_function_source`
//! (table and column as strings, durations as interval literals), and
//! [`window_source`] builds a [`WindowTvfNode`] over the table's plan. The
//! node appends `window_start`, `window_end` and `window_time`; the
//! streaming planner either expands rows into their windows or, under a
//! window aggregation, assigns each row to its slice only.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;
use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, TimeUnit};
use datafusion::common::{DFSchema, DFSchemaRef, ScalarValue};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::{Expr, LogicalPlan, UserDefinedLogicalNodeCore};
use sqlparser::ast::{
    Expr as SqlExpr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, ObjectName,
    ObjectNamePart, Query, Select, SetExpr, TableAlias, TableFactor, TableFunctionArgs,
    TableWithJoins, Value, VisitMut, VisitorMut, visit_expressions_mut,
};
use weir_common::{WindowFunction, WindowSpec};

use crate::SqlError;

pub const WINDOW_START: &str = "window_start";
pub const WINDOW_END: &str = "window_end";
pub const WINDOW_TIME: &str = "window_time";
/// Field metadata key marking a time attribute, and its processing-time value.
pub use weir_functions::{PROCTIME, TIME_ATTRIBUTE};
/// The metadata value marking the column a table's WATERMARK is declared for.
pub const ROWTIME: &str = "rowtime";

/// Whether `field` is an event-time attribute (a table's rowtime column,
/// passed on unchanged).
pub fn is_rowtime(field: &arrow::datatypes::Field) -> bool {
    field
        .metadata()
        .get(TIME_ATTRIBUTE)
        .is_some_and(|v| v == ROWTIME)
}

/// A day-time interval literal in milliseconds.
pub fn interval_literal_millis(expr: &Expr) -> Option<i64> {
    match expr {
        Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(v)), _) if v.months == 0 => {
            Some(i64::from(v.days) * 86_400_000 + v.nanoseconds / 1_000_000)
        }
        Expr::Literal(ScalarValue::IntervalDayTime(Some(v)), _) => {
            Some(i64::from(v.days) * 86_400_000 + i64::from(v.milliseconds))
        }
        _ => None,
    }
}

/// The window functions and their parameters after DATA and TIMECOL, in order.
const FUNCTIONS: &[(&str, &[&str])] = &[
    ("TUMBLE", &["SIZE", "OFFSET"]),
    ("HOP", &["SLIDE", "SIZE", "OFFSET"]),
    ("CUMULATE", &["STEP", "SIZE", "OFFSET"]),
    ("SESSION", &["GAP"]),
];

/// Rewrites `TABLE(TUMBLE(...))` (and HOP, CUMULATE, SESSION) in a statement
/// into table-function calls with positional arguments.
pub fn rewrite_window_functions<N: VisitMut>(node: &mut N) -> Result<(), SqlError> {
    match node.visit(&mut Rewriter) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(e) => Err(e),
    }
}

struct Rewriter;

impl VisitorMut for Rewriter {
    type Break = SqlError;

    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<SqlError> {
        let TableFactor::TableFunction {
            expr: SqlExpr::Function(function),
            alias,
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        let name = function.name.to_string().to_uppercase();
        let Some((_, params)) = FUNCTIONS.iter().find(|(n, _)| *n == name) else {
            return ControlFlow::Continue(());
        };
        let FunctionArguments::List(list) = &function.args else {
            return ControlFlow::Break(usage(&name));
        };
        let names: Vec<&str> = ["DATA", "TIMECOL"]
            .iter()
            .chain(params.iter())
            .copied()
            .collect();
        let mut slots: Vec<Option<SqlExpr>> = vec![None; names.len()];
        let mut args: Vec<&FunctionArg> = list.args.iter().collect();
        // SESSION's `TABLE t PARTITION BY k` arrives as a DESCRIPTOR right after the table.
        let mut partition = None;
        if name == "SESSION" && args.len() > 1 {
            let descriptors = args
                .iter()
                .filter(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e))
                    | FunctionArg::Named {
                        arg: FunctionArgExpr::Expr(e),
                        ..
                    } => descriptor(e).is_some(),
                    _ => false,
                })
                .count();
            if descriptors == 2
                && let FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) = args[1]
            {
                partition = descriptor(e);
                args.remove(1);
            }
        }
        for (position, arg) in args.into_iter().enumerate() {
            let (slot, value) = match arg {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => (position, e),
                FunctionArg::Named {
                    name: arg_name,
                    arg: FunctionArgExpr::Expr(e),
                    ..
                } => {
                    let wanted = arg_name.value.to_uppercase();
                    match names.iter().position(|n| *n == wanted) {
                        Some(slot) => (slot, e),
                        None => {
                            return ControlFlow::Break(SqlError::Plan {
                                message: format!(
                                    "{name} has no parameter '{}'; its parameters are {}",
                                    arg_name.value,
                                    names.join(", ")
                                ),
                                position: None,
                            });
                        }
                    }
                }
                _ => return ControlFlow::Break(usage(&name)),
            };
            let Some(target) = slots.get_mut(slot) else {
                return ControlFlow::Break(usage(&name));
            };
            let value = match slot {
                0 => match table_name(value) {
                    Some(table) => SqlExpr::value(Value::SingleQuotedString(table)),
                    None => return ControlFlow::Break(usage(&name)),
                },
                1 => match descriptor(value).as_deref() {
                    Some([column]) => SqlExpr::value(Value::SingleQuotedString(column.clone())),
                    _ => return ControlFlow::Break(usage(&name)),
                },
                _ => value.clone(),
            };
            *target = Some(value);
        }
        // Every parameter but a trailing OFFSET is required.
        let required = if params.last() == Some(&"OFFSET") {
            names.len() - 1
        } else {
            names.len()
        };
        if slots[..required].iter().any(Option::is_none) {
            return ControlFlow::Break(usage(&name));
        }
        let mut args: Vec<SqlExpr> = slots.into_iter().flatten().collect();
        if let Some(keys) = partition {
            args.push(SqlExpr::value(Value::SingleQuotedString(keys.join(","))));
        }
        *factor = table_function(&name, args, alias.take());
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<SqlError> {
        if let SetExpr::Select(select) = query.body.as_mut()
            && let Err(e) = rewrite_group_window(select)
        {
            return ControlFlow::Break(e);
        }
        ControlFlow::Continue(())
    }
}

/// Flink's legacy group windows: `GROUP BY TUMBLE(ts, size)`,
/// `HOP(ts, slide, size)` with `TUMBLE_START(...)`, `TUMBLE_END(...)`,
/// `TUMBLE_ROWTIME(...)` (and the `HOP_` variants) in the select list. The
/// query is rewritten onto the window table function over its one table,
/// grouped by `window_start, window_end`, so both syntaxes run the same
/// window aggregation.
fn rewrite_group_window(select: &mut Select) -> Result<(), SqlError> {
    let GroupByExpr::Expressions(keys, _) = &mut select.group_by else {
        return Ok(());
    };
    let Some(at) = keys.iter().position(|k| group_window_call(k).is_some()) else {
        return Ok(());
    };
    let SqlExpr::Function(call) = keys.remove(at) else {
        return Ok(());
    };
    let function = call.name.to_string().to_uppercase();
    let args = match &call.args {
        FunctionArguments::List(list) => list
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
                _ => None,
            })
            .collect::<Option<Vec<_>>>(),
        _ => None,
    };
    let group_usage = || SqlError::Plan {
        message: format!(
            "invalid group window {function}: expected TUMBLE(time_attr, size), HOP(time_attr, slide, size) or SESSION(time_attr, gap)"
        ),
        position: None,
    };
    let mut args = args.ok_or_else(group_usage)?;
    let wanted = match function.as_str() {
        "TUMBLE" => 2..=3,
        "HOP" => 3..=4,
        _ => 2..=2,
    };
    if !wanted.contains(&args.len()) || args.is_empty() {
        return Err(group_usage());
    }
    let time_column = match args.remove(0) {
        SqlExpr::Identifier(c) => c.value,
        SqlExpr::CompoundIdentifier(parts) => parts
            .last()
            .map(|p| p.value.clone())
            .ok_or_else(group_usage)?,
        _ => return Err(group_usage()),
    };
    let [TableWithJoins { relation, joins }] = select.from.as_mut_slice() else {
        return Err(SqlError::Unsupported(format!(
            "a {function} group window over anything but a single table (use the window table function)"
        )));
    };
    let TableFactor::Table {
        name,
        alias,
        args: None,
        ..
    } = relation
    else {
        return Err(SqlError::Unsupported(format!(
            "a {function} group window over anything but a single table (use the window table function)"
        )));
    };
    if !joins.is_empty() {
        return Err(SqlError::Unsupported(format!(
            "a {function} group window over a join (use the window table function)"
        )));
    }
    let mut call_args = vec![
        SqlExpr::value(Value::SingleQuotedString(name.to_string())),
        SqlExpr::value(Value::SingleQuotedString(time_column)),
    ];
    call_args.extend(args);
    *relation = table_function(&function, call_args, alias.take());
    // window_time depends on window_end; grouping by it lets *_ROWTIME be selected.
    for column in [WINDOW_TIME, WINDOW_END, WINDOW_START] {
        keys.insert(at, SqlExpr::Identifier(column.into()));
    }
    // The window's auxiliary functions become the window columns.
    let prefix = format!("{function}_");
    let flow = visit_expressions_mut(&mut select.projection, |e| auxiliary(e, &prefix))
        .break_value()
        .or_else(|| {
            select
                .having
                .as_mut()
                .and_then(|h| visit_expressions_mut(h, |e| auxiliary(e, &prefix)).break_value())
        });
    match flow {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn group_window_call(expr: &SqlExpr) -> Option<&str> {
    let SqlExpr::Function(f) = expr else {
        return None;
    };
    let name = f.name.to_string().to_uppercase();
    ["TUMBLE", "HOP", "SESSION"]
        .into_iter()
        .find(|w| *w == name)
}

/// `TUMBLE_START(...)` → `window_start`, and so on.
fn auxiliary(expr: &mut SqlExpr, prefix: &str) -> ControlFlow<SqlError> {
    let SqlExpr::Function(f) = expr else {
        return ControlFlow::Continue(());
    };
    let name = f.name.to_string().to_uppercase();
    let Some(suffix) = name.strip_prefix(prefix) else {
        return ControlFlow::Continue(());
    };
    let column = match suffix {
        "START" => WINDOW_START,
        "END" => WINDOW_END,
        "ROWTIME" => WINDOW_TIME,
        _ => {
            return ControlFlow::Break(SqlError::Unsupported(format!(
                "the group window function {name}"
            )));
        }
    };
    *expr = SqlExpr::Identifier(column.into());
    ControlFlow::Continue(())
}

fn table_function(name: &str, args: Vec<SqlExpr>, alias: Option<TableAlias>) -> TableFactor {
    TableFactor::Table {
        name: ObjectName(vec![ObjectNamePart::Identifier(name.into())]),
        alias,
        args: Some(TableFunctionArgs {
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            settings: None,
        }),
        with_hints: Vec::new(),
        version: None,
        with_ordinality: false,
        partitions: Vec::new(),
        json_path: None,
        sample: None,
        index_hints: Vec::new(),
    }
}

fn usage(function: &str) -> SqlError {
    let signature = match function {
        "TUMBLE" => "TUMBLE(TABLE t, DESCRIPTOR(ts), size [, offset])",
        "HOP" => "HOP(TABLE t, DESCRIPTOR(ts), slide, size [, offset])",
        "CUMULATE" => "CUMULATE(TABLE t, DESCRIPTOR(ts), step, max_size [, offset])",
        _ => "SESSION(TABLE t [PARTITION BY k], DESCRIPTOR(ts), gap)",
    };
    SqlError::Plan {
        message: format!(
            "invalid arguments for the window function {function}: expected {signature}"
        ),
        position: None,
    }
}

fn table_name(expr: &SqlExpr) -> Option<String> {
    match expr {
        SqlExpr::Identifier(ident) => Some(ident.value.clone()),
        SqlExpr::CompoundIdentifier(parts) => Some(
            parts
                .iter()
                .map(|p| p.value.as_str())
                .collect::<Vec<_>>()
                .join("."),
        ),
        _ => None,
    }
}

/// The columns of `DESCRIPTOR(a, b)`.
fn descriptor(expr: &SqlExpr) -> Option<Vec<String>> {
    let SqlExpr::Function(f) = expr else {
        return None;
    };
    if !f.name.to_string().eq_ignore_ascii_case("DESCRIPTOR") {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    list.args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::Identifier(column))) => {
                Some(column.value.clone())
            }
            _ => None,
        })
        .collect::<Option<Vec<_>>>()
        .filter(|columns| !columns.is_empty())
}

/// A planned window function call: which table, which column, which windows.
#[derive(Debug)]
pub struct WindowCall {
    pub table: String,
    pub time_column: String,
    pub function: WindowFunction,
    /// SESSION's PARTITION BY columns.
    pub partition_by: Vec<String>,
}

impl WindowCall {
    /// Reads the positional arguments [`rewrite_window_functions`] produced.
    pub fn from_args(function: &str, args: &[Expr]) -> DFResult<Self> {
        let function = function.to_uppercase();
        let text = |i: usize| match args.get(i) {
            Some(Expr::Literal(ScalarValue::Utf8(Some(s)), _)) => Ok(s.clone()),
            _ => Err(DataFusionError::Plan(usage(&function).to_string())),
        };
        let millis = |i: usize| match args.get(i) {
            Some(e) => interval_millis(&function, e),
            None => Ok(0),
        };
        let table = text(0)?;
        let time_column = text(1)?;
        let mut partition_by = Vec::new();
        let window = match function.as_str() {
            "TUMBLE" => WindowSpec::tumble(millis(2)?, millis(3)?).map(WindowFunction::Sliced),
            "HOP" => {
                WindowSpec::hop(millis(2)?, millis(3)?, millis(4)?).map(WindowFunction::Sliced)
            }
            "CUMULATE" => {
                WindowSpec::cumulate(millis(2)?, millis(3)?, millis(4)?).map(WindowFunction::Sliced)
            }
            "SESSION" => {
                if args.len() > 3 {
                    partition_by = text(3)?.split(',').map(str::to_string).collect();
                }
                WindowFunction::session(millis(2)?)
            }
            other => {
                return Err(DataFusionError::Plan(format!(
                    "unknown table function '{other}'; Weir has TUMBLE, HOP, CUMULATE and SESSION"
                )));
            }
        }
        .map_err(|e| DataFusionError::Plan(e.to_string()))?;
        Ok(Self {
            table,
            time_column,
            function: window,
            partition_by,
        })
    }
}

fn interval_millis(function: &str, expr: &Expr) -> DFResult<i64> {
    let millis = interval_literal_millis(expr);
    millis.ok_or_else(|| {
        DataFusionError::Plan(format!(
            "the window function {function} takes day-time interval literals such as INTERVAL '10' SECOND, not {expr}"
        ))
    })
}

/// A window table function over its input: every input column, then
/// `window_start`, `window_end` (TIMESTAMP(3)) and `window_time` (the time
/// column's type at millisecond precision, a rowtime attribute).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WindowTvfNode {
    pub input: LogicalPlan,
    pub function: WindowFunction,
    pub time_column: String,
    /// SESSION's PARTITION BY columns.
    pub partition_by: Vec<String>,
    /// The time column is a processing-time attribute (`PROCTIME()`):
    /// windows fire by the wall clock, not by watermarks.
    pub proctime: bool,
    schema: DFSchemaRef,
}

impl WindowTvfNode {
    pub fn try_new(
        input: LogicalPlan,
        function: WindowFunction,
        time_column: String,
        partition_by: Vec<String>,
    ) -> DFResult<Self> {
        let input_schema = input.schema();
        if let Some(missing) = partition_by
            .iter()
            .find(|c| input_schema.field_with_unqualified_name(c).is_err())
        {
            return Err(DataFusionError::Plan(format!(
                "the window function's PARTITION BY names '{missing}', which is not a column of its table"
            )));
        }
        let time_field = input_schema
            .fields()
            .iter()
            .find(|f| f.name() == &time_column)
            .ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "the window function's DESCRIPTOR names '{time_column}', which is not a column of its table; the columns are {}",
                    input_schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        let proctime = time_field
            .metadata()
            .get(TIME_ATTRIBUTE)
            .is_some_and(|v| v == PROCTIME);
        let zone = match time_field.data_type() {
            DataType::Timestamp(_, zone) => zone.clone(),
            other => {
                return Err(DataFusionError::Plan(format!(
                    "the window function's time column '{time_column}' must be TIMESTAMP or TIMESTAMP_LTZ, but is {}",
                    weir_format::display::sql_type_name(other)
                )));
            }
        };
        let bound = DataType::Timestamp(TimeUnit::Millisecond, None);
        let window_fields = DFSchema::from_unqualified_fields(
            vec![
                Field::new(WINDOW_START, bound.clone(), false),
                Field::new(WINDOW_END, bound, false),
                Field::new(
                    WINDOW_TIME,
                    DataType::Timestamp(TimeUnit::Millisecond, zone),
                    false,
                ),
            ]
            .into(),
            Default::default(),
        )?;
        let mut schema = input_schema.as_ref().clone();
        schema.merge(&window_fields);
        if schema.fields().len() != input_schema.fields().len() + 3 {
            return Err(DataFusionError::Plan(
                "a window function's input already has a window_start, window_end or window_time column".into(),
            ));
        }
        Ok(Self {
            input,
            function,
            time_column,
            partition_by,
            proctime,
            schema: Arc::new(schema),
        })
    }

    /// How many leading columns are the input's.
    pub fn input_width(&self) -> usize {
        self.schema.fields().len() - 3
    }
}

impl PartialOrd for WindowTvfNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match self.input.partial_cmp(&other.input) {
            Some(Ordering::Equal) => Some(
                (self.function, &self.time_column, &self.partition_by).cmp(&(
                    other.function,
                    &other.time_column,
                    &other.partition_by,
                )),
            ),
            o => o,
        }
    }
}

impl UserDefinedLogicalNodeCore for WindowTvfNode {
    fn name(&self) -> &str {
        "WindowTableFunction"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    /// Filters on the window columns must stay above the function.
    fn prevent_predicate_push_down_columns(&self) -> HashSet<String> {
        [WINDOW_START, WINDOW_END, WINDOW_TIME]
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "WindowTableFunction: {}, timecol={}",
            self.function, self.time_column
        )?;
        if !self.partition_by.is_empty() {
            write!(f, ", partitionBy={}", self.partition_by.join(", "))?;
        }
        Ok(())
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> DFResult<Self> {
        let Some(input) = inputs.pop() else {
            return Err(DataFusionError::Internal(
                "WindowTableFunction takes one input".into(),
            ));
        };
        Self::try_new(
            input,
            self.function,
            self.time_column.clone(),
            self.partition_by.clone(),
        )
    }

    fn necessary_children_exprs(&self, output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        let width = self.input_width();
        let mut needed: Vec<usize> = output_columns
            .iter()
            .copied()
            .filter(|i| *i < width)
            .collect();
        needed.push(
            self.input
                .schema()
                .index_of_column_by_name(None, &self.time_column)?,
        );
        for column in &self.partition_by {
            needed.push(self.input.schema().index_of_column_by_name(None, column)?);
        }
        needed.sort_unstable();
        needed.dedup();
        Some(vec![needed])
    }
}
