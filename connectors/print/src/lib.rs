//! Two sinks for watching and measuring queries, as in Flink: `print`
//! ([`PrintConnector`]) writes every row to stdout or stderr in Flink's
//! `+I[...]` form, and `blackhole` ([`BlackholeConnector`]) discards every row.
//!
//! Both accept updating results (`-U`, `+U`, `-D`) and neither can be read
//! from. The engine's registry lists them; the runtime opens one writer per
//! sink subtask and hands it the subtask's changelog batches.

mod blackhole;
mod print;

pub use blackhole::BlackholeConnector;
pub use print::PrintConnector;
