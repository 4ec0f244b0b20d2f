#![no_main]
// The body is peapod_pod::fuzz::quantity (crates/pod/src/fuzz.rs); its seeds are in fuzz/corpus/quantity/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peapod_pod::fuzz::quantity(data));
