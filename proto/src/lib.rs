//! The internal contracts of Partner Callbacks, generated from `proto/`.
//!
//! This is the only crate that runs code generation. Services convert these
//! wire types into their own domain types at their edge (`grpc/convert.rs`)
//! and never let them further in.

pub mod registry {
    pub mod v1 {
        #![allow(missing_debug_implementations, clippy::all)]
        tonic::include_proto!("callbacks.registry.v1");
    }
}

pub mod dispatcher {
    pub mod v1 {
        #![allow(missing_debug_implementations, clippy::all)]
        tonic::include_proto!("callbacks.dispatcher.v1");
    }
}

/// The encoded descriptors of every service here, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("callbacks_descriptor");
