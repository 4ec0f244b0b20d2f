#![no_main]
// The body is peapod_pod::fuzz::probe_http (crates/pod/src/fuzz.rs); its seeds are in fuzz/corpus/probe_http/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peapod_pod::fuzz::probe_http(data));
