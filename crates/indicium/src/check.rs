//! The check characters of every printed field: a systematic Reed–Solomon code over GF(37)
//! (protocol §6.5 of docs/protocol.md; the whole code is described in docs/indicium.md).
//!
//! ```text
//!   field  m = m[n-1] .. m[0]        first character = highest-degree coefficient
//!   check  r = -(m(x)·x³ mod g(x))   g(x) = (x-2)(x-4)(x-8) = x³ + 23x² + 19x + 10
//!   printed  field ‖ r2 r1 r0        n + 3 symbols, a multiple of g(x)
//!
//!   read back: S_k = c(2^k), k = 1, 2, 3
//!     all zero                          -> as printed
//!     S_k = e·X^k, X = 2^d, d < length  -> one wrong symbol at degree d, subtract e
//!     anything else                     -> uncorrectable
//! ```
//!
//! The code is small enough to write out: GF(37) is arithmetic modulo the prime 37, and 2
//! generates its multiplicative group, so the 36 locators 2^0 .. 2^35 are distinct and one
//! codeword has at most 36 symbols. Its minimum distance is 4: one wrong symbol is corrected and
//! two are always detected.

use core::fmt;

/// The 37 symbols in value order: `0`–`9` are 0–9, `A`–`Z` are 10–35, `*` is 36.
pub const ALPHABET: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*";

/// Check characters appended to every field.
pub const CHECK_LEN: usize = 3;

/// The longest field, in characters: with its check characters it fills the 36 locators.
pub const MAX_FIELD_LEN: usize = 33;

const P: u16 = 37;
/// g(x) below its leading 1, highest degree first: x³ + 23x² + 19x + 10.
const GENERATOR: [u8; CHECK_LEN] = [23, 19, 10];
/// The roots of g(x), 2^1, 2^2, 2^3: the syndromes are the received word evaluated there.
const ROOTS: [u8; CHECK_LEN] = [2, 4, 8];

/// Why a field or a received word was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// Too short or too long: a field has 1 to 33 characters, a received word 4 to 36.
    #[error("{len} characters where {min} to {max} are expected")]
    Length {
        /// Bytes given.
        len: usize,
        /// The shortest allowed.
        min: usize,
        /// The longest allowed.
        max: usize,
    },
    /// A character outside `0`–`9`, `A`–`Z`, `*` (after upper-casing).
    #[error("character {position} is not one of 0-9, A-Z, *")]
    Character {
        /// Its index, from 0.
        position: usize,
    },
    /// More than one symbol is wrong: the check characters do not point at a single one.
    #[error("more than one wrong character: uncorrectable")]
    Uncorrectable,
}

/// One symbol the decoder replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repair {
    /// Index of the symbol in the received word (field and check characters), from 0.
    pub position: usize,
    /// The symbol as read, upper-cased.
    pub read: char,
    /// The symbol the check characters call for.
    pub corrected: char,
}

impl fmt::Display for Repair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "character {}: {} -> {}", self.position, self.read, self.corrected)
    }
}

/// A received word with its check characters verified and, if one symbol was wrong, repaired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The field without its check characters, upper case, after the repair.
    pub field: String,
    /// The symbol replaced, if any.
    pub repair: Option<Repair>,
}

/// The three check characters of `field` (ASCII), highest degree first.
pub fn check_characters(field: &str) -> Result<[u8; CHECK_LEN], CheckError> {
    let symbols = symbols(field, 1, MAX_FIELD_LEN)?;
    Ok(remainder(&symbols).map(|v| char_of(neg(v))))
}

/// `field` upper-cased and followed by its three check characters.
pub fn encode(field: &str) -> Result<String, CheckError> {
    let checks = check_characters(field)?;
    let mut out = field.to_ascii_uppercase();
    out.extend(checks.iter().map(|&c| char::from(c)));
    Ok(out)
}

/// Verifies a received word (field and check characters) and repairs at most one symbol.
///
/// The decision rests on the check characters alone. Two wrong symbols are always refused; three
/// or more may be taken for one and "repaired" into another codeword (see docs/indicium.md).
pub fn decode(received: &str) -> Result<Decoded, CheckError> {
    // On the stack: a verifier decodes ten fields of each of millions of mailpieces.
    let mut word = [0u8; MAX_WORD];
    let len = symbols_into(received, 1 + CHECK_LEN, &mut word)?;
    let symbols = &mut word[..len];
    let syndromes = syndromes(symbols);
    let repair = if syndromes == [0; CHECK_LEN] {
        None
    } else {
        let (position, error) = locate(syndromes, symbols.len())?;
        let slot = symbols.get_mut(position).ok_or(CheckError::Uncorrectable)?;
        let read = *slot;
        *slot = sub(read, error);
        Some(Repair {
            position,
            read: char::from(char_of(read)),
            corrected: char::from(char_of(*slot)),
        })
    };
    let field_len = symbols.len() - CHECK_LEN;
    let field = symbols.iter().take(field_len).map(|&v| char::from(char_of(v))).collect();
    Ok(Decoded { field, repair })
}

/// The longest received word: a field and its check characters.
const MAX_WORD: usize = MAX_FIELD_LEN + CHECK_LEN;

/// `ROOTS[k]^d` in GF(37) for every degree `d` of a word: the syndromes as sums of products.
const POWERS: [[u8; MAX_WORD]; CHECK_LEN] = {
    let mut table = [[0u8; MAX_WORD]; CHECK_LEN];
    let mut k = 0;
    while k < CHECK_LEN {
        let mut power = 1u16;
        let mut d = 0;
        while d < MAX_WORD {
            table[k][d] = power as u8;
            power = power * ROOTS[k] as u16 % P;
            d += 1;
        }
        k += 1;
    }
    table
};

/// The word's polynomial (highest degree first) evaluated at each root: each a sum of
/// `symbol · root^degree` reduced once at the end (at most 36 terms of at most 36 · 36, far
/// inside a u32), the same values as [`evaluate`] without a reduction per symbol.
fn syndromes(symbols: &[u8]) -> [u8; CHECK_LEN] {
    let mut sums = [0u32; CHECK_LEN];
    for (degree, &symbol) in symbols.iter().rev().enumerate() {
        for (sum, powers) in sums.iter_mut().zip(&POWERS) {
            *sum += u32::from(symbol) * u32::from(powers[degree]);
        }
    }
    sums.map(|s| (s % u32::from(P)) as u8)
}

/// Finds the one error the syndromes describe: its index in a word of `len` symbols and its value.
fn locate(s: [u8; CHECK_LEN], len: usize) -> Result<(usize, u8), CheckError> {
    let [s1, s2, s3] = s;
    // One error e at degree d gives S_k = e·X^k with X = 2^d, none of them zero.
    if s1 == 0 || s2 == 0 || s3 == 0 {
        return Err(CheckError::Uncorrectable);
    }
    let x = mul(s2, inv(s1));
    if mul(s2, x) != s3 {
        return Err(CheckError::Uncorrectable);
    }
    // A locator past the word's length names a symbol that was never printed: the code is
    // shortened, and such a syndrome pattern comes from two or more errors.
    let degree = log2(x).filter(|&d| d < len).ok_or(CheckError::Uncorrectable)?;
    let error = mul(s1, inv(x));
    Ok((len - 1 - degree, error))
}

/// The values of `text` after upper-casing, if it has `min..=max` bytes all in the alphabet.
fn symbols(text: &str, min: usize, max: usize) -> Result<Vec<u8>, CheckError> {
    let mut out = vec![0u8; max];
    let len = symbols_into(text, min, &mut out)?;
    out.truncate(len);
    Ok(out)
}

/// As [`symbols`], into `out` (whose length is the most allowed): how many.
fn symbols_into(text: &str, min: usize, out: &mut [u8]) -> Result<usize, CheckError> {
    let (len, max) = (text.len(), out.len());
    // Length first: nothing longer than a codeword is scanned.
    if len > max {
        return Err(CheckError::Length { len, min, max });
    }
    for (position, (b, o)) in text.bytes().zip(out.iter_mut()).enumerate() {
        *o = value_of(b).ok_or(CheckError::Character { position })?;
    }
    if len < min {
        return Err(CheckError::Length { len, min, max });
    }
    Ok(len)
}

/// m(x)·x³ mod g(x) for the field `m`, highest degree first (a division register fed one symbol
/// at a time).
fn remainder(m: &[u8]) -> [u8; CHECK_LEN] {
    let mut r = [0u8; CHECK_LEN];
    for &symbol in m {
        let feedback = add(symbol, r[0]);
        r = [
            sub(r[1], mul(feedback, GENERATOR[0])),
            sub(r[2], mul(feedback, GENERATOR[1])),
            neg(mul(feedback, GENERATOR[2])),
        ];
    }
    r
}

/// The polynomial whose coefficients are `symbols` (highest degree first) evaluated at `x`.
#[cfg(test)]
fn evaluate(symbols: &[u8], x: u8) -> u8 {
    symbols.iter().fold(0, |acc, &s| add(mul(acc, x), s))
}

fn value_of(b: u8) -> Option<u8> {
    match b.to_ascii_uppercase() {
        c @ b'0'..=b'9' => Some(c - b'0'),
        c @ b'A'..=b'Z' => Some(c - b'A' + 10),
        b'*' => Some(36),
        _ => None,
    }
}

fn char_of(v: u8) -> u8 {
    // Every value this module makes is reduced modulo 37, so the index is in range.
    ALPHABET.as_bytes()[usize::from(v) % ALPHABET.len()]
}

// GF(37): integers modulo 37. Operands are always below 37, so no sum or product overflows u16.
fn add(a: u8, b: u8) -> u8 {
    reduce(u16::from(a) + u16::from(b))
}
fn sub(a: u8, b: u8) -> u8 {
    reduce(u16::from(a) + P - u16::from(b))
}
fn neg(a: u8) -> u8 {
    sub(0, a)
}
fn mul(a: u8, b: u8) -> u8 {
    reduce(u16::from(a) * u16::from(b))
}
/// a^35 = a^-1 (Fermat); only called on non-zero values.
fn inv(a: u8) -> u8 {
    (0..P - 2).fold(1, |acc, _| mul(acc, a))
}
fn reduce(v: u16) -> u8 {
    // The remainder is below 37.
    (v % P) as u8
}
/// The d in 0..36 with 2^d = x, if x is not zero.
fn log2(x: u8) -> Option<usize> {
    let mut power = 1;
    for d in 0..usize::from(P - 1) {
        if power == x {
            return Some(d);
        }
        power = mul(power, 2);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    proptest! {
        #[test]
        fn syndromes_are_the_word_evaluated_at_each_root(
            word in proptest::collection::vec(0u8..37, 1..=MAX_WORD)
        ) {
            prop_assert_eq!(syndromes(&word), ROOTS.map(|root| evaluate(&word, root)));
        }
    }

    #[test]
    fn the_protocol_examples() {
        assert_eq!(encode("0401234567").unwrap(), "04012345671SL");
        assert_eq!(encode("USPS").unwrap(), "USPS1NP");
        assert_eq!(&check_characters("usps").unwrap(), b"1NP");
        let d = decode("usps1np").unwrap();
        assert_eq!(d, Decoded { field: "USPS".into(), repair: None });
    }

    #[test]
    fn the_arithmetic_is_that_of_gf37() {
        for a in 1..37u8 {
            assert_eq!(mul(a, inv(a)), 1, "{a}");
            assert_eq!(add(a, neg(a)), 0, "{a}");
        }
        // 2 generates the multiplicative group, so every locator is distinct.
        let logs: Vec<_> = (1..37u8).map(|x| log2(x).unwrap()).collect();
        let mut sorted = logs.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 36);
        assert_eq!(log2(0), None);
        // The generator is (x-2)(x-4)(x-8): each root is a zero of x³ + 23x² + 19x + 10.
        for root in ROOTS {
            assert_eq!(evaluate(&[1, GENERATOR[0], GENERATOR[1], GENERATOR[2]], root), 0);
        }
    }

    #[test]
    fn the_lengths_are_bounded() {
        assert_eq!(check_characters(""), Err(CheckError::Length { len: 0, min: 1, max: 33 }));
        assert!(encode(&"Z".repeat(33)).is_ok());
        assert_eq!(encode(&"Z".repeat(34)), Err(CheckError::Length { len: 34, min: 1, max: 33 }));
        assert_eq!(decode("1NJ"), Err(CheckError::Length { len: 3, min: 4, max: 36 }));
        assert_eq!(decode("1NJA").unwrap().field, "1");
        let long = encode(&"Q".repeat(33)).unwrap();
        assert_eq!(decode(&long).unwrap().field, "Q".repeat(33));
        assert!(matches!(decode(&format!("{long}0")), Err(CheckError::Length { len: 37, .. })));
    }

    #[test]
    fn characters_outside_the_alphabet_are_refused_not_repaired() {
        // `USPS1NP` with its S replaced by characters a misreading might produce.
        for (bad, position) in [("U$PS1NP", 1), ("USPS1N-", 6), ("US PS1NP", 2), ("USPé1NP", 3)] {
            assert_eq!(decode(bad), Err(CheckError::Character { position }), "{bad}");
        }
        assert_eq!(encode("US/US"), Err(CheckError::Character { position: 2 }));
    }

    #[test]
    fn a_wrong_check_character_is_repaired_too() {
        let d = decode("USPS1NQ").unwrap();
        assert_eq!(d.field, "USPS");
        assert_eq!(d.repair, Some(Repair { position: 6, read: 'Q', corrected: 'P' }));
        let d = decode("0401234S671SL").unwrap();
        assert_eq!(d.field, "0401234567");
        assert_eq!(d.repair, Some(Repair { position: 7, read: 'S', corrected: '5' }));
    }

    fn random_field(rng: &mut ChaCha20Rng) -> String {
        let len = rng.random_range(1..=MAX_FIELD_LEN);
        (0..len).map(|_| char::from(ALPHABET.as_bytes()[rng.random_range(0..37)])).collect()
    }

    #[test]
    fn every_single_wrong_symbol_is_repaired() {
        let mut rng = ChaCha20Rng::seed_from_u64(0x6f37);
        let mut fields: Vec<String> = (0..150).map(|_| random_field(&mut rng)).collect();
        // The extremes: the shortest and the longest field.
        fields.push("7".into());
        fields.push("*".repeat(MAX_FIELD_LEN));
        for field in fields {
            let word = encode(&field).unwrap();
            for position in 0..word.len() {
                for wrong in ALPHABET.bytes().filter(|&b| b != word.as_bytes()[position]) {
                    let mut received = word.clone().into_bytes();
                    received[position] = wrong;
                    let received = String::from_utf8(received).unwrap();
                    let d = decode(&received).unwrap();
                    assert_eq!(d.field, field, "{received}");
                    let repair = d.repair.unwrap();
                    assert_eq!(repair.position, position);
                    assert_eq!(repair.read, char::from(wrong));
                    assert_eq!(repair.corrected, char::from(word.as_bytes()[position]));
                }
            }
        }
    }

    fn field_strategy() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[0-9A-Z*]{1,33}").unwrap()
    }

    proptest! {
        #[test]
        fn decode_of_encode_is_the_field_without_repair(field in field_strategy()) {
            let d = decode(&encode(&field).unwrap()).unwrap();
            prop_assert_eq!(d, Decoded { field, repair: None });
        }

        #[test]
        fn two_wrong_symbols_are_always_detected(
            field in field_strategy(),
            a in any::<prop::sample::Index>(),
            b in any::<prop::sample::Index>(),
            da in 1u8..37,
            db in 1u8..37,
        ) {
            let word = encode(&field).unwrap();
            let (i, j) = (a.index(word.len()), b.index(word.len()));
            prop_assume!(i != j);
            let mut received: Vec<u8> = word.bytes().map(|c| value_of(c).unwrap()).collect();
            received[i] = add(received[i], da);
            received[j] = add(received[j], db);
            let received: String = received.into_iter().map(|v| char::from(char_of(v))).collect();
            prop_assert_eq!(decode(&received), Err(CheckError::Uncorrectable));
        }

        #[test]
        fn decode_never_panics(text in "\\PC{0,40}") {
            let _ = decode(&text);
        }
    }
}
