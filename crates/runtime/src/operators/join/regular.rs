//! The regular streaming join (Flink's `Join`): INNER, LEFT, RIGHT and FULL
//! OUTER, SEMI and ANTI, over insert-only or updating inputs.
//!
//! Each side's rows live in its state, grouped by key id, as Arrow
//! row-format bytes with a count (equal rows are kept once) and, for outer
//! and semi/anti joins, how many rows of the other side they match. A batch
//! from one side is handled in two passes: first, vectorized, its candidate
//! pairs with the other side's rows of the same key and the residual
//! predicate over them; then, row by row in input order, the changes to
//! state and output, as Flink's `StreamingJoinOperator` does:
//!
//! - inner joins forward the input row's kind (`+I`/`+U` and `-U`/`-D`);
//! - outer joins emit `+I`/`-D`: a row without matches is emitted
//!   NULL-padded, and the padded row of the other side is retracted when its
//!   first match arrives and emitted again when its last match goes;
//! - semi/anti joins emit the left row (with its own kind) when it has
//!   (has no) matches, and flip it with `+I`/`-D` as right rows come and go.
//!
//! NOT IN (a null-aware anti join) also hides every left row while the right
//! side holds a NULL key, and left rows with a NULL key while it is not empty.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch, UInt32Array};
use arrow::datatypes::UInt32Type;
use arrow::row::{Row, RowConverter, Rows, SortField};
use datafusion::error::{DataFusionError, Result};
use smallvec::SmallVec;
use weir_common::{RowKind, StreamBatch};

use super::{JoinCondition, JoinKind, Side, gather, null_columns, spread};
use crate::checkpoint::{KeyedState, StateBatch, batch_bytes};
use crate::error::batch_error;
use crate::operator::{Collector, Operator, OperatorContext, OperatorFactory, OperatorState};
use crate::operators::key_index::KeyIndex;
use crate::operators::state_ttl::{Expiry, ProcessingClock};

/// What a regular join computes; shared by its subtasks.
#[derive(Debug, Clone)]
pub struct StreamingJoinSpec {
    pub condition: JoinCondition,
    /// Whether the left (0) and right (1) inputs carry retractions.
    pub updating: [bool; 2],
    /// NOT IN semantics for an anti join.
    pub null_aware: bool,
    /// 'table.exec.state.ttl': a key's rows on a side are forgotten when
    /// that side did not touch the key for this long.
    pub state_ttl: Option<Duration>,
}

impl StreamingJoinSpec {
    pub fn name(&self) -> String {
        let c = &self.condition;
        let mut text = format!(
            "Join(joinType=[{}], where=[{}]",
            c.kind.flink_name(),
            c.key_pairs()
        );
        if let Some(residual) = &c.residual {
            text.push_str(&format!(", residual=[{residual}]"));
        }
        text.push(')');
        text
    }
}

/// A distinct row of one side.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Its index in the side's row store.
    row: u32,
    /// How many times the row is in the input.
    count: u32,
    /// How many rows of the other side it matches (outer, semi, anti).
    matched: u32,
    /// Its key holds a NULL (it can never match).
    null_key: bool,
}

/// One side's rows.
struct SideState {
    converter: RowConverter,
    rows: Rows,
    /// Per key id, the distinct rows with that key.
    /// Most keys have one row: it is kept inline, without an allocation.
    by_key: Vec<SmallVec<[Entry; 1]>>,
    /// Entries in `by_key` (rows in `rows` minus garbage).
    live: usize,
    /// Row multiplicity in total, and of rows with a NULL key (NOT IN).
    total: i64,
    null_keyed: i64,
    expiry: Option<Expiry>,
    /// Equal rows share one entry; only needed when rows are retracted.
    find_equal: bool,
}

impl SideState {
    fn try_new(
        schema: &arrow::datatypes::Schema,
        spec: &StreamingJoinSpec,
        side: Side,
    ) -> Result<Self> {
        let fields = schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        let converter = RowConverter::new(fields)?;
        let rows = converter.empty_rows(0, 0);
        Ok(Self {
            converter,
            rows,
            by_key: Vec::new(),
            live: 0,
            total: 0,
            null_keyed: 0,
            expiry: Expiry::new(spec.state_ttl, false),
            find_equal: spec.updating[side.index()],
        })
    }

    fn add(&mut self, key: usize, row: Row<'_>, matched: u32, null_key: bool) {
        self.total += 1;
        if null_key {
            self.null_keyed += 1;
        }
        if self.find_equal
            && let Some(entry) = self.by_key[key]
                .iter_mut()
                .find(|e| self.rows.row(e.row as usize) == row)
        {
            entry.count += 1;
            return;
        }
        let index = self.rows.num_rows() as u32;
        self.rows.push(row);
        self.by_key[key].push(Entry {
            row: index,
            count: 1,
            matched,
            null_key,
        });
        self.live += 1;
    }

    /// Removes one occurrence of `row`; false when it is not in state
    /// (its key expired), which Flink also tolerates.
    fn retract(&mut self, key: usize, row: Row<'_>) -> bool {
        let entries = &mut self.by_key[key];
        let Some(at) = entries
            .iter()
            .position(|e| self.rows.row(e.row as usize) == row)
        else {
            return false;
        };
        self.total -= 1;
        if entries[at].null_key {
            self.null_keyed -= 1;
        }
        entries[at].count -= 1;
        if entries[at].count == 0 {
            entries.swap_remove(at);
            self.live -= 1;
        }
        true
    }

    fn expire(&mut self, touched: &[usize], now: u64) {
        let Some(expiry) = &mut self.expiry else {
            return;
        };
        expiry.touch(touched, now);
        for key in expiry.expired(now) {
            if let Some(entries) = self.by_key.get_mut(key) {
                for e in entries.drain(..) {
                    self.total -= i64::from(e.count);
                    if e.null_key {
                        self.null_keyed -= i64::from(e.count);
                    }
                    self.live -= 1;
                }
            }
        }
    }

    /// Rewrites the row store without retracted rows once they outnumber live ones.
    fn compact(&mut self) {
        let stored = self.rows.num_rows();
        if stored < 1024 || stored < 2 * self.live {
            return;
        }
        let mut rows = self.converter.empty_rows(self.live, self.rows.size() / 2);
        for entries in &mut self.by_key {
            for e in entries.iter_mut() {
                let index = rows.num_rows() as u32;
                rows.push(self.rows.row(e.row as usize));
                e.row = index;
            }
        }
        self.rows = rows;
    }

    /// Every distinct row with its count and matches, for a checkpoint.
    fn snapshot(&self, side: Side, keys: &KeyIndex, max_parallelism: usize) -> Result<RecordBatch> {
        let mut key_ids = Vec::with_capacity(self.live);
        let mut entries = Vec::with_capacity(self.live);
        for (key, list) in self.by_key.iter().enumerate() {
            for entry in list {
                key_ids.push(key);
                entries.push(*entry);
            }
        }
        let key_columns = keys.keys(&key_ids)?;
        let key_groups =
            crate::exchange::key_groups_of(&key_columns, key_ids.len(), max_parallelism)?;
        let counts = UInt32Array::from_iter_values(entries.iter().map(|e| e.count));
        let matched = UInt32Array::from_iter_values(entries.iter().map(|e| e.matched));
        let null_keys: BooleanArray = entries.iter().map(|e| Some(e.null_key)).collect();
        KeyedState::new(side.name(), key_groups)
            .column("count", Arc::new(counts))
            .column("matched", Arc::new(matched))
            .column("null_key", Arc::new(null_keys))
            .group("row", self.columns(entries.iter().map(|e| e.row))?)
            .build()
    }

    /// Takes over the rows of a batch written by [`SideState::snapshot`],
    /// under their keys' ids `ids`.
    fn restore(&mut self, state: &StateBatch<'_>, rows: &RecordBatch, ids: &[usize]) -> Result<()> {
        let counts = state.primitive::<UInt32Type>("count")?;
        let matched = state.primitive::<UInt32Type>("matched")?;
        let null_keys = state.boolean("null_key")?;
        let first = self.rows.num_rows();
        self.converter.append(&mut self.rows, rows.columns())?;
        for (row, key) in ids.iter().enumerate() {
            let (count, null_key) = (counts.value(row), null_keys.value(row));
            self.total += i64::from(count);
            if null_key {
                self.null_keyed += i64::from(count);
            }
            let index = (first + row) as u32;
            self.by_key[*key].push(Entry {
                row: index,
                count,
                matched: matched.value(row),
                null_key,
            });
            self.live += 1;
        }
        if let Some(expiry) = &mut self.expiry {
            expiry.touch(ids, 0);
        }
        Ok(())
    }

    /// The columns of stored rows `rows`, in order.
    fn columns(&self, rows: impl IntoIterator<Item = u32>) -> Result<Vec<ArrayRef>> {
        Ok(self
            .converter
            .convert_rows(rows.into_iter().map(|r| self.rows.row(r as usize)))?)
    }
}

/// An output row: a row of the input batch, a stored row of the other side,
/// or both; and its kind.
#[derive(Debug, Clone, Copy)]
struct Out {
    input: Option<u32>,
    stored: Option<u32>,
    kind: RowKind,
}

/// The output rows of a batch, in order.
struct Pending {
    outs: Vec<Out>,
}

impl Pending {
    fn push(&mut self, input: Option<u32>, stored: Option<u32>, kind: RowKind, times: u32) {
        for _ in 0..times {
            self.outs.push(Out {
                input,
                stored,
                kind,
            });
        }
    }
}

pub struct StreamingJoin {
    spec: Arc<StreamingJoinSpec>,
    name: String,
    keys: KeyIndex,
    sides: [SideState; 2],
    clock: ProcessingClock,
    /// Key groups of the snapshotted rows.
    max_parallelism: usize,
}

impl std::fmt::Debug for StreamingJoin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingJoin")
            .field("left_rows", &self.sides[0].live)
            .field("right_rows", &self.sides[1].live)
            .finish()
    }
}

impl StreamingJoin {
    pub fn try_new(spec: Arc<StreamingJoinSpec>) -> Result<Self> {
        let c = &spec.condition;
        Ok(Self {
            name: spec.name(),
            keys: KeyIndex::for_keys(&c.key_schema)?,
            sides: [
                SideState::try_new(&c.left_schema, &spec, Side::Left)?,
                SideState::try_new(&c.right_schema, &spec, Side::Right)?,
            ],
            clock: ProcessingClock::start(),
            max_parallelism: 1,
            spec,
        })
    }

    /// Whether an anti join shows a left row, given the right side's totals.
    fn anti_visible(&self, entry: &Entry, right: (i64, i64)) -> bool {
        if entry.matched > 0 {
            return false;
        }
        if !self.spec.null_aware {
            return true;
        }
        let (total, null_keyed) = right;
        null_keyed == 0 && (!entry.null_key || total == 0)
    }

    fn process(&mut self, this: Side, batch: &StreamBatch, out: &mut Collector) -> Result<()> {
        let data = batch.data();
        let n = data.num_rows();
        if n == 0 {
            return Ok(());
        }
        let condition = &self.spec.condition;
        let kind = condition.kind;
        let keys = condition.key_columns(this, data)?;
        let ids = self.keys.ids(&keys, n)?;
        let matchable = condition.matchable(&keys, n);
        for side in &mut self.sides {
            side.by_key.resize_with(self.keys.len(), SmallVec::new);
        }
        let (ti, oi) = (this.index(), this.other().index());

        // Pass 1: candidate pairs, filtered by the residual predicate.
        let mut candidates: Vec<(u32, u32)> = Vec::new();
        for row in 0..n {
            if matchable[row] {
                let entries = self.sides[oi].by_key[ids[row]].len() as u32;
                candidates.extend((0..entries).map(|e| (row as u32, e)));
            }
        }
        if condition.residual.is_some() && !candidates.is_empty() {
            let other = &self.sides[oi];
            let input_rows: Vec<Option<u32>> = candidates.iter().map(|c| Some(c.0)).collect();
            let this_columns = gather(data.columns(), &input_rows)?;
            let other_columns = other.columns(
                candidates
                    .iter()
                    .map(|(row, e)| other.by_key[ids[*row as usize]][*e as usize].row),
            )?;
            let (left, right) = match this {
                Side::Left => (this_columns, other_columns),
                Side::Right => (other_columns, this_columns),
            };
            condition.retain_passing(&mut candidates, left, right)?;
        }

        // Pass 2: state and output changes, row by row.
        let encoded = self.sides[ti].converter.convert_columns(data.columns())?;
        let right_before = (self.sides[1].total, self.sides[1].null_keyed);
        let mut pending = Pending { outs: Vec::new() };
        let mut next = 0;
        for row in 0..n {
            let start = next;
            while next < candidates.len() && candidates[next].0 as usize == row {
                next += 1;
            }
            let matches: Vec<usize> = candidates[start..next]
                .iter()
                .map(|(_, e)| *e as usize)
                .collect();
            let key = ids[row];
            let row_kind = batch.row_kind(row);
            let input = Some(row as u32);
            let encoded_row = encoded.row(row);
            let null_key = !matchable[row];
            match (kind, this) {
                (JoinKind::Semi | JoinKind::Anti, Side::Left) => {
                    let matched: u32 = matches
                        .iter()
                        .map(|e| self.sides[oi].by_key[key][*e].count)
                        .sum();
                    let probe = Entry {
                        row: 0,
                        count: 1,
                        matched,
                        null_key,
                    };
                    let visible = match kind {
                        JoinKind::Semi => matched > 0,
                        _ => self.anti_visible(&probe, right_before),
                    };
                    if row_kind.is_accumulate() {
                        self.sides[ti].add(key, encoded_row, matched, null_key);
                    } else {
                        self.sides[ti].retract(key, encoded_row);
                    }
                    if visible {
                        pending.push(input, None, row_kind, 1);
                    }
                }
                (JoinKind::Semi | JoinKind::Anti, Side::Right) => {
                    let accumulate = row_kind.is_accumulate();
                    if accumulate {
                        self.sides[ti].add(key, encoded_row, 0, null_key);
                    } else {
                        self.sides[ti].retract(key, encoded_row);
                    }
                    for e in &matches {
                        let before = self.sides[oi].by_key[key][*e];
                        let entry = &mut self.sides[oi].by_key[key][*e];
                        if accumulate {
                            entry.matched += 1;
                        } else {
                            entry.matched = entry.matched.saturating_sub(1);
                        }
                        let after = *entry;
                        let (was, is) = match kind {
                            JoinKind::Semi => (before.matched > 0, after.matched > 0),
                            _ => (
                                self.anti_visible(&before, right_before),
                                self.anti_visible(&after, right_before),
                            ),
                        };
                        if was != is {
                            let change = if is { RowKind::Insert } else { RowKind::Delete };
                            pending.push(None, Some(after.row), change, after.count);
                        }
                    }
                }
                _ => {
                    let this_outer = kind.is_outer(this);
                    let other_outer = kind.is_outer(this.other());
                    let forward = !this_outer && !other_outer;
                    if row_kind.is_accumulate() {
                        let mut matched = 0;
                        for e in &matches {
                            let entry = &mut self.sides[oi].by_key[key][*e];
                            if other_outer {
                                if entry.matched == 0 {
                                    pending.push(
                                        None,
                                        Some(entry.row),
                                        RowKind::Delete,
                                        entry.count,
                                    );
                                }
                                entry.matched += 1;
                            }
                            let joined = if forward { row_kind } else { RowKind::Insert };
                            pending.push(input, Some(entry.row), joined, entry.count);
                            matched += entry.count;
                        }
                        if matches.is_empty() && this_outer {
                            pending.push(input, None, RowKind::Insert, 1);
                        }
                        self.sides[ti].add(key, encoded_row, matched, null_key);
                    } else {
                        self.sides[ti].retract(key, encoded_row);
                        if matches.is_empty() && this_outer {
                            pending.push(input, None, RowKind::Delete, 1);
                        }
                        for e in &matches {
                            let entry = &mut self.sides[oi].by_key[key][*e];
                            let joined = if forward { row_kind } else { RowKind::Delete };
                            pending.push(input, Some(entry.row), joined, entry.count);
                            if other_outer && entry.matched > 0 {
                                entry.matched -= 1;
                                if entry.matched == 0 {
                                    pending.push(
                                        None,
                                        Some(entry.row),
                                        RowKind::Insert,
                                        entry.count,
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
        if kind == JoinKind::Anti && self.spec.null_aware && this == Side::Right {
            self.refresh_anti(right_before, &mut pending);
        }
        self.emit(this, data, &pending.outs, out)?;
        let now = self.clock.now();
        self.sides[ti].expire(&ids, now);
        self.sides[ti].compact();
        Ok(())
    }

    /// NOT IN: after the right side's totals crossed zero, re-emit the left
    /// rows whose visibility flipped.
    fn refresh_anti(&self, before: (i64, i64), pending: &mut Pending) {
        let after = (self.sides[1].total, self.sides[1].null_keyed);
        if (before.0 > 0, before.1 > 0) == (after.0 > 0, after.1 > 0) {
            return;
        }
        for entries in &self.sides[0].by_key {
            for e in entries {
                let (was, is) = (self.anti_visible(e, before), self.anti_visible(e, after));
                if was != is {
                    let change = if is { RowKind::Insert } else { RowKind::Delete };
                    pending.push(None, Some(e.row), change, e.count);
                }
            }
        }
    }

    /// Gathers the columns of `outs` and emits them.
    fn emit(
        &self,
        this: Side,
        data: &RecordBatch,
        outs: &[Out],
        out: &mut Collector,
    ) -> Result<()> {
        if outs.is_empty() {
            return Ok(());
        }
        let condition = &self.spec.condition;
        let input_rows: Vec<Option<u32>> = outs.iter().map(|o| o.input).collect();
        let this_columns = gather(data.columns(), &input_rows)?;
        let other = &self.sides[this.other().index()];
        let present: Vec<bool> = outs.iter().map(|o| o.stored.is_some()).collect();
        let other_columns = if present.iter().any(|p| *p) {
            spread(
                other.columns(outs.iter().filter_map(|o| o.stored))?,
                &present,
            )?
        } else {
            null_columns(condition.schema(this.other()), outs.len())
        };
        let (left, right) = match this {
            Side::Left => (this_columns, other_columns),
            Side::Right => (other_columns, this_columns),
        };
        let batch = condition.output(left, right, outs.len())?;
        let kinds = outs.iter().map(|o| o.kind as u8).collect();
        out.emit(StreamBatch::try_new_changelog(batch, kinds).map_err(batch_error)?);
        Ok(())
    }
}

impl Operator for StreamingJoin {
    fn name(&self) -> &str {
        &self.name
    }

    fn open(&mut self, context: &OperatorContext) -> Result<()> {
        self.max_parallelism = context.max_parallelism;
        Ok(())
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<Option<OperatorState>> {
        let batches = [Side::Left, Side::Right]
            .into_iter()
            .map(|side| self.sides[side.index()].snapshot(side, &self.keys, self.max_parallelism))
            .collect::<Result<_>>()?;
        Ok(Some(OperatorState { batches }))
    }

    fn restore_state(&mut self, state: OperatorState) -> Result<()> {
        let mut parts = Vec::with_capacity(state.batches.len());
        let mut sizes = [(0usize, 0usize); 2];
        for batch in &state.batches {
            let state = StateBatch::new(batch, &self.name);
            let side = Side::of_state(&state)?;
            let rows = state.group_batch("row", self.spec.condition.schema(side))?;
            let size = &mut sizes[side.index()];
            size.0 += rows.num_rows();
            size.1 += batch_bytes(&rows);
            parts.push((state, side, rows));
        }
        // A side's rows come in slices: one allocation for all of them (row
        // format takes a little more room than columns).
        for (side, (rows, bytes)) in self.sides.iter_mut().zip(sizes) {
            if side.rows.num_rows() == 0 && rows > 0 {
                side.rows = side.converter.empty_rows(rows, bytes + bytes / 4);
            }
        }
        // As many new keys as rows at most; the sides share them.
        let rows = sizes[0].0 + sizes[1].0;
        self.keys.reserve(rows);
        for side in &mut self.sides {
            side.by_key.reserve(rows);
        }
        for (state, side, rows) in parts {
            let keys = self.spec.condition.key_columns(side, &rows)?;
            let ids = self.keys.ids(&keys, rows.num_rows())?;
            for s in &mut self.sides {
                s.by_key.resize_with(self.keys.len(), SmallVec::new);
            }
            self.sides[side.index()].restore(&state, &rows, &ids)?;
        }
        Ok(())
    }

    fn process_batch(
        &mut self,
        input: usize,
        batch: StreamBatch,
        out: &mut Collector,
    ) -> Result<()> {
        let side = Side::of_input(input)?;
        if !self.spec.updating[side.index()] && !batch.is_insert_only() {
            return Err(DataFusionError::Internal(
                "a join planned for an insert-only input received updates".into(),
            ));
        }
        self.process(side, &batch, out)
    }
}

#[derive(Debug)]
pub struct StreamingJoinFactory(pub Arc<StreamingJoinSpec>);

impl OperatorFactory for StreamingJoinFactory {
    fn name(&self) -> String {
        self.0.name()
    }

    fn create(&self, _context: &OperatorContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(StreamingJoin::try_new(Arc::clone(&self.0))?))
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::Array;
    use arrow::array::{AsArray, UInt8Array};
    use arrow::datatypes::Int64Type;

    use super::*;
    use crate::operators::join::test_support::{condition, rows};

    fn join(kind: JoinKind, updating: bool) -> StreamingJoin {
        StreamingJoin::try_new(Arc::new(StreamingJoinSpec {
            condition: condition(kind),
            updating: [updating, updating],
            null_aware: false,
            state_ttl: None,
        }))
        .expect("join")
    }

    /// The changelog a step emitted, as `+I[lk, lv, rk, rv]` strings.
    fn changes(out: &mut Collector) -> Vec<String> {
        let mut lines = Vec::new();
        for batch in out.take() {
            let data = batch.data();
            for row in 0..data.num_rows() {
                let values: Vec<String> = data
                    .columns()
                    .iter()
                    .map(|c| {
                        let c = c.as_primitive::<Int64Type>();
                        if c.is_null(row) {
                            "null".to_string()
                        } else {
                            c.value(row).to_string()
                        }
                    })
                    .collect();
                lines.push(format!("{}[{}]", batch.row_kind(row), values.join(", ")));
            }
        }
        lines
    }

    fn feed(
        join: &mut StreamingJoin,
        side: usize,
        data: &[(Option<i64>, i64)],
        kinds: &[u8],
    ) -> Vec<String> {
        let schema = if side == 0 {
            Arc::clone(&join.spec.condition.left_schema)
        } else {
            Arc::clone(&join.spec.condition.right_schema)
        };
        let batch =
            StreamBatch::try_new_changelog(rows(&schema, data), UInt8Array::from(kinds.to_vec()))
                .expect("batch");
        let mut out = Collector::default();
        join.process_batch(side, batch, &mut out).expect("process");
        changes(&mut out)
    }

    #[test]
    fn inner_join_forwards_row_kinds() {
        let mut j = join(JoinKind::Inner, true);
        assert!(feed(&mut j, 0, &[(Some(1), 10)], &[0]).is_empty());
        assert_eq!(
            feed(&mut j, 1, &[(Some(1), 20), (Some(2), 30)], &[0, 0]),
            ["+I[1, 10, 1, 20]"]
        );
        assert_eq!(
            feed(&mut j, 0, &[(Some(1), 10), (Some(1), 11)], &[1, 2]),
            ["-U[1, 10, 1, 20]", "+U[1, 11, 1, 20]"]
        );
        // NULL keys never match.
        assert!(feed(&mut j, 0, &[(None, 5)], &[0]).is_empty());
        assert!(feed(&mut j, 1, &[(None, 6)], &[0]).is_empty());
    }

    #[test]
    fn a_restored_full_join_goes_on_as_if_never_stopped() {
        let mut j = join(JoinKind::FullOuter, true);
        feed(
            &mut j,
            0,
            &[(Some(1), 10), (Some(1), 10), (None, 5)],
            &[0, 0, 0],
        );
        feed(&mut j, 1, &[(Some(2), 20)], &[0]);
        let state = j.snapshot_state(1).expect("snapshot").expect("state");
        let mut restored = join(JoinKind::FullOuter, true);
        restored.restore_state(state).expect("restore");
        // Both copies of the left row match; the right padding is retracted.
        let steps: [(usize, &[(Option<i64>, i64)], &[u8]); 3] = [
            (1, &[(Some(1), 11)], &[0]),
            (0, &[(Some(2), 7)], &[0]),
            (0, &[(Some(1), 10)], &[3]),
        ];
        for (side, data, kinds) in steps {
            assert_eq!(
                feed(&mut restored, side, data, kinds),
                feed(&mut j, side, data, kinds)
            );
        }
        assert_eq!(
            feed(&mut restored, 1, &[(Some(1), 11)], &[3]),
            ["-D[1, 10, 1, 11]", "+I[1, 10, null, null]"]
        );
    }

    #[test]
    fn left_join_pads_and_retracts_the_padding() {
        let mut j = join(JoinKind::LeftOuter, true);
        assert_eq!(
            feed(&mut j, 0, &[(Some(1), 10)], &[0]),
            ["+I[1, 10, null, null]"]
        );
        assert_eq!(
            feed(&mut j, 1, &[(Some(1), 20)], &[0]),
            ["-D[1, 10, null, null]", "+I[1, 10, 1, 20]"]
        );
        assert_eq!(
            feed(&mut j, 1, &[(Some(1), 21)], &[0]),
            ["+I[1, 10, 1, 21]"]
        );
        assert_eq!(
            feed(&mut j, 1, &[(Some(1), 20)], &[3]),
            ["-D[1, 10, 1, 20]"]
        );
        assert_eq!(
            feed(&mut j, 1, &[(Some(1), 21)], &[3]),
            ["-D[1, 10, 1, 21]", "+I[1, 10, null, null]"]
        );
        assert_eq!(
            feed(&mut j, 0, &[(Some(1), 10)], &[3]),
            ["-D[1, 10, null, null]"]
        );
    }

    #[test]
    fn full_join_pads_both_sides() {
        let mut j = join(JoinKind::FullOuter, false);
        assert_eq!(
            feed(&mut j, 1, &[(Some(2), 20)], &[0]),
            ["+I[null, null, 2, 20]"]
        );
        assert_eq!(
            feed(&mut j, 0, &[(Some(2), 10), (Some(3), 30)], &[0, 0]),
            [
                "-D[null, null, 2, 20]",
                "+I[2, 10, 2, 20]",
                "+I[3, 30, null, null]"
            ]
        );
        // Duplicates join once each.
        assert_eq!(
            feed(&mut j, 0, &[(Some(2), 10)], &[0]),
            ["+I[2, 10, 2, 20]"]
        );
    }

    #[test]
    fn semi_and_anti_joins_flip_with_the_right_side() {
        let mut semi = join(JoinKind::Semi, true);
        let mut anti = join(JoinKind::Anti, true);
        assert!(feed(&mut semi, 0, &[(Some(1), 10)], &[0]).is_empty());
        assert_eq!(feed(&mut anti, 0, &[(Some(1), 10)], &[0]), ["+I[1, 10]"]);
        assert_eq!(
            feed(&mut semi, 1, &[(Some(1), 20), (Some(1), 21)], &[0, 0]),
            ["+I[1, 10]"]
        );
        assert_eq!(
            feed(&mut anti, 1, &[(Some(1), 20), (Some(1), 21)], &[0, 0]),
            ["-D[1, 10]"]
        );
        assert!(feed(&mut semi, 1, &[(Some(1), 20)], &[3]).is_empty());
        assert_eq!(feed(&mut semi, 1, &[(Some(1), 21)], &[3]), ["-D[1, 10]"]);
        assert!(feed(&mut anti, 1, &[(Some(1), 20)], &[3]).is_empty());
        assert_eq!(feed(&mut anti, 1, &[(Some(1), 21)], &[3]), ["+I[1, 10]"]);
    }

    #[test]
    fn not_in_hides_everything_while_the_right_side_has_a_null() {
        let mut anti = StreamingJoin::try_new(Arc::new(StreamingJoinSpec {
            condition: condition(JoinKind::Anti),
            updating: [false, true],
            null_aware: true,
            state_ttl: None,
        }))
        .expect("join");
        // An empty right side: even a NULL key is NOT IN it.
        assert_eq!(
            feed(&mut anti, 0, &[(Some(1), 10), (None, 11)], &[0, 0]),
            ["+I[1, 10]", "+I[null, 11]"]
        );
        assert_eq!(feed(&mut anti, 1, &[(Some(2), 20)], &[0]), ["-D[null, 11]"]);
        assert_eq!(feed(&mut anti, 1, &[(None, 21)], &[0]), ["-D[1, 10]"]);
        assert_eq!(feed(&mut anti, 1, &[(None, 21)], &[3]), ["+I[1, 10]"]);
    }

    #[test]
    fn state_ttl_forgets_idle_keys() {
        let mut j = StreamingJoin::try_new(Arc::new(StreamingJoinSpec {
            condition: condition(JoinKind::Inner),
            updating: [false, false],
            null_aware: false,
            state_ttl: Some(Duration::from_millis(1)),
        }))
        .expect("join");
        feed(&mut j, 0, &[(Some(1), 10)], &[0]);
        std::thread::sleep(Duration::from_millis(10));
        // Touching key 2 sweeps key 1, idle for longer than the TTL.
        feed(&mut j, 0, &[(Some(2), 20)], &[0]);
        assert!(feed(&mut j, 1, &[(Some(1), 100)], &[0]).is_empty());
        assert_eq!(
            feed(&mut j, 1, &[(Some(2), 200)], &[0]),
            ["+I[2, 20, 2, 200]"]
        );
    }

    #[test]
    fn retracted_rows_are_compacted_away() {
        let mut j = join(JoinKind::Inner, true);
        for i in 0..3000 {
            feed(&mut j, 0, &[(Some(i), i)], &[0]);
            feed(&mut j, 0, &[(Some(i), i)], &[3]);
        }
        feed(&mut j, 0, &[(Some(7), 70)], &[0]);
        assert!(
            j.sides[0].rows.num_rows() < 2100,
            "{}",
            j.sides[0].rows.num_rows()
        );
        assert_eq!(feed(&mut j, 1, &[(Some(7), 1)], &[0]), ["+I[7, 70, 7, 1]"]);
    }
}
