//! The event-time temporal join (Flink's `TemporalJoin` on rowtime):
//! `o JOIN versioned FOR SYSTEM_TIME AS OF o.ts AS v ON o.k = v.pk`.
//!
//! The right input is a versioned table: a changelog keyed by its primary
//! key, each row a version of its key valid from its rowtime on (`+I`/`+U`),
//! a `-D` ending the key's versions at its time, `-U` carrying nothing new.
//! Versions are kept per key in time order.
//!
//! Left rows wait until the watermark (the minimum over both inputs) passes
//! their time; then no version at or before that time can still arrive, and
//! each joins the version of its key that was current at its time: the
//! latest at or before it. Without one (or when it is a delete) an inner
//! join drops the row and a left join pads it with NULLs. Output rows keep
//! their left row's kind and time, and leave before the watermark that
//! released them, so the left rowtime stays a time attribute.
//!
//! State stays bounded by the table, not the stream: once the watermark
//! has passed a version's successor, no waiting or future left row can see
//! it, and it is dropped. Only each key's current version (and versions
//! ahead of the watermark) remain.
//!
//! A checkpoint holds the waiting left rows and every kept version (a
//! delete with the row that deleted it), each with its row kind, keyed by
//! the join key; a restored join replays them as its inputs.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt8Array, UInt32Array};
use arrow::datatypes::UInt8Type;
use arrow::record_batch::RecordBatchOptions;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::PhysicalExpr;
use weir_common::{RowKind, StreamBatch, Watermark};

use super::{JoinCondition, JoinKind, Side};
use crate::checkpoint::{KeyedState, StateBatch};
use crate::operator::{Collector, Operator, OperatorContext, OperatorFactory, OperatorState};
use crate::operators::chunks::{ChunkStore, RowRef};
use crate::operators::key_index::KeyIndex;
use crate::operators::window_assign::event_times;

/// What an event-time temporal join computes; shared by its subtasks.
#[derive(Debug, Clone)]
pub struct TemporalJoinSpec {
    /// Inner or left outer; the keys are the versioned table's primary key
    /// (other conditions are in the residual).
    pub condition: JoinCondition,
    pub left_time: Arc<dyn PhysicalExpr>,
    /// The versioned table's rowtime.
    pub right_time: Arc<dyn PhysicalExpr>,
}

impl TemporalJoinSpec {
    pub fn name(&self) -> String {
        format!(
            "TemporalJoin(joinType=[{}], where=[{} AND __TEMPORAL_JOIN_CONDITION({}, {})])",
            self.condition.kind.flink_name(),
            self.condition.key_pairs(),
            self.left_time,
            self.right_time
        )
    }
}

/// One version of a key: valid from `time` until the next one.
#[derive(Debug, Clone, Copy)]
struct Version {
    time: i64,
    row: RowRef,
    /// The key was deleted at `time` (`row` is the delete's row).
    deleted: bool,
}

/// A left row waiting for the watermark.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    time: i64,
    row: RowRef,
    kind: u8,
}

pub struct TemporalJoin {
    spec: Arc<TemporalJoinSpec>,
    name: String,
    keys: KeyIndex,
    left_rows: ChunkStore,
    waiting: Vec<Waiting>,
    right_rows: ChunkStore,
    /// Per key id, its versions in time order.
    versions: Vec<Vec<Version>>,
    /// Keys holding more than their current version, to prune.
    to_prune: Vec<usize>,
    pruning: Vec<bool>,
    max_parallelism: usize,
}

impl std::fmt::Debug for TemporalJoin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemporalJoin")
            .field("waiting", &self.waiting.len())
            .field(
                "versions",
                &self.versions.iter().map(Vec::len).sum::<usize>(),
            )
            .finish()
    }
}

impl TemporalJoin {
    pub fn try_new(spec: Arc<TemporalJoinSpec>, max_parallelism: usize) -> Result<Self> {
        if !matches!(spec.condition.kind, JoinKind::Inner | JoinKind::LeftOuter) {
            return Err(DataFusionError::Internal(format!(
                "a temporal join cannot be a {}",
                spec.condition.kind.flink_name()
            )));
        }
        Ok(Self {
            name: spec.name(),
            keys: KeyIndex::for_keys(&spec.condition.key_schema)?,
            left_rows: ChunkStore::default(),
            waiting: Vec::new(),
            right_rows: ChunkStore::default(),
            versions: Vec::new(),
            to_prune: Vec::new(),
            pruning: Vec::new(),
            max_parallelism,
            spec,
        })
    }

    fn times(&self, side: Side, data: &RecordBatch) -> Result<Vec<i64>> {
        let time = match side {
            Side::Left => &self.spec.left_time,
            Side::Right => &self.spec.right_time,
        };
        event_times(&time.evaluate(data)?.into_array(data.num_rows())?, time)
    }

    /// Key ids (`None`: a NULL key part) of a batch of `side`. Only the
    /// versioned side adds keys: left keys are looked up when their rows
    /// are released, so state follows the table, not the stream.
    fn key_ids(&mut self, side: Side, data: &RecordBatch) -> Result<Vec<Option<usize>>> {
        let n = data.num_rows();
        let condition = &self.spec.condition;
        let keys = condition.key_columns(side, data)?;
        let matchable = condition.matchable(&keys, n);
        let ids = match side {
            Side::Right => {
                let ids = self.keys.ids(&keys, n)?;
                self.versions.resize_with(self.keys.len(), Vec::new);
                self.pruning.resize(self.keys.len(), false);
                ids.into_iter().map(Some).collect()
            }
            Side::Left => self.keys.find(&keys, n)?,
        };
        Ok(ids
            .into_iter()
            .zip(matchable)
            .map(|(id, m)| id.filter(|_| m))
            .collect())
    }

    fn wait(&mut self, batch: StreamBatch) -> Result<()> {
        let data = batch.data();
        let times = self.times(Side::Left, data)?;
        let chunk = self.left_rows.insert(data.clone(), data.num_rows());
        for (row, time) in times.into_iter().enumerate() {
            self.waiting.push(Waiting {
                time,
                row: (chunk, row as u32),
                kind: batch.row_kind(row) as u8,
            });
        }
        Ok(())
    }

    fn add_versions(&mut self, batch: StreamBatch) -> Result<()> {
        let data = batch.data();
        let keys = self.key_ids(Side::Right, data)?;
        let times = self.times(Side::Right, data)?;
        let kinds: Vec<RowKind> = (0..data.num_rows()).map(|r| batch.row_kind(r)).collect();
        // The +U that follows a -U carries the new version.
        let kept = |r: usize| keys[r].is_some() && kinds[r] != RowKind::UpdateBefore;
        let stored = (0..data.num_rows()).filter(|r| kept(*r)).count();
        let chunk = self.right_rows.insert(data.clone(), stored);
        for row in 0..data.num_rows() {
            let Some(key) = keys[row].filter(|_| kept(row)) else {
                continue;
            };
            let version = Version {
                time: times[row],
                row: (chunk, row as u32),
                deleted: kinds[row] == RowKind::Delete,
            };
            let versions = &mut self.versions[key];
            // A later change at the same time replaces the version.
            match versions.binary_search_by(|v| v.time.cmp(&version.time)) {
                Ok(at) => {
                    let (old, _) = std::mem::replace(&mut versions[at], version).row;
                    self.right_rows.release(old);
                }
                Err(at) => versions.insert(at, version),
            }
            if versions.len() > 1 && !self.pruning[key] {
                self.pruning[key] = true;
                self.to_prune.push(key);
            }
        }
        Ok(())
    }

    /// Joins the left rows at or before `watermark`, in time order.
    fn release(&mut self, watermark: i64, out: &mut Collector) -> Result<()> {
        let (mut due, waiting): (Vec<Waiting>, Vec<Waiting>) =
            self.waiting.iter().partition(|w| w.time <= watermark);
        self.waiting = waiting;
        if !due.is_empty() {
            due.sort_by_key(|w| w.time);
            self.join(&due, out)?;
            for w in &due {
                self.left_rows.release(w.row.0);
            }
        }
        self.prune(watermark);
        Ok(())
    }

    fn join(&mut self, due: &[Waiting], out: &mut Collector) -> Result<()> {
        let refs: Vec<RowRef> = due.iter().map(|w| w.row).collect();
        let left_rows = RecordBatch::try_new_with_options(
            Arc::clone(&self.spec.condition.left_schema),
            self.left_rows.columns(&refs)?,
            &RecordBatchOptions::new().with_row_count(Some(due.len())),
        )?;
        let keys = self.key_ids(Side::Left, &left_rows)?;
        let condition = &self.spec.condition;
        let current = |i: usize| -> Option<RowRef> {
            let versions = &self.versions[keys[i]?];
            let at = versions.partition_point(|v| v.time <= due[i].time);
            versions
                .get(at.checked_sub(1)?)
                .filter(|v| !v.deleted)
                .map(|v| v.row)
        };
        let mut pairs: Vec<(usize, RowRef)> = (0..due.len())
            .filter_map(|i| Some((i, current(i)?)))
            .collect();
        let gather_left = |rows: &[usize]| -> Result<Vec<ArrayRef>> {
            let indices = UInt32Array::from(rows.iter().map(|i| *i as u32).collect::<Vec<_>>());
            left_rows
                .columns()
                .iter()
                .map(|c| Ok(arrow::compute::take(c, &indices, None)?))
                .collect()
        };
        if condition.residual.is_some() && !pairs.is_empty() {
            let left: Vec<usize> = pairs.iter().map(|(i, _)| *i).collect();
            let right: Vec<RowRef> = pairs.iter().map(|(_, r)| *r).collect();
            condition.retain_passing(
                &mut pairs,
                gather_left(&left)?,
                self.right_rows.columns(&right)?,
            )?;
        }
        let mut matched: Vec<Option<RowRef>> = vec![None; due.len()];
        for (i, r) in pairs {
            matched[i] = Some(r);
        }
        let outer = condition.kind == JoinKind::LeftOuter;
        let emitted: Vec<usize> = (0..due.len())
            .filter(|i| outer || matched[*i].is_some())
            .collect();
        if emitted.is_empty() {
            return Ok(());
        }
        let found: Vec<RowRef> = emitted.iter().filter_map(|i| matched[*i]).collect();
        let right = if found.is_empty() {
            super::null_columns(&condition.right_schema, emitted.len())
        } else {
            let slots: Vec<bool> = emitted.iter().map(|i| matched[*i].is_some()).collect();
            super::spread(self.right_rows.columns(&found)?, &slots)?
        };
        let data = condition.output(gather_left(&emitted)?, right, emitted.len())?;
        let kinds = UInt8Array::from(emitted.iter().map(|i| due[*i].kind).collect::<Vec<_>>());
        out.emit(
            StreamBatch::try_new_changelog(data, kinds)
                .map_err(|e| DataFusionError::External(Box::new(e)))?,
        );
        Ok(())
    }

    /// Drops the versions no left row can see any more: those followed by
    /// a version at or before the watermark, and a leading delete.
    fn prune(&mut self, watermark: i64) {
        let mut still = Vec::new();
        for key in std::mem::take(&mut self.to_prune) {
            let versions = &mut self.versions[key];
            let current = versions.partition_point(|v| v.time <= watermark);
            let mut drop = current.saturating_sub(1);
            if versions.get(drop).is_some_and(|v| v.deleted) {
                drop += 1;
            }
            for v in versions.drain(..drop) {
                self.right_rows.release(v.row.0);
            }
            if versions.len() > 1 {
                still.push(key);
            } else {
                self.pruning[key] = false;
            }
        }
        self.to_prune = still;
    }
}

impl Operator for TemporalJoin {
    fn name(&self) -> &str {
        &self.name
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<Option<OperatorState>> {
        let waiting: Vec<(RowRef, u8)> = self.waiting.iter().map(|w| (w.row, w.kind)).collect();
        let versions: Vec<(RowRef, u8)> = self
            .versions
            .iter()
            .flatten()
            .map(|v| {
                let kind = if v.deleted {
                    RowKind::Delete
                } else {
                    RowKind::Insert
                };
                (v.row, kind as u8)
            })
            .collect();
        let mut batches = Vec::new();
        for (side, rows) in [(Side::Left, waiting), (Side::Right, versions)] {
            if rows.is_empty() {
                continue;
            }
            let store = match side {
                Side::Left => &self.left_rows,
                Side::Right => &self.right_rows,
            };
            let refs: Vec<RowRef> = rows.iter().map(|(r, _)| *r).collect();
            let data = RecordBatch::try_new_with_options(
                Arc::clone(self.spec.condition.schema(side)),
                store.columns(&refs)?,
                &RecordBatchOptions::new().with_row_count(Some(refs.len())),
            )?;
            let kinds = UInt8Array::from(rows.iter().map(|(_, k)| *k).collect::<Vec<_>>());
            let state = KeyedState::rows(
                side.name(),
                &data,
                self.spec.condition.keys(side),
                self.max_parallelism,
            )?
            .column("kind", Arc::new(kinds));
            batches.push(state.build()?);
        }
        Ok(Some(OperatorState { batches }))
    }

    fn restore_state(&mut self, state: OperatorState) -> Result<()> {
        let name = self.name.clone();
        for batch in &state.batches {
            let part = StateBatch::new(batch, &name);
            let side = Side::of_state(&part)?;
            let rows = part.group_batch("row", self.spec.condition.schema(side))?;
            let kinds = part.primitive::<UInt8Type>("kind")?.clone();
            let batch = StreamBatch::try_new_changelog(rows, kinds)
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            match side {
                Side::Left => self.wait(batch)?,
                Side::Right => self.add_versions(batch)?,
            }
        }
        Ok(())
    }

    fn process_batch(
        &mut self,
        input: usize,
        batch: StreamBatch,
        _out: &mut Collector,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        match Side::of_input(input)? {
            Side::Left => self.wait(batch),
            Side::Right => self.add_versions(batch),
        }
    }

    fn process_watermark(
        &mut self,
        watermark: Watermark,
        out: &mut Collector,
    ) -> Result<Option<Watermark>> {
        self.release(watermark.millis(), out)?;
        Ok(Some(watermark))
    }

    fn finish(&mut self, out: &mut Collector) -> Result<()> {
        self.release(Watermark::END_OF_TIME.millis(), out)
    }
}

#[derive(Debug)]
pub struct TemporalJoinFactory(pub Arc<TemporalJoinSpec>);

impl OperatorFactory for TemporalJoinFactory {
    fn name(&self) -> String {
        self.0.name()
    }

    fn create(&self, context: &OperatorContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(TemporalJoin::try_new(
            Arc::clone(&self.0),
            context.max_parallelism,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::{DataType, TimeUnit};
    use datafusion::physical_expr::expressions::{CastExpr, Column};

    use super::*;
    use crate::operators::join::test_support::{changelog, condition, rows};

    /// Joins on k; v is each side's time in ms.
    fn temporal(kind: JoinKind) -> TemporalJoin {
        let as_time = |name: &str| -> Arc<dyn PhysicalExpr> {
            Arc::new(CastExpr::new(
                Arc::new(Column::new(name, 1)),
                DataType::Timestamp(TimeUnit::Millisecond, None),
                None,
            ))
        };
        TemporalJoin::try_new(
            Arc::new(TemporalJoinSpec {
                condition: condition(kind),
                left_time: as_time("lv"),
                right_time: as_time("rv"),
            }),
            128,
        )
        .expect("join")
    }

    fn feed(j: &mut TemporalJoin, side: usize, data: &[(Option<i64>, i64)], kind: RowKind) {
        let schema = if side == 0 {
            Arc::clone(&j.spec.condition.left_schema)
        } else {
            Arc::clone(&j.spec.condition.right_schema)
        };
        let kinds = UInt8Array::from(vec![kind as u8; data.len()]);
        let batch = StreamBatch::try_new_changelog(rows(&schema, data), kinds).expect("batch");
        j.process_batch(side, batch, &mut Collector::default())
            .expect("process");
    }

    fn watermark(j: &mut TemporalJoin, at: i64) -> Vec<(RowKind, Vec<Option<i64>>)> {
        let mut out = Collector::default();
        j.process_watermark(Watermark(at), &mut out)
            .expect("watermark");
        changelog(&mut out)
    }

    #[test]
    fn left_rows_join_the_version_current_at_their_time() {
        let (s, n) = (Some, None);
        let mut j = temporal(JoinKind::LeftOuter);
        // Versions of key 1 at 10 and 20, deleted at 30; key 2 from 25.
        feed(
            &mut j,
            1,
            &[(s(1), 10), (s(1), 20), (s(2), 25)],
            RowKind::Insert,
        );
        feed(&mut j, 1, &[(s(1), 30)], RowKind::Delete);
        feed(
            &mut j,
            0,
            &[
                (s(1), 5),
                (s(1), 15),
                (s(1), 20),
                (s(2), 22),
                (s(1), 35),
                (n, 40),
            ],
            RowKind::Insert,
        );
        // Nothing leaves before the watermark passes a row's time.
        assert!(watermark(&mut j, 4).is_empty());
        let i = RowKind::Insert;
        assert_eq!(
            watermark(&mut j, 22),
            [
                (i, vec![s(1), s(5), n, n]),
                (i, vec![s(1), s(15), s(1), s(10)]),
                (i, vec![s(1), s(20), s(1), s(20)]),
                (i, vec![s(2), s(22), n, n]),
            ]
        );
        assert_eq!(
            watermark(&mut j, 100),
            [(i, vec![s(1), s(35), n, n]), (i, vec![n, s(40), n, n])]
        );
    }

    #[test]
    fn a_restored_join_joins_as_the_snapshotted_one_would() {
        let (s, n) = (Some, None);
        let i = RowKind::Insert;
        let mut j = temporal(JoinKind::LeftOuter);
        feed(&mut j, 1, &[(s(1), 10), (s(1), 20)], i);
        feed(&mut j, 1, &[(s(1), 30)], RowKind::Delete);
        feed(&mut j, 0, &[(s(1), 15), (s(1), 25), (s(1), 35)], i);
        let state = j.snapshot_state(1).expect("snapshot").expect("state");
        let mut restored = temporal(JoinKind::LeftOuter);
        restored.restore_state(state).expect("restores");
        let expected = [
            (i, vec![s(1), s(15), s(1), s(10)]),
            (i, vec![s(1), s(25), s(1), s(20)]),
            (i, vec![s(1), s(35), n, n]),
        ];
        assert_eq!(watermark(&mut restored, 100), expected);
        assert_eq!(watermark(&mut j, 100), expected);
    }

    #[test]
    fn versions_behind_the_watermark_are_dropped_but_the_current_one() {
        let s = Some;
        let mut j = temporal(JoinKind::Inner);
        feed(
            &mut j,
            1,
            &[(s(1), 10), (s(1), 20), (s(1), 30)],
            RowKind::Insert,
        );
        assert!(watermark(&mut j, 25).is_empty());
        assert_eq!(
            j.versions[0].iter().map(|v| v.time).collect::<Vec<_>>(),
            [20, 30]
        );
        // A late left row still finds the version current at its time, if kept.
        feed(&mut j, 0, &[(s(1), 26)], RowKind::Insert);
        assert_eq!(
            watermark(&mut j, 40),
            [(RowKind::Insert, vec![s(1), s(26), s(1), s(20)])]
        );
        assert_eq!(j.versions[0].len(), 1);
        // Updates: -U is ignored, +U is the next version; retractions of
        // left rows come out as retractions.
        feed(&mut j, 1, &[(s(1), 30)], RowKind::UpdateBefore);
        feed(&mut j, 1, &[(s(1), 50)], RowKind::UpdateAfter);
        feed(&mut j, 0, &[(s(1), 45), (s(1), 55)], RowKind::Delete);
        assert_eq!(
            watermark(&mut j, 60),
            [
                (RowKind::Delete, vec![s(1), s(45), s(1), s(30)]),
                (RowKind::Delete, vec![s(1), s(55), s(1), s(50)]),
            ]
        );
        assert!(j.left_rows.is_empty());
    }
}
