#![no_main]
// The body is peapod_pod::fuzz::cgroup_files (crates/pod/src/fuzz.rs); its seeds are in fuzz/corpus/cgroup_files/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peapod_pod::fuzz::cgroup_files(data));
