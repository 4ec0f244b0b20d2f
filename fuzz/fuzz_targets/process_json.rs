#![no_main]
// The body is peapod_pod::fuzz::process_json (crates/pod/src/fuzz.rs); its seeds are in fuzz/corpus/process_json/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peapod_pod::fuzz::process_json(data));
