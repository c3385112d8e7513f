//! Compiles `proto/` with protox (no system `protoc` needed) and tonic-prost-build,
//! and writes the descriptor set that server reflection serves.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/filegate/v1/filegate.proto"];
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(protos, ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("filegate_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .bytes(".filegate.v1.UploadRequest.data")
        .bytes(".filegate.v1.ReadResponse.data")
        .compile_fds(descriptors)?;
    Ok(())
}
