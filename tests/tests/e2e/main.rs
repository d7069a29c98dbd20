//! End-to-end tests: the real `evidentd` and `evident` binaries on loopback.

#![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

mod auditor;
mod durability;
mod gate;
mod operations;
mod policy;
mod registry;
mod rejections;
mod report;
mod submit;
mod tamper;
