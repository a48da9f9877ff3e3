//! The operators the planner builds job graphs from.

mod calc;
mod limit;
mod values;
pub(crate) mod watermark;

pub use calc::{Calc, CalcFactory};
pub use limit::{Limit, LimitFactory};
pub use values::ValuesSource;
pub use watermark::WatermarkStrategy;
