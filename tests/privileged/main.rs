//! Privileged integration tests: the real binary, real namespaces, mounts and cgroups.
//! Run on the host (cgroup v1/hybrid) and inside `rootfs-tools/vm-run` (pure cgroup v2).

mod cgroup;
mod clients;
mod common;
mod core;
mod cri;
mod differential;
mod images;
mod network;
mod node;
mod pods;
mod probes;
mod security;
mod terminal;
