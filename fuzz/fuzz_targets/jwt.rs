//! JWT header, signature and claims (identity/jwt.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| locgate::fuzzing::jwt(data));
