//! The operator's data tables and lists (intel/asn_table.rs, network_kind.rs, cidr_list.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| locgate::fuzzing::data_tables(data));
