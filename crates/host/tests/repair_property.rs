//! The check characters repair what they can before verification, and a repair is decided by
//! them alone (docs/indicium.md §4): over random mailpieces and random misread characters, a
//! text that parses with a token check passing is exactly the indicium printed, and one wrong
//! character per field is always repaired back to it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use postkey_indicium::Indicium;
use postkey_secrets::MasterKey;
use postkey_wire::{Date, DomainId, Isn, Mailpiece, SubdomainId, Zip};
use proptest::prelude::*;

const SYMBOLS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*";

fn keys() -> (MasterKey, MasterKey) {
    (MasterKey::from_bytes([0x11; 32]), MasterKey::from_bytes([0x22; 32]))
}

/// Both tokens recompute over the parsed fields: what a verifier would call good (the
/// archive's checks apart).
fn tokens_hold(i: &Indicium) -> bool {
    let (vendor, postal) = keys();
    let m = &i.mailpiece;
    let period = m.date.period();
    let ve = DomainId::parse("VE").unwrap();
    vendor.token_key(&ve, &m.isn, period).token(m) == i.vendor
        && postal.token_key(m.subdomain.domain(), &m.isn, period).token(m) == i.postal
}

fn printed(isn: &str, value: u32, count: u32, zip: &str, day: u8) -> Indicium {
    let mailpiece = Mailpiece {
        isn: Isn::parse(isn).unwrap(),
        subdomain: SubdomainId::parse("USPS/US").unwrap(),
        date: Date::new(2026, 12, day).unwrap(),
        value,
        count,
        zip: Zip::normalize(zip).unwrap(),
    };
    let mut i = Indicium {
        mailpiece,
        vendor: postkey_wire::Token::from_bytes([0; 8]),
        postal: postkey_wire::Token::from_bytes([0; 8]),
    };
    let (vendor, postal) = keys();
    let period = i.mailpiece.date.period();
    i.vendor = vendor
        .token_key(&DomainId::parse("VE").unwrap(), &i.mailpiece.isn, period)
        .token(&i.mailpiece);
    i.postal = postal
        .token_key(&DomainId::parse("USPS").unwrap(), &i.mailpiece.isn, period)
        .token(&i.mailpiece);
    i
}

/// The text with the character at each (word, position) replaced by another symbol.
fn misread(text: &str, errors: &[(usize, usize, usize)]) -> String {
    let mut words: Vec<Vec<u8>> = text.split(' ').map(|w| w.as_bytes().to_vec()).collect();
    for &(w, at, shift) in errors {
        let w = w % words.len();
        let word = &mut words[w];
        let at = at % word.len();
        let old = SYMBOLS.iter().position(|&c| c == word[at]).unwrap();
        word[at] = SYMBOLS[(old + 1 + shift % 36) % 37];
    }
    let text = words.into_iter().map(|w| String::from_utf8(w).unwrap()).collect::<Vec<_>>();
    text.join(" ")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn a_repair_never_makes_a_mailpiece_good_that_was_not_printed(
        isn in "[0-9A-Z]{1,16}",
        value in any::<u32>(),
        count in any::<u32>(),
        zip in "[0-9A-Z]{1,10}",
        day in 1u8..=28,
        errors in prop::collection::vec((0usize..10, any::<usize>(), any::<usize>()), 1..6),
    ) {
        let original = printed(&isn, value, count, &zip, day);
        let printed_text = original.to_text();
        let text = misread(&printed_text, &errors);
        // How many characters of each word differ from the printed text.
        let wrong: Vec<usize> = printed_text
            .split(' ')
            .zip(text.split(' '))
            .map(|(a, b)| a.bytes().zip(b.bytes()).filter(|(x, y)| x != y).count())
            .collect();
        let parsed = postkey_indicium::parse(&text);
        if let Ok(p) = &parsed
            && tokens_hold(&p.indicium)
        {
            prop_assert_eq!(&p.indicium, &original, "a repair made another mailpiece good");
        }
        // One wrong character per word at most: always repaired to the indicium printed.
        if wrong.iter().all(|&n| n <= 1) {
            let p = parsed.unwrap();
            prop_assert_eq!(&p.indicium, &original);
            prop_assert!(tokens_hold(&p.indicium));
        } else if wrong.contains(&2) {
            // A word with two wrong characters is never repaired: the text is refused.
            prop_assert!(parsed.is_err(), "a field with two errors was repaired: {}", text);
        }
    }
}
