//! The processing-time temporal join against a lookup table (Flink's
//! `LookupJoin`): `o JOIN dim FOR SYSTEM_TIME AS OF o.proc_time AS d ON ...`.
//!
//! The dimension table is not a stream. Before its first input the operator
//! loads the whole table through the connector's [`LookupTableFactory`],
//! derives the join's right rows from it (the columns the query reads, any
//! computed columns and filters on the table) and indexes them by join key.
//! Each input row then joins with the rows its key finds there, as of now;
//! nothing about the input is kept. Once the connector's cache TTL has
//! passed, the next input waits while the table is loaded again, so later
//! rows see its new contents and earlier results stay as they were.
//!
//! Output rows keep their input row's kind: an update or retraction of the
//! input looks up the dimension table again, as in Flink.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{RecordBatch, UInt32Array};
use datafusion::error::{DataFusionError, Result};
use weir_common::StreamBatch;
use weir_connector::LookupTableFactory;

use super::{JoinCondition, JoinKind, Side, gather};
use crate::operator::{Collector, Operator, OperatorContext, OperatorFactory, Preparation};
use crate::operators::calc::Calc;
use crate::operators::key_index::KeyIndex;

/// What a lookup join computes; shared by its subtasks.
#[derive(Debug)]
pub struct LookupJoinSpec {
    /// Inner or left outer; the right side is the dimension rows.
    pub condition: JoinCondition,
    pub table_name: String,
    pub table: Arc<dyn LookupTableFactory>,
    /// The physical columns the join reads (`None`: all), before `calcs`.
    pub projection: Option<Vec<usize>>,
    /// Computed columns and filters deriving the right rows from the table.
    pub calcs: Vec<Calc>,
}

impl LookupJoinSpec {
    pub fn name(&self) -> String {
        format!(
            "LookupJoin(table=[{}], joinType=[{}], lookup=[{}])",
            self.table_name,
            self.condition.kind.flink_name(),
            self.condition.key_pairs()
        )
    }

    /// The join's right rows, indexed by key, from the table's batches.
    fn index(&self, batches: Vec<RecordBatch>) -> Result<Dimension> {
        let condition = &self.condition;
        let mut parts = Vec::with_capacity(batches.len());
        for batch in batches {
            let batch = match &self.projection {
                Some(columns) => batch.project(columns)?,
                None => batch,
            };
            let mut rows = StreamBatch::inserts(batch);
            for calc in &self.calcs {
                rows = calc.apply(&rows)?;
            }
            parts.push(rows.into_data());
        }
        let rows = arrow::compute::concat_batches(&condition.right_schema, &parts)?;
        let n = rows.num_rows();
        let keys = condition.key_columns(Side::Right, &rows)?;
        let mut index = KeyIndex::for_keys(&condition.key_schema)?;
        let ids = index.ids(&keys, n)?;
        let matchable = condition.matchable(&keys, n);
        let mut by_key: Vec<Vec<u32>> = vec![Vec::new(); index.len()];
        for row in (0..n).filter(|r| matchable[*r]) {
            by_key[ids[row]].push(row as u32);
        }
        Ok(Dimension {
            rows,
            index,
            by_key,
            loaded_at: Instant::now(),
        })
    }
}

/// A loaded copy of the dimension table.
struct Dimension {
    rows: RecordBatch,
    index: KeyIndex,
    /// Row numbers of `rows` per key id.
    by_key: Vec<Vec<u32>>,
    loaded_at: Instant,
}

pub struct LookupJoin {
    spec: Arc<LookupJoinSpec>,
    name: String,
    dimension: Option<Dimension>,
}

impl std::fmt::Debug for LookupJoin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LookupJoin")
            .field("table", &self.spec.table_name)
            .field("rows", &self.dimension.as_ref().map(|d| d.rows.num_rows()))
            .finish()
    }
}

impl LookupJoin {
    pub fn try_new(spec: Arc<LookupJoinSpec>) -> Result<Self> {
        if !matches!(spec.condition.kind, JoinKind::Inner | JoinKind::LeftOuter) {
            return Err(DataFusionError::Internal(format!(
                "a lookup join cannot be a {}",
                spec.condition.kind.flink_name()
            )));
        }
        Ok(Self {
            name: spec.name(),
            dimension: None,
            spec,
        })
    }

    fn needs_load(&self) -> bool {
        self.dimension
            .as_ref()
            .is_none_or(|d| d.loaded_at.elapsed() >= self.spec.table.cache_ttl())
    }

    /// The input rows joined with the dimension rows their keys find.
    fn join(&self, batch: &StreamBatch) -> Result<StreamBatch> {
        let dimension = self.dimension.as_ref().ok_or_else(|| {
            DataFusionError::Internal("lookup join used before its table was loaded".into())
        })?;
        let condition = &self.spec.condition;
        let data = batch.data();
        let n = data.num_rows();
        let keys = condition.key_columns(Side::Left, data)?;
        let ids = dimension.index.find(&keys, n)?;
        let matchable = condition.matchable(&keys, n);
        let mut pairs: Vec<(u32, u32)> = Vec::new();
        for row in (0..n).filter(|r| matchable[*r]) {
            if let Some(id) = ids[row] {
                pairs.extend(dimension.by_key[id].iter().map(|d| (row as u32, *d)));
            }
        }
        if condition.residual.is_some() && !pairs.is_empty() {
            let l: Vec<Option<u32>> = pairs.iter().map(|p| Some(p.0)).collect();
            let r: Vec<Option<u32>> = pairs.iter().map(|p| Some(p.1)).collect();
            condition.retain_passing(
                &mut pairs,
                gather(data.columns(), &l)?,
                gather(dimension.rows.columns(), &r)?,
            )?;
        }
        // Pairs are in input order; an outer join slots padding in between.
        let (mut lo, mut ro): (Vec<u32>, Vec<Option<u32>>) = (Vec::new(), Vec::new());
        let outer = condition.kind == JoinKind::LeftOuter;
        let mut next = pairs.iter().peekable();
        for row in 0..n as u32 {
            let mut matched = false;
            while let Some((_, d)) = next.next_if(|(l, _)| *l == row) {
                lo.push(row);
                ro.push(Some(*d));
                matched = true;
            }
            if outer && !matched {
                lo.push(row);
                ro.push(None);
            }
        }
        let left = batch
            .take(&UInt32Array::from(lo))
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let right = gather(dimension.rows.columns(), &ro)?;
        let rows = left.num_rows();
        let output = condition.output(left.data().columns().to_vec(), right, rows)?;
        left.with_data(output)
            .map_err(|e| DataFusionError::External(Box::new(e)))
    }
}

impl Operator for LookupJoin {
    fn name(&self) -> &str {
        &self.name
    }

    fn prepare(&mut self) -> Option<Preparation<'_>> {
        if !self.needs_load() {
            return None;
        }
        Some(Box::pin(async move {
            let batches = self.spec.table.load().await.map_err(|e| {
                DataFusionError::Execution(format!(
                    "loading lookup table '{}': {e}",
                    self.spec.table_name
                ))
            })?;
            self.dimension = Some(self.spec.index(batches)?);
            Ok(())
        }))
    }

    fn process_batch(
        &mut self,
        _input: usize,
        batch: StreamBatch,
        out: &mut Collector,
    ) -> Result<()> {
        if batch.num_rows() > 0 {
            out.emit(self.join(&batch)?);
        }
        Ok(())
    }
}

#[derive(Debug)]
pub struct LookupJoinFactory(pub Arc<LookupJoinSpec>);

impl OperatorFactory for LookupJoinFactory {
    fn name(&self) -> String {
        self.0.name()
    }

    fn create(&self, _context: &OperatorContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(LookupJoin::try_new(Arc::clone(&self.0))?))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::time::Duration;

    use arrow::array::UInt8Array;
    use async_trait::async_trait;
    use weir_common::RowKind;
    use weir_connector::ConnectorError;

    use super::*;
    use crate::operators::join::test_support::{changelog, condition, rows};

    /// A table whose value column counts the loads: (1, 100 + n), (1, 101 + n), (3, 300 + n).
    #[derive(Debug)]
    struct Counting {
        loads: AtomicI64,
        ttl: Duration,
    }

    #[async_trait]
    impl LookupTableFactory for Counting {
        fn cache_ttl(&self) -> Duration {
            self.ttl
        }

        async fn load(&self) -> std::result::Result<Vec<RecordBatch>, ConnectorError> {
            let n = self.loads.fetch_add(1, Ordering::Relaxed);
            let data = [(Some(1), 100 + n), (Some(1), 101 + n), (Some(3), 300 + n)];
            Ok(vec![rows(&condition(JoinKind::Inner).right_schema, &data)])
        }
    }

    fn join_with_ttl(kind: JoinKind, ttl: Duration) -> LookupJoin {
        let spec = LookupJoinSpec {
            condition: condition(kind),
            table_name: "dim".into(),
            table: Arc::new(Counting {
                loads: AtomicI64::new(0),
                ttl,
            }),
            projection: None,
            calcs: Vec::new(),
        };
        LookupJoin::try_new(Arc::new(spec)).expect("join")
    }

    fn join(kind: JoinKind) -> LookupJoin {
        join_with_ttl(kind, Duration::from_secs(3600))
    }

    fn run(op: &mut LookupJoin, batch: StreamBatch) -> Vec<(RowKind, Vec<Option<i64>>)> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(async {
                if let Some(load) = op.prepare() {
                    load.await.expect("load");
                }
            });
        let mut out = Collector::default();
        op.process_batch(0, batch, &mut out).expect("process");
        changelog(&mut out)
    }

    #[test]
    fn inner_and_left_lookups_keep_row_kinds_and_order() {
        let left = condition(JoinKind::Inner).left_schema;
        let input = StreamBatch::try_new_changelog(
            rows(&left, &[(Some(1), 10), (Some(2), 20), (None, 30)]),
            UInt8Array::from(vec![
                RowKind::Insert as u8,
                RowKind::Insert as u8,
                RowKind::Delete as u8,
            ]),
        )
        .expect("batch");
        let (s, n) = (Some, None);
        assert_eq!(
            run(&mut join(JoinKind::Inner), input.clone()),
            [
                (RowKind::Insert, vec![s(1), s(10), s(1), s(100)]),
                (RowKind::Insert, vec![s(1), s(10), s(1), s(101)]),
            ]
        );
        assert_eq!(
            run(&mut join(JoinKind::LeftOuter), input),
            [
                (RowKind::Insert, vec![s(1), s(10), s(1), s(100)]),
                (RowKind::Insert, vec![s(1), s(10), s(1), s(101)]),
                (RowKind::Insert, vec![s(2), s(20), n, n]),
                (RowKind::Delete, vec![n, s(30), n, n]),
            ]
        );
    }

    #[test]
    fn the_table_is_loaded_once_per_cache_ttl() {
        let left = condition(JoinKind::Inner).left_schema;
        let input = || StreamBatch::inserts(rows(&left, &[(Some(3), 30)]));
        let mut cached = join(JoinKind::Inner);
        assert_eq!(run(&mut cached, input())[0].1[3], Some(300));
        assert!(cached.prepare().is_none(), "still fresh");
        assert_eq!(run(&mut cached, input())[0].1[3], Some(300));
        // Expired at once: every input sees a fresh load.
        let mut expiring = join_with_ttl(JoinKind::Inner, Duration::ZERO);
        assert_eq!(run(&mut expiring, input())[0].1[3], Some(300));
        assert_eq!(run(&mut expiring, input())[0].1[3], Some(301));
    }
}
