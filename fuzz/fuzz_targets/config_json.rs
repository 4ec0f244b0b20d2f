#![no_main]
// The body is peapod::fuzz::config_json (src/fuzz.rs); its seeds are in fuzz/corpus/config_json/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peapod::fuzz::config_json(data));
