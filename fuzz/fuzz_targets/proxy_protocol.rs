//! PROXY protocol v1 and v2 headers (edge/proxy_proto.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| locgate::fuzzing::proxy_protocol(data));
