#![no_main]
// The body is peapod::fuzz::node_config (src/fuzz.rs); its seeds are in fuzz/corpus/node_config/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peapod::fuzz::node_config(data));
