#![no_main]
// The body is peapod::fuzz::process_json (src/fuzz.rs); its seeds are in fuzz/corpus/process_json/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peapod::fuzz::process_json(data));
