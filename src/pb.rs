//! Code generated from `proto/` (in `OUT_DIR`), walled off in this module.
//! Nothing outside the gRPC edge uses these types.

#![allow(clippy::all, missing_docs)]

/// `filegate.v1`
pub mod v1 {
    tonic::include_proto!("filegate.v1");
}

/// The encoded descriptor set of `proto/`, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/filegate_descriptor.bin"));
