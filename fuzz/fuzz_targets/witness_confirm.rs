#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| splitguard_node::fuzzing::witness_confirm(data));
