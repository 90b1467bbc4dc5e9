//! Login-form bodies, urlencoded and JSON (identity/form.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| locgate::fuzzing::login_form(data));
