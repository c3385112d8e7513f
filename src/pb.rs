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

/// One RPC of a service, as its descriptor describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Method {
    /// `package.Service`.
    pub service: String,
    pub name: String,
    pub client_streaming: bool,
    pub server_streaming: bool,
}

impl Method {
    /// The HTTP/2 path of its calls: `/package.Service/Method`.
    pub fn path(&self) -> String {
        format!("/{}/{}", self.service, self.name)
    }
}

/// Every RPC of the services in `descriptor_sets` (encoded
/// `FileDescriptorSet`s; one that does not decode contributes none).
pub fn methods(descriptor_sets: &[&[u8]]) -> Vec<Method> {
    use prost::Message;
    let mut methods = Vec::new();
    for encoded in descriptor_sets {
        let Ok(set) = prost_types::FileDescriptorSet::decode(*encoded) else {
            continue;
        };
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    methods.push(Method {
                        service: format!("{}.{}", file.package(), service.name()),
                        name: method.name().to_owned(),
                        client_streaming: method.client_streaming(),
                        server_streaming: method.server_streaming(),
                    });
                }
            }
        }
    }
    methods
}
