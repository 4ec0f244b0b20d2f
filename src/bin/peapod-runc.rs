//! `peapod-runc`: the runc-compatible OCI verbs of peapod only, the binary containerd's
//! `BinaryName` and podman's `--runtime` point at (README "Performance": smaller and faster to
//! start than the full `peapod`, which accepts the same verbs).
//!
//! It starts without Rust's runtime start-up (`#![no_main]`): a container start executes this
//! binary twice (the protective re-execution, CVE-2019-5736), and under emulation that start-up
//! (reading and parsing `/proc/self/maps` for a stack guard, among others) is a measurable share
//! of `run`. What of it matters is done by [`peapod_sys::bare_start`]; a stack overflow is then a
//! plain SIGSEGV instead of a message.
// Not under `cargo test`: the test harness brings its own `main`.
#![cfg_attr(not(test), no_main)]

/// The C entry point, called once by glibc's start-up (`std::env::args` still works: on glibc
/// the standard library takes argv from `.init_array`, not from here).
// SAFETY (of the attribute): no other symbol of the program is named `main`; this crate has no
// Rust `fn main`, and the signature is the one the C start-up calls.
#[cfg(not(test))]
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    peapod_sys::bare_start();
    peapod_runc::app::main::<peapod_runc::cli::RuncCli>()
}
