#![no_main]
// The body is peapod::fuzz::pod_manifest (src/fuzz.rs); its seeds are in fuzz/corpus/pod_manifest/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peapod::fuzz::pod_manifest(data));
