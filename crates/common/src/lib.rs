//! Types every Weir crate shares: the changelog batch that flows between
//! operators ([`StreamBatch`] with its [`RowKind`]s), event time
//! ([`Watermark`], window assignment by slices), Flink-style durations, and the session
//! [`Configuration`] set with `SET 'key' = 'value'`.
//!
//! Nothing here does I/O or knows about SQL; it is the vocabulary the SQL
//! front end, the runtime and the connectors use to talk to each other.

pub mod changelog;
pub mod config;
pub mod duration;
pub mod error;
pub mod hint;
pub mod time;
pub mod window;

pub use changelog::{RowKind, StreamBatch};
pub use config::{
    CheckpointingOptions, Configuration, RestartStrategy, ResultMode, RuntimeMode, SavepointRestore,
};
pub use error::CommonError;
pub use time::Watermark;
pub use window::{WindowFunction, WindowKind, WindowSpec, ZoneShift};
