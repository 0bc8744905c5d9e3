//! Generated protobuf and gRPC code: the only place it is included.

#![allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    missing_debug_implementations
)]

/// `mediastore.v1`: messages, `MediaServiceClient` and `MediaServiceServer`.
pub mod v1 {
    tonic::include_proto!("mediastore.v1");
}

/// Encoded `FileDescriptorSet` of every proto file (with its imports), for
/// gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("mediastore_descriptor");
