//! Evident's wire format: the `evident.v1` protobuf messages and the tonic service stubs.
//!
//! Generated at build time from `proto/evident/v1/*.proto`. Only the server's service module
//! and the client's transport module use these types; everything else works on the checked
//! types of `evident-core`.

#![allow(missing_debug_implementations, reason = "generated code")]
#![allow(clippy::all, clippy::pedantic, reason = "generated code")]

/// The `evident.v1` package.
pub mod v1 {
    tonic::include_proto!("evident.v1");
}

/// The encoded `FileDescriptorSet` of every Evident proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("evident_descriptor");
