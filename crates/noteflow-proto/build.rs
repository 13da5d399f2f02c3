//! Compiles `proto/noteflow/v1/*.proto` with protox (pure Rust, no system `protoc`) and generates the
//! prost messages and tonic client/server code. The encoded descriptor set is kept for gRPC server
//! reflection.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let file = proto_root.join("noteflow/v1/noteflow.proto");
    println!("cargo:rerun-if-changed={}", proto_root.display());

    let fds = protox::compile([&file], [&proto_root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("noteflow_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
