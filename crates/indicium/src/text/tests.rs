use proptest::prelude::*;

use super::*;
use crate::check::{ALPHABET, encode};

/// The mailpiece of protocol §6.5 with the tokens of docs/tokens.md's worked example.
const EXAMPLE: &str = "PK14MX 04012345671SL USPS1NP USX63 20261129IB4 65FC2 1NJA 0648430J \
                       242B526248FCD19CCFD 2329ABC12CA06EF8VTZ";

fn example() -> Indicium {
    Indicium {
        mailpiece: Mailpiece {
            isn: Isn::parse("0401234567").unwrap(),
            subdomain: SubdomainId::parse("USPS/US").unwrap(),
            date: Date::parse("20261129").unwrap(),
            value: 65,
            count: 1,
            zip: Zip::normalize("06484").unwrap(),
        },
        vendor: Token::parse_hex("242B526248FCD19C").unwrap(),
        postal: Token::parse_hex("2329ABC12CA06EF8").unwrap(),
    }
}

/// The example line with word `i` replaced.
fn with_word(i: usize, word: &str) -> String {
    let mut words: Vec<&str> = EXAMPLE.split(' ').collect();
    words[i] = word;
    words.join(" ")
}

/// `word` with the symbol at `position` moved `delta` steps along the alphabet.
fn corrupt(word: &str, position: usize, delta: usize) -> String {
    let mut bytes = word.as_bytes().to_vec();
    let v = ALPHABET.bytes().position(|c| c == bytes[position]).unwrap();
    bytes[position] = ALPHABET.as_bytes()[(v + delta) % 37];
    String::from_utf8(bytes).unwrap()
}

fn clean(text: &str) -> Indicium {
    let parsed = parse(text).unwrap();
    assert_eq!(parsed.repairs, [], "{text}");
    parsed.indicium
}

#[test]
fn the_worked_example() {
    assert_eq!(example().to_text(), EXAMPLE);
    assert_eq!(
        example().lines(),
        [
            "PK14MX 04012345671SL USPS1NP USX63",
            "20261129IB4 65FC2 1NJA 0648430J",
            "242B526248FCD19CCFD 2329ABC12CA06EF8VTZ"
        ]
    );
    assert_eq!(clean(EXAMPLE), example());
    assert_eq!(
        example().mailpiece.canonical_bytes(),
        b"0401234567|USPS/US|20261129|65|1|06484".to_vec()
    );
}

#[test]
fn the_printed_lines_and_ocr_whitespace_read_back() {
    assert_eq!(clean(&example().lines().join("\n")), example());
    assert_eq!(clean(&example().lines().join("\r\n")), example());
    let spaced = format!("\n\t  {}  \r\n", EXAMPLE.replace(' ', " \t  "));
    assert_eq!(clean(&spaced), example());
}

#[test]
fn lower_case_is_accepted() {
    assert_eq!(clean(&EXAMPLE.to_lowercase()), example());
}

#[test]
fn every_field_is_repaired_at_every_position() {
    let words: Vec<&str> = EXAMPLE.split(' ').collect();
    for (i, word) in words.iter().enumerate() {
        for position in 0..word.len() {
            for delta in 1..37 {
                let wrong = corrupt(word, position, delta);
                let parsed = parse(&with_word(i, &wrong)).unwrap();
                assert_eq!(parsed.indicium, example(), "{wrong}");
                let read = char::from(wrong.as_bytes()[position]);
                let corrected = char::from(word.as_bytes()[position]);
                assert_eq!(
                    parsed.repairs,
                    [FieldRepair {
                        field: Field::ALL[i],
                        repair: Repair { position, read, corrected }
                    }]
                );
            }
        }
    }
}

#[test]
fn one_error_in_each_of_several_fields_is_repaired_in_each() {
    let mut words: Vec<String> = EXAMPLE.split(' ').map(str::to_owned).collect();
    // ISN, country, count and the postal token each misread once ('O' for '0' and the like).
    words[1] = "O4012345671SL".into();
    words[3] = "U5X63".into();
    words[6] = "INJA".into();
    words[9] = "2329ABC12CA06EF8VT2".into();
    let parsed = parse(&words.join(" ")).unwrap();
    assert_eq!(parsed.indicium, example());
    let repaired: Vec<_> = parsed.repairs.iter().map(|r| (r.field, r.repair)).collect();
    assert_eq!(
        repaired,
        [
            (Field::Isn, Repair { position: 0, read: 'O', corrected: '0' }),
            (Field::Country, Repair { position: 1, read: '5', corrected: 'S' }),
            (Field::Count, Repair { position: 0, read: 'I', corrected: '1' }),
            (Field::PostalToken, Repair { position: 18, read: '2', corrected: 'Z' }),
        ]
    );
    assert_eq!(parsed.repairs[0].to_string(), "ISN: character 0: O -> 0");
}

#[test]
fn two_errors_in_one_field_are_refused_naming_it() {
    let words: Vec<&str> = EXAMPLE.split(' ').collect();
    for (i, word) in words.iter().enumerate() {
        let last = word.len() - 1;
        for (a, b) in [(0, 1), (0, last), (1, last - 1), (last - 1, last)] {
            let wrong = corrupt(&corrupt(word, a, 5), b, 11);
            let err = parse(&with_word(i, &wrong)).unwrap_err();
            let field = Field::ALL[i];
            assert_eq!(
                err,
                ParseError::Check { field, source: CheckError::Uncorrectable },
                "{wrong}"
            );
            assert_eq!(err.field(), Some(field));
        }
    }
    assert_eq!(
        parse(&with_word(5, "66FC3")).unwrap_err().to_string(),
        "value: more than one wrong character: uncorrectable"
    );
}

#[test]
fn truncated_and_trailing_text_are_told_apart() {
    let words: Vec<&str> = EXAMPLE.split(' ').collect();
    for n in 1..FIELD_COUNT {
        assert_eq!(parse(&words[..n].join(" ")), Err(ParseError::Truncated { found: n }));
    }
    for blank in ["", "   ", "\n\t"] {
        assert_eq!(parse(blank), Err(ParseError::Truncated { found: 0 }));
    }
    // The extra word is refused for being there, whatever it holds.
    for extra in ["1NJA", "!", "PK14MX"] {
        assert_eq!(parse(&format!("{EXAMPLE} {extra}")), Err(ParseError::Trailing { found: 11 }));
    }
    assert_eq!(parse(&format!("{EXAMPLE} {EXAMPLE}")), Err(ParseError::Trailing { found: 20 }));
    // Two fields run together make one word too few.
    let joined = EXAMPLE.replacen("USPS1NP ", "USPS1NP", 1);
    assert_eq!(parse(&joined), Err(ParseError::Truncated { found: 9 }));
}

#[test]
fn oversize_text_is_refused_before_any_work() {
    let padded = format!("{EXAMPLE}{}", " ".repeat(MAX_TEXT_LEN - EXAMPLE.len()));
    assert_eq!(padded.len(), MAX_TEXT_LEN);
    assert_eq!(clean(&padded), example());
    let over = format!("{padded} ");
    assert_eq!(parse(&over), Err(ParseError::TooLong { len: MAX_TEXT_LEN + 1, max: MAX_TEXT_LEN }));
    let huge = "Z".repeat(1 << 20);
    let err = parse(&huge).unwrap_err();
    assert_eq!(err, ParseError::TooLong { len: 1 << 20, max: MAX_TEXT_LEN });
    assert_eq!(err.field(), None);
    assert!(!err.to_string().contains("ZZ"));
}

#[test]
fn the_tag_is_checked_first_and_must_be_pk1() {
    let pk2 = encode("PK2").unwrap();
    let err = parse(&with_word(0, &pk2)).unwrap_err();
    assert_eq!(err, ParseError::UnknownVersion { found: "PK2".into() });
    assert_eq!(err.field(), Some(Field::Tag));
    assert_eq!(err.to_string(), "unknown format tag PK2 (this build reads PK1)");
    // Another version may have another number of fields: the tag is judged before the count.
    assert_eq!(parse(&pk2), Err(ParseError::UnknownVersion { found: "PK2".into() }));
    // A misread tag is repaired like any field.
    let parsed = parse(&with_word(0, "PKI4MX")).unwrap();
    assert_eq!(parsed.repairs[0].field, Field::Tag);
    assert_eq!(
        parse(&with_word(0, "PK1")),
        Err(ParseError::Check {
            field: Field::Tag,
            source: CheckError::Length { len: 3, min: 4, max: 36 }
        })
    );
}

#[test]
fn characters_outside_the_alphabet_are_refused_naming_the_field() {
    let cases = [
        (7, "0648-430J", Field::Zip, 4),
        (1, "04012345671SL.", Field::Isn, 13),
        (2, "USPS\u{a0}1NP", Field::Domain, 4), // a no-break space is not a separator
        (1, "Ø4012345671SL", Field::Isn, 0),
    ];
    for (i, word, field, position) in cases {
        assert_eq!(
            parse(&with_word(i, word)),
            Err(ParseError::Check { field, source: CheckError::Character { position } }),
            "{word}"
        );
    }
    // Lower case is upper-cased before the check code sees it: `l` is `L`, in the alphabet, so
    // "2026ll29" is two wrong symbols rather than two bad characters.
    assert_eq!(
        parse(&with_word(4, "2026ll29IB4")),
        Err(ParseError::Check { field: Field::Date, source: CheckError::Uncorrectable })
    );
}

#[test]
fn value_and_count_have_one_form() {
    // A leading zero is invisible to the check code ("065FC2" is a codeword), so the type
    // refuses it.
    for word in ["065FC2".to_owned(), encode("0065").unwrap(), encode("00").unwrap()] {
        assert_eq!(
            parse(&with_word(5, &word)),
            Err(ParseError::Invalid {
                field: Field::Value,
                reason: "must not have leading zeros",
                repaired: false
            })
        );
    }
    let max = parse(&with_word(6, &encode("4294967295").unwrap())).unwrap();
    assert_eq!(max.indicium.mailpiece.count, u32::MAX);
    let zero = parse(&with_word(5, &encode("0").unwrap())).unwrap();
    assert_eq!(zero.indicium.mailpiece.value, 0);
    for (word, reason) in [
        ("4294967296", "exceeds 4294967295"),
        ("99999999999999999999", "exceeds 4294967295"),
        ("6A", "must be decimal digits"),
        ("6*", "must be decimal digits"),
    ] {
        assert_eq!(
            parse(&with_word(6, &encode(word).unwrap())),
            Err(ParseError::Invalid { field: Field::Count, reason, repaired: false }),
            "{word}"
        );
    }
}

#[test]
fn every_field_is_held_to_its_type() {
    let cases = [
        (1, "0401*4567", Field::Isn),
        (1, "0401234567ABCDEFG", Field::Isn),
        (2, "U", Field::Domain),
        (3, "USA", Field::Country),
        (3, "U5", Field::Country),
        (4, "20261131", Field::Date),
        (4, "2026113", Field::Date),
        (7, "06484*", Field::Zip),
        (7, "06484064840", Field::Zip),
        (8, "242B526248FCD19", Field::VendorToken),
        (9, "2329ABC12CA06EFG", Field::PostalToken),
    ];
    for (i, value, field) in cases {
        let err = parse(&with_word(i, &encode(value).unwrap())).unwrap_err();
        assert!(
            matches!(err, ParseError::Invalid { field: f, repaired: false, .. } if f == field),
            "{value}: {err:?}"
        );
    }
}

#[test]
fn a_field_that_only_a_repair_makes_invalid_says_so() {
    // 13 is no month: a date printed so would never come from a meter, and one misread
    // character of it is repaired into it.
    let bad_date = corrupt(&encode("20261329").unwrap(), 9, 4);
    let err = parse(&with_word(4, &bad_date)).unwrap_err();
    assert_eq!(
        err,
        ParseError::Invalid {
            field: Field::Date,
            reason: "month must be 01 to 12",
            repaired: true
        }
    );
    assert_eq!(err.to_string(), "date: month must be 01 to 12 (after repairing one character)");
    assert_eq!(err.field(), Some(Field::Date));
}

#[test]
fn the_longest_fields_fit_the_check_code_and_the_limit() {
    let longest = Indicium {
        mailpiece: Mailpiece {
            isn: Isn::parse("ZZZZZZZZZZZZZZZZ").unwrap(),
            subdomain: SubdomainId::parse("ABCDEFGH/ZZ").unwrap(),
            date: Date::parse("99991231").unwrap(),
            value: u32::MAX,
            count: u32::MAX,
            zip: Zip::parse("ZZZZZZZZZZ").unwrap(),
        },
        vendor: Token::from_bytes([0xFF; 8]),
        postal: Token::from_bytes([0; 8]),
    };
    let text = longest.to_text();
    assert_eq!(text.len(), 138, "docs/indicium.md gives this length");
    assert_eq!(clean(&text), longest);
}

fn indicium_strategy() -> impl Strategy<Value = Indicium> {
    (
        ("[A-Z0-9]{1,16}", "[A-Z0-9]{2,8}", "[A-Z]{2}", "[A-Z0-9]{1,10}"),
        (2000u16..=9999, 1u8..=12, 1u8..=28, any::<u32>(), any::<u32>()),
        (any::<[u8; 8]>(), any::<[u8; 8]>()),
    )
        .prop_map(|((isn, domain, country, zip), (y, m, d, value, count), (v, p))| Indicium {
            mailpiece: Mailpiece {
                isn: Isn::parse(&isn).unwrap(),
                subdomain: SubdomainId::new(
                    DomainId::parse(&domain).unwrap(),
                    Country::parse(&country).unwrap(),
                ),
                date: Date::new(y, m, d).unwrap(),
                value,
                count,
                zip: Zip::parse(&zip).unwrap(),
            },
            vendor: Token::from_bytes(v),
            postal: Token::from_bytes(p),
        })
}

proptest! {
    #[test]
    fn every_indicium_round_trips(indicium in indicium_strategy()) {
        let text = indicium.to_text();
        prop_assert!(text.len() <= 138);
        let parsed = parse(&text).unwrap();
        prop_assert_eq!(&parsed.indicium, &indicium);
        prop_assert!(parsed.repairs.is_empty());
        prop_assert_eq!(parse(&indicium.lines().join("\n")).unwrap().indicium, indicium);
    }

    #[test]
    fn one_wrong_symbol_anywhere_is_repaired(
        indicium in indicium_strategy(),
        at in any::<prop::sample::Index>(),
        delta in 1usize..37,
    ) {
        let text = indicium.to_text();
        let symbols: Vec<usize> =
            text.bytes().enumerate().filter(|(_, b)| *b != b' ').map(|(i, _)| i).collect();
        let position = *at.get(&symbols);
        let wrong = corrupt(&text, position, delta);
        let parsed = parse(&wrong).unwrap();
        prop_assert_eq!(parsed.indicium, indicium);
        prop_assert_eq!(parsed.repairs.len(), 1);
    }

    #[test]
    fn parse_never_panics(text in "\\PC{0,600}") {
        let _ = parse(&text);
    }

    #[test]
    fn parse_never_panics_on_near_misses(words in prop::collection::vec("[0-9A-Za-z*]{0,40}", 0..12)) {
        let _ = parse(&words.join(" "));
    }
}
