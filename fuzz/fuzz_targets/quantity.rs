#![no_main]
// The body is peapod::fuzz::quantity (src/fuzz.rs); its seeds are in fuzz/corpus/quantity/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peapod::fuzz::quantity(data));
