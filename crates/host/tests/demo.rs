//! `postkey demo` as the main job (docs/tin.md, docs/verification.md): from a fresh home every
//! mailpiece's outcome, at Brass and at the Tin box, is the one expected from what the demo did
//! to it; and a verifier with one of its rules broken is caught as mismatches.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use postkey_host::demo::{DemoOptions, DemoReport};
use postkey_host::{Access, Home, Wait};

async fn demo(options: DemoOptions) -> DemoReport {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path());
    let lock = home.lock(Access::Exclusive, Wait::No).unwrap();
    postkey_host::demo::run(&lock, options, |_| {}).await.unwrap()
}

#[tokio::test]
async fn every_outcome_of_the_demo_is_the_expected_one() {
    let report = demo(DemoOptions::new(12, 400)).await;
    assert_eq!(report.mismatches, 0, "{:#?}", report.mail);
    assert!(report.audit.holds(), "{:?}", report.audit.faults);
    let got = |outcome: &str| report.mail.outcomes.get(outcome).copied().unwrap_or(0);
    // Every outcome a verifier at Brass gives, but `not-active` (no meter prints unregistered).
    for outcome in [
        "good",
        "bad",
        "unknown-meter",
        "obsolete",
        "date-before-registration",
        "malformed",
        "duplicate",
    ] {
        assert!(got(outcome) > 0, "no {outcome}: {:?}", report.mail.outcomes);
    }
    let cases: Vec<&str> = report.mail.rows.iter().map(|r| r.case).collect();
    assert!(cases.contains(&"read from a PNG") && cases.contains(&"one character misread"));
    let tin = report.mail.tin.as_ref().unwrap();
    assert!(tin.older_refused, "the Tin box took an older export");
    assert!(tin.meters_after < tin.meters_before, "the withdrawals left the export as it was");
    assert_eq!(tin.mismatches, 0);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["mismatches"], 0);
}

#[tokio::test]
async fn a_verifier_that_breaks_a_rule_shows_as_mismatches() {
    // A verifier that forgets the duplicate memory: every copy it calls good.
    let mut options = DemoOptions::new(12, 400);
    options.broken_rule = Some(|o| if o == "duplicate" { "good" } else { o });
    let report = demo(options).await;
    let copies = report.mail.rows.iter().find(|r| r.case == "copied indicium").unwrap();
    assert!(copies.mailpieces > 0);
    assert_eq!(copies.mismatches, copies.mailpieces);
    assert_eq!(report.mismatches, copies.mailpieces, "only the broken rule shows");
}

#[tokio::test]
async fn a_meter_with_more_mailpieces_of_a_month_than_one_item_holds_verifies_at_the_tin_box() {
    // Two meters: one in USPS/US printing 4,500 mailpieces this month, one withdrawn.
    let report = demo(DemoOptions::new(2, 9_000)).await;
    let tin = report.mail.tin.as_ref().unwrap();
    assert!(tin.mailpieces > postkey_wire::command::MAX_LIST, "{}", tin.mailpieces);
    assert_eq!(report.mismatches, 0, "{:#?}", report.mail.tin);
}
