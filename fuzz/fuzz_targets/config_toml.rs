//! The config file (config/, every section's check).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| locgate::fuzzing::config_toml(data));
