//! The event-time interval join (Flink's `IntervalJoin`):
//! `l JOIN r ON l.k = r.k AND r.ts BETWEEN l.ts + lower AND l.ts + upper`.
//!
//! Each side keeps its rows (the input batches themselves, referenced by
//! chunk and row) only while a row of the other side that is not late may
//! still fall into their interval: a left row at `t` until the watermark
//! reaches `t + upper`, a right row at `s` until it reaches `s - lower`.
//! So state follows the interval's length, not the stream's: on an endless
//! stream memory stays flat. A row dropped without having matched is
//! emitted NULL-padded if its side is outer. A late row still joins with
//! whatever the other side holds; it is not stored.
//!
//! Output is insert-only. Rows of the output can be older than the input
//! watermark by the interval, so the watermark passed on is held back by
//! that much, as Flink does, to keep them from being late downstream.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use arrow::array::{BooleanArray, RecordBatch};
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::PhysicalExpr;
use weir_common::{StreamBatch, Watermark};

use super::{JoinCondition, JoinKind, Side, gather, null_columns, spread};
use crate::checkpoint::{KeyedState, StateBatch, restored_parts, watermark_state};
use crate::operator::{Collector, Operator, OperatorContext, OperatorFactory, OperatorState};
use crate::operators::chunks::ChunkStore;
use crate::operators::key_index::KeyIndex;
use crate::operators::window_assign::event_times;

/// What an interval join computes; shared by its subtasks.
#[derive(Debug, Clone)]
pub struct IntervalJoinSpec {
    /// Inner or outer; the residual holds the whole non-equi condition.
    pub condition: JoinCondition,
    pub left_time: Arc<dyn PhysicalExpr>,
    pub right_time: Arc<dyn PhysicalExpr>,
    /// `right_time - left_time` lies within `[lower, upper]` milliseconds.
    pub lower: i64,
    pub upper: i64,
}

impl IntervalJoinSpec {
    pub fn name(&self) -> String {
        let c = &self.condition;
        // Flink states the bounds of left time minus right time.
        format!(
            "IntervalJoin(joinType=[{}], windowBounds=[isRowTime=true, leftLowerBound={}, leftUpperBound={}], where=[{}])",
            c.kind.flink_name(),
            self.upper.saturating_neg(),
            self.lower.saturating_neg(),
            c.key_pairs()
        )
    }

    /// The other side's times a row of `side` at `time` matches.
    fn matching_range(&self, side: Side, time: i64) -> (i64, i64) {
        match side {
            Side::Left => (
                time.saturating_add(self.lower),
                time.saturating_add(self.upper),
            ),
            Side::Right => (
                time.saturating_sub(self.upper),
                time.saturating_sub(self.lower),
            ),
        }
    }

    /// The watermark at which a row of `side` at `time` can match nothing
    /// more: rows of the other side that are not late come after it.
    fn expires_at(&self, side: Side, time: i64) -> i64 {
        self.matching_range(side, time).1
    }

    /// How far output rows can lag behind the input watermark.
    fn watermark_delay(&self) -> i64 {
        self.upper.max(self.lower.saturating_neg()).max(0)
    }
}

/// A row kept in state: where it is and when it was.
#[derive(Debug, Clone, Copy)]
struct Stored {
    chunk: u32,
    row: u32,
    time: i64,
    matched: bool,
}

#[derive(Debug, Default)]
struct IntervalSide {
    chunks: ChunkStore,
    by_key: Vec<Vec<Stored>>,
    /// Per key id, when its earliest stored row expires (`None`: no rows).
    next_expiry: Vec<Option<i64>>,
    /// (expiry watermark, key id), earliest first: one live entry per key
    /// with rows, for its `next_expiry`; others are stale and skipped.
    expiring: BinaryHeap<Reverse<(i64, usize)>>,
}

impl IntervalSide {
    fn stored_rows(&self) -> usize {
        self.by_key.iter().map(Vec::len).sum()
    }

    /// Notes that `key` holds a row expiring at `at`.
    fn schedule(&mut self, key: usize, at: i64) {
        if self.next_expiry.len() <= key {
            self.next_expiry.resize(key + 1, None);
        }
        if self.next_expiry[key].is_none_or(|next| at < next) {
            self.next_expiry[key] = Some(at);
            self.expiring.push(Reverse((at, key)));
        }
    }
}

pub struct IntervalJoin {
    spec: Arc<IntervalJoinSpec>,
    name: String,
    keys: KeyIndex,
    sides: [IntervalSide; 2],
    watermark: i64,
    /// Key groups of the snapshotted rows.
    max_parallelism: usize,
}

impl std::fmt::Debug for IntervalJoin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntervalJoin")
            .field("left_rows", &self.sides[0].stored_rows())
            .field("right_rows", &self.sides[1].stored_rows())
            .finish()
    }
}

/// An output row: an input row and/or a stored row of the other side.
type Pair = (Option<u32>, Option<(u32, u32)>);

impl IntervalJoin {
    pub fn try_new(spec: Arc<IntervalJoinSpec>) -> Result<Self> {
        if !matches!(
            spec.condition.kind,
            JoinKind::Inner | JoinKind::LeftOuter | JoinKind::RightOuter | JoinKind::FullOuter
        ) {
            return Err(DataFusionError::Internal(format!(
                "an interval join cannot be a {}",
                spec.condition.kind.flink_name()
            )));
        }
        Ok(Self {
            name: spec.name(),
            keys: KeyIndex::for_keys(&spec.condition.key_schema)?,
            sides: Default::default(),
            watermark: Watermark::MIN.millis(),
            max_parallelism: 1,
            spec,
        })
    }

    fn time(&self, side: Side) -> &Arc<dyn PhysicalExpr> {
        match side {
            Side::Left => &self.spec.left_time,
            Side::Right => &self.spec.right_time,
        }
    }

    fn process(&mut self, this: Side, data: RecordBatch, out: &mut Collector) -> Result<()> {
        let n = data.num_rows();
        if n == 0 {
            return Ok(());
        }
        let time = self.time(this);
        let times = event_times(&time.evaluate(&data)?.into_array(n)?, time)?;
        let condition = &self.spec.condition;
        let keys = condition.key_columns(this, &data)?;
        let ids = self.keys.ids(&keys, n)?;
        let matchable = condition.matchable(&keys, n);
        for side in &mut self.sides {
            side.by_key.resize_with(self.keys.len(), Vec::new);
        }
        let (ti, oi) = (this.index(), this.other().index());

        let mut candidates: Vec<(u32, u32)> = Vec::new();
        for row in (0..n).filter(|r| matchable[*r]) {
            let (from, to) = self.spec.matching_range(this, times[row]);
            for (e, stored) in self.sides[oi].by_key[ids[row]].iter().enumerate() {
                if (from..=to).contains(&stored.time) {
                    candidates.push((row as u32, e as u32));
                }
            }
        }
        let stored_ref = |row: u32, e: u32| {
            let s = self.sides[oi].by_key[ids[row as usize]][e as usize];
            (s.chunk, s.row)
        };
        if condition.residual.is_some() && !candidates.is_empty() {
            let input_rows: Vec<Option<u32>> = candidates.iter().map(|c| Some(c.0)).collect();
            let refs: Vec<(u32, u32)> =
                candidates.iter().map(|(r, e)| stored_ref(*r, *e)).collect();
            let this_columns = gather(data.columns(), &input_rows)?;
            let other_columns = self.sides[oi].chunks.columns(&refs)?;
            let (left, right) = match this {
                Side::Left => (this_columns, other_columns),
                Side::Right => (other_columns, this_columns),
            };
            condition.retain_passing(&mut candidates, left, right)?;
        }

        let mut pairs: Vec<Pair> = Vec::with_capacity(candidates.len());
        let mut matched = vec![false; n];
        for (row, e) in &candidates {
            pairs.push((Some(*row), Some(stored_ref(*row, *e))));
            matched[*row as usize] = true;
        }
        for (row, e) in &candidates {
            self.sides[oi].by_key[ids[*row as usize]][*e as usize].matched = true;
        }
        let outer = condition.kind.is_outer(this);
        let chunk = self.sides[ti].chunks.next_id();
        let mut live = 0;
        for row in 0..n {
            let expires = self.spec.expires_at(this, times[row]);
            if matchable[row] && expires > self.watermark {
                let side = &mut self.sides[ti];
                side.by_key[ids[row]].push(Stored {
                    chunk,
                    row: row as u32,
                    time: times[row],
                    matched: matched[row],
                });
                side.schedule(ids[row], expires);
                live += 1;
            } else if outer && !matched[row] {
                pairs.push((Some(row as u32), None));
            }
        }
        self.emit(this, &data, &pairs, out)?;
        self.sides[ti].chunks.insert(data, live);
        Ok(())
    }

    /// Emits `pairs` of an input batch of `this` side.
    fn emit(
        &self,
        this: Side,
        data: &RecordBatch,
        pairs: &[Pair],
        out: &mut Collector,
    ) -> Result<()> {
        if pairs.is_empty() {
            return Ok(());
        }
        let condition = &self.spec.condition;
        let input_rows: Vec<Option<u32>> = pairs.iter().map(|p| p.0).collect();
        let this_columns = gather(data.columns(), &input_rows)?;
        let present: Vec<bool> = pairs.iter().map(|p| p.1.is_some()).collect();
        let refs: Vec<(u32, u32)> = pairs.iter().filter_map(|p| p.1).collect();
        let other_columns = if refs.is_empty() {
            null_columns(condition.schema(this.other()), pairs.len())
        } else {
            spread(
                self.sides[this.other().index()].chunks.columns(&refs)?,
                &present,
            )?
        };
        let (left, right) = match this {
            Side::Left => (this_columns, other_columns),
            Side::Right => (other_columns, this_columns),
        };
        out.emit(StreamBatch::inserts(condition.output(
            left,
            right,
            pairs.len(),
        )?));
        Ok(())
    }

    /// Drops the rows the watermark `watermark` leaves nothing to match,
    /// emitting the unmatched ones of outer sides.
    fn expire(&mut self, watermark: i64, out: &mut Collector) -> Result<()> {
        self.watermark = self.watermark.max(watermark);
        for side in [Side::Left, Side::Right] {
            let outer = self.spec.condition.kind.is_outer(side);
            let mut padded: Vec<(u32, u32)> = Vec::new();
            let mut released: Vec<u32> = Vec::new();
            let spec = Arc::clone(&self.spec);
            let state = &mut self.sides[side.index()];
            while let Some(Reverse((at, key))) = state.expiring.peek().copied() {
                if at > self.watermark {
                    break;
                }
                state.expiring.pop();
                if state.next_expiry.get(key).copied().flatten() != Some(at) {
                    continue;
                }
                let watermark = self.watermark;
                let mut next = None::<i64>;
                state.by_key[key].retain(|s| {
                    let expires = spec.expires_at(side, s.time);
                    let keep = expires > watermark;
                    if keep {
                        next = Some(next.map_or(expires, |n| n.min(expires)));
                    } else {
                        if outer && !s.matched {
                            padded.push((s.chunk, s.row));
                        }
                        released.push(s.chunk);
                    }
                    keep
                });
                // A key's rows come and go with time; keep its vector no
                // larger than needed, or capacity grows to each key's
                // busiest moment and memory with the run's length.
                let rows = &mut state.by_key[key];
                if rows.is_empty() {
                    *rows = Vec::new();
                } else if rows.len() * 4 <= rows.capacity() {
                    rows.shrink_to(rows.len() * 2);
                }
                state.next_expiry[key] = None;
                if let Some(next) = next {
                    state.schedule(key, next);
                }
            }
            if !padded.is_empty() {
                let columns = state.chunks.columns(&padded)?;
                let nulls = null_columns(self.spec.condition.schema(side.other()), padded.len());
                let (left, right) = match side {
                    Side::Left => (columns, nulls),
                    Side::Right => (nulls, columns),
                };
                let batch = self.spec.condition.output(left, right, padded.len())?;
                out.emit(StreamBatch::inserts(batch));
            }
            let state = &mut self.sides[side.index()];
            for chunk in released {
                state.chunks.release(chunk);
            }
        }
        Ok(())
    }
}

impl IntervalJoin {
    /// A side's stored rows and whether each matched, for a checkpoint.
    fn snapshot_side(&self, side: Side) -> Result<RecordBatch> {
        let state = &self.sides[side.index()];
        let mut key_ids = Vec::new();
        let mut refs = Vec::new();
        let mut matched = Vec::new();
        for (key, stored) in state.by_key.iter().enumerate() {
            for s in stored {
                key_ids.push(key);
                refs.push((s.chunk, s.row));
                matched.push(Some(s.matched));
            }
        }
        let rows = if refs.is_empty() {
            null_columns(self.spec.condition.schema(side), 0)
        } else {
            state.chunks.columns(&refs)?
        };
        let keys = self.keys.keys(&key_ids)?;
        let groups = crate::exchange::key_groups_of(&keys, key_ids.len(), self.max_parallelism)?;
        KeyedState::new(side.name(), groups)
            .column("matched", Arc::new(BooleanArray::from(matched)))
            .group("row", rows)
            .build()
    }

    /// Takes over a side's rows written by [`IntervalJoin::snapshot_side`].
    fn restore_side(&mut self, state: &StateBatch<'_>) -> Result<()> {
        let side = Side::of_state(state)?;
        let data = state.group_batch("row", self.spec.condition.schema(side))?;
        let n = data.num_rows();
        let matched = state.boolean("matched")?;
        let time = self.time(side);
        let times = event_times(&time.evaluate(&data)?.into_array(n)?, time)?;
        let keys = self.spec.condition.key_columns(side, &data)?;
        let ids = self.keys.ids(&keys, n)?;
        for s in &mut self.sides {
            s.by_key.resize_with(self.keys.len(), Vec::new);
        }
        let spec = Arc::clone(&self.spec);
        let state = &mut self.sides[side.index()];
        let chunk = state.chunks.next_id();
        for (row, key) in ids.iter().enumerate() {
            state.by_key[*key].push(Stored {
                chunk,
                row: row as u32,
                time: times[row],
                matched: matched.value(row),
            });
            state.schedule(*key, spec.expires_at(side, times[row]));
        }
        state.chunks.insert(data, n);
        Ok(())
    }
}

impl Operator for IntervalJoin {
    fn name(&self) -> &str {
        &self.name
    }

    fn open(&mut self, context: &OperatorContext) -> Result<()> {
        self.max_parallelism = context.max_parallelism;
        Ok(())
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<Option<OperatorState>> {
        Ok(Some(OperatorState {
            batches: vec![
                watermark_state(self.watermark)?,
                self.snapshot_side(Side::Left)?,
                self.snapshot_side(Side::Right)?,
            ],
        }))
    }

    /// Rows are restored under the watermark they were stored under: one
    /// that was late before the checkpoint is late after it.
    fn restore_state(&mut self, state: OperatorState) -> Result<()> {
        let name = self.name.clone();
        let (watermark, sides) = restored_parts(&state, &name)?;
        for side in &sides {
            self.restore_side(side)?;
        }
        if let Some(at) = watermark {
            self.watermark = self.watermark.max(at);
        }
        Ok(())
    }

    fn process_batch(
        &mut self,
        input: usize,
        batch: StreamBatch,
        out: &mut Collector,
    ) -> Result<()> {
        if !batch.is_insert_only() {
            return Err(DataFusionError::Execution(
                "an interval join received updates; its inputs must be insert-only".into(),
            ));
        }
        self.process(Side::of_input(input)?, batch.into_data(), out)
    }

    fn process_watermark(
        &mut self,
        watermark: Watermark,
        out: &mut Collector,
    ) -> Result<Option<Watermark>> {
        self.expire(watermark.millis(), out)?;
        Ok(Some(match watermark {
            Watermark::END_OF_TIME | Watermark::MIN => watermark,
            Watermark(ms) => Watermark(ms.saturating_sub(self.spec.watermark_delay())),
        }))
    }

    fn finish(&mut self, out: &mut Collector) -> Result<()> {
        self.expire(Watermark::END_OF_TIME.millis(), out)
    }
}

#[derive(Debug)]
pub struct IntervalJoinFactory(pub Arc<IntervalJoinSpec>);

impl OperatorFactory for IntervalJoinFactory {
    fn name(&self) -> String {
        self.0.name()
    }

    fn create(&self, _context: &OperatorContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(IntervalJoin::try_new(Arc::clone(&self.0))?))
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;
    use datafusion::physical_expr::expressions::{CastExpr, Column};

    use super::*;
    use crate::operators::join::test_support::{condition, rows};

    /// Joins on k where `r.v BETWEEN l.v - 5 AND l.v + 10`, v as a time in ms.
    fn interval(kind: JoinKind) -> IntervalJoin {
        let as_time = |name: &str| -> Arc<dyn PhysicalExpr> {
            Arc::new(CastExpr::new(
                Arc::new(Column::new(name, 1)),
                arrow::datatypes::DataType::Timestamp(
                    arrow::datatypes::TimeUnit::Millisecond,
                    None,
                ),
                None,
            ))
        };
        IntervalJoin::try_new(Arc::new(IntervalJoinSpec {
            condition: condition(kind),
            left_time: as_time("lv"),
            right_time: as_time("rv"),
            lower: -5,
            upper: 10,
        }))
        .expect("join")
    }

    fn feed(
        j: &mut IntervalJoin,
        side: usize,
        data: &[(Option<i64>, i64)],
    ) -> Vec<Vec<Option<i64>>> {
        let schema = if side == 0 {
            Arc::clone(&j.spec.condition.left_schema)
        } else {
            Arc::clone(&j.spec.condition.right_schema)
        };
        let mut out = Collector::default();
        j.process_batch(side, StreamBatch::inserts(rows(&schema, data)), &mut out)
            .expect("process");
        values(&mut out)
    }

    fn values(out: &mut Collector) -> Vec<Vec<Option<i64>>> {
        let mut all = Vec::new();
        for batch in out.take() {
            let data = batch.data();
            for r in 0..data.num_rows() {
                all.push(
                    data.columns()
                        .iter()
                        .map(|c| {
                            let c = c.as_primitive::<Int64Type>();
                            (!c.is_null(r)).then(|| c.value(r))
                        })
                        .collect(),
                );
            }
        }
        all
    }

    fn watermark(j: &mut IntervalJoin, at: i64) -> (Vec<Vec<Option<i64>>>, Option<Watermark>) {
        let mut out = Collector::default();
        let forwarded = j
            .process_watermark(Watermark(at), &mut out)
            .expect("watermark");
        (values(&mut out), forwarded)
    }

    #[test]
    fn rows_join_within_the_interval_and_expire_behind_the_watermark() {
        let s = Some;
        let mut j = interval(JoinKind::LeftOuter);
        assert!(feed(&mut j, 0, &[(s(1), 100), (s(2), 100)]).is_empty());
        // 94 is before 100 - 5; 95 and 110 are the bounds; 111 is after.
        assert_eq!(
            feed(
                &mut j,
                1,
                &[
                    (s(1), 94),
                    (s(1), 95),
                    (s(1), 110),
                    (s(1), 111),
                    (s(3), 100)
                ]
            ),
            [[s(1), s(100), s(1), s(95)], [s(1), s(100), s(1), s(110)]]
        );
        // The left rows live until the watermark reaches 110; the unmatched one is padded.
        let (padded, forwarded) = watermark(&mut j, 109);
        assert!(padded.is_empty());
        assert_eq!(forwarded, Some(Watermark(99)), "held back by the interval");
        let (padded, _) = watermark(&mut j, 110);
        assert_eq!(padded, [[s(2), s(100), None, None]]);
        assert_eq!(j.sides[0].stored_rows(), 0);
        assert!(j.sides[0].chunks.is_empty(), "expired chunks are freed");
        // Right rows at 110 and 111 wait for left rows up to 115 and 116.
        assert_eq!(j.sides[1].stored_rows(), 2);
        let (_, _) = watermark(&mut j, 200);
        assert_eq!(j.sides[1].stored_rows(), 0);
        assert!(j.sides[1].chunks.is_empty());
    }

    #[test]
    fn a_keys_rows_give_their_memory_back_as_they_expire() {
        let mut j = interval(JoinKind::Inner);
        let busy: Vec<(Option<i64>, i64)> = (0..64).map(|t| (Some(1), 100 + t)).collect();
        feed(&mut j, 0, &busy);
        let key = 0;
        assert!(j.sides[0].by_key[key].capacity() >= 64);
        // All but the last four rows expire: the vector shrinks with them.
        watermark(&mut j, 169);
        assert_eq!(j.sides[0].by_key[key].len(), 4);
        assert!(j.sides[0].by_key[key].capacity() <= 8);
        watermark(&mut j, 200);
        assert_eq!(j.sides[0].by_key[key].capacity(), 0);
    }

    #[test]
    fn a_late_row_still_joins_with_what_is_stored() {
        let s = Some;
        let mut j = interval(JoinKind::LeftOuter);
        feed(&mut j, 1, &[(s(1), 100)]);
        watermark(&mut j, 98);
        // Left at 96 matches right rows up to 106, so it is stored ...
        assert_eq!(
            feed(&mut j, 0, &[(s(1), 96)]),
            [[s(1), s(96), s(1), s(100)]]
        );
        watermark(&mut j, 104);
        // ... left at 90 can only match right rows up to 100, all of them
        // behind the watermark: it joins with what is stored, is not kept,
        // and is padded at once when nothing matched.
        assert_eq!(
            feed(&mut j, 0, &[(s(1), 90)]),
            [[s(1), s(90), s(1), s(100)]]
        );
        assert_eq!(feed(&mut j, 0, &[(s(1), 80)]), [[s(1), s(80), None, None]]);
    }

    #[test]
    fn a_restored_interval_join_goes_on_as_if_never_stopped() {
        let mut j = interval(JoinKind::FullOuter);
        feed(&mut j, 0, &[(Some(1), 100), (Some(2), 100), (Some(3), 40)]);
        feed(&mut j, 1, &[(Some(1), 104)]);
        watermark(&mut j, 60);
        let state = j.snapshot_state(1).expect("snapshot").expect("state");
        let mut copy = interval(JoinKind::FullOuter);
        copy.restore_state(state).expect("restore");
        // A right row that joins, a late one, then time runs out: padding
        // for the unmatched rows, and the late row alone.
        for (side, data) in [(1, vec![(Some(2), 99)]), (1, vec![(Some(3), 45)])] {
            assert_eq!(feed(&mut copy, side, &data), feed(&mut j, side, &data));
        }
        assert_eq!(watermark(&mut copy, 200), watermark(&mut j, 200));
        let mut out = Collector::default();
        copy.finish(&mut out).expect("finish");
        assert!(values(&mut out).is_empty());
    }
}
