#![no_main]
// The body is peapod::fuzz::registry_http (src/fuzz.rs); its seeds are in fuzz/corpus/registry_http/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peapod::fuzz::registry_http(data));
