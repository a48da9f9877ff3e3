//! Joins two finite sets of rows at once: the rows of a fired window.

use arrow::array::RecordBatch;
use datafusion::error::Result;

use super::{JoinCondition, JoinKind, Side, gather};
use crate::operators::key_index::KeyIndex;

/// `left` joined with `right` under `condition`, outer rows padded;
/// `null_aware` gives an anti join NOT IN's treatment of NULL keys.
pub(crate) fn join_batches(
    condition: &JoinCondition,
    left: &RecordBatch,
    right: &RecordBatch,
    null_aware: bool,
) -> Result<RecordBatch> {
    let (ln, rn) = (left.num_rows(), right.num_rows());
    let mut index = KeyIndex::for_keys(&condition.key_schema)?;
    let left_keys = condition.key_columns(Side::Left, left)?;
    let right_keys = condition.key_columns(Side::Right, right)?;
    let left_ids = index.ids(&left_keys, ln)?;
    let right_ids = index.ids(&right_keys, rn)?;
    let left_matchable = condition.matchable(&left_keys, ln);
    let right_matchable = condition.matchable(&right_keys, rn);
    let mut by_key: Vec<Vec<u32>> = vec![Vec::new(); index.len()];
    for row in (0..rn).filter(|r| right_matchable[*r]) {
        by_key[right_ids[row]].push(row as u32);
    }
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    for row in (0..ln).filter(|r| left_matchable[*r]) {
        pairs.extend(by_key[left_ids[row]].iter().map(|r| (row as u32, *r)));
    }
    if condition.residual.is_some() && !pairs.is_empty() {
        let l: Vec<Option<u32>> = pairs.iter().map(|p| Some(p.0)).collect();
        let r: Vec<Option<u32>> = pairs.iter().map(|p| Some(p.1)).collect();
        condition.retain_passing(
            &mut pairs,
            gather(left.columns(), &l)?,
            gather(right.columns(), &r)?,
        )?;
    }
    let mut left_matched = vec![false; ln];
    let mut right_matched = vec![false; rn];
    for (l, r) in &pairs {
        left_matched[*l as usize] = true;
        right_matched[*r as usize] = true;
    }
    let (mut lo, mut ro): (Vec<Option<u32>>, Vec<Option<u32>>) = (Vec::new(), Vec::new());
    match condition.kind {
        JoinKind::Semi | JoinKind::Anti => {
            let wanted = condition.kind == JoinKind::Semi;
            let right_has_null = right_matchable.iter().any(|m| !m);
            let shown = |l: usize| {
                if wanted || !null_aware {
                    left_matched[l] == wanted
                } else {
                    // NOT IN: nothing is NOT IN a set holding NULL; a NULL is NOT IN only the empty set.
                    !left_matched[l] && !right_has_null && (left_matchable[l] || rn == 0)
                }
            };
            lo = (0..ln)
                .filter(|l| shown(*l))
                .map(|l| Some(l as u32))
                .collect();
        }
        kind => {
            for (l, r) in &pairs {
                lo.push(Some(*l));
                ro.push(Some(*r));
            }
            if kind.is_outer(Side::Left) {
                for l in (0..ln).filter(|l| !left_matched[*l]) {
                    lo.push(Some(l as u32));
                    ro.push(None);
                }
            }
            if kind.is_outer(Side::Right) {
                for r in (0..rn).filter(|r| !right_matched[*r]) {
                    lo.push(None);
                    ro.push(Some(r as u32));
                }
            }
        }
    }
    let rows = lo.len();
    let right_columns = if condition.kind.emits_right_columns() {
        gather(right.columns(), &ro)?
    } else {
        Vec::new()
    };
    condition.output(gather(left.columns(), &lo)?, right_columns, rows)
}

#[cfg(test)]
mod tests {
    use arrow::array::Array;
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;

    use super::*;
    use crate::operators::join::test_support::{condition, rows};

    fn values(batch: &RecordBatch) -> Vec<Vec<Option<i64>>> {
        (0..batch.num_rows())
            .map(|r| {
                batch
                    .columns()
                    .iter()
                    .map(|c| {
                        let c = c.as_primitive::<Int64Type>();
                        (!c.is_null(r)).then(|| c.value(r))
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn every_kind_over_the_same_rows() {
        let run = |kind| {
            let c = condition(kind);
            let left = rows(&c.left_schema, &[(Some(1), 10), (Some(2), 20), (None, 30)]);
            let right = rows(&c.right_schema, &[(Some(1), 100), (Some(3), 300)]);
            values(&join_batches(&c, &left, &right, false).expect("join"))
        };
        let (s, n) = (Some, None);
        assert_eq!(run(JoinKind::Inner), [[s(1), s(10), s(1), s(100)]]);
        assert_eq!(
            run(JoinKind::FullOuter),
            [
                vec![s(1), s(10), s(1), s(100)],
                vec![s(2), s(20), n, n],
                vec![n, s(30), n, n],
                vec![n, n, s(3), s(300)],
            ]
        );
        assert_eq!(run(JoinKind::Semi), [[s(1), s(10)]]);
        assert_eq!(run(JoinKind::Anti), [vec![s(2), s(20)], vec![n, s(30)]]);
    }

    #[test]
    fn an_empty_side_pads_the_other() {
        let c = condition(JoinKind::LeftOuter);
        let left = rows(&c.left_schema, &[(Some(1), 10)]);
        let right = rows(&c.right_schema, &[]);
        let joined = join_batches(&c, &left, &right, false).expect("join");
        assert_eq!(values(&joined), [[Some(1), Some(10), None, None]]);
    }
}
