//! End-to-end tests: the real `evidentd` and `evident` binaries on loopback.

#![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

mod auditor;
mod backup;
mod cli;
mod cluster;
mod completeness;
mod copy;
mod dos;
mod durability;
mod gate;
mod insider;
mod integrity;
mod metrics;
mod operations;
mod outputs;
mod packaging;
mod paging;
mod policy;
mod postgres;
mod registry;
mod rejections;
mod release;
mod report;
mod security;
mod sigstore;
mod storage;
mod stream;
mod submit;
mod tamper;
mod tiles;
mod tlog_proof;
mod witness;
