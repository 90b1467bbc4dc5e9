//! The employee directory, TOML form (employees/toml_file.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| locgate::fuzzing::employees_toml(data));
