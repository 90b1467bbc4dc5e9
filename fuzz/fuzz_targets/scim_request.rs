//! SCIM request bodies: User, PatchOp, list filter (scim/resource.rs, patch.rs, filter.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| locgate::fuzzing::scim_request(data));
