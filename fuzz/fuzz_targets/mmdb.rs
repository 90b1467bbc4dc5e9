//! A MaxMind DB file, opened, probed and looked up (intel/mmdb.rs, intel/record.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| locgate::fuzzing::mmdb(data));
