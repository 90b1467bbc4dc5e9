//! Forwarded / X-Forwarded-For chain walking (client_addr).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| locgate::fuzzing::forwarded_chain(data));
