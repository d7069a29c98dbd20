//! The operator's tools, run against a data folder or a running server: `evidentd backup`,
//! `evidentd copy` between stores, `evidentd export-tiles` (the log as static tlog-tiles),
//! and the offline `verify-store`, `reindex` and `migrate`.

pub mod backup;
pub mod copy;
pub mod export;
pub mod maintenance;
