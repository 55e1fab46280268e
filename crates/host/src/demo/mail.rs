//! The demo's mail: mailpieces printed by the demo's meters, some of them damaged, forged or
//! copied on purpose, verified at Brass and at a Tin box; each mailpiece's expected outcome
//! follows from what the demo did to it alone (never from a verifier), and the tally says where
//! the two differ.

use std::collections::BTreeMap;

use postkey_indicium::Indicium;
use postkey_meter::{Mailing, Printed};
use postkey_wire::{Date, Isn, MeterId, Period, Site, SubdomainId, Token, Verdict, Zip};

use crate::HostError;

/// What the demo did to a mailpiece.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Case {
    /// Printed and left alone.
    Good,
    /// Its vendor token replaced by one its meter never made.
    ForgedVendor,
    /// Its postal token replaced by one its meter never made.
    ForgedPostal,
    /// Its postage value raised after printing (check characters made anew).
    AlteredValue,
    /// Its ISN changed to one no meter has (check characters made anew).
    UnknownIsn,
    /// Printed with the day before its meter's registration as the mailing date.
    EarlyDate,
    /// One character of its ISN misread (as OCR does).
    OcrOne,
    /// Two characters of its ISN misread.
    OcrTwo,
    /// Printed by a meter withdrawn afterwards.
    Withdrawn,
    /// A copy of a good mailpiece verified before.
    Copy,
    /// Printed as a Data Matrix picture (PNG) and read back from it.
    Picture,
}

impl Case {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Good => "printed",
            Self::ForgedVendor => "vendor token forged",
            Self::ForgedPostal => "postal token forged",
            Self::AlteredValue => "postage value altered",
            Self::UnknownIsn => "ISN of no meter",
            Self::EarlyDate => "dated before registration",
            Self::OcrOne => "one character misread",
            Self::OcrTwo => "two characters misread",
            Self::Withdrawn => "meter withdrawn",
            Self::Copy => "copied indicium",
            Self::Picture => "read from a PNG",
        }
    }

    /// The verifier's answer this case must get (docs/verification.md): the postal token's
    /// reason first, then the vendor token's, then the duplicate memory.
    pub(crate) fn expected(self) -> Verdict {
        match self {
            Self::Good | Self::OcrOne | Self::Picture => Verdict::Good,
            Self::ForgedVendor | Self::ForgedPostal | Self::AlteredValue => Verdict::Bad,
            Self::UnknownIsn => Verdict::UnknownMeter,
            Self::EarlyDate => Verdict::DateBeforeRegistration,
            Self::OcrTwo => Verdict::Malformed,
            Self::Withdrawn => Verdict::Obsolete,
            Self::Copy => Verdict::Duplicate,
        }
    }

    /// The Tin box's answer (docs/tin.md): the postal token only, meters as of the export made
    /// after the withdrawals, no duplicate memory; a month it holds no export of is
    /// `not-exported`.
    pub(crate) fn expected_at_tin(self, exported: bool) -> Verdict {
        if !exported && self != Self::OcrTwo {
            return Verdict::NotExported;
        }
        match self {
            Self::Good | Self::OcrOne | Self::Picture | Self::Copy | Self::ForgedVendor => {
                Verdict::Good
            }
            Self::ForgedPostal | Self::AlteredValue => Verdict::Bad,
            Self::UnknownIsn | Self::Withdrawn => Verdict::UnknownMeter,
            Self::EarlyDate => Verdict::DateBeforeRegistration,
            Self::OcrTwo => Verdict::Malformed,
        }
    }

    /// Repairs the check characters must report: one for a misread character, else none.
    pub(crate) fn repairs(self) -> usize {
        usize::from(self == Self::OcrOne)
    }
}

/// The case of the `i`-th mailpiece (shifted by one each round of the meters, so every meter
/// gets each kind) of a meter that stays in service: one in fifty of each kind of damage, the
/// rest left alone.
fn case_of(i: usize) -> Case {
    match i % 50 {
        0 => Case::ForgedVendor,
        1 => Case::ForgedPostal,
        2 => Case::AlteredValue,
        3 => Case::UnknownIsn,
        4 => Case::EarlyDate,
        5 | 6 => Case::OcrOne,
        7 => Case::OcrTwo,
        8 => Case::Copy,
        _ => Case::Good,
    }
}

/// One mailpiece as the demo hands it to the verifiers.
#[derive(Debug, Clone)]
pub(crate) struct Piece {
    pub(crate) case: Case,
    /// The text read (from print, or from the picture), or why none could be read.
    pub(crate) text: Result<String, String>,
    /// The sub-domain and month it was printed for.
    pub(crate) subdomain: SubdomainId,
    pub(crate) period: Period,
}

/// A meter of the demo, as the mail needs it.
pub(crate) struct MailMeter {
    pub(crate) id: MeterId,
    pub(crate) subdomain: SubdomainId,
    /// Withdrawn after printing.
    pub(crate) withdrawn: bool,
}

/// Prints `count` mailpieces across `meters` in turn (each meter's share in at most two
/// durable writes of its counter), dated `today` (or `yesterday` for the early ones), then
/// damages, forges and copies some as [`case_of`] says; one more is rendered as a picture and
/// read back. The copies come last, after the pieces they copy.
pub(crate) fn print_mail(
    home: &crate::Home,
    meters: &[MailMeter],
    count: usize,
    today: Date,
    yesterday: Date,
) -> Result<Vec<Piece>, HostError> {
    if meters.is_empty() || count == 0 {
        return Ok(Vec::new());
    }
    // Each piece's meter and case; copies take no print.
    let plan: Vec<(usize, Case)> = (0..count)
        .map(|i| {
            let m = i % meters.len();
            (m, if meters[m].withdrawn { Case::Withdrawn } else { case_of(i + i / meters.len()) })
        })
        .collect();
    let mut printed: Vec<(Vec<Printed>, Vec<Printed>)> = Vec::with_capacity(meters.len());
    for (m, meter) in meters.iter().enumerate() {
        let of = |early: bool| {
            plan.iter()
                .filter(|(p, c)| *p == m && *c != Case::Copy && (*c == Case::EarlyDate) == early)
                .count() as u32
        };
        let zip = Zip::normalize(&format!("{:05}", 10_000 + m)).map_err(HostError::from)?;
        let print = |date: Date, n: u32| -> Result<Vec<Printed>, HostError> {
            if n == 0 {
                return Ok(Vec::new());
            }
            let mailing = Mailing { date, value: 65 + m as u32 % 50, zip: zip.clone() };
            let mut out = home.print(&meter.id, &mailing, n)?;
            out.reverse(); // taken from the back, in print order
            Ok(out)
        };
        printed.push((print(today, of(false))?, print(yesterday, of(true))?));
    }
    let mut pieces = Vec::with_capacity(count + 1);
    let mut copies = Vec::new();
    let mut last_good: Option<Piece> = None;
    for (m, case) in plan {
        let meter = &meters[m];
        let from = if case == Case::EarlyDate { &mut printed[m].1 } else { &mut printed[m].0 };
        if case == Case::Copy {
            if let Some(original) = &last_good {
                copies.push(Piece { case, ..original.clone() });
            }
            continue;
        }
        let Some(p) = from.pop() else { continue };
        let mut indicium = Indicium { mailpiece: p.mailpiece, vendor: p.vendor, postal: p.postal };
        let period = indicium.mailpiece.date.period();
        let text = damage(&mut indicium, case, pieces.len())?;
        let piece = Piece { case, text: Ok(text), subdomain: meter.subdomain.clone(), period };
        if case == Case::Good {
            last_good = Some(piece.clone());
        }
        pieces.push(piece);
    }
    pieces.extend(copies);
    // One more from the first meter in service, as a picture read back.
    if let Some(meter) = meters.iter().find(|m| !m.withdrawn) {
        let zip = Zip::normalize("06484").map_err(HostError::from)?;
        let mailing = Mailing { date: today, value: 65, zip };
        for p in home.print(&meter.id, &mailing, 1)? {
            let indicium = Indicium { mailpiece: p.mailpiece, vendor: p.vendor, postal: p.postal };
            let text =
                postkey_indicium::symbol::to_png(&indicium, 4).map_err(|e| e.to_string()).and_then(
                    |png| postkey_indicium::symbol::read_png(&png).map_err(|e| e.to_string()),
                );
            pieces.push(Piece {
                case: Case::Picture,
                text,
                subdomain: meter.subdomain.clone(),
                period: today.period(),
            });
        }
    }
    Ok(pieces)
}

/// Does to a printed indicium what `case` says; its text.
fn damage(indicium: &mut Indicium, case: Case, n: usize) -> Result<String, HostError> {
    let flip = |t: Token| {
        let mut b = t.to_bytes();
        b[0] ^= 0x5A;
        Token::from_bytes(b)
    };
    match case {
        Case::ForgedVendor => indicium.vendor = flip(indicium.vendor),
        Case::ForgedPostal => indicium.postal = flip(indicium.postal),
        Case::AlteredValue => indicium.mailpiece.value += 100,
        Case::UnknownIsn => {
            indicium.mailpiece.isn = Isn::parse(&format!("09{:08}", n % 100_000_000))?;
        }
        _ => {}
    }
    let text = indicium.to_text();
    Ok(match case {
        // The ISN is the second word: its third and fourth characters misread.
        Case::OcrOne => misread(&text, &[2]),
        Case::OcrTwo => misread(&text, &[2, 3]),
        _ => text,
    })
}

/// `text` with the characters at `places` of its second word read as other digits or letters.
fn misread(text: &str, places: &[usize]) -> String {
    let mut words: Vec<String> = text.split(' ').map(str::to_owned).collect();
    if let Some(word) = words.get_mut(1) {
        let mut chars: Vec<char> = word.chars().collect();
        for &p in places {
            if let Some(c) = chars.get_mut(p) {
                *c = if *c == '8' { 'B' } else { '8' };
            }
        }
        *word = chars.into_iter().collect();
    }
    words.join(" ")
}

/// One row of a results table: a case, how many mailpieces, what each had to get, what it got.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ResultRow {
    /// What the demo did to the mailpieces.
    pub case: &'static str,
    /// How many.
    pub mailpieces: usize,
    /// The outcome each had to get.
    pub expected: &'static str,
    /// The outcomes they got, counted.
    pub got: BTreeMap<&'static str, usize>,
    /// How many got another outcome than expected (or the wrong repairs).
    pub mismatches: usize,
}

/// The rows of a results table, tallied from each mailpiece's case, expected outcome, and the
/// outcome and repairs it got.
pub(crate) fn tally(
    results: impl IntoIterator<Item = (Case, Verdict, &'static str, usize)>,
) -> (Vec<ResultRow>, usize) {
    // A row per case and expected outcome: one case may expect two (a piece dated in the month
    // before is `not-exported` at the Tin box, one of this month `date-before-registration`).
    let mut rows: BTreeMap<(Case, &'static str), ResultRow> = BTreeMap::new();
    let mut mismatches = 0;
    for (case, expected, got, repairs) in results {
        let row = rows.entry((case, expected.name())).or_insert_with(|| ResultRow {
            case: case.name(),
            mailpieces: 0,
            expected: expected.name(),
            got: BTreeMap::new(),
            mismatches: 0,
        });
        row.mailpieces += 1;
        *row.got.entry(got).or_default() += 1;
        if got != expected.name() || repairs != case.repairs() {
            row.mismatches += 1;
            mismatches += 1;
        }
    }
    (rows.into_values().collect(), mismatches)
}

/// The site the demo verifies at.
pub(crate) fn site() -> Result<Site, HostError> {
    Ok(Site::parse("demo")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misread_is_one_or_two_characters_of_the_isn() {
        let text = "PK14MX 0400000001XHX USPS1NP";
        assert_eq!(misread(text, &[2]), "PK14MX 0480000001XHX USPS1NP");
        assert_eq!(misread(text, &[2, 3]), "PK14MX 0488000001XHX USPS1NP");
    }

    #[test]
    fn the_tally_counts_a_wrong_outcome_or_a_wrong_repair_as_a_mismatch() {
        let (rows, mismatches) = tally([
            (Case::Good, Verdict::Good, "good", 0),
            (Case::Copy, Verdict::Duplicate, "good", 0),
            (Case::OcrOne, Verdict::Good, "good", 0),
            (Case::OcrOne, Verdict::Good, "good", 1),
        ]);
        assert_eq!(mismatches, 2);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows.iter().map(|r| r.mismatches).sum::<usize>(), 2);
    }

    #[test]
    fn every_kind_of_damage_appears_in_fifty_pieces() {
        let cases: std::collections::BTreeSet<Case> = (0..50).map(case_of).collect();
        assert_eq!(cases.len(), 9, "{cases:?}");
    }
}
