//! The log engine: the sequencer (`ledger`), the store behind the storage seam (`store`,
//! `storage`), queries over the indexes, the genesis and the log key, the start-up check
//! and the background verification.

pub(crate) mod check;
pub mod cluster;
pub(crate) mod genesis;
pub(crate) mod ledger;
pub(crate) mod logkey;
pub mod query;
pub mod storage;
pub mod store;
pub(crate) mod verify;
pub mod witnessing;
