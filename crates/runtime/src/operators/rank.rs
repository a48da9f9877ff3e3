//! Top-N and deduplication over unbounded streams (Flink's `Rank` and
//! `Deduplicate`): `ROW_NUMBER() OVER (PARTITION BY k ORDER BY ...)` kept
//! to the rows ranked `rank_start..=rank_end`, and `ORDER BY ... LIMIT n`.
//!
//! Each partition keeps its rows ordered by the sort key (Arrow row-format
//! bytes, so byte order is SQL order) and then arrival, so ties rank in
//! arrival order as in Flink. Over an insert-only input a partition keeps
//! only its first `rank_end` rows, as Arrow columns ([`super::top_n`]); a
//! row that cannot enter is dropped at once. Over an updating input every
//! row is kept, in row format in a `BTreeMap`, since a retraction can bring
//! a lower row back into the top N and is matched by its bytes.
//!
//! Output is computed per input batch, like Flink with mini-batch on: the
//! first time a batch touches a partition its current top N is remembered;
//! after the batch the new top N is compared with it. With the rank column
//! in the output, every rank whose row changed emits `-U old`/`+U new`
//! (`+I`/`-D` when the rank was or becomes empty); without it, rows that
//! left the top N emit `-D` and rows that entered it `+I`.
//!
//! Ordering by a processing-time attribute orders by arrival: ascending
//! keeps the first row per key, which is insert-only and needs only the set
//! of keys seen; descending keeps the last.
//!
//! Keeping rank 1 alone of an insert-only input (a deduplication) keeps one
//! row per key as Arrow columns ([`super::top_one`]) and skips the row
//! format. By a single event-time attribute it is Flink's Deduplicate: a row
//! that ties with the kept one on time replaces it when the last row is
//! kept (`DESC`), where a Top-N would rank it second. Under a sink that
//! ignores `-U` rows it emits a replacing row as `+U` alone, as Flink does,
//! and keeps each key's sort key, not its row.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array, UInt64Array};
use arrow::datatypes::SchemaRef;
use arrow::datatypes::UInt64Type;
use arrow::record_batch::RecordBatchOptions;
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::{PhysicalExpr, PhysicalSortExpr};
use weir_common::{RowKind, StreamBatch};

use crate::checkpoint::{KeyedState, StateBatch};
use crate::error::batch_error;
use crate::exchange::key_groups_of;
use crate::operator::{Collector, Operator, OperatorContext, OperatorFactory, OperatorState};
use crate::operators::key_index::KeyIndex;
use crate::operators::top_n::{TopN, TopNChanges, TopNInput};
use crate::operators::top_one::{BatchOrder, TopOne, TopOneChanges};

/// What the output says about a row's rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RankNumber {
    /// The output has no rank column (`ORDER BY ... LIMIT`).
    Absent,
    /// The last output column is the row's rank; when a row enters, the
    /// rows below it are updated with their new ranks.
    Emitted,
    /// The output has a rank column that nothing above reads: it holds 0
    /// and only rows entering or leaving the top N are emitted.
    Unused,
}

/// How rows of a partition are ordered.
#[derive(Debug, Clone)]
pub enum RankOrder {
    /// By these expressions, ties by arrival.
    Values(Vec<PhysicalSortExpr>),
    /// By arrival (a processing-time attribute): first rows first, or with
    /// `last_first` the latest row first.
    Arrival { last_first: bool },
}

/// What a rank computes; shared by its subtasks.
#[derive(Debug, Clone)]
pub struct RankSpec {
    pub partition_by: Vec<Arc<dyn PhysicalExpr>>,
    pub partition_schema: SchemaRef,
    pub order: RankOrder,
    /// The ranks kept, from 1.
    pub rank_start: usize,
    pub rank_end: usize,
    pub rank_number: RankNumber,
    /// The input carries retractions.
    pub updating_input: bool,
    /// Rank 1 of an insert-only input by a single event-time attribute:
    /// Flink's Deduplicate rather than a Top-N.
    pub deduplicate_by_rowtime: bool,
    /// Whether a replaced row is retracted (`-U`) before its successor
    /// (`+U`). Without, rank 1 of an insert-only input keeps each key's
    /// sort key alone, not its row: nothing reads the row again.
    pub update_before: bool,
    pub input_schema: SchemaRef,
    pub output_schema: SchemaRef,
}

impl RankSpec {
    pub fn name(&self) -> String {
        let partition: Vec<String> = self.partition_by.iter().map(|e| e.to_string()).collect();
        let order = match &self.order {
            RankOrder::Values(sort) => sort
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            RankOrder::Arrival { last_first } => {
                format!("$proctime {}", if *last_first { "DESC" } else { "ASC" })
            }
        };
        if self.keeps_first_row() {
            return format!(
                "Deduplicate(keep=[FirstRow], key=[{}], order=[PROCTIME])",
                partition.join(", ")
            );
        }
        if self.deduplicate_by_rowtime {
            return format!(
                "Deduplicate(keep=[{}], key=[{}], order=[ROWTIME])",
                if self.latest_wins_ties() {
                    "LastRow"
                } else {
                    "FirstRow"
                },
                partition.join(", ")
            );
        }
        format!(
            "Rank(rankType=[ROW_NUMBER], rankRange=[rankStart={}, rankEnd={}], partitionBy=[{}], orderBy=[{order}], select=[{}])",
            self.rank_start,
            self.rank_end,
            partition.join(", "),
            if self.rank_number == RankNumber::Emitted {
                "*, rank"
            } else {
                "*"
            }
        )
    }

    /// Proctime-ordered `= 1` over an insert-only input: the first row per
    /// key, never updated.
    pub fn keeps_first_row(&self) -> bool {
        matches!(self.order, RankOrder::Arrival { last_first: false })
            && self.rank_start == 1
            && self.rank_end == 1
            && !self.updating_input
    }

    /// Rank 1 alone of an insert-only input, other than [`Self::keeps_first_row`]:
    /// one row per key, replaced by better ones.
    pub fn keeps_one_row(&self) -> bool {
        self.rank_start == 1
            && self.rank_end == 1
            && !self.updating_input
            && !self.keeps_first_row()
    }

    /// Whether a row that ties with one before it ranks first.
    fn latest_wins_ties(&self) -> bool {
        match &self.order {
            RankOrder::Arrival { last_first } => *last_first,
            RankOrder::Values(sort) => {
                self.deduplicate_by_rowtime && sort.first().is_some_and(|s| s.options.descending)
            }
        }
    }
}

/// A row's place in its partition: sort key bytes, then arrival (the
/// arrival number alone identifies the row).
type Place = (Box<[u8]>, u64);

/// A partition of an updating input: every row, in rank order, since a
/// retraction can bring a lower row back into the top N.
type Partition = BTreeMap<Place, Box<[u8]>>;

/// Removes a row equal to `row` sorting at `key`, if there is one.
fn retract(partition: &mut Partition, key: &[u8], row: &[u8]) {
    let from = Bound::Included((key.into(), 0));
    let to = Bound::Included((key.into(), u64::MAX));
    let found = partition
        .range::<Place, _>((from, to))
        .find(|(_, r)| r.as_ref() == row)
        .map(|(place, _)| place.clone());
    if let Some(place) = found {
        partition.remove(&place);
    }
}

/// The ranks a Top-N emits, and whether they are in its output.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RankRange {
    /// From 1.
    pub start: usize,
    pub end: usize,
    /// Ranks are in the output: a row moving to another rank is an update.
    pub numbered: bool,
}

/// A row [`ranked_changes`] emits: the `i`-th ranked before or now.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Change {
    Old(usize),
    New(usize),
}

/// The changes from a partition's ranked rows before a batch (`old`, by
/// their arrival orders, best first) to its ranked rows now (`new`), with
/// each row's rank and kind. With the rank in the output (or a single
/// rank), every rank whose row changed emits `-U old`/`+U new`, and `+I`/
/// `-D` when the rank was or becomes empty; without it, rows that left
/// emit `-D` and rows that entered `+I`, ranked 0.
pub(crate) fn ranked_changes(
    range: RankRange,
    old: &[u64],
    new: &[u64],
    mut push: impl FnMut(Change, u64, RowKind),
) {
    if range.numbered || range.start == range.end {
        let rank = |at: usize| (range.start + at) as u64;
        for (at, order) in new.iter().enumerate() {
            match old.get(at) {
                Some(old_order) if old_order == order => {}
                Some(_) => {
                    push(Change::Old(at), rank(at), RowKind::UpdateBefore);
                    push(Change::New(at), rank(at), RowKind::UpdateAfter);
                }
                None => push(Change::New(at), rank(at), RowKind::Insert),
            }
        }
        for gone in new.len()..old.len() {
            push(Change::Old(gone), rank(gone), RowKind::Delete);
        }
        return;
    }
    let mut old_sorted = old.to_vec();
    old_sorted.sort_unstable();
    let mut new_sorted = new.to_vec();
    new_sorted.sort_unstable();
    for (at, order) in new.iter().enumerate() {
        if old_sorted.binary_search(order).is_err() {
            push(Change::New(at), 0, RowKind::Insert);
        }
    }
    for (at, order) in old.iter().enumerate() {
        if new_sorted.binary_search(order).is_err() {
            push(Change::Old(at), 0, RowKind::Delete);
        }
    }
}

/// A partition's ranked rows as they were before a batch, copied, to tell
/// what the batch changed: a retraction can remove them.
#[derive(Debug, Default)]
struct Before {
    /// Per row: its order (its identity in the partition) and its bytes in
    /// `copied`.
    rows: Vec<(u64, std::ops::Range<usize>)>,
    copied: Vec<u8>,
}

impl Before {
    fn remember(&mut self, partition: &Partition, range: RankRange) {
        self.rows.clear();
        self.copied.clear();
        for ((_, order), row) in ranked(partition, range) {
            let from = self.copied.len();
            self.copied.extend_from_slice(row);
            self.rows.push((*order, from..self.copied.len()));
        }
    }

    fn row(&self, i: usize) -> &[u8] {
        &self.copied[self.rows[i].1.clone()]
    }
}

/// The rows of a partition ranked in `range`, best first.
fn ranked(partition: &Partition, range: RankRange) -> impl Iterator<Item = (&Place, &Box<[u8]>)> {
    partition
        .iter()
        .skip(range.start - 1)
        .take(range.end + 1 - range.start)
}

/// The changes a batch of an updating input makes: rows to emit, copied
/// out of their partitions while those are in cache, with their ranks and
/// kinds.
#[derive(Debug, Default)]
struct Changes {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    ranks: Vec<u64>,
    kinds: Vec<u8>,
}

impl Changes {
    fn push(&mut self, row: &[u8], rank: u64, kind: RowKind) {
        self.bytes.extend_from_slice(row);
        self.ends.push(self.bytes.len());
        self.ranks.push(rank);
        self.kinds.push(kind as u8);
    }

    fn rows(&self) -> Vec<&[u8]> {
        let mut start = 0;
        self.ends
            .iter()
            .map(|end| {
                let row = &self.bytes[start..*end];
                start = *end;
                row
            })
            .collect()
    }
}

pub struct Rank {
    spec: Arc<RankSpec>,
    name: String,
    keys: KeyIndex,
    sort: Option<RowConverter>,
    /// Rows of an updating input in row format, and its partitions.
    rows: RowConverter,
    partitions: Vec<Partition>,
    /// The rows kept when only rank 1 is ([`RankSpec::keeps_one_row`]).
    one: TopOne,
    /// The rows kept of an insert-only input otherwise.
    top: TopN,
    /// Arrival counter: ties and processing-time order.
    arrivals: u64,
    /// Key groups of the snapshotted rows.
    max_parallelism: usize,
}

impl std::fmt::Debug for Rank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rank")
            .field("partitions", &self.partitions.len())
            .finish()
    }
}

impl Rank {
    pub fn try_new(spec: Arc<RankSpec>) -> Result<Self> {
        if spec.rank_start == 0 || spec.rank_end < spec.rank_start {
            return Err(DataFusionError::Plan(format!(
                "a rank range must start at 1 or later and not end before it starts, not {}..{}",
                spec.rank_start, spec.rank_end
            )));
        }
        let sort = match &spec.order {
            RankOrder::Values(exprs) => {
                let fields = exprs
                    .iter()
                    .map(|e| {
                        Ok(SortField::new_with_options(
                            e.expr.data_type(&spec.input_schema)?,
                            e.options,
                        ))
                    })
                    .collect::<Result<Vec<_>>>()?;
                Some(RowConverter::new(fields)?)
            }
            RankOrder::Arrival { .. } => None,
        };
        let rows = RowConverter::new(
            spec.input_schema
                .fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        Ok(Self {
            name: spec.name(),
            keys: KeyIndex::for_keys(&spec.partition_schema)?,
            sort,
            rows,
            partitions: Vec::new(),
            one: TopOne::new(spec.update_before),
            top: TopN::default(),
            arrivals: 0,
            max_parallelism: 1,
            spec,
        })
    }

    fn partition_ids(&mut self, data: &RecordBatch) -> Result<Vec<usize>> {
        let n = data.num_rows();
        let keys = self
            .spec
            .partition_by
            .iter()
            .map(|k| k.evaluate(data)?.into_array(n))
            .collect::<Result<Vec<ArrayRef>>>()?;
        self.keys.ids(&keys, n)
    }

    /// The first row of every key not seen before.
    fn first_rows(&mut self, data: &RecordBatch, out: &mut Collector) -> Result<()> {
        let seen = self.keys.len();
        let ids = self.partition_ids(data)?;
        // Ids are dense and new keys get the next ones, in row order.
        let mut next = seen;
        let firsts: UInt32Array = ids
            .iter()
            .enumerate()
            .filter_map(|(row, id)| {
                if *id != next {
                    return None;
                }
                next += 1;
                Some(row as u32)
            })
            .collect();
        if firsts.is_empty() {
            return Ok(());
        }
        let columns = data
            .columns()
            .iter()
            .map(|c| arrow::compute::take(c, &firsts, None))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let ranks = vec![1; firsts.len()];
        let batch = self.output(columns, ranks)?;
        out.emit(StreamBatch::inserts(batch));
        Ok(())
    }

    /// Applies a batch to the one row kept per key.
    fn apply_top_one(&mut self, data: &RecordBatch) -> Result<Option<TopOneChanges>> {
        let ids = self.partition_ids(data)?;
        let sort_keys = self.sort_keys(data)?;
        let order = BatchOrder {
            keys: self.sort.as_ref().zip(sort_keys.as_ref()),
            latest_wins_ties: self.spec.latest_wins_ties(),
        };
        self.one
            .apply(data.columns(), &ids, self.keys.len(), &order)
    }

    fn top_one(&mut self, data: &RecordBatch, out: &mut Collector) -> Result<()> {
        let Some(changes) = self.apply_top_one(data)? else {
            return Ok(());
        };
        let batch = self.output(changes.columns, vec![1; changes.kinds.len()])?;
        out.emit(StreamBatch::try_new_changelog(batch, changes.kinds.into()).map_err(batch_error)?);
        Ok(())
    }

    fn output(&self, mut columns: Vec<ArrayRef>, ranks: Vec<u64>) -> Result<RecordBatch> {
        let rows = ranks.len();
        match self.spec.rank_number {
            RankNumber::Absent => {}
            RankNumber::Emitted => columns.push(Arc::new(UInt64Array::from(ranks))),
            RankNumber::Unused => columns.push(Arc::new(UInt64Array::from(vec![0; rows]))),
        }
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.spec.output_schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?)
    }

    /// The sort key of every row, when rows are ordered by values.
    fn sort_keys(&self, data: &RecordBatch) -> Result<Option<Rows>> {
        match (&self.sort, &self.spec.order) {
            (Some(converter), RankOrder::Values(exprs)) => {
                let columns = exprs
                    .iter()
                    .map(|e| e.expr.evaluate(data)?.into_array(data.num_rows()))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Some(converter.convert_columns(&columns)?))
            }
            _ => Ok(None),
        }
    }

    /// Every kept row with its place in arrival order; or, when only first
    /// rows are kept, the keys seen.
    fn snapshot(&self) -> Result<RecordBatch> {
        if self.spec.keeps_first_row() {
            let ids: Vec<usize> = (0..self.keys.len()).collect();
            let keys = self.keys.keys(&ids)?;
            let groups = key_groups_of(&keys, ids.len(), self.max_parallelism)?;
            return KeyedState::new("keys", groups).group("key", keys).build();
        }
        if self.spec.keeps_one_row() && !self.spec.update_before {
            let (ids, sort_keys) = self.one.sort_keys()?;
            let keys = self.keys.keys(&ids)?;
            let groups = key_groups_of(&keys, ids.len(), self.max_parallelism)?;
            let mut state = KeyedState::new("sort keys", groups).group("key", keys);
            if let Some(converter) = &self.sort {
                state = state.group("sort", converter.convert_rows(sort_keys)?);
            }
            return state.build();
        }
        if self.spec.keeps_one_row() {
            let (ids, columns) = self.one.rows(&self.spec.input_schema)?;
            let keys = self.keys.keys(&ids)?;
            let groups = key_groups_of(&keys, ids.len(), self.max_parallelism)?;
            return KeyedState::new("rows", groups)
                .group("row", columns)
                .build();
        }
        let (ids, orders, columns) = if self.spec.updating_input {
            let mut ids = Vec::new();
            let mut orders = Vec::new();
            let mut rows = Vec::new();
            for (id, partition) in self.partitions.iter().enumerate() {
                for ((_, order), row) in partition {
                    ids.push(id);
                    orders.push(*order);
                    rows.push(row.as_ref());
                }
            }
            let columns = self.decode(&rows)?;
            (ids, orders, columns)
        } else {
            self.top.rows(&self.spec.input_schema)?
        };
        let keys = self.keys.keys(&ids)?;
        let groups = key_groups_of(&keys, ids.len(), self.max_parallelism)?;
        KeyedState::new("rows", groups)
            .column("order", Arc::new(UInt64Array::from(orders)))
            .group("row", columns)
            .build()
    }

    /// Takes over a batch written by [`Rank::snapshot`].
    fn restore(&mut self, state: &StateBatch<'_>) -> Result<()> {
        if self.spec.keeps_first_row() {
            let keys = state.group("key", Some(self.spec.partition_schema.fields().len()))?;
            self.keys.ids(&keys, state.rows())?;
            return Ok(());
        }
        if self.spec.keeps_one_row() && !self.spec.update_before {
            let keys = state.group("key", Some(self.spec.partition_schema.fields().len()))?;
            let ids = self.keys.ids(&keys, state.rows())?;
            let sort_keys = match (&self.sort, &self.spec.order) {
                (Some(converter), RankOrder::Values(exprs)) => {
                    let columns = state.group("sort", Some(exprs.len()))?;
                    Some(converter.convert_columns(&columns)?)
                }
                _ => None,
            };
            let order = BatchOrder {
                keys: self.sort.as_ref().zip(sort_keys.as_ref()),
                latest_wins_ties: self.spec.latest_wins_ties(),
            };
            self.one.apply(&[], &ids, self.keys.len(), &order)?;
            return Ok(());
        }
        let data = state.group_batch("row", &self.spec.input_schema)?;
        if self.spec.keeps_one_row() {
            // Each key's one row: all of them are kept, and what they
            // changed was emitted before the snapshot.
            self.apply_top_one(&data)?;
            return Ok(());
        }
        let orders = state.primitive::<UInt64Type>("order")?;
        let last_first = matches!(self.spec.order, RankOrder::Arrival { last_first: true });
        for order in orders.values() {
            let arrival = if last_first { u64::MAX - order } else { *order };
            self.arrivals = self.arrivals.max(arrival.saturating_add(1));
        }
        if !self.spec.updating_input {
            // The rows kept were emitted before the snapshot: what applying
            // them changes is not emitted again.
            self.apply(&data, orders.values())?;
            return Ok(());
        }
        let ids = self.partition_ids(&data)?;
        self.partitions.resize_with(self.keys.len(), Partition::new);
        let sort_keys = self.sort_keys(&data)?;
        let encoded = self.rows.convert_columns(data.columns())?;
        for (row, id) in ids.iter().enumerate() {
            let sort_key: &[u8] = match &sort_keys {
                Some(keys) => keys.row(row).data(),
                None => &[],
            };
            let place = (sort_key.into(), orders.value(row));
            self.partitions[*id].insert(place, encoded.row(row).as_ref().into());
        }
        Ok(())
    }

    /// The arrival order of each row of a batch of the input.
    fn arrival_orders(&mut self, rows: usize) -> Vec<u64> {
        let first = self.arrivals;
        self.arrivals += rows as u64;
        let last_first = matches!(self.spec.order, RankOrder::Arrival { last_first: true });
        (first..first + rows as u64)
            .map(|arrival| {
                if last_first {
                    u64::MAX - arrival
                } else {
                    arrival
                }
            })
            .collect()
    }

    /// Applies rows of an insert-only input with arrival orders `orders`.
    fn apply(&mut self, data: &RecordBatch, orders: &[u64]) -> Result<Option<TopNChanges>> {
        let ids = self.partition_ids(data)?;
        let sort_keys = self.sort_keys(data)?;
        let input = TopNInput {
            columns: data.columns(),
            ids: &ids,
            keys: self.keys.len(),
            sort: self.sort.as_ref().zip(sort_keys.as_ref()),
            orders,
        };
        self.top.apply(&input, self.range())
    }

    fn range(&self) -> RankRange {
        RankRange {
            start: self.spec.rank_start,
            end: self.spec.rank_end,
            numbered: self.spec.rank_number == RankNumber::Emitted,
        }
    }

    fn top_n(&mut self, data: &RecordBatch, out: &mut Collector) -> Result<()> {
        let orders = self.arrival_orders(data.num_rows());
        let Some(changes) = self.apply(data, &orders)? else {
            return Ok(());
        };
        let batch = self.output(changes.columns, changes.ranks)?;
        out.emit(StreamBatch::try_new_changelog(batch, changes.kinds.into()).map_err(batch_error)?);
        Ok(())
    }

    /// Applies a batch of an updating input, whose partitions keep every row.
    fn process(&mut self, batch: &StreamBatch, out: &mut Collector) -> Result<()> {
        let data = batch.data();
        let ids = self.partition_ids(data)?;
        self.partitions.resize_with(self.keys.len(), Partition::new);
        let sort_keys = self.sort_keys(data)?;
        let encoded = self.rows.convert_columns(data.columns())?;
        let orders = self.arrival_orders(data.num_rows());
        let range = self.range();
        // Each partition's rows one after another, in arrival order: a
        // partition is read, changed and diffed while it is in cache.
        let mut rows: Vec<u32> = (0..data.num_rows() as u32).collect();
        rows.sort_by_key(|row| ids[*row as usize]);
        let mut before = Before::default();
        let mut changes = Changes::default();
        for group in rows.chunk_by(|a, b| ids[*a as usize] == ids[*b as usize]) {
            let partition = &mut self.partitions[ids[group[0] as usize]];
            before.remember(partition, range);
            for row in group.iter().map(|r| *r as usize) {
                let sort_key: &[u8] = match &sort_keys {
                    Some(keys) => keys.row(row).data(),
                    None => &[],
                };
                let bytes = encoded.row(row);
                if batch.row_kind(row).is_accumulate() {
                    partition.insert((sort_key.into(), orders[row]), bytes.as_ref().into());
                } else {
                    retract(partition, sort_key, bytes.as_ref());
                }
            }
            let now: Vec<(u64, &[u8])> = ranked(partition, range)
                .map(|((_, order), row)| (*order, row.as_ref()))
                .collect();
            let old_orders: Vec<u64> = before.rows.iter().map(|(order, _)| *order).collect();
            let new_orders: Vec<u64> = now.iter().map(|(order, _)| *order).collect();
            ranked_changes(range, &old_orders, &new_orders, |change, rank, kind| {
                let row = match change {
                    Change::Old(i) => before.row(i),
                    Change::New(i) => now[i].1,
                };
                changes.push(row, rank, kind);
            });
        }
        self.emit(changes, out)
    }

    /// Rows in the input's row format back as columns.
    fn decode(&self, rows: &[&[u8]]) -> Result<Vec<ArrayRef>> {
        let parser = self.rows.parser();
        Ok(self
            .rows
            .convert_rows(rows.iter().map(|row| parser.parse(row)))?)
    }

    fn emit(&self, changes: Changes, out: &mut Collector) -> Result<()> {
        if changes.kinds.is_empty() {
            return Ok(());
        }
        let columns = self.decode(&changes.rows())?;
        let batch = self.output(columns, changes.ranks)?;
        out.emit(StreamBatch::try_new_changelog(batch, changes.kinds.into()).map_err(batch_error)?);
        Ok(())
    }
}

impl Operator for Rank {
    fn name(&self) -> &str {
        &self.name
    }

    fn open(&mut self, context: &OperatorContext) -> Result<()> {
        self.max_parallelism = context.max_parallelism;
        Ok(())
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<Option<OperatorState>> {
        Ok(Some(OperatorState {
            batches: vec![self.snapshot()?],
        }))
    }

    fn restore_state(&mut self, state: OperatorState) -> Result<()> {
        for batch in &state.batches {
            let name = self.name.clone();
            self.restore(&StateBatch::new(batch, &name))?;
        }
        Ok(())
    }

    fn process_batch(
        &mut self,
        _input: usize,
        batch: StreamBatch,
        out: &mut Collector,
    ) -> Result<()> {
        if !self.spec.updating_input && !batch.is_insert_only() {
            return Err(DataFusionError::Internal(
                "a Top-N planned for an insert-only input received updates".into(),
            ));
        }
        if self.spec.keeps_first_row() {
            self.first_rows(batch.data(), out)
        } else if self.spec.keeps_one_row() {
            self.top_one(batch.data(), out)
        } else if self.spec.updating_input {
            self.process(&batch, out)
        } else {
            self.top_n(batch.data(), out)
        }
    }
}

#[derive(Debug)]
pub struct RankFactory(pub Arc<RankSpec>);

impl OperatorFactory for RankFactory {
    fn name(&self) -> String {
        self.0.name()
    }

    fn create(&self, _context: &OperatorContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(Rank::try_new(Arc::clone(&self.0))?))
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Int64Array, UInt8Array};
    use arrow::compute::SortOptions;
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use datafusion::physical_expr::expressions::Column;

    use super::*;

    fn rank(limit: usize, number: RankNumber, updating: bool, order: Option<bool>) -> Rank {
        let input = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Int64, false),
        ]));
        let mut fields = input.fields().to_vec();
        if number != RankNumber::Absent {
            fields.push(Arc::new(Field::new("rn", DataType::UInt64, false)));
        }
        let order = match order {
            None => RankOrder::Values(vec![PhysicalSortExpr {
                expr: Arc::new(Column::new("v", 1)),
                options: SortOptions {
                    descending: true,
                    nulls_first: false,
                },
            }]),
            Some(last_first) => RankOrder::Arrival { last_first },
        };
        Rank::try_new(Arc::new(RankSpec {
            partition_by: vec![Arc::new(Column::new("k", 0))],
            partition_schema: Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)])),
            order,
            rank_start: 1,
            rank_end: limit,
            rank_number: number,
            updating_input: updating,
            deduplicate_by_rowtime: false,
            update_before: true,
            input_schema: input,
            output_schema: Arc::new(Schema::new(fields)),
        }))
        .expect("rank")
    }

    fn feed(r: &mut Rank, rows: &[(i64, i64)], kinds: &[u8]) -> Vec<String> {
        let k: Int64Array = rows.iter().map(|r| r.0).collect();
        let v: Int64Array = rows.iter().map(|r| r.1).collect();
        let data = RecordBatch::try_new(
            Arc::clone(&r.spec.input_schema),
            vec![Arc::new(k), Arc::new(v)],
        )
        .expect("batch");
        let batch = StreamBatch::try_new_changelog(data, UInt8Array::from(kinds.to_vec()))
            .expect("changelog");
        let mut out = Collector::default();
        r.process_batch(0, batch, &mut out).expect("process");
        let mut lines = Vec::new();
        for b in out.take() {
            let d = b.data();
            for row in 0..d.num_rows() {
                let k = d.column(0).as_primitive::<Int64Type>().value(row);
                let v = d.column(1).as_primitive::<Int64Type>().value(row);
                let rank = (d.num_columns() > 2)
                    .then(|| d.column(2).as_primitive::<UInt64Type>().value(row));
                lines.push(match rank {
                    Some(n) => format!("{}[{k}, {v}, #{n}]", b.row_kind(row)),
                    None => format!("{}[{k}, {v}]", b.row_kind(row)),
                });
            }
        }
        lines
    }

    #[test]
    fn top_two_with_ranks_shifts_the_rows_below() {
        let mut r = rank(2, RankNumber::Emitted, false, None);
        assert_eq!(
            feed(&mut r, &[(1, 10), (2, 5)], &[0, 0]),
            ["+I[1, 10, #1]", "+I[2, 5, #1]"]
        );
        assert_eq!(
            feed(&mut r, &[(1, 20)], &[0]),
            ["-U[1, 10, #1]", "+U[1, 20, #1]", "+I[1, 10, #2]"]
        );
        assert_eq!(
            feed(&mut r, &[(1, 15)], &[0]),
            ["-U[1, 10, #2]", "+U[1, 15, #2]"]
        );
        // Below the top two: nothing.
        assert!(feed(&mut r, &[(1, 1)], &[0]).is_empty());
        assert_eq!(r.top.kept(0), 2, "an insert-only Top-N keeps only N rows");
    }

    #[test]
    fn without_ranks_only_rows_entering_and_leaving_are_emitted() {
        let mut r = rank(2, RankNumber::Unused, false, None);
        feed(&mut r, &[(1, 10), (1, 5)], &[0, 0]);
        assert_eq!(
            feed(&mut r, &[(1, 20)], &[0]),
            ["+I[1, 20, #0]", "-D[1, 5, #0]"]
        );
    }

    #[test]
    fn retractions_bring_lower_rows_back() {
        let mut r = rank(1, RankNumber::Absent, true, None);
        assert_eq!(feed(&mut r, &[(1, 10), (1, 20)], &[0, 0]), ["+I[1, 20]"]);
        assert_eq!(feed(&mut r, &[(1, 20)], &[3]), ["-U[1, 20]", "+U[1, 10]"]);
        assert_eq!(feed(&mut r, &[(1, 10)], &[3]), ["-D[1, 10]"]);
    }

    #[test]
    fn deduplication_by_arrival() {
        let mut first = rank(1, RankNumber::Unused, false, Some(false));
        assert!(first.spec.keeps_first_row());
        assert_eq!(
            feed(&mut first, &[(1, 10), (1, 11), (2, 20)], &[0, 0, 0]),
            ["+I[1, 10, #0]", "+I[2, 20, #0]"]
        );
        assert!(feed(&mut first, &[(1, 12)], &[0]).is_empty());
        let mut last = rank(1, RankNumber::Unused, false, Some(true));
        assert_eq!(
            feed(&mut last, &[(1, 10), (1, 11)], &[0, 0]),
            ["+I[1, 11, #0]"]
        );
        assert_eq!(
            feed(&mut last, &[(1, 12)], &[0]),
            ["-U[1, 11, #0]", "+U[1, 12, #0]"]
        );
        assert_eq!(last.one.stored_rows(), 1, "a replaced row's batch is freed");
    }

    /// `r` as planned under a sink that ignores `-U` rows.
    fn without_update_before(r: &Rank) -> Rank {
        let mut spec = RankSpec::clone(&r.spec);
        spec.update_before = false;
        Rank::try_new(Arc::new(spec)).expect("rank")
    }

    #[test]
    fn without_update_before_a_top_one_emits_what_it_would_but_the_retractions() {
        // By value, the largest first; by arrival, the last first.
        for order in [None, Some(true)] {
            let new = || rank(1, RankNumber::Emitted, false, order);
            let mut with = new();
            let mut without = without_update_before(&with);
            let mut random = 7_u64;
            for step in 0..40 {
                let rows: Vec<(i64, i64)> = (0..1 + step % 5)
                    .map(|_| {
                        random = random.wrapping_mul(6364136223846793005).wrapping_add(1);
                        ((random >> 60) as i64 % 6, (random >> 40) as i64 % 1000)
                    })
                    .collect();
                let kinds = vec![0; rows.len()];
                let mut expected = feed(&mut with, &rows, &kinds);
                expected.retain(|line| !line.starts_with("-U"));
                assert_eq!(
                    feed(&mut without, &rows, &kinds),
                    expected,
                    "{order:?}, step {step}"
                );
                if step == 20 {
                    without = restored(&mut without, || without_update_before(&with));
                }
            }
            assert_eq!(without.one.stored_columns(), 0, "only sort keys are kept");
            assert!(with.one.stored_columns() > 0);
        }
    }

    /// A copy of `r` restored from its snapshot, built by `new`.
    fn restored(r: &mut Rank, new: impl Fn() -> Rank) -> Rank {
        let state = r.snapshot_state(1).expect("snapshot").expect("state");
        let mut copy = new();
        copy.restore_state(state).expect("restore");
        copy
    }

    #[test]
    fn restored_ranks_go_on_as_if_never_stopped() {
        let cases: [(usize, bool, Option<bool>); 4] = [
            (2, false, None),
            (2, true, None),
            (1, false, Some(false)),
            (1, false, Some(true)),
        ];
        for (limit, updating, order) in cases {
            let new = || rank(limit, RankNumber::Emitted, updating, order);
            let mut r = new();
            feed(&mut r, &[(1, 10), (1, 30), (2, 5), (1, 20)], &[0, 0, 0, 0]);
            let mut copy = restored(&mut r, new);
            let steps: [(&[(i64, i64)], &[u8]); 3] = [
                (&[(1, 25), (2, 6)], &[0, 0]),
                (&[(3, 1), (1, 30)], &[0, 0]),
                (&[(2, 5)], &[if updating { 3 } else { 0 }]),
            ];
            for (rows, kinds) in steps {
                assert_eq!(
                    feed(&mut copy, rows, kinds),
                    feed(&mut r, rows, kinds),
                    "limit {limit}, updating {updating}, order {order:?}"
                );
            }
        }
    }

    /// Keeps the best `limit` rows per `k` of `(k, <second>, tag)` rows, by
    /// the second column descending; Flink's Deduplicate when `by_rowtime`.
    fn best_by_second(second: &str, limit: usize, number: RankNumber, by_rowtime: bool) -> Rank {
        let input = Arc::new(Schema::new(
            ["k", second, "tag"]
                .map(|name| Field::new(name, DataType::Int64, false))
                .to_vec(),
        ));
        let mut output = input.fields().to_vec();
        if number != RankNumber::Absent {
            output.push(Arc::new(Field::new("rn", DataType::UInt64, false)));
        }
        Rank::try_new(Arc::new(RankSpec {
            partition_by: vec![Arc::new(Column::new("k", 0))],
            partition_schema: Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)])),
            order: RankOrder::Values(vec![PhysicalSortExpr {
                expr: Arc::new(Column::new(second, 1)),
                options: SortOptions {
                    descending: true,
                    nulls_first: false,
                },
            }]),
            rank_start: 1,
            rank_end: limit,
            rank_number: number,
            updating_input: false,
            deduplicate_by_rowtime: by_rowtime,
            update_before: true,
            input_schema: input,
            output_schema: Arc::new(Schema::new(output)),
        }))
        .expect("rank")
    }

    /// Keeps the row with the latest `t` per `k` of `(k, t, tag)` rows: a
    /// Top-1, or Flink's Deduplicate when `by_rowtime`.
    fn last_by_time(by_rowtime: bool) -> Rank {
        best_by_second("t", 1, RankNumber::Absent, by_rowtime)
    }

    fn feed_rows(r: &mut Rank, rows: &[[i64; 3]]) -> Vec<(RowKind, [i64; 3])> {
        feed_ranked(r, rows)
            .into_iter()
            .map(|(kind, row, _)| (kind, row))
            .collect()
    }

    #[test]
    fn a_tie_on_time_replaces_the_kept_row_only_in_a_deduplication_by_rowtime() {
        use RowKind::{Insert, UpdateAfter, UpdateBefore};
        for (by_rowtime, winner) in [(false, 1), (true, 2)] {
            let mut r = last_by_time(by_rowtime);
            // Within a batch...
            let first = feed_rows(&mut r, &[[1, 5, 1], [1, 5, 2], [2, 3, 3]]);
            assert_eq!(first, [(Insert, [1, 5, winner]), (Insert, [2, 3, 3])]);
            // ... and against the row kept from an earlier batch.
            let next = feed_rows(&mut r, &[[1, 5, 4]]);
            if by_rowtime {
                assert_eq!(next, [(UpdateBefore, [1, 5, 2]), (UpdateAfter, [1, 5, 4])]);
            } else {
                assert!(next.is_empty());
            }
            // An earlier time never takes the place of a later one.
            assert!(feed_rows(&mut r, &[[1, 4, 5]]).is_empty());
        }
        assert_eq!(
            last_by_time(true).name,
            "Deduplicate(keep=[LastRow], key=[k@0], order=[ROWTIME])"
        );
    }

    /// The best `limit` rows of `(k, v, tag)` rows per `k` by `v`
    /// descending, with their ranks.
    fn top_by_value(limit: usize, number: RankNumber) -> Rank {
        best_by_second("v", limit, number, false)
    }

    /// Random `(k, v, tag)` rows: `keys` keys, values with ties, tags in
    /// arrival order.
    fn random_rows(seed: &mut u64, batch: i64, rows: i64, keys: i64) -> Vec<[i64; 3]> {
        (0..rows)
            .map(|i| {
                *seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                [
                    (*seed >> 33) as i64 % keys,
                    (*seed >> 13) as i64 % 500,
                    batch * rows + i,
                ]
            })
            .collect()
    }

    /// Feeds `(k, v, tag)` rows; the changes with their ranks (0 when the
    /// output has none).
    fn feed_ranked(r: &mut Rank, rows: &[[i64; 3]]) -> Vec<(RowKind, [i64; 3], u64)> {
        let columns = (0..3)
            .map(|c| Arc::new(rows.iter().map(|row| row[c]).collect::<Int64Array>()) as ArrayRef)
            .collect();
        let data = RecordBatch::try_new(Arc::clone(&r.spec.input_schema), columns).expect("batch");
        let mut out = Collector::default();
        r.process_batch(0, StreamBatch::inserts(data), &mut out)
            .expect("process");
        let mut changes = Vec::new();
        for b in out.take() {
            let d = b.data();
            for row in 0..d.num_rows() {
                let value = |c: usize| d.column(c).as_primitive::<Int64Type>().value(row);
                let rank = (d.num_columns() > 3)
                    .then(|| d.column(3).as_primitive::<UInt64Type>().value(row))
                    .unwrap_or(0);
                changes.push((b.row_kind(row), [value(0), value(1), value(2)], rank));
            }
        }
        changes
    }

    #[test]
    fn a_top_n_keeps_each_keys_best_rows_with_their_ranks() {
        for number in [RankNumber::Emitted, RankNumber::Unused] {
            let new = || top_by_value(3, number);
            let mut r = new();
            let mut copy = None;
            // The changelog applied, and what it should leave: per key its
            // rows, best first, ties in arrival order. With ranks, a row is
            // its key and rank; without, its key and unique tag.
            let mut table: BTreeMap<(i64, i64), [i64; 3]> = BTreeMap::new();
            let mut model: BTreeMap<i64, Vec<[i64; 3]>> = BTreeMap::new();
            let numbered = number == RankNumber::Emitted;
            let mut seed = 11u64;
            for batch in 0..300 {
                let rows = random_rows(&mut seed, batch, 40, 60);
                for row in &rows {
                    let kept = model.entry(row[0]).or_default();
                    let at = kept.partition_point(|k| k[1] >= row[1]);
                    kept.insert(at, *row);
                    kept.truncate(3);
                }
                let changes = feed_ranked(&mut r, &rows);
                for (kind, row, rank) in &changes {
                    let id = if numbered { *rank as i64 } else { row[2] };
                    if !numbered {
                        assert_eq!(*rank, 0);
                    }
                    match kind {
                        RowKind::Insert | RowKind::UpdateAfter => {
                            let old = table.insert((row[0], id), *row);
                            assert!(old.is_none(), "{row:?} #{rank} over {old:?}");
                        }
                        RowKind::UpdateBefore | RowKind::Delete => {
                            assert_eq!(table.remove(&(row[0], id)), Some(*row), "{kind:?}");
                        }
                    }
                }
                let expected: BTreeMap<(i64, i64), [i64; 3]> = model
                    .values()
                    .flat_map(|kept| kept.iter().enumerate())
                    .map(|(at, row)| {
                        let id = if numbered { at as i64 + 1 } else { row[2] };
                        ((row[0], id), *row)
                    })
                    .collect();
                assert_eq!(table, expected, "{number:?}, after batch {batch}");
                let live: usize = model.values().map(Vec::len).sum();
                assert!(
                    r.top.stored_rows() <= 2 * live + 8 * 40,
                    "{} rows stored for {live} kept",
                    r.top.stored_rows()
                );
                if let Some(copy) = copy.as_mut() {
                    assert_eq!(feed_ranked(copy, &rows), changes, "restored, batch {batch}");
                }
                if batch == 150 {
                    copy = Some(restored(&mut r, new));
                }
            }
        }
    }

    #[test]
    fn a_top_one_keeps_each_keys_best_row_and_gives_replaced_rows_back() {
        let mut r = last_by_time(false);
        let mut copy = None;
        // The changelog applied, and the rows it should leave.
        let mut table = BTreeMap::new();
        let mut best: BTreeMap<i64, [i64; 3]> = BTreeMap::new();
        let mut seed = 7u64;
        for batch in 0..300 {
            let rows: Vec<[i64; 3]> = (0..40)
                .map(|i| {
                    seed = seed
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    [
                        (seed >> 33) as i64 % 200,
                        (seed >> 13) as i64 % 5000,
                        batch * 40 + i,
                    ]
                })
                .collect();
            for row in &rows {
                if best.get(&row[0]).is_none_or(|kept| row[1] > kept[1]) {
                    best.insert(row[0], *row);
                }
            }
            let changes = feed_rows(&mut r, &rows);
            for (kind, row) in &changes {
                match kind {
                    RowKind::Insert | RowKind::UpdateAfter => {
                        assert!(table.insert(row[0], *row).is_none(), "{row:?} over a row");
                    }
                    RowKind::UpdateBefore => assert_eq!(table.remove(&row[0]), Some(*row)),
                    RowKind::Delete => panic!("a Top-1 of an insert-only input deletes nothing"),
                }
            }
            assert_eq!(table, best, "after batch {batch}");
            assert!(
                r.one.stored_rows() <= 2 * best.len(),
                "{} rows stored for {} keys",
                r.one.stored_rows(),
                best.len()
            );
            if let Some(copy) = copy.as_mut() {
                assert_eq!(feed_rows(copy, &rows), changes, "restored, batch {batch}");
            }
            if batch == 150 {
                copy = Some(restored(&mut r, || last_by_time(false)));
            }
        }
    }
}
