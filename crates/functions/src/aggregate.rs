//! Aggregate functions whose Flink semantics differ from DataFusion's.
//!
//! `AVG` over an integer column is an integer in Flink (the sum divided by
//! the count, truncated, as Java's long division); DataFusion's is a DOUBLE.
//! [`FlinkAvg`] keeps DataFusion's `AVG` for decimals, floats and
//! intervals and averages integers exactly, with retraction, so updating
//! aggregations and OVER windows give Flink's numbers.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, Int64Array};
use arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::functions_aggregate::average::avg_udaf;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, GroupsAccumulator, ReversedUDAF, Signature,
    Volatility,
};

/// The sum's state type: wide enough for any count of BIGINTs that fits
/// in memory.
const SUM_TYPE: DataType = DataType::Decimal128(38, 0);

/// `AVG`, integer for integers as in Flink; otherwise DataFusion's.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct FlinkAvg {
    inner: Arc<AggregateUDF>,
    signature: Signature,
}

impl FlinkAvg {
    pub fn new() -> Self {
        Self {
            inner: avg_udaf(),
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

fn is_integer(data_type: &DataType) -> bool {
    data_type.is_integer()
}

impl AggregateUDFImpl for FlinkAvg {
    fn name(&self) -> &str {
        "avg"
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Integers are averaged as BIGINT; DOUBLE, DECIMAL and intervals as
    /// DataFusion does; anything else numeric as DOUBLE.
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [arg] = arg_types else {
            return Err(DataFusionError::Plan(format!(
                "AVG takes one argument, not {}",
                arg_types.len()
            )));
        };
        let coerced = match arg {
            t if is_integer(t) => DataType::Int64,
            DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..)
            | DataType::Duration(_) => arg.clone(),
            DataType::Null => DataType::Float64,
            t if t.is_numeric() => DataType::Float64,
            other => {
                return Err(DataFusionError::Plan(format!(
                    "AVG takes a numeric argument, not {other}"
                )));
            }
        };
        Ok(vec![coerced])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [DataType::Int64] => Ok(DataType::Int64),
            _ => self.inner.return_type(arg_types),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if args.return_type() == &DataType::Int64 {
            Ok(Box::<IntegerAvg>::default())
        } else {
            self.inner.accumulator(args)
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        if args.return_field.data_type() == &DataType::Int64 {
            Ok(vec![
                Arc::new(Field::new(
                    format!("{}[count]", args.name),
                    DataType::Int64,
                    true,
                )),
                Arc::new(Field::new(format!("{}[sum]", args.name), SUM_TYPE, true)),
            ])
        } else {
            self.inner.state_fields(args)
        }
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        args.return_type() != &DataType::Int64 && self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        self.inner.create_groups_accumulator(args)
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }

    fn default_value(&self, data_type: &DataType) -> Result<ScalarValue> {
        ScalarValue::try_from(data_type)
    }
}

/// The exact average of BIGINTs: sum and count, truncated on evaluation.
#[derive(Debug, Default)]
struct IntegerAvg {
    sum: i128,
    count: i64,
}

impl IntegerAvg {
    fn add(&mut self, values: &ArrayRef, sign: i64) -> Result<()> {
        let values = values.as_primitive_opt::<Int64Type>().ok_or_else(|| {
            DataFusionError::Internal(format!("AVG of BIGINT got {}", values.data_type()))
        })?;
        let sum: i128 = values.iter().flatten().map(i128::from).sum();
        let count = (values.len() - values.null_count()) as i64;
        self.sum += sum * i128::from(sign);
        self.count += count * sign;
        Ok(())
    }
}

impl Accumulator for IntegerAvg {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        values.first().map_or(Ok(()), |v| self.add(v, 1))
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        values.first().map_or(Ok(()), |v| self.add(v, -1))
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.count == 0 {
            return Ok(ScalarValue::Int64(None));
        }
        // i128 division truncates toward zero, as Java's long division.
        let average = self.sum / i128::from(self.count);
        Ok(ScalarValue::Int64(i64::try_from(average).ok()))
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::Int64(Some(self.count)),
            ScalarValue::Decimal128(Some(self.sum), 38, 0),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let (Some(counts), Some(sums)) = (states.first(), states.get(1)) else {
            return Ok(());
        };
        let counts = counts
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| DataFusionError::Internal("AVG state: counts".to_string()))?;
        let sums = sums
            .as_any()
            .downcast_ref::<Decimal128Array>()
            .ok_or_else(|| DataFusionError::Internal("AVG state: sums".to_string()))?;
        self.count += counts.iter().flatten().sum::<i64>();
        self.sum += sums.iter().flatten().sum::<i128>();
        Ok(())
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(values: &[Option<i64>]) -> ArrayRef {
        Arc::new(Int64Array::from(values.to_vec()))
    }

    #[test]
    fn integer_average_truncates_like_java() {
        let mut avg = IntegerAvg::default();
        avg.update_batch(&[ints(&[Some(1), Some(2), None])])
            .expect("update");
        assert_eq!(avg.evaluate().expect("value"), ScalarValue::Int64(Some(1)));
        avg.update_batch(&[ints(&[Some(-10)])]).expect("update");
        // -7 / 3 truncates to -2, not -3.
        assert_eq!(avg.evaluate().expect("value"), ScalarValue::Int64(Some(-2)));
        avg.retract_batch(&[ints(&[Some(-10), Some(1), Some(2)])])
            .expect("retract");
        assert_eq!(avg.evaluate().expect("value"), ScalarValue::Int64(None));
    }

    #[test]
    fn states_merge() {
        let mut a = IntegerAvg::default();
        a.update_batch(&[ints(&[Some(4), Some(6)])])
            .expect("update");
        let state = a.state().expect("state");
        let arrays: Vec<ArrayRef> = state.iter().map(|s| s.to_array().expect("array")).collect();
        let mut b = IntegerAvg::default();
        b.update_batch(&[ints(&[Some(11)])]).expect("update");
        b.merge_batch(&arrays).expect("merge");
        assert_eq!(b.evaluate().expect("value"), ScalarValue::Int64(Some(7)));
    }

    #[test]
    fn integers_coerce_to_bigint_and_others_keep_datafusion_types() {
        let avg = FlinkAvg::new();
        assert_eq!(
            avg.coerce_types(&[DataType::Int32]).expect("coerces"),
            vec![DataType::Int64]
        );
        assert_eq!(
            avg.return_type(&[DataType::Int64]).expect("type"),
            DataType::Int64
        );
        assert_eq!(
            avg.return_type(&[DataType::Float64]).expect("type"),
            DataType::Float64
        );
        assert!(avg.coerce_types(&[DataType::Utf8]).is_err());
    }
}
