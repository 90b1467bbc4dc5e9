//! The employee directory, CSV form (employees/csv_file.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| locgate::fuzzing::employees_csv(data));
