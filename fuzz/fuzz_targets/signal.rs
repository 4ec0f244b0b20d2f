#![no_main]
// The body is peapod_pod::fuzz::signal (crates/pod/src/fuzz.rs); its seeds are in fuzz/corpus/signal/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peapod_pod::fuzz::signal(data));
