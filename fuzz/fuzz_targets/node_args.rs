#![no_main]
// The body is peapod::fuzz::node_args (src/fuzz.rs); its seeds are in fuzz/corpus/node_args/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peapod::fuzz::node_args(data));
