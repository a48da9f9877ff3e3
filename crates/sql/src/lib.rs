//! Weir's SQL front end: Flink's SQL dialect parsed with sqlparser and
//! planned with DataFusion.
//!
//! A script flows through it like this: [`parser::parse_script`] splits it
//! into [`FlinkStatement`]s (with line and column of every token); DDL
//! updates the session's [`Catalog`]; queries and INSERTs go to
//! [`SqlPlanner`], which resolves names against the catalog, applies Flink's
//! function names (the `weir-functions` crate) and returns an optimized
//! DataFusion logical plan. Turning that plan into streaming operators is the
//! engine's job.

mod cast;
pub mod catalog;
pub mod error;
mod naming;
pub mod parser;
pub mod planner;
pub mod temporal;
pub mod types;
pub mod window_tvf;

pub use catalog::{Catalog, CatalogTable, CatalogView};
pub use error::{Position, SqlError, caret_snippet};
pub use parser::{FlinkStatement, ParsedStatement, parse_script};
pub use planner::{ConnectorTableSource, SqlPlanner, WatermarkNode};
pub use temporal::{TemporalReference, TemporalTableNode, temporal_table};
pub use window_tvf::WindowTvfNode;
