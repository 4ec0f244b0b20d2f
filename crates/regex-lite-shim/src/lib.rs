//! `regex` as far as oci-spec uses it, from regex-lite (see this crate's Cargo.toml).
pub use regex_lite::*;
