#![no_main]
// The body is peapod::fuzz::image_unpack (src/fuzz.rs); its seeds are in fuzz/corpus/image_unpack/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peapod::fuzz::image_unpack(data));
