#![no_main]
// The body is peapod::fuzz::signal (src/fuzz.rs); its seeds are in fuzz/corpus/signal/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peapod::fuzz::signal(data));
