//! The runtime side of CNI (spec 1.0) for peapod, as kubelet's runtimes use libcni:
//!
//! - [`config`]: the first `*.conflist`/`*.conf`/`*.json` of a conf dir in lexical order
//!   (containerd's rule; a single config is wrapped into a list), validated with errors naming
//!   the file and the field;
//! - [`default_net`]: peapod's default network (bridge `peapod0`, host-local on a free private
//!   /16, portmap, firewall), written when the conf dir holds none;
//! - [`Cni`]: ADD (in order, `prevResult` chained, undone by a DEL of the chain on failure),
//!   DEL (reverse order, with the cached result; idempotent), CHECK, VERSION, with the result
//!   cached in libcni's format (`/var/lib/cni/results/<network>-<id>-<ifname>`);
//! - [`exec`]: plugin binaries found in the `CNI_PATH` dirs and run with the `CNI_*`
//!   environment and a timeout, behind the [`PluginExec`] trait;
//! - [`result`]: the typed result (pod IPs, interfaces, routes, DNS) read from 1.0.0, 0.4.0
//!   and 0.3.x plugins;
//! - [`capability`]: `portMappings` and `bandwidth` (from the pod's bandwidth annotations).
//!
//! No unsafe code, no async runtime: every call blocks its thread until the plugins answer.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cache;
pub mod capability;
pub mod config;
pub mod default_net;
pub mod exec;
pub mod ipnet;
pub mod result;
mod runtime;
pub mod version;

pub use capability::{
    Bandwidth, BandwidthError, CapabilityArgs, PortMapping, Protocol, bandwidth_from_annotations,
};
pub use config::{ConfigError, NetworkConfigList, PluginConf, load_default};
pub use default_net::{DefaultNetwork, ensure_default_network};
pub use exec::{CniCommand, ErrorObject, ExecFailure, PluginError, PluginExec, ProcessExec};
pub use ipnet::IpNet;
pub use result::CniResult;
pub use runtime::{Cni, CniError, DEFAULT_IFNAME, DEFAULT_TIMEOUT, RuntimeConf, plugin_dirs};

#[cfg(test)]
mod tests;
