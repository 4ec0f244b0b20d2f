#![no_main]
// The body is peapod::fuzz::cri_log (src/fuzz.rs); its seeds are in fuzz/corpus/cri_log/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peapod::fuzz::cri_log(data));
