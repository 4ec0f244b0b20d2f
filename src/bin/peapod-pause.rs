//! `peapod-pause`, the pod's pause process (crates/pause). Built by the root package so that
//! `cargo build`, `cargo install --path .` and `cargo test --test privileged` always produce it
//! next to `peapod`, where the pod runtime looks for it.

fn main() {
    peapod_pause::main()
}
