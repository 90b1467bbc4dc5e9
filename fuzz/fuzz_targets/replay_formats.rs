//! Sign-in exports for `locgate replay` (replay/formats.rs): IdP JSON documents, JSON lines, CSV.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| locgate::fuzzing::replay_formats(data));
