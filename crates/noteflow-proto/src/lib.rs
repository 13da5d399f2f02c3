//! NoteFlow's gRPC API, package `noteflow.v1`, generated at build time from `proto/noteflow/v1/`.
//!
//! Both the server and the client depend on this crate, so the `.proto` files stay the one source of
//! truth for both sides.

pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("noteflow.v1");

    /// The encoded `FileDescriptorSet` of the API (with its imports), for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("noteflow_descriptor");
}
