#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| splitguard::fuzzing::import_keepalived(data));
