#![no_main]
// The body is peapod_pod::fuzz::node_args (crates/pod/src/fuzz.rs); its seeds are in fuzz/corpus/node_args/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peapod_pod::fuzz::node_args(data));
