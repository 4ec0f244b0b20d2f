#![no_main]
// The body is peapod::fuzz::probe_http (src/fuzz.rs); its seeds are in fuzz/corpus/probe_http/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peapod::fuzz::probe_http(data));
