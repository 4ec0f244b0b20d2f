#![no_main]
// The body is peapod_pod::fuzz::registry_http (crates/pod/src/fuzz.rs); its seeds are in fuzz/corpus/registry_http/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peapod_pod::fuzz::registry_http(data));
