//! peapod's Kubernetes model, pure: values in, decisions out. No syscalls, no unsafe, no nix or
//! libc; the only I/O is [`manifest::read_manifest`] (a bounded file read).
//!
//! - [`quantity`]: resource quantities parsed exactly as the API server parses them.
//! - [`resources`]: requests/limits to cgroup values, QoS class and `oom_score_adj`.
//! - [`manifest`]: Pod manifests decoded, validated, defaulted and mapped onto the supervisor's
//!   plain structs; the apimachinery label and name syntax (`manifest::names`).
//! - [`supervisor`]: kubelet's restart, back-off, probe and status logic as a state machine with
//!   an injected clock.
//! - [`node`]: this machine as a `Node` object, the scheduler's predicates, resource fit, taints,
//!   admission (given the pods already admitted), NoExecute eviction and the placement planner.
#![forbid(unsafe_code)]

pub mod manifest;
pub mod node;
pub mod quantity;
pub mod resources;
pub mod supervisor;

pub use quantity::{Format, Quantity, QuantityError};
pub use resources::{
    ContainerCgroup, ContainerRef, ContainerResources, InitContainerResources, PodCgroup,
    PodResources, QosClass, ResourceError, ResourceList,
};
