#![no_main]
// The body is peapod::fuzz::cgroup_files (src/fuzz.rs); its seeds are in fuzz/corpus/cgroup_files/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peapod::fuzz::cgroup_files(data));
