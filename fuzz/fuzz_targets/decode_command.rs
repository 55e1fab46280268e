#![no_main]

use libfuzzer_sys::fuzz_target;

// Decodes a box-protocol command frame; see `check_command`.
fuzz_target!(|data: &[u8]| postkey_wire_fuzz::check_command(data));
