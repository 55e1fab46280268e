#![no_main]

use libfuzzer_sys::fuzz_target;

// Decodes as `peek_record_type` and as `Unverified::<FuzzBody>`; see `check_envelope`.
fuzz_target!(|data: &[u8]| postkey_wire_fuzz::check_envelope(data));
