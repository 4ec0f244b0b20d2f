#![no_main]
// The body is peapod_pod::fuzz::mountinfo (crates/pod/src/fuzz.rs); its seeds are in fuzz/corpus/mountinfo/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peapod_pod::fuzz::mountinfo(data));
