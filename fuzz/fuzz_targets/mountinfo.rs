#![no_main]
// The body is peapod::fuzz::mountinfo (src/fuzz.rs); its seeds are in fuzz/corpus/mountinfo/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peapod::fuzz::mountinfo(data));
