//! The operators the planner builds job graphs from.

mod aggregate;
mod calc;
mod chunks;
mod group_agg;
mod join;
mod key_index;
mod limit;
mod over_agg;
mod over_updating;
mod rank;
mod row_store;
mod session_agg;
mod state_ttl;
mod top_n;
mod top_one;
mod values;
pub(crate) mod watermark;
mod window_agg;
mod window_assign;
mod window_rank;

pub use aggregate::{AggregateCall, AggregateOutput, Grouping};
pub use calc::{Calc, Expand};
pub use group_agg::{GroupAggregateFactory, GroupAggregateSpec};
pub use join::{
    IntervalJoin, IntervalJoinFactory, IntervalJoinSpec, JoinCondition, JoinKind, LookupJoin,
    LookupJoinFactory, LookupJoinSpec, StreamingJoin, StreamingJoinFactory, StreamingJoinSpec,
    TemporalJoin, TemporalJoinFactory, TemporalJoinSpec, WindowJoin, WindowJoinFactory,
    WindowJoinSpec,
};
pub use limit::Limit;
pub use over_agg::{OverAggregate, OverAggregateFactory, OverAggregateSpec, OverFrame};
pub use over_updating::{UpdatingOverAggregate, UpdatingOverAggregateFactory, UpdatingOverSpec};
pub use rank::{Rank, RankFactory, RankNumber, RankOrder, RankSpec};
pub use session_agg::{SessionAggregateSpec, SessionWindowAggregateFactory};
pub use values::ValuesSource;
pub use watermark::WatermarkStrategy;
pub use window_agg::{TimeDomain, WindowAggregateFactory, WindowAggregateSpec};
pub use window_assign::WindowAssigner;
pub use window_rank::{WindowRankFactory, WindowRankSpec};
