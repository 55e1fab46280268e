#![no_main]

use libfuzzer_sys::fuzz_target;

// Decodes a box-protocol reply frame; see `check_reply`.
fuzz_target!(|data: &[u8]| postkey_wire_fuzz::check_reply(data));
