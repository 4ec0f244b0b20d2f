#![no_main]
// The body is peapod_pod::fuzz::image_reference (crates/pod/src/fuzz.rs); its seeds are in fuzz/corpus/image_reference/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peapod_pod::fuzz::image_reference(data));
