#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| splitguard::fuzzing::vrrp_packet(data));
