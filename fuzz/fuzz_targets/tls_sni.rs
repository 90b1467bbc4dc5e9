//! TLS ClientHello SNI, read without terminating TLS (edge/sni.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| locgate::fuzzing::tls_sni(data));
