//! Chunked request bodies (proxy/h1/chunked.rs): all at once, byte at a time and in pieces agree.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| locgate::fuzzing::chunked(data));
