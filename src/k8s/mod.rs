//! Plain Kubernetes value types and kubelet's resource arithmetic, with no I/O.
//!
//! - [`quantity`]: resource quantities parsed exactly as the API server parses them.
//! - [`resources`]: requests/limits to cgroup values, QoS class and `oom_score_adj`.

pub mod quantity;
pub mod resources;

pub use quantity::{Format, Quantity, QuantityError};
pub use resources::{
    ContainerCgroup, ContainerRef, ContainerResources, InitContainerResources, PodCgroup,
    PodResources, QosClass, ResourceError, ResourceList,
};
