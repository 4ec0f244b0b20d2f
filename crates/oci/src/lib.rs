//! peapod's OCI runtime core: what runc does, with no Kubernetes type, YAML or TLS in its
//! dependency graph.
//!
//! Layout: [`container`] holds the OCI lifecycle (create, start, kill, delete, exec, state,
//! list, ps, pause/resume, update, events) built on [`process`] (the forked stages that enter
//! namespaces) and [`rootfs`] (mounts, devices, pivot_root); [`linux`] maps spec values to the
//! kernel's (capabilities, rlimits, sysctl paths) for both; [`cgroups`] (v1, v2, the eBPF
//! device filter), [`seccomp`] (with the RuntimeDefault profile), [`hooks`], [`signal`] names,
//! [`spec_template`] (`peapod spec`), [`logger`] (runc's JSON log lines). Kernel calls that need
//! `unsafe` live in `peapod_sys`; this crate has none.
#![deny(unsafe_code)]

pub mod cgroups;
pub mod container;
pub mod hooks;
pub mod json;
pub mod linux;
pub mod logger;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod signal;
pub mod spec_template;
