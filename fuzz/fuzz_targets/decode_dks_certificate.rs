#![no_main]

use libfuzzer_sys::fuzz_target;
use postkey_wire::DomainKeySetCertificate;

// As a message of `DomainKeySetCertificate` and as a signed envelope of it; see `check_record`.
fuzz_target!(|data: &[u8]| postkey_wire_fuzz::check_record::<DomainKeySetCertificate>(data));
