#![no_main]

use libfuzzer_sys::fuzz_target;
use postkey_wire::{DomainId, codec};

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = codec::from_bytes::<DomainId>(data, codec::MAX_MESSAGE_LEN) {
        assert_eq!(codec::to_bytes(&value), data);
    }
});
