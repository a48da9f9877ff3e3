//! Unbounded GROUP BY (Flink's `GroupAggregate`): one result row per key,
//! kept up to date as a changelog.
//!
//! Rows arrive hash-partitioned by key. Each input batch updates the
//! accumulators of the keys it touches; then every touched key emits once
//! for the batch (like Flink with mini-batch on): `+I` for a new key,
//! `-U old` / `+U new` when its result changed, nothing when it did not,
//! and `-D old` when retractions removed its last row.
//!
//! Two modes: over an insert-only input, [`columnar`] keeps every key's
//! intermediate state in Arrow arrays and handles a batch with vectorized
//! DataFusion `GroupsAccumulator`s, DISTINCT calls over the first row of
//! each value ([`distinct`]); over an updating input, or with a DISTINCT
//! call of another function, [`retracting`] keeps a row-wise `Accumulator`
//! per key, whose retractable ("sliding") variants take `-U`/`-D` rows.
//!
//! In batch runtime mode the operator emits only the final result, as
//! inserts, when its input ends.

mod columnar;
mod distinct;
mod int_sets;
mod retracting;

use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result};
use weir_common::StreamBatch;

use self::columnar::ColumnarGroups;
use self::retracting::RowGroups;
use super::aggregate::{AggregateCall, AggregateOutput, Grouping};
use crate::checkpoint::StateBatch;
use crate::operator::{Collector, Operator, OperatorContext, OperatorFactory, OperatorState};
use crate::operators::state_ttl::ProcessingClock;

/// What a group aggregation computes; shared by its subtasks.
#[derive(Debug, Clone)]
pub struct GroupAggregateSpec {
    pub grouping: Grouping,
    pub calls: Vec<AggregateCall>,
    pub outputs: Vec<AggregateOutput>,
    pub output_schema: SchemaRef,
    /// The input has retractions (-U, -D).
    pub retracting_input: bool,
    /// Batch runtime mode: emit the final result only, as inserts.
    pub final_only: bool,
    /// 'table.exec.state.ttl': a key untouched this long is forgotten.
    pub state_ttl: Option<Duration>,
}

impl GroupAggregateSpec {
    pub fn name(&self) -> String {
        let keys: Vec<String> = self.grouping.keys.iter().map(|k| k.to_string()).collect();
        let calls: Vec<&str> = self.calls.iter().map(AggregateCall::name).collect();
        format!(
            "GroupAggregate(groupBy=[{}], select=[{}])",
            keys.join(", "),
            calls.join(", ")
        )
    }
}

impl Operator for GroupAggregate {
    fn name(&self) -> &str {
        &self.name
    }

    fn open(&mut self, context: &OperatorContext) -> Result<()> {
        self.max_parallelism = context.max_parallelism;
        Ok(())
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<Option<OperatorState>> {
        let batches = match &mut self.groups {
            Groups::Columnar(groups) => groups.snapshot(self.max_parallelism)?,
            Groups::Rows(groups) => vec![groups.snapshot(&self.name, self.max_parallelism)?],
        };
        Ok(Some(OperatorState { batches }))
    }

    fn restore_state(&mut self, state: OperatorState) -> Result<()> {
        for batch in &state.batches {
            let batch = StateBatch::new(batch, &self.name);
            match &mut self.groups {
                Groups::Columnar(groups) => groups.restore(&batch)?,
                Groups::Rows(groups) => groups.restore(&batch)?,
            }
        }
        Ok(())
    }

    fn process_batch(
        &mut self,
        _input: usize,
        batch: StreamBatch,
        out: &mut Collector,
    ) -> Result<()> {
        let now = self.clock.now();
        match &mut self.groups {
            Groups::Columnar(groups) => {
                if !batch.is_insert_only() {
                    return Err(DataFusionError::Internal(
                        "a group aggregation planned for an insert-only input received updates"
                            .into(),
                    ));
                }
                groups.process(batch.data(), out, now)
            }
            Groups::Rows(groups) => groups.process(&batch, out, now),
        }
    }

    fn finish(&mut self, out: &mut Collector) -> Result<()> {
        match &mut self.groups {
            Groups::Columnar(groups) => groups.finish(out),
            Groups::Rows(groups) => groups.finish(out),
        }
    }
}

/// The operator: columnar over insert-only input, row by row over updates.
#[derive(Debug)]
pub struct GroupAggregate {
    name: String,
    groups: Groups,
    /// Processing time for state TTL.
    clock: ProcessingClock,
    /// Key groups of the snapshotted keys.
    max_parallelism: usize,
}

#[derive(Debug)]
enum Groups {
    Columnar(ColumnarGroups),
    Rows(RowGroups),
}

impl GroupAggregate {
    pub fn try_new(spec: Arc<GroupAggregateSpec>) -> Result<Self> {
        let name = spec.name();
        // A DISTINCT call's intermediate state is every distinct value:
        // merging it back from arrays for each batch would cost the whole
        // set per batch. Columnar keys keep the values seen apart (see
        // `distinct`); a function that cannot run that way keeps a live
        // accumulator per key instead.
        let live_accumulators = spec.retracting_input
            || spec
                .calls
                .iter()
                .any(|c| c.function.is_distinct() && c.over_first_rows().is_none());
        let groups = if live_accumulators {
            Groups::Rows(RowGroups::try_new(spec)?)
        } else {
            Groups::Columnar(ColumnarGroups::try_new(spec)?)
        };
        Ok(Self {
            name,
            groups,
            clock: ProcessingClock::start(),
            max_parallelism: 1,
        })
    }
}

#[derive(Debug)]
pub struct GroupAggregateFactory(pub Arc<GroupAggregateSpec>);

impl OperatorFactory for GroupAggregateFactory {
    fn name(&self) -> String {
        self.0.name()
    }

    fn create(&self, _context: &OperatorContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(GroupAggregate::try_new(Arc::clone(&self.0))?))
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Int64Array, RecordBatch, StringArray, UInt8Array};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;
    use crate::operators::aggregate::test_support::{group_by, sum};
    use weir_common::RowKind;

    fn input_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("v", DataType::Int64, false),
        ]))
    }

    fn operator(retracting_input: bool, final_only: bool) -> GroupAggregate {
        operator_with_ttl(retracting_input, final_only, None)
    }

    fn operator_with_ttl(
        retracting_input: bool,
        final_only: bool,
        state_ttl: Option<Duration>,
    ) -> GroupAggregate {
        let input = input_schema();
        let output = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("s", DataType::Int64, true),
        ]));
        GroupAggregate::try_new(Arc::new(GroupAggregateSpec {
            grouping: group_by("k", &input),
            calls: vec![sum("v", &input)],
            outputs: vec![AggregateOutput::Key(0), AggregateOutput::Aggregate(0)],
            output_schema: output,
            retracting_input,
            final_only,
            state_ttl,
        }))
        .expect("operator")
    }

    fn batch(k: &[&str], v: &[i64], kinds: Option<&[RowKind]>) -> StreamBatch {
        let data = RecordBatch::try_new(
            input_schema(),
            vec![
                Arc::new(StringArray::from(k.to_vec())),
                Arc::new(Int64Array::from(v.to_vec())),
            ],
        )
        .expect("batch");
        match kinds {
            None => StreamBatch::inserts(data),
            Some(kinds) => StreamBatch::try_new_changelog(
                data,
                kinds.iter().map(|k| *k as u8).collect::<UInt8Array>(),
            )
            .expect("kinds"),
        }
    }

    /// The changelog as Flink's print sink shows it: `+I[a, 3]`.
    fn changelog(out: &mut Collector) -> Vec<String> {
        let mut lines = Vec::new();
        for batch in out.take() {
            let data = batch.data();
            let k = data.column(0).as_string::<i32>();
            let s = data.column(1).as_primitive::<Int64Type>();
            for row in 0..batch.num_rows() {
                lines.push(format!(
                    "{}[{}, {}]",
                    batch.row_kind(row),
                    k.value(row),
                    s.value(row)
                ));
            }
        }
        lines
    }

    #[test]
    fn updates_retract_the_previous_result_once_per_batch() {
        let mut op = operator(false, false);
        let mut out = Collector::default();
        op.process_batch(0, batch(&["a", "b", "a"], &[1, 2, 3], None), &mut out)
            .expect("batch");
        assert_eq!(changelog(&mut out), vec!["+I[a, 4]", "+I[b, 2]"]);
        op.process_batch(0, batch(&["a", "b"], &[5, 0], None), &mut out)
            .expect("batch");
        // b's sum did not change, so b emits nothing.
        assert_eq!(changelog(&mut out), vec!["-U[a, 4]", "+U[a, 9]"]);
    }

    #[test]
    fn retractions_update_and_delete_keys() {
        let mut op = operator(true, false);
        let mut out = Collector::default();
        op.process_batch(0, batch(&["a", "a"], &[1, 2], None), &mut out)
            .expect("batch");
        assert_eq!(changelog(&mut out), vec!["+I[a, 3]"]);
        let retract = [RowKind::UpdateBefore];
        op.process_batch(0, batch(&["a"], &[1], Some(&retract)), &mut out)
            .expect("batch");
        assert_eq!(changelog(&mut out), vec!["-U[a, 3]", "+U[a, 2]"]);
        let delete = [RowKind::Delete];
        op.process_batch(0, batch(&["a"], &[2], Some(&delete)), &mut out)
            .expect("batch");
        assert_eq!(changelog(&mut out), vec!["-D[a, 2]"]);
        // The key starts over.
        op.process_batch(0, batch(&["a"], &[7], None), &mut out)
            .expect("batch");
        assert_eq!(changelog(&mut out), vec!["+I[a, 7]"]);
    }

    #[test]
    fn idle_keys_expire_and_start_over() {
        for retracting in [false, true] {
            let mut op = operator_with_ttl(retracting, false, Some(Duration::from_millis(100)));
            let mut out = Collector::default();
            let mut at = |b: StreamBatch, now: u64, out: &mut Collector| match &mut op.groups {
                Groups::Columnar(g) => g.process(b.data(), out, now),
                Groups::Rows(g) => g.process(&b, out, now),
            };
            at(batch(&["a", "b"], &[1, 2], None), 0, &mut out).expect("batch");
            assert_eq!(changelog(&mut out), vec!["+I[a, 1]", "+I[b, 2]"]);
            at(batch(&["b"], &[3], None), 90, &mut out).expect("batch");
            assert_eq!(changelog(&mut out), vec!["-U[b, 2]", "+U[b, 5]"]);
            // a was idle for 160 ms > 100 ms: forgotten, it starts over; b was not.
            at(batch(&["a", "b"], &[10, 1], None), 160, &mut out).expect("batch");
            assert_eq!(
                changelog(&mut out),
                vec!["+I[a, 10]", "-U[b, 5]", "+U[b, 6]"],
                "retracting mode: {retracting}"
            );
        }
    }

    #[test]
    fn a_restored_aggregation_goes_on_as_if_never_stopped() {
        for retracting in [false, true] {
            let mut op = operator(retracting, false);
            let mut out = Collector::default();
            op.process_batch(0, batch(&["a", "b", "a"], &[1, 2, 3], None), &mut out)
                .expect("batch");
            out.take();
            let state = op.snapshot_state(1).expect("snapshot").expect("state");
            let mut restored = operator(retracting, false);
            restored.restore_state(state).expect("restore");
            // Seen keys update (-U/+U) rather than insert, with their sums.
            let more = || batch(&["a", "c", "b"], &[5, 1, 0], None);
            restored.process_batch(0, more(), &mut out).expect("batch");
            let after_restore = changelog(&mut out);
            op.process_batch(0, more(), &mut out).expect("batch");
            assert_eq!(
                after_restore,
                changelog(&mut out),
                "retracting: {retracting}"
            );
            assert_eq!(after_restore, vec!["-U[a, 4]", "+U[a, 9]", "+I[c, 1]"]);
        }
    }

    /// Aggregates key "a" over `values` with `call` (over "v", output Int64),
    /// checkpoints, restores, retracts `retracted` from both the restored
    /// and the original operator, and returns the restored one's changes
    /// after checking that they are the original's.
    fn retract_after_restore(
        function: Arc<datafusion::logical_expr::AggregateUDF>,
        distinct: bool,
        values: &[i64],
        retracted: &[i64],
    ) -> Vec<String> {
        let spec = one_call_spec(function, distinct, true, None);
        let mut op = GroupAggregate::try_new(Arc::clone(&spec)).expect("operator");
        let mut out = Collector::default();
        let keys = vec!["a"; values.len()];
        op.process_batch(0, batch(&keys, values, None), &mut out)
            .expect("batch");
        out.take();
        let state = op.snapshot_state(1).expect("snapshot").expect("state");
        let mut restored = GroupAggregate::try_new(spec).expect("operator");
        restored.restore_state(state).expect("restore");
        let kinds = vec![RowKind::Delete; retracted.len()];
        let keys = vec!["a"; retracted.len()];
        let retract = || batch(&keys, retracted, Some(&kinds));
        restored
            .process_batch(0, retract(), &mut out)
            .expect("batch");
        let after_restore = changelog(&mut out);
        op.process_batch(0, retract(), &mut out).expect("batch");
        assert_eq!(after_restore, changelog(&mut out));
        after_restore
    }

    #[test]
    fn min_over_an_updating_input_restores_every_value_it_may_fall_back_to() {
        // Retracting the minimum falls back to the next value, which only
        // a restored multiset knows.
        let min = datafusion::functions_aggregate::min_max::min_udaf();
        assert_eq!(
            retract_after_restore(min, false, &[5, 2, 7], &[2]),
            vec!["-U[a, 2]", "+U[a, 5]"]
        );
    }

    #[test]
    fn a_distinct_aggregate_over_an_updating_input_restores_its_value_counts() {
        // 5 is in twice: after one is retracted it still counts, which
        // only restored counts know (DataFusion's own state has no counts).
        let count = datafusion::functions_aggregate::count::count_udaf();
        assert_eq!(
            retract_after_restore(Arc::clone(&count), true, &[5, 2, 5], &[5, 2]),
            vec!["-U[a, 2]", "+U[a, 1]"]
        );
        assert_eq!(
            retract_after_restore(count, true, &[5, 2, 5], &[5, 5]),
            vec!["-U[a, 2]", "+U[a, 1]"]
        );
        let sum = datafusion::functions_aggregate::sum::sum_udaf();
        assert_eq!(
            retract_after_restore(sum, true, &[5, 2, 5, 2], &[5, 2, 2]),
            vec!["-U[a, 7]", "+U[a, 5]"]
        );
    }

    #[test]
    fn batch_mode_emits_final_inserts_at_the_end() {
        let mut op = operator(false, true);
        let mut out = Collector::default();
        op.process_batch(0, batch(&["a", "b"], &[1, 2], None), &mut out)
            .expect("batch");
        op.process_batch(0, batch(&["a"], &[3], None), &mut out)
            .expect("batch");
        assert!(out.take().is_empty());
        op.finish(&mut out).expect("finish");
        assert_eq!(changelog(&mut out), vec!["+I[a, 4]", "+I[b, 2]"]);
    }

    /// `function(v)` (DISTINCT or not) by `k`, with results as Int64.
    fn one_call_spec(
        function: Arc<datafusion::logical_expr::AggregateUDF>,
        distinct: bool,
        retracting_input: bool,
        state_ttl: Option<Duration>,
    ) -> Arc<GroupAggregateSpec> {
        let input = input_schema();
        let arg = datafusion::physical_expr::expressions::col("v", &input).expect("col");
        let function =
            datafusion::physical_expr::aggregate::AggregateExprBuilder::new(function, vec![arg])
                .schema(Arc::clone(&input))
                .alias("agg(v)")
                .with_distinct(distinct)
                .build()
                .expect("aggregate");
        let call = AggregateCall::try_new(Arc::new(function), None, &input).expect("call");
        Arc::new(GroupAggregateSpec {
            grouping: group_by("k", &input),
            calls: vec![call],
            outputs: vec![AggregateOutput::Key(0), AggregateOutput::Aggregate(0)],
            output_schema: Arc::new(Schema::new(vec![
                Field::new("k", DataType::Utf8, false),
                Field::new("m", DataType::Int64, true),
            ])),
            retracting_input,
            final_only: false,
            state_ttl,
        })
    }

    #[test]
    fn results_equal_to_states_are_not_stored_twice_and_others_restore_with_theirs() {
        use datafusion::functions_aggregate::{average, count, min_max, sum};
        let columnar = |op: &GroupAggregate| match &op.groups {
            Groups::Columnar(g) => g.results_are_states(),
            Groups::Rows(_) => panic!("an insert-only input is aggregated columnar"),
        };
        for function in [
            count::count_udaf(),
            sum::sum_udaf(),
            min_max::min_udaf(),
            min_max::max_udaf(),
        ] {
            let spec = one_call_spec(Arc::clone(&function), false, false, None);
            let op = GroupAggregate::try_new(spec).expect("operator");
            assert!(columnar(&op), "{}", function.name());
        }
        // AVG's state is a count and a sum: its results are kept, and
        // restored, beside them. (Planned over a DOUBLE, as SQL's AVG is.)
        let input = input_schema();
        let arg = datafusion::physical_expr::expressions::col("v", &input).expect("col");
        let arg = datafusion::physical_expr::expressions::cast(arg, &input, DataType::Float64)
            .expect("cast");
        let avg = datafusion::physical_expr::aggregate::AggregateExprBuilder::new(
            average::avg_udaf(),
            vec![arg],
        )
        .schema(Arc::clone(&input))
        .alias("avg(v)")
        .build()
        .expect("aggregate");
        let spec = Arc::new(GroupAggregateSpec {
            calls: vec![AggregateCall::try_new(Arc::new(avg), None, &input).expect("call")],
            output_schema: Arc::new(Schema::new(vec![
                Field::new("k", DataType::Utf8, false),
                Field::new("m", DataType::Float64, true),
            ])),
            ..(*one_call_spec(average::avg_udaf(), false, false, None)).clone()
        });
        let mut op = GroupAggregate::try_new(Arc::clone(&spec)).expect("operator");
        assert!(!columnar(&op));
        let mut out = Collector::default();
        op.process_batch(0, batch(&["a", "b", "a"], &[1, 2, 4], None), &mut out)
            .expect("batch");
        out.take();
        let state = op.snapshot_state(1).expect("snapshot").expect("state");
        let mut restored = GroupAggregate::try_new(spec).expect("operator");
        restored.restore_state(state).expect("restore");
        let more = || batch(&["a", "b"], &[6, 2], None);
        restored.process_batch(0, more(), &mut out).expect("batch");
        let after_restore = out.take();
        op.process_batch(0, more(), &mut out).expect("batch");
        assert_eq!(
            after_restore
                .iter()
                .map(StreamBatch::data)
                .collect::<Vec<_>>(),
            out.take().iter().map(StreamBatch::data).collect::<Vec<_>>()
        );
        // a: 2.5 -> 11/3; b's average stays 2, so b emits nothing.
        let data = after_restore[0].data();
        let averages = data
            .column(1)
            .as_primitive::<arrow::datatypes::Float64Type>();
        assert_eq!(averages.values().to_vec(), vec![2.5, 11.0 / 3.0]);
    }

    /// An aggregation of `function(DISTINCT v)` by `k` over an insert-only
    /// input.
    fn distinct_operator(
        function: Arc<datafusion::logical_expr::AggregateUDF>,
        state_ttl: Option<Duration>,
    ) -> GroupAggregate {
        GroupAggregate::try_new(one_call_spec(function, true, false, state_ttl)).expect("operator")
    }

    #[test]
    fn distinct_calls_over_inserts_count_each_value_once_per_key() {
        let count = datafusion::functions_aggregate::count::count_udaf();
        let sum = datafusion::functions_aggregate::sum::sum_udaf();
        for (function, expected) in [
            (
                count,
                [
                    vec!["+I[a, 2]", "+I[b, 1]"],
                    vec!["-U[a, 2]", "+U[a, 3]", "+I[c, 1]"],
                ],
            ),
            (
                sum,
                [
                    vec!["+I[a, 3]", "+I[b, 2]"],
                    vec!["-U[a, 3]", "+U[a, 6]", "+I[c, 1]"],
                ],
            ),
        ] {
            let mut op = distinct_operator(function, None);
            assert!(matches!(op.groups, Groups::Columnar(_)), "vectorized");
            let mut out = Collector::default();
            let first = batch(&["a", "b", "a", "a", "b"], &[1, 2, 2, 1, 2], None);
            op.process_batch(0, first, &mut out).expect("batch");
            assert_eq!(changelog(&mut out), expected[0]);
            // b sees 2 again (no change); a sees 1 and 2 again and 3 twice.
            let second = batch(&["b", "a", "a", "c", "a", "a"], &[2, 1, 3, 1, 3, 2], None);
            op.process_batch(0, second, &mut out).expect("batch");
            assert_eq!(changelog(&mut out), expected[1]);
        }
    }

    #[test]
    fn distinct_values_restore_and_expire_with_their_keys() {
        let count = datafusion::functions_aggregate::count::count_udaf;
        let mut op = distinct_operator(count(), Some(Duration::from_millis(100)));
        let mut out = Collector::default();
        let mut at = |op: &mut GroupAggregate, b: StreamBatch, now: u64| match &mut op.groups {
            Groups::Columnar(g) => g
                .process(b.data(), &mut out, now)
                .map(|()| changelog(&mut out)),
            Groups::Rows(_) => panic!("DISTINCT COUNT over inserts is columnar"),
        };
        let first = at(&mut op, batch(&["a", "b", "a"], &[1, 7, 2], None), 0);
        assert_eq!(first.expect("batch"), vec!["+I[a, 2]", "+I[b, 1]"]);
        // A restored copy knows a's values 1 and 2 and b's 7.
        let state = op.snapshot_state(1).expect("snapshot").expect("state");
        assert_eq!(
            state.batches.len(),
            2,
            "groups and one DISTINCT call's values"
        );
        let mut restored = distinct_operator(count(), Some(Duration::from_millis(100)));
        restored.restore_state(state).expect("restore");
        let more = || batch(&["a", "a", "b"], &[2, 3, 7], None);
        let after_restore = at(&mut restored, more(), 50).expect("batch");
        assert_eq!(after_restore, vec!["-U[a, 2]", "+U[a, 3]"]);
        assert_eq!(at(&mut op, more(), 50).expect("batch"), after_restore);
        // 200 ms later both keys expired: their values count afresh.
        let again = at(&mut op, batch(&["a", "b", "b"], &[1, 7, 8], None), 200);
        assert_eq!(again.expect("batch"), vec!["+I[a, 1]", "+I[b, 2]"]);
    }
}
