//! The regular streaming join (Flink's `Join`): INNER, LEFT, RIGHT and FULL
//! OUTER, SEMI and ANTI, over insert-only or updating inputs.
//!
//! Each side's rows live in its state, grouped by key id, each with a count
//! and, for outer and semi/anti joins, how many rows of the other side they
//! match. An insert-only side keeps its rows as Arrow columns in a
//! [`RowStore`] (repeated strings once, in dictionaries); an updating side
//! keeps them in Arrow's row format, where equal rows share one entry and a
//! retraction finds its row by comparing bytes. A batch
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
use arrow::datatypes::{SchemaRef, UInt32Type};
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::error::{DataFusionError, Result};
use smallvec::SmallVec;
use weir_common::{RowKind, StreamBatch};

use super::{JoinCondition, JoinKind, Side, gather, null_columns, spread};
use crate::checkpoint::{KeyedState, StateBatch, batch_bytes};
use crate::error::batch_error;
use crate::operator::{Collector, Operator, OperatorContext, OperatorFactory, OperatorState};
use crate::operators::key_index::KeyIndex;
use crate::operators::row_store::{RowStore, Slot};
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
    /// Where the row is stored.
    row: Slot,
    /// How many times the row is in the input.
    count: u32,
    /// How many rows of the other side it matches (outer, semi, anti).
    matched: u32,
}

/// How a side keeps its rows.
enum Store {
    /// An updating side's rows in Arrow's row format, where a retraction
    /// finds the row it retracts by comparing bytes. A row's slot is
    /// (0, its index).
    Encoded { converter: RowConverter, rows: Rows },
    /// An insert-only side's rows as Arrow columns: a row is copied once on
    /// its way in and never encoded, and takes a third less memory than in
    /// row format (Nexmark's bids, 104 bytes a row against 148).
    Columns(RowStore),
}

/// The rows of the batch being applied, as a side takes them in.
enum Incoming {
    Encoded(Rows),
    /// The rows an insert-only side keeps, stored together as batch `batch`
    /// once the whole batch is applied.
    Columns {
        batch: u32,
        kept: Vec<u32>,
        owners: Vec<u32>,
    },
}

/// One side's rows.
struct SideState {
    schema: SchemaRef,
    store: Store,
    /// Per key id, the distinct rows with that key.
    /// Most keys have one row: it is kept inline, without an allocation.
    by_key: Vec<SmallVec<[Entry; 1]>>,
    /// Entries in `by_key` (rows stored minus garbage).
    live: usize,
    /// Row multiplicity in total, and of rows with a NULL key (NOT IN).
    total: i64,
    null_keyed: i64,
    expiry: Option<Expiry>,
}

impl SideState {
    fn try_new(schema: &SchemaRef, spec: &StreamingJoinSpec, side: Side) -> Result<Self> {
        // Equal rows share one entry: only needed when rows are retracted.
        let store = if spec.updating[side.index()] {
            let fields = schema
                .fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect();
            let converter = RowConverter::new(fields)?;
            let rows = converter.empty_rows(0, 0);
            Store::Encoded { converter, rows }
        } else {
            Store::Columns(RowStore::default())
        };
        Ok(Self {
            schema: Arc::clone(schema),
            store,
            by_key: Vec::new(),
            live: 0,
            total: 0,
            null_keyed: 0,
            expiry: Expiry::new(spec.state_ttl, false),
        })
    }

    /// Gets ready to take in rows of `data`.
    fn incoming(&self, data: &RecordBatch) -> Result<Incoming> {
        Ok(match &self.store {
            Store::Encoded { converter, .. } => {
                Incoming::Encoded(converter.convert_columns(data.columns())?)
            }
            Store::Columns(store) => Incoming::Columns {
                batch: store.next_batch(),
                kept: Vec::new(),
                owners: Vec::new(),
            },
        })
    }

    /// Adds row `row` of the incoming batch under key id `key`.
    fn add(
        &mut self,
        incoming: &mut Incoming,
        key: usize,
        row: usize,
        matched: u32,
        null_key: bool,
    ) -> Result<()> {
        self.total += 1;
        if null_key {
            self.null_keyed += 1;
        }
        let slot = match (&mut self.store, incoming) {
            (Store::Encoded { rows, .. }, Incoming::Encoded(encoded)) => {
                let new = encoded.row(row);
                if let Some(entry) = self.by_key[key]
                    .iter_mut()
                    .find(|e| rows.row(e.row.row as usize) == new)
                {
                    entry.count += 1;
                    return Ok(());
                }
                rows.push(new);
                Slot {
                    batch: 0,
                    row: rows.num_rows() as u32 - 1,
                }
            }
            (
                Store::Columns(_),
                Incoming::Columns {
                    batch,
                    kept,
                    owners,
                },
            ) => {
                kept.push(row as u32);
                owners.push(key as u32);
                Slot {
                    batch: *batch,
                    row: kept.len() as u32 - 1,
                }
            }
            _ => return Err(mismatch()),
        };
        self.by_key[key].push(Entry {
            row: slot,
            count: 1,
            matched,
        });
        self.live += 1;
        Ok(())
    }

    /// Removes one occurrence of row `row` of the incoming batch; false
    /// when it is not in state (its key expired), which Flink also
    /// tolerates.
    fn retract(
        &mut self,
        incoming: &Incoming,
        key: usize,
        row: usize,
        null_key: bool,
    ) -> Result<bool> {
        let (Store::Encoded { rows, .. }, Incoming::Encoded(encoded)) = (&self.store, incoming)
        else {
            return Err(DataFusionError::Internal(
                "a join side kept as columns (insert-only) received a retraction".into(),
            ));
        };
        let retracted = encoded.row(row);
        let entries = &mut self.by_key[key];
        let Some(at) = entries
            .iter()
            .position(|e| rows.row(e.row.row as usize) == retracted)
        else {
            return Ok(false);
        };
        self.total -= 1;
        if null_key {
            self.null_keyed -= 1;
        }
        entries[at].count -= 1;
        if entries[at].count == 0 {
            entries.swap_remove(at);
            self.live -= 1;
        }
        Ok(true)
    }

    /// Stores the rows an insert-only side kept of the batch `data`.
    fn take_in(&mut self, incoming: Incoming, data: &RecordBatch) -> Result<()> {
        let (
            Store::Columns(store),
            Incoming::Columns {
                batch,
                kept,
                owners,
            },
        ) = (&mut self.store, incoming)
        else {
            return Ok(());
        };
        if kept.is_empty() {
            return Ok(());
        }
        if store.store(data.columns(), None, kept, owners)? != batch {
            return Err(mismatch());
        }
        Ok(())
    }

    fn expire(&mut self, touched: &[usize], now: u64, null_keys: &[bool]) -> Result<()> {
        let Some(expiry) = &mut self.expiry else {
            return Ok(());
        };
        expiry.touch(touched, now);
        for key in expiry.expired(now) {
            let Some(entries) = self.by_key.get_mut(key) else {
                continue;
            };
            for e in entries.drain(..) {
                self.total -= i64::from(e.count);
                if null_keys.get(key).copied().unwrap_or(false) {
                    self.null_keyed -= i64::from(e.count);
                }
                self.live -= 1;
                if let Store::Columns(store) = &mut self.store {
                    store.release(e.row)?;
                }
            }
        }
        Ok(())
    }

    /// Drops rows no longer kept once they take much room: row format is
    /// rewritten once retracted rows outnumber live ones; stored batches
    /// are merged as [`RowStore::compact`] says.
    fn compact(&mut self) -> Result<()> {
        match &mut self.store {
            Store::Encoded { converter, rows } => {
                let stored = rows.num_rows();
                if stored < 1024 || stored < 2 * self.live {
                    return Ok(());
                }
                let mut kept = converter.empty_rows(self.live, rows.size() / 2);
                for entries in &mut self.by_key {
                    for e in entries.iter_mut() {
                        kept.push(rows.row(e.row.row as usize));
                        e.row.row = kept.num_rows() as u32 - 1;
                    }
                }
                *rows = kept;
            }
            Store::Columns(store) => {
                let mut moved = store.compact(None)?;
                // A key's entries are read once for all of its moved rows:
                // a hot key holds many rows.
                moved.sort_unstable_by_key(|m| (m.owner, m.from));
                for rows in moved.chunk_by(|a, b| a.owner == b.owner) {
                    for e in &mut self.by_key[rows[0].owner as usize] {
                        if let Ok(at) = rows.binary_search_by_key(&e.row, |m| m.from) {
                            e.row = rows[at].to;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Every distinct row with its count and matches, for a checkpoint.
    fn snapshot(
        &self,
        side: Side,
        keys: &KeyIndex,
        null_keys: &[bool],
        max_parallelism: usize,
    ) -> Result<RecordBatch> {
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
        let null_keys: BooleanArray = key_ids
            .iter()
            .map(|key| Some(null_keys.get(*key).copied().unwrap_or(false)))
            .collect();
        let slots: Vec<Slot> = entries.iter().map(|e| e.row).collect();
        KeyedState::new(side.name(), key_groups)
            .column("count", Arc::new(counts))
            .column("matched", Arc::new(matched))
            .column("null_key", Arc::new(null_keys))
            .group("row", self.columns(&slots)?)
            .build()
    }

    /// Takes over the rows of a batch written by [`SideState::snapshot`],
    /// under their keys' ids `ids`, marking the keys with a NULL in
    /// `null_keys`.
    fn restore(
        &mut self,
        state: &StateBatch<'_>,
        rows: &RecordBatch,
        ids: &[usize],
        null_keys: &mut [bool],
    ) -> Result<()> {
        let counts = state.primitive::<UInt32Type>("count")?;
        let matched = state.primitive::<UInt32Type>("matched")?;
        let nulls = state.boolean("null_key")?;
        let slots: Vec<Slot> = match &mut self.store {
            Store::Encoded {
                converter,
                rows: kept,
            } => {
                let first = kept.num_rows() as u32;
                converter.append(kept, rows.columns())?;
                (0..ids.len() as u32)
                    .map(|row| Slot {
                        batch: 0,
                        row: first + row,
                    })
                    .collect()
            }
            Store::Columns(store) => {
                let all = (0..ids.len() as u32).collect();
                let owners = ids.iter().map(|id| *id as u32).collect();
                let batch = store.store(rows.columns(), None, all, owners)?;
                (0..ids.len() as u32)
                    .map(|row| Slot { batch, row })
                    .collect()
            }
        };
        for (row, (key, slot)) in ids.iter().zip(slots).enumerate() {
            let (count, null_key) = (counts.value(row), nulls.value(row));
            self.total += i64::from(count);
            if null_key {
                self.null_keyed += i64::from(count);
                null_keys[*key] = true;
            }
            self.by_key[*key].push(Entry {
                row: slot,
                count,
                matched: matched.value(row),
            });
            self.live += 1;
        }
        if let Some(expiry) = &mut self.expiry {
            expiry.touch(ids, 0);
        }
        Ok(())
    }

    /// The columns of the stored rows at `slots`, in order.
    fn columns(&self, slots: &[Slot]) -> Result<Vec<ArrayRef>> {
        match &self.store {
            Store::Encoded { converter, rows } => {
                Ok(converter.convert_rows(slots.iter().map(|s| rows.row(s.row as usize)))?)
            }
            Store::Columns(store) => store.rows(slots, &self.schema),
        }
    }

    /// Rows stored, live or not.
    #[cfg(test)]
    fn stored_rows(&self) -> usize {
        match &self.store {
            Store::Encoded { rows, .. } => rows.num_rows(),
            Store::Columns(store) => store.stored_rows(),
        }
    }
}

fn mismatch() -> DataFusionError {
    DataFusionError::Internal("a join side took in rows in another form than it stores".into())
}

/// An output row: a row of the input batch, a stored row of the other side,
/// or both; and its kind.
#[derive(Debug, Clone, Copy)]
struct Out {
    input: Option<u32>,
    stored: Option<Slot>,
    kind: RowKind,
}

/// The output rows of a batch, in order.
struct Pending {
    outs: Vec<Out>,
}

impl Pending {
    fn push(&mut self, input: Option<u32>, stored: Option<Slot>, kind: RowKind, times: u32) {
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
    /// By key id: whether the key holds a NULL (it can never match).
    null_keys: Vec<bool>,
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
            null_keys: Vec::new(),
            sides: [
                SideState::try_new(&c.left_schema, &spec, Side::Left)?,
                SideState::try_new(&c.right_schema, &spec, Side::Right)?,
            ],
            clock: ProcessingClock::start(),
            max_parallelism: 1,
            spec,
        })
    }

    /// Whether an anti join shows a left row with `matched` matches (and a
    /// NULL in its key or not), given the right side's totals.
    fn anti_visible(&self, matched: u32, null_key: bool, right: (i64, i64)) -> bool {
        if matched > 0 {
            return false;
        }
        if !self.spec.null_aware {
            return true;
        }
        let (total, null_keyed) = right;
        null_keyed == 0 && (!null_key || total == 0)
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
        self.null_keys.resize(self.keys.len(), false);
        for (key, _) in ids.iter().zip(&matchable).filter(|(_, m)| !**m) {
            self.null_keys[*key] = true;
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
            let slots: Vec<Slot> = candidates
                .iter()
                .map(|(row, e)| other.by_key[ids[*row as usize]][*e as usize].row)
                .collect();
            let other_columns = other.columns(&slots)?;
            let (left, right) = match this {
                Side::Left => (this_columns, other_columns),
                Side::Right => (other_columns, this_columns),
            };
            condition.retain_passing(&mut candidates, left, right)?;
        }

        // Pass 2: state and output changes, row by row.
        let mut incoming = self.sides[ti].incoming(data)?;
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
            let null_key = !matchable[row];
            match (kind, this) {
                (JoinKind::Semi | JoinKind::Anti, Side::Left) => {
                    let matched: u32 = matches
                        .iter()
                        .map(|e| self.sides[oi].by_key[key][*e].count)
                        .sum();
                    let visible = match kind {
                        JoinKind::Semi => matched > 0,
                        _ => self.anti_visible(matched, null_key, right_before),
                    };
                    if row_kind.is_accumulate() {
                        self.sides[ti].add(&mut incoming, key, row, matched, null_key)?;
                    } else {
                        self.sides[ti].retract(&incoming, key, row, null_key)?;
                    }
                    if visible {
                        pending.push(input, None, row_kind, 1);
                    }
                }
                (JoinKind::Semi | JoinKind::Anti, Side::Right) => {
                    let accumulate = row_kind.is_accumulate();
                    if accumulate {
                        self.sides[ti].add(&mut incoming, key, row, 0, null_key)?;
                    } else {
                        self.sides[ti].retract(&incoming, key, row, null_key)?;
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
                                self.anti_visible(before.matched, null_key, right_before),
                                self.anti_visible(after.matched, null_key, right_before),
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
                        self.sides[ti].add(&mut incoming, key, row, matched, null_key)?;
                    } else {
                        self.sides[ti].retract(&incoming, key, row, null_key)?;
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
        self.sides[ti].take_in(incoming, data)?;
        let now = self.clock.now();
        self.sides[ti].expire(&ids, now, &self.null_keys)?;
        self.sides[ti].compact()
    }

    /// NOT IN: after the right side's totals crossed zero, re-emit the left
    /// rows whose visibility flipped.
    fn refresh_anti(&self, before: (i64, i64), pending: &mut Pending) {
        let after = (self.sides[1].total, self.sides[1].null_keyed);
        if (before.0 > 0, before.1 > 0) == (after.0 > 0, after.1 > 0) {
            return;
        }
        for (key, entries) in self.sides[0].by_key.iter().enumerate() {
            let null_key = self.null_keys[key];
            for e in entries {
                let (was, is) = (
                    self.anti_visible(e.matched, null_key, before),
                    self.anti_visible(e.matched, null_key, after),
                );
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
            let slots: Vec<Slot> = outs.iter().filter_map(|o| o.stored).collect();
            spread(other.columns(&slots)?, &present)?
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
            .map(|side| {
                self.sides[side.index()].snapshot(
                    side,
                    &self.keys,
                    &self.null_keys,
                    self.max_parallelism,
                )
            })
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
            if let Store::Encoded {
                converter,
                rows: kept,
            } = &mut side.store
                && kept.num_rows() == 0
                && rows > 0
            {
                *kept = converter.empty_rows(rows, bytes + bytes / 4);
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
            self.null_keys.resize(self.keys.len(), false);
            self.sides[side.index()].restore(&state, &rows, &ids, &mut self.null_keys)?;
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
        // (input, rows of (key, value), the expected output's row kinds)
        type Step<'a> = (usize, &'a [(Option<i64>, i64)], &'a [u8]);
        let steps: [Step; 3] = [
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
    fn an_insert_only_side_keeps_its_rows_as_columns_through_merges_and_restores() {
        // One-row batches are stored as small batches and merged every few
        // batches: each key's entries must follow their rows there.
        let mut j = join(JoinKind::LeftOuter, false);
        let left = |i: i64| (Some(i % 13), i);
        for i in 0..150 {
            assert_eq!(
                feed(&mut j, 0, &[left(i)], &[0]),
                [format!("+I[{}, {i}, null, null]", i % 13)]
            );
        }
        let state = j.snapshot_state(1).expect("snapshot").expect("state");
        let mut restored = join(JoinKind::LeftOuter, false);
        restored.restore_state(state).expect("restore");
        for i in 150..300 {
            let (a, b) = (&[left(i)], &[0]);
            assert_eq!(feed(&mut restored, 0, a, b), feed(&mut j, 0, a, b));
        }
        assert_eq!(j.sides[0].stored_rows(), 300);
        for k in 0..13 {
            let right = (&[(Some(k), 1000 + k)], &[0]);
            let mut emitted = feed(&mut j, 1, right.0, right.1);
            assert_eq!(feed(&mut restored, 1, right.0, right.1), emitted);
            emitted.sort();
            let mut expected: Vec<String> = (0..300)
                .filter(|i| i % 13 == k)
                .flat_map(|i| {
                    [
                        format!("+I[{k}, {i}, {k}, {}]", 1000 + k),
                        format!("-D[{k}, {i}, null, null]"),
                    ]
                })
                .collect();
            expected.sort();
            assert_eq!(emitted, expected, "key {k}");
        }
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
            j.sides[0].stored_rows() < 2100,
            "{}",
            j.sides[0].stored_rows()
        );
        assert_eq!(feed(&mut j, 1, &[(Some(7), 1)], &[0]), ["+I[7, 70, 7, 1]"]);
    }
}
