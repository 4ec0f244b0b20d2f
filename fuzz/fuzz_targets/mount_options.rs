#![no_main]
// The body is peapod_pod::fuzz::mount_options (crates/pod/src/fuzz.rs); its seeds are in fuzz/corpus/mount_options/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peapod_pod::fuzz::mount_options(data));
