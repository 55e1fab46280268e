#![no_main]

use libfuzzer_sys::fuzz_target;
use postkey_wire::Message;
use postkey_wire_fuzz::FuzzBody;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::<FuzzBody>::from_bytes(data) {
        assert_eq!(message.to_bytes(), data);
    }
});
