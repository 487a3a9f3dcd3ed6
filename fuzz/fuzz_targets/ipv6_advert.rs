#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| splitguard_node::fuzzing::ipv6_advert(data));
