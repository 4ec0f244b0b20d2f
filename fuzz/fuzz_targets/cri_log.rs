#![no_main]
// The body is peapod_pod::fuzz::cri_log (crates/pod/src/fuzz.rs); its seeds are in fuzz/corpus/cri_log/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peapod_pod::fuzz::cri_log(data));
