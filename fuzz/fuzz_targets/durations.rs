#![no_main]
// The body is peapod::fuzz::durations (src/fuzz.rs); its seeds are in fuzz/corpus/durations/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peapod::fuzz::durations(data));
