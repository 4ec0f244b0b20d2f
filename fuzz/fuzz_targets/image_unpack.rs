#![no_main]
// The body is peapod_pod::fuzz::image_unpack (crates/pod/src/fuzz.rs); its seeds are in fuzz/corpus/image_unpack/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peapod_pod::fuzz::image_unpack(data));
