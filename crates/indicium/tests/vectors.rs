//! The check code against vectors computed by an independent implementation
//! (`tests/vectors/*.txt`), one table-driven test per file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use postkey_indicium::check::{CheckError, Decoded, Repair, check_characters, decode, encode};

/// The non-comment lines of a vectors file, split on spaces, with their line numbers.
fn vectors(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l.split(' ').collect()))
}

#[test]
fn check_code_vectors() {
    let mut n = 0;
    for (line, v) in vectors(include_str!("vectors/check-code.txt")) {
        let [field, codeword] = v[..] else { panic!("line {line}: {v:?}") };
        assert_eq!(encode(field).unwrap(), codeword, "line {line}");
        assert_eq!(&check_characters(field).unwrap()[..], &codeword.as_bytes()[field.len()..]);
        assert_eq!(decode(codeword).unwrap(), Decoded { field: field.into(), repair: None });
        n += 1;
    }
    assert!(n >= 30, "{n} vectors");
}

#[test]
fn check_repair_vectors() {
    let mut outcomes = [0; 3];
    for (line, v) in vectors(include_str!("vectors/check-repairs.txt")) {
        let got = decode(v[0]);
        match v[1..] {
            ["ok", field] => {
                assert_eq!(got, Ok(Decoded { field: field.into(), repair: None }), "line {line}");
                outcomes[0] += 1;
            }
            ["repaired", field, position, read, corrected] => {
                let one = |s: &str| s.chars().next().unwrap();
                let repair = Repair {
                    position: position.parse().unwrap(),
                    read: one(read),
                    corrected: one(corrected),
                };
                assert_eq!(
                    got,
                    Ok(Decoded { field: field.into(), repair: Some(repair) }),
                    "line {line}"
                );
                outcomes[1] += 1;
            }
            ["uncorrectable"] => {
                assert_eq!(got, Err(CheckError::Uncorrectable), "line {line}");
                outcomes[2] += 1;
            }
            _ => panic!("line {line}: {v:?}"),
        }
    }
    assert!(outcomes.iter().all(|&n| n >= 5), "{outcomes:?}");
}
