//! HTTP/1.1 request and response heads (proxy/h1/head.rs), with a re-serialise round trip.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| locgate::fuzzing::h1_head(data));
