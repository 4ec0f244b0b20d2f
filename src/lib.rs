//! peapod: a Linux-native pod sandbox runtime and a runc-compatible OCI runtime.
//!
//! Layout: [`container`] holds the OCI lifecycle (create, start, kill, delete, exec) built on
//! [`process`] (the forked stages that enter namespaces) and [`rootfs`] (mounts, devices,
//! pivot_root). Kernel calls that need `unsafe` live only in [`sys`] and in the BPF part of
//! [`cgroups`].
#![deny(unsafe_code)]

pub mod cgroups;
pub mod container;
pub mod fuzz;
pub mod hooks;
pub mod image;
pub mod k8s;
pub mod logger;
pub mod node;
pub mod pod;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod signal;
pub mod spec_template;
pub mod supervisor;
#[allow(unsafe_code)]
pub mod sys;
