//! Thin glue from the pod, image and node verbs to the library crates (the OCI verbs' glue is
//! `peapod_runc::commands`).

pub mod completion;
pub mod image;
pub mod man;
pub mod node;
pub mod pod;
