//! Compiles `proto/` into Rust without a `protoc` binary: `protox` parses the
//! files in pure Rust, the descriptor set is written to `OUT_DIR` for gRPC
//! server reflection, and `tonic-prost-build` generates messages, clients and
//! servers from it.

use std::{env, path::PathBuf};

const PROTOS: &[&str] = &[
    "proto/mediastore/v1/media.proto",
    "proto/mediastore/v1/media_service.proto",
    "proto/mediastore/v1/folder_service.proto",
    "proto/mediastore/v1/binding_service.proto",
    "proto/mediastore/v1/upload_service.proto",
    "proto/mediastore/v1/admin_service.proto",
    "proto/mediastore/v1/access_service.proto",
    "proto/mediastore/v1/error_reason.proto",
    "proto/mediastore/v1/job.proto",
    "proto/mediastore/v1/job_service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let fds = protox::compile(PROTOS, ["proto"])?;
    std::fs::write(
        out_dir.join("mediastore_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;

    tonic_prost_build::configure()
        // Payload fields are `bytes::Bytes`: chunks move from the HTTP/2 frame
        // to the disk writer without a copy.
        .bytes(".mediastore.v1")
        .compile_fds(fds)?;
    Ok(())
}
