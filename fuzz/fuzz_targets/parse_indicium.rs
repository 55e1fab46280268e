#![no_main]

use libfuzzer_sys::fuzz_target;

// Reads the input as indicium text; what parses prints back to text that parses to the same
// indicium with no repairs.
fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else { return };
    if let Ok(parsed) = postkey_indicium::parse(text) {
        let again = postkey_indicium::parse(&parsed.indicium.to_text())
            .expect("the text form of a parsed indicium parses");
        assert_eq!(again.indicium, parsed.indicium);
        assert_eq!(again.repairs, []);
    }
});
