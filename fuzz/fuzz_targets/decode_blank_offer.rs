#![no_main]

use libfuzzer_sys::fuzz_target;
use postkey_wire::BlankOffer;

// As a message of `BlankOffer` and as a signed envelope of it; see `check_record`.
fuzz_target!(|data: &[u8]| postkey_wire_fuzz::check_record::<BlankOffer>(data));
