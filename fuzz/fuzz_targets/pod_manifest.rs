#![no_main]
// The body is peapod_pod::fuzz::pod_manifest (crates/pod/src/fuzz.rs); its seeds are in fuzz/corpus/pod_manifest/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peapod_pod::fuzz::pod_manifest(data));
