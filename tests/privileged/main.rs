//! Privileged integration tests: the real binary, real namespaces, mounts and cgroups.
//! Run on the host (cgroup v1/hybrid) and inside `rootfs-tools/vm-run` (pure cgroup v2).

mod cgroup;
mod cgroup_parity;
mod cgroup_systemd;
mod cgroup_systemd_real;
mod clients;
mod common;
mod core;
mod cri;
mod differential;
mod features_exec;
mod features_process;
mod features_seccomp;
mod images;
mod mounts_idmap;
mod mounts_options;
mod mounts_parity;
mod mounts_propagation;
mod mounts_rootfs;
mod network;
mod node;
mod parity_cli;
mod parity_proc;
mod pods;
mod pods_status;
mod probes;
mod runc_errors;
mod scale;
mod security;
mod spec_edges;
mod terminal;
