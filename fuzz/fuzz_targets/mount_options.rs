#![no_main]
// The body is peapod::fuzz::mount_options (src/fuzz.rs); its seeds are in fuzz/corpus/mount_options/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peapod::fuzz::mount_options(data));
