//! Shared-history records from the Redis stream (history/shared_record.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| locgate::fuzzing::history_record(data));
