//! Cookie and Set-Cookie readers (identity/cookie.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| locgate::fuzzing::cookie(data));
