//! The operator's tools, run against a data folder or a running server: `evidentd backup`,
//! `evidentd copy` between stores, and the offline `verify-store`, `reindex` and `migrate`.

pub mod backup;
pub mod copy;
pub mod maintenance;
