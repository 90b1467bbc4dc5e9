//! What an identity provider answers: JWKS, discovery documents, Cache-Control (identity/).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| locgate::fuzzing::identity_provider(data));
