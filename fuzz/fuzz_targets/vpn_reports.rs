//! What VPN servers report (vpn/openvpn.rs, wireguard.rs, log_source.rs, parse_address).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| locgate::fuzzing::vpn_reports(data));
