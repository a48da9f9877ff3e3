//! Top-N and deduplication over unbounded streams (Flink's `Rank` and
//! `Deduplicate`): `ROW_NUMBER() OVER (PARTITION BY k ORDER BY ...)` kept
//! to the rows ranked `rank_start..=rank_end`, and `ORDER BY ... LIMIT n`.
//!
//! Each partition keeps its rows ordered by the sort key (Arrow row-format
//! bytes, so byte order is SQL order) and then arrival, so ties rank in
//! arrival order as in Flink. Over an insert-only input a partition keeps
//! only its first `rank_end` rows, in a sorted vector whose keys and rows
//! share one buffer (a Top-N is memory-bound: rows in allocations of their
//! own cost a cache miss each time they are read); a row that cannot enter
//! is dropped at once. Over an updating input every row is kept, in a
//! `BTreeMap`, since a retraction can bring a lower row back into the top N.
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
//! kept (`DESC`), where a Top-N would rank it second.

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

/// Where a row sits in a [`BoundedRows`] buffer.
#[derive(Debug, Clone, Copy)]
struct Slot {
    order: u64,
    key_start: u32,
    row_start: u32,
    row_end: u32,
}

/// The top rows of a partition over an insert-only input, sorted: at most
/// `rank_end` of them. Their keys and rows are appended to one buffer; an
/// evicted row leaves a hole there until [`BoundedRows::compact`].
#[derive(Debug, Default)]
struct BoundedRows {
    slots: Vec<Slot>,
    bytes: Vec<u8>,
}

impl BoundedRows {
    fn key(&self, slot: &Slot) -> &[u8] {
        &self.bytes[slot.key_start as usize..slot.row_start as usize]
    }

    fn row(&self, slot: &Slot) -> &[u8] {
        &self.bytes[slot.row_start as usize..slot.row_end as usize]
    }

    fn insert(&mut self, key: &[u8], order: u64, row: &[u8], limit: usize) -> Result<()> {
        let at = self
            .slots
            .partition_point(|s| (self.key(s), s.order) < (key, order));
        if at >= limit {
            return Ok(());
        }
        let offset = |len: usize| {
            u32::try_from(len).map_err(|_| {
                DataFusionError::ResourcesExhausted("a Top-N partition's rows exceed 4 GiB".into())
            })
        };
        let key_start = offset(self.bytes.len())?;
        self.bytes.extend_from_slice(key);
        let row_start = offset(self.bytes.len())?;
        self.bytes.extend_from_slice(row);
        let row_end = offset(self.bytes.len())?;
        self.slots.insert(
            at,
            Slot {
                order,
                key_start,
                row_start,
                row_end,
            },
        );
        self.slots.truncate(limit);
        Ok(())
    }

    /// Drops the bytes of evicted rows once they outweigh the live ones.
    /// Not while a batch may still read them.
    fn compact(&mut self) {
        let live: usize = self
            .slots
            .iter()
            .map(|s| (s.row_end - s.key_start) as usize)
            .sum();
        if self.bytes.len() <= 2 * live + 256 {
            return;
        }
        let mut bytes = Vec::with_capacity(2 * live);
        for slot in &mut self.slots {
            // The live bytes are fewer than the old buffer's, whose offsets fit in u32.
            let start = bytes.len() as u32;
            bytes.extend_from_slice(&self.bytes[slot.key_start as usize..slot.row_end as usize]);
            *slot = Slot {
                order: slot.order,
                key_start: start,
                row_start: start + (slot.row_start - slot.key_start),
                row_end: start + (slot.row_end - slot.key_start),
            };
        }
        self.bytes = bytes;
    }
}

/// A partition's rows in rank order.
#[derive(Debug)]
enum Partition {
    Bounded(BoundedRows),
    All(BTreeMap<Place, Box<[u8]>>),
}

impl Partition {
    fn new(bounded: bool) -> Self {
        if bounded {
            Partition::Bounded(BoundedRows::default())
        } else {
            Partition::All(BTreeMap::new())
        }
    }
}

impl Partition {
    fn len(&self) -> usize {
        match self {
            Partition::Bounded(b) => b.slots.len(),
            Partition::All(map) => map.len(),
        }
    }

    /// Whether a row at `(key, order)` would rank after every row held.
    fn after_last(&self, key: &[u8], order: u64) -> bool {
        match self {
            Partition::Bounded(b) => b
                .slots
                .last()
                .is_some_and(|last| (key, order) > (b.key(last), last.order)),
            Partition::All(map) => map
                .last_key_value()
                .is_some_and(|(last, _)| (key, order) > (last.0.as_ref(), last.1)),
        }
    }

    /// Calls `f` with the order and row of each row ranked
    /// `start..=end` (1-based), best first.
    fn for_each_ranked<'a>(&'a self, start: usize, end: usize, mut f: impl FnMut(u64, &'a [u8])) {
        let take = end + 1 - start;
        match self {
            Partition::Bounded(b) => b
                .slots
                .iter()
                .skip(start - 1)
                .take(take)
                .for_each(|s| f(s.order, b.row(s))),
            Partition::All(map) => map
                .iter()
                .skip(start - 1)
                .take(take)
                .for_each(|(place, row)| f(place.1, row)),
        }
    }

    fn insert(&mut self, key: &[u8], order: u64, row: &[u8], limit: usize) -> Result<()> {
        match self {
            Partition::Bounded(b) => b.insert(key, order, row, limit),
            Partition::All(map) => {
                map.insert((key.into(), order), row.into());
                Ok(())
            }
        }
    }

    /// Removes a row equal to `row` sorting at `key`, if there is one.
    fn retract(&mut self, key: &[u8], row: &[u8]) {
        if let Partition::All(map) = self {
            let from = Bound::Included((key.into(), 0));
            let to = Bound::Included((key.into(), u64::MAX));
            let found = map
                .range::<Place, _>((from, to))
                .find(|(_, r)| r.as_ref() == row)
                .map(|(place, _)| place.clone());
            if let Some(place) = found {
                map.remove(&place);
            }
        }
    }
}

/// A partition's top N as it was before a batch, to tell what the batch
/// changed. A bounded partition only appends to its buffer during a batch,
/// so its old rows are read there; the rows of an unbounded one, which a
/// retraction can remove, are copied.
#[derive(Debug, Default)]
struct Before {
    /// Per row: its order (its identity in the partition) and where its
    /// bytes are, in the partition's buffer or in `copied`.
    rows: Vec<(u64, std::ops::Range<usize>)>,
    copied: Vec<u8>,
}

impl Before {
    fn remember(&mut self, rows: &Partition, start: usize, end: usize) {
        match rows {
            Partition::Bounded(b) => {
                for slot in b.slots.iter().skip(start - 1).take(end + 1 - start) {
                    let range = slot.row_start as usize..slot.row_end as usize;
                    self.rows.push((slot.order, range));
                }
            }
            Partition::All(_) => rows.for_each_ranked(start, end, |order, row| {
                let from = self.copied.len();
                self.copied.extend_from_slice(row);
                self.rows.push((order, from..self.copied.len()));
            }),
        }
    }

    fn clear(&mut self) {
        self.rows.clear();
        self.copied.clear();
    }

    /// The bytes the rows of a partition's `before` ranges are in.
    fn bytes<'a>(&'a self, now: &'a Partition) -> &'a [u8] {
        match now {
            Partition::Bounded(b) => &b.bytes,
            Partition::All(_) => &self.copied,
        }
    }
}

/// The changes a batch makes: rows to emit, copied out of their
/// partitions while those are in cache, with their ranks and kinds.
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
    rows: RowConverter,
    partitions: Vec<Partition>,
    /// The rows kept when only rank 1 is ([`RankSpec::keeps_one_row`]).
    one: TopOne,
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
            one: TopOne::default(),
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
        if self.spec.keeps_one_row() {
            let (ids, columns) = self.one.rows(&self.spec.input_schema)?;
            let keys = self.keys.keys(&ids)?;
            let groups = key_groups_of(&keys, ids.len(), self.max_parallelism)?;
            return KeyedState::new("rows", groups)
                .group("row", columns)
                .build();
        }
        let mut ids = Vec::new();
        let mut orders = Vec::new();
        let mut rows = Vec::new();
        for (id, partition) in self.partitions.iter().enumerate() {
            let held = partition.len();
            if held > 0 {
                partition.for_each_ranked(1, held, |order, row| {
                    ids.push(id);
                    orders.push(order);
                    rows.push(row);
                });
            }
        }
        let keys = self.keys.keys(&ids)?;
        let groups = key_groups_of(&keys, ids.len(), self.max_parallelism)?;
        let columns = self.decode(&rows)?;
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
        let data = state.group_batch("row", &self.spec.input_schema)?;
        if self.spec.keeps_one_row() {
            // Each key's one row: all of them are kept, and what they
            // changed was emitted before the snapshot.
            self.apply_top_one(&data)?;
            return Ok(());
        }
        let orders = state.primitive::<UInt64Type>("order")?;
        let ids = self.partition_ids(&data)?;
        self.add_partitions();
        let sort_keys = self.sort_keys(&data)?;
        let encoded = self.rows.convert_columns(data.columns())?;
        let last_first = matches!(self.spec.order, RankOrder::Arrival { last_first: true });
        for (row, id) in ids.iter().enumerate() {
            let order = orders.value(row);
            let arrival = if last_first { u64::MAX - order } else { order };
            self.arrivals = self.arrivals.max(arrival.saturating_add(1));
            let sort_key: &[u8] = match &sort_keys {
                Some(keys) => keys.row(row).data(),
                None => &[],
            };
            self.partitions[*id].insert(
                sort_key,
                order,
                encoded.row(row).as_ref(),
                self.spec.rank_end,
            )?;
        }
        Ok(())
    }

    fn add_partitions(&mut self) {
        let bounded = !self.spec.updating_input;
        self.partitions
            .resize_with(self.keys.len(), || Partition::new(bounded));
    }

    fn process(&mut self, batch: &StreamBatch, out: &mut Collector) -> Result<()> {
        let data = batch.data();
        let ids = self.partition_ids(data)?;
        self.add_partitions();
        let sort_keys = self.sort_keys(data)?;
        let encoded = self.rows.convert_columns(data.columns())?;
        let spec = Arc::clone(&self.spec);
        let last_first = matches!(spec.order, RankOrder::Arrival { last_first: true });
        let bounded = !spec.updating_input;
        let first_arrival = self.arrivals;
        self.arrivals += data.num_rows() as u64;
        // Each partition's rows one after another, in arrival order: a
        // partition is read, changed and diffed while it is in cache.
        let mut rows: Vec<u32> = (0..data.num_rows() as u32).collect();
        rows.sort_by_key(|row| ids[*row as usize]);
        let mut before = Before::default();
        let mut changes = Changes::default();
        for group in rows.chunk_by(|a, b| ids[*a as usize] == ids[*b as usize]) {
            let partition = &mut self.partitions[ids[group[0] as usize]];
            let mut touched = false;
            for row in group.iter().map(|r| *r as usize) {
                let arrival = first_arrival + row as u64;
                let order = if last_first {
                    u64::MAX - arrival
                } else {
                    arrival
                };
                let sort_key: &[u8] = match &sort_keys {
                    Some(keys) => keys.row(row).data(),
                    None => &[],
                };
                let accumulate = batch.row_kind(row).is_accumulate();
                // Over an insert-only input a row after a full top N changes nothing.
                if bounded
                    && accumulate
                    && partition.len() >= spec.rank_end
                    && partition.after_last(sort_key, order)
                {
                    continue;
                }
                if !touched {
                    touched = true;
                    before.remember(partition, spec.rank_start, spec.rank_end);
                }
                let bytes = encoded.row(row);
                if accumulate {
                    partition.insert(sort_key, order, bytes.as_ref(), spec.rank_end)?;
                } else {
                    partition.retract(sort_key, bytes.as_ref());
                }
            }
            if touched {
                diff(&spec, &before, partition, &mut changes);
                before.clear();
                if let Partition::Bounded(rows) = partition {
                    rows.compact();
                }
            }
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

/// Adds the changes from a partition's top N before a batch to its top N now.
fn diff(spec: &RankSpec, before: &Before, now: &Partition, changes: &mut Changes) {
    let (start, end) = (spec.rank_start, spec.rank_end);
    let old = &before.rows;
    let old_bytes = before.bytes(now);
    let old_row = |i: usize| &old_bytes[old[i].1.clone()];
    if spec.rank_number == RankNumber::Emitted || start == end {
        let rank = |at: usize| (start + at) as u64;
        let mut at = 0;
        now.for_each_ranked(start, end, |order, row| {
            match old.get(at) {
                Some((old_order, _)) if *old_order == order => {}
                Some(_) => {
                    changes.push(old_row(at), rank(at), RowKind::UpdateBefore);
                    changes.push(row, rank(at), RowKind::UpdateAfter);
                }
                None => changes.push(row, rank(at), RowKind::Insert),
            }
            at += 1;
        });
        for gone in at..old.len() {
            changes.push(old_row(gone), rank(gone), RowKind::Delete);
        }
        return;
    }
    let mut old_orders: Vec<u64> = old.iter().map(|(order, _)| *order).collect();
    old_orders.sort_unstable();
    let mut new_orders = Vec::new();
    now.for_each_ranked(start, end, |order, row| {
        new_orders.push(order);
        if old_orders.binary_search(&order).is_err() {
            changes.push(row, 0, RowKind::Insert);
        }
    });
    new_orders.sort_unstable();
    for (i, (order, _)) in old.iter().enumerate() {
        if new_orders.binary_search(order).is_err() {
            changes.push(old_row(i), 0, RowKind::Delete);
        }
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
        } else {
            self.process(&batch, out)
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
    fn bounded_rows_stay_sorted_and_give_evicted_bytes_back() {
        let mut rows = BoundedRows::default();
        // Each row beats the ones before it, pushing the worst out.
        for i in 0..1000u32 {
            let key = (u32::MAX - i).to_be_bytes();
            rows.insert(&key, u64::from(i), &i.to_le_bytes(), 3)
                .expect("insert");
            rows.compact();
        }
        // A tie ranks after the row that came first; past the limit, nothing.
        rows.insert(&(u32::MAX - 999).to_be_bytes(), 1000, b"tie", 3)
            .expect("insert");
        rows.insert(&[0xff; 8], 1001, b"last", 3).expect("insert");
        let mut ranked = Vec::new();
        Partition::Bounded(rows)
            .for_each_ranked(1, 3, |order, row| ranked.push((order, row.to_vec())));
        assert_eq!(
            ranked,
            [
                (999, 999u32.to_le_bytes().to_vec()),
                (1000, b"tie".to_vec()),
                (998, 998u32.to_le_bytes().to_vec())
            ]
        );
    }

    #[test]
    fn compaction_keeps_each_rows_key_and_bytes() {
        let mut rows = BoundedRows::default();
        for i in 0..200u8 {
            // Each row beats the ones before: buffer order is the reverse of rank order.
            let key = [255 - i, i % 7];
            rows.insert(&key, u64::from(i), &[i; 5], 4).expect("insert");
        }
        let before: Vec<(Vec<u8>, Vec<u8>)> = rows
            .slots
            .iter()
            .map(|s| (rows.key(s).to_vec(), rows.row(s).to_vec()))
            .collect();
        rows.compact();
        assert!(rows.bytes.len() <= 4 * 7);
        let after: Vec<(Vec<u8>, Vec<u8>)> = rows
            .slots
            .iter()
            .map(|s| (rows.key(s).to_vec(), rows.row(s).to_vec()))
            .collect();
        assert_eq!(before, after);
        assert_eq!(before[0], (vec![56, 199 % 7], vec![199; 5]));
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
        assert_eq!(
            r.partitions[0].len(),
            2,
            "an insert-only Top-N keeps only N rows"
        );
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

    /// Keeps the row with the latest `t` per `k` of `(k, t, tag)` rows: a
    /// Top-1, or Flink's Deduplicate when `by_rowtime`.
    fn last_by_time(by_rowtime: bool) -> Rank {
        let input = Arc::new(Schema::new(
            ["k", "t", "tag"]
                .map(|name| Field::new(name, DataType::Int64, false))
                .to_vec(),
        ));
        Rank::try_new(Arc::new(RankSpec {
            partition_by: vec![Arc::new(Column::new("k", 0))],
            partition_schema: Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)])),
            order: RankOrder::Values(vec![PhysicalSortExpr {
                expr: Arc::new(Column::new("t", 1)),
                options: SortOptions {
                    descending: true,
                    nulls_first: false,
                },
            }]),
            rank_start: 1,
            rank_end: 1,
            rank_number: RankNumber::Absent,
            updating_input: false,
            deduplicate_by_rowtime: by_rowtime,
            input_schema: Arc::clone(&input),
            output_schema: input,
        }))
        .expect("rank")
    }

    fn feed_rows(r: &mut Rank, rows: &[[i64; 3]]) -> Vec<(RowKind, [i64; 3])> {
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
                changes.push((b.row_kind(row), [value(0), value(1), value(2)]));
            }
        }
        changes
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
