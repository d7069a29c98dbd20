//! Conformance tests of `evident-core`: the shared vectors (`tests/vectors/`, with
//! provenance in its README), Evident's own leaf-record vectors, and property tests.

#![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

mod batch;
mod dsse;
mod frameworks;
mod gate_properties;
mod harness;
mod keybundle;
mod keyless;
mod keyless_gate;
mod kinds;
mod merkle;
mod note;
mod policy;
mod properties;
mod record;
mod registry;
mod statement;
mod tiles;
mod vindex;
mod witnesses;
