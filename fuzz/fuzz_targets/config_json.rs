#![no_main]
// The body is peapod_pod::fuzz::config_json (crates/pod/src/fuzz.rs); its seeds are in fuzz/corpus/config_json/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peapod_pod::fuzz::config_json(data));
