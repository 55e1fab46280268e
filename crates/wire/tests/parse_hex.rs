//! The hex forms of tokens and share-set IDs (what operators type and JSON carries) accept
//! exactly one spelling per value up to letter case. Regression: `parse_hex` once accepted a
//! sign, so `+0112233445566AA` parsed as the token `00112233445566AA`.

use postkey_wire::{RegistrationToken, ShareSetId, TestTokens, Token};
use proptest::prelude::*;

/// Checks `parse` on `s`: refused, or the value prints as `s` up to letter case.
fn accepts_only_its_own_spelling<T: ToString>(
    s: &str,
    parse: fn(&str) -> Result<T, postkey_wire::WireError>,
) -> bool {
    parse(s).map_or(true, |value| value.to_string().eq_ignore_ascii_case(s))
}

#[test]
fn a_sign_or_a_space_is_not_a_hex_digit() {
    for bad in ["+0112233445566AA", "-0112233445566AA", " 0112233445566AA", "0x112233445566AA"] {
        assert!(Token::parse_hex(bad).is_err(), "{bad}");
        assert!(RegistrationToken::parse_hex(bad).is_err(), "{bad}");
    }
    assert!(TestTokens::parse_hex("+00102030405060708090A0B0C0D0E0F").is_err());
    assert!(ShareSetId::parse_hex("+00112233445566778899aabbccddeef").is_err());
    assert!(ShareSetId::parse_hex("00112233445566778899aabbccddeeff").is_ok());
}

/// Valid hex of `len` digits, with one pair's first digit maybe replaced by a sign or a space.
fn hex_with_a_stray_char(len: usize) -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(
            proptest::sample::select(b"0123456789abcdefABCDEF".to_vec()),
            len,
        ),
        any::<proptest::sample::Index>(),
        proptest::option::of(proptest::sample::select(vec![b'+', b'-', b' '])),
    )
        .prop_map(move |(mut digits, at, stray)| {
            if let Some(c) = stray {
                digits[at.index(len / 2) * 2] = c;
            }
            String::from_utf8(digits).unwrap_or_default()
        })
}

proptest! {
    #[test]
    fn hex_forms_have_one_spelling(s8 in hex_with_a_stray_char(16), s16 in hex_with_a_stray_char(32)) {
        prop_assert!(accepts_only_its_own_spelling(&s8, Token::parse_hex));
        prop_assert!(accepts_only_its_own_spelling(&s8, RegistrationToken::parse_hex));
        prop_assert!(accepts_only_its_own_spelling(&s16, TestTokens::parse_hex));
        prop_assert!(accepts_only_its_own_spelling(&s16, ShareSetId::parse_hex));
    }

    #[test]
    fn printed_hex_parses_back(bytes in any::<[u8; 16]>()) {
        let id = ShareSetId(bytes);
        prop_assert_eq!(ShareSetId::parse_hex(&id.to_string()).ok(), Some(id));
        let tokens = TestTokens::from_bytes(bytes);
        prop_assert_eq!(TestTokens::parse_hex(&tokens.to_string()).ok(), Some(tokens));
    }
}
