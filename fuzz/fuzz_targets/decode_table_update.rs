#![no_main]

use libfuzzer_sys::fuzz_target;
use postkey_wire::TableUpdate;

// As a message of `TableUpdate` and as a signed envelope of it; see `check_record`.
fuzz_target!(|data: &[u8]| postkey_wire_fuzz::check_record::<TableUpdate>(data));
