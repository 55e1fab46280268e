#![no_main]

use libfuzzer_sys::fuzz_target;

// Reads the input as a PNG holding a Data Matrix: any result, never a panic.
fuzz_target!(|data: &[u8]| {
    let _ = postkey_indicium::symbol::read_png(data);
});
