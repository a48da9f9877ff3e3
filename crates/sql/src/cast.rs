//! Flink's rules for turning values into strings.
//!
//! `CAST(ts AS STRING)` in Flink gives `2015-07-15 00:00:05.000`, booleans
//! give `TRUE`, and so on: the same text Flink's SQL client shows. Arrow's
//! cast kernel writes ISO timestamps (`2015-07-15T00:00:05`) and lowercase
//! booleans instead, and DataFusion does not let a session change that. So
//! before an expression is compiled, every cast (explicit or inserted by type
//! coercion) from a non-string type to STRING becomes a call to
//! [`FlinkToString`], which renders values with the format crate's display
//! rules.

use std::sync::Arc;

use arrow::array::{Array, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use weir_format::display::sql_value;

/// `CAST(x AS STRING)` with Flink's text for every type.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FlinkToString {
    signature: Signature,
}

impl FlinkToString {
    fn new() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for FlinkToString {
    fn name(&self) -> &str {
        "CAST_TO_STRING"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [value] = args.args.as_slice() else {
            return datafusion::common::exec_err!("CAST_TO_STRING takes one argument");
        };
        let array = value.clone().into_array(args.number_rows)?;
        let mut out = StringBuilder::with_capacity(array.len(), array.len() * 16);
        for row in 0..array.len() {
            out.append_option(sql_value(&array, row));
        }
        let result: Arc<dyn Array> = Arc::new(out.finish());
        Ok(match value {
            ColumnarValue::Scalar(_) => {
                ColumnarValue::Scalar(datafusion::scalar::ScalarValue::try_from_array(&result, 0)?)
            }
            ColumnarValue::Array(_) => ColumnarValue::Array(result),
        })
    }
}

/// Replaces casts to STRING of non-string values in `expr` over `schema`.
pub fn flink_casts(expr: Expr, schema: &DFSchema) -> Result<Expr> {
    let to_string = Arc::new(ScalarUDF::new_from_impl(FlinkToString::new()));
    expr.transform_up(|e| match &e {
        Expr::Cast(cast) if is_string(cast.field.data_type()) => {
            let from = cast.expr.get_type(schema)?;
            if is_string(&from) || from == DataType::Null {
                return Ok(Transformed::no(e));
            }
            let call = Expr::ScalarFunction(ScalarFunction::new_udf(
                Arc::clone(&to_string),
                vec![(*cast.expr).clone()],
            ));
            Ok(Transformed::yes(call))
        }
        _ => Ok(Transformed::no(e)),
    })
    .map(|t| t.data)
}

/// Applies [`flink_casts`] to every expression of a plan, before the
/// optimizer folds constant casts with Arrow's rules.
pub fn plan_flink_casts(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| {
        // A union has no expressions, and its inputs may share qualified names.
        if node.expressions().is_empty() {
            return Ok(Transformed::no(node));
        }
        let inputs = node.inputs();
        let schema = match inputs.as_slice() {
            [] => DFSchema::empty(),
            [input] => input.schema().as_ref().clone(),
            [first, rest @ ..] => rest
                .iter()
                .try_fold(first.schema().as_ref().clone(), |acc, i| {
                    acc.join(i.schema())
                })?,
        };
        // A window's or an aggregate's output column is named after its
        // expression, and the nodes above refer to it by that name.
        let names = NamePreserver::new(&node);
        node.map_expressions(|e| {
            let name = names.save(&e);
            let rewritten = flink_casts(e.clone(), &schema)?;
            Ok(if rewritten == e {
                Transformed::no(e)
            } else {
                Transformed::yes(name.restore(rewritten))
            })
        })
    })
    .map(|t| t.data)
}

fn is_string(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}
