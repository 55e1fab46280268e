//! Verification through the home (docs/verification.md): a meter's printed indicium verifies
//! `good` once and `duplicate` after, with its first sighting; every other outcome has its
//! reason and 5xxx code; only good mailpieces enter the duplicate memory; a repair by the check
//! characters never makes a mailpiece good that was not printed so.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{LINE, World, d, ram_tempdir, sub, world};
use postkey_host::{
    Access, Indicium, Mailing, PostalRegistration, Printed, Registrar, RegistrationOrder, Verifier,
    VerifyReport, Wait,
};
use postkey_meter::MeterError;
use postkey_wire::{Date, Isn, MeterId, ResponseCode, Site, Token, Zip};

fn meter(n: u32) -> MeterId {
    MeterId::parse(&format!("PB7777-{n:06}")).unwrap()
}

fn date_days_ago(days: u64) -> Date {
    let t = postkey_host::now().unix_micros() - days * 86_400_000_000;
    let (y, m, d) = postkey_wire::Timestamp::from_unix_micros(t).utc_date();
    Date::new(y as u16, m, d).unwrap()
}

fn mailing(date: Date) -> Mailing {
    Mailing { date, value: 65, zip: Zip::normalize("06484").unwrap() }
}

fn text(p: &Printed) -> String {
    Indicium { mailpiece: p.mailpiece.clone(), vendor: p.vendor, postal: p.postal }.to_text()
}

/// Keys meters 1..=n and registers 1..=registered into USPS/US (ISN `04000000<k>`).
async fn setup(n: u32, registered: u32) -> World {
    let w = world(ram_tempdir(), LINE).await;
    common::with_audit_box(&w).await;
    common::key_meters_on(&w, w.store.clone(), 1..=n).await.unwrap();
    let lock = w.home.lock(Access::Shared, Wait::No).unwrap();
    let mut r = Registrar::for_subdomains(&lock, w.store.clone(), &w.media(), &[sub("USPS/US")])
        .await
        .unwrap();
    let orders: Vec<RegistrationOrder> = (1..=registered)
        .map(|k| RegistrationOrder {
            meter: meter(k),
            subdomain: sub("USPS/US"),
            isn: Isn::parse(&format!("04000000{k:02}")).unwrap(),
            date: date_days_ago(0),
        })
        .collect();
    let reports = r.register_many(&orders, 8, |_| {}).await.unwrap();
    assert!(reports.iter().all(|r| r.outcome == "registered"), "{reports:?}");
    r.close();
    w
}

async fn verifier(w: &World, site: &str) -> Verifier {
    let lock = w.home.lock(Access::Shared, Wait::No).unwrap();
    Verifier::open(&lock, w.store.clone(), &w.media(), Site::parse(site).unwrap()).await.unwrap()
}

async fn verify(v: &Verifier, texts: &[&str]) -> Vec<VerifyReport> {
    v.verify_texts(texts).await.unwrap()
}

fn outcome(r: &VerifyReport) -> (&'static str, &'static str, &'static str, Option<u16>) {
    (r.outcome, r.vendor, r.postal, r.code)
}

/// Replaces field `index` (0 = tag) of a text with `with` and its own check characters: a
/// field altered after printing by someone who knows the check code.
fn swap_field(text: &str, index: usize, with: &str) -> String {
    let mut words: Vec<String> = text.split(' ').map(str::to_owned).collect();
    words[index] = postkey_indicium::check::encode(with).unwrap();
    words.join(" ")
}

/// Sets the character at `at` of field `index` to `c`.
fn misread(text: &str, index: usize, at: usize, c: char) -> String {
    let mut words: Vec<String> = text.split(' ').map(str::to_owned).collect();
    let mut chars: Vec<char> = words[index].chars().collect();
    assert_ne!(chars[at], c);
    chars[at] = c;
    words[index] = chars.into_iter().collect();
    words.join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_printed_mailpiece_is_good_once_then_duplicate_with_its_first_sighting() {
    let w = setup(2, 2).await;
    let printed = w.home.print(&meter(1), &mailing(date_days_ago(0)), 3).unwrap();
    assert_eq!(printed.iter().map(|p| p.mailpiece.count).collect::<Vec<_>>(), [1, 2, 3]);
    // The meter took the counts durably: the next print goes on from 3.
    let next = w.home.print(&meter(1), &mailing(date_days_ago(0)), 1).unwrap();
    assert_eq!(next[0].mailpiece.count, 4);

    // The tokens are the published formulas' over the canonical bytes.
    let m = w.home.load_meter(&meter(1)).unwrap();
    let p = &printed[0];
    let period = p.mailpiece.date.period();
    for (domain, token) in [("VE", p.vendor), ("USPS", p.postal)] {
        let k = m.keys()[&d(domain)].master_key();
        assert_eq!(k.token_key(&d(domain), &p.mailpiece.isn, period).token(&p.mailpiece), token);
    }

    let chi = verifier(&w, "CHI").await;
    let t = text(p);
    let first = verify(&chi, &[&t]).await;
    assert_eq!(outcome(&first[0]), ("good", "good", "good", None), "{first:?}");
    assert_eq!(first[0].meter.as_deref(), Some("PB7777-000001"));
    chi.close().await.unwrap();

    let nyc = verifier(&w, "NYC").await;
    let again = verify(&nyc, &[&t]).await;
    assert_eq!(
        outcome(&again[0]),
        ("duplicate", "duplicate", "duplicate", Some(ResponseCode::DUPLICATE_PIECE.0))
    );
    assert_eq!(again[0].first_seen.as_ref().unwrap().site, "CHI");
    // A copy within one batch is a duplicate of the first in it.
    let t2 = text(&printed[1]);
    let same_batch = verify(&nyc, &[&t2, &t2]).await;
    assert_eq!(same_batch[0].outcome, "good");
    assert_eq!(same_batch[1].outcome, "duplicate");
    assert_eq!(same_batch[1].first_seen.as_ref().unwrap().site, "NYC");
    nyc.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outcome_has_its_reason_and_code() {
    let w = setup(4, 3).await;
    let today = date_days_ago(0);
    let v = verifier(&w, "LAB").await;
    let good = w.home.print(&meter(1), &mailing(today), 6).unwrap();

    // A forged postal token; a forged vendor token; the value altered after printing.
    let forged = Indicium {
        mailpiece: good[0].mailpiece.clone(),
        vendor: good[0].vendor,
        postal: Token::from_bytes(*b"forged!!"),
    }
    .to_text();
    let forged_vendor = Indicium {
        mailpiece: good[1].mailpiece.clone(),
        vendor: Token::from_bytes([0; 8]),
        postal: good[1].postal,
    }
    .to_text();
    let altered = swap_field(&text(&good[2]), 5, "6500");
    // An ISN no meter holds in the sub-domain.
    let mut stranger = good[3].mailpiece.clone();
    stranger.isn = Isn::parse("0999999999").unwrap();
    let unknown = Indicium { mailpiece: stranger, vendor: good[3].vendor, postal: good[3].postal };
    // Mailed the day before its registration.
    let early = w.home.print(&meter(2), &mailing(date_days_ago(1)), 1).unwrap();
    // A meter keyed, never registered, that prints anyway (its file says it is registered).
    let mut rogue = w.home.load_meter(&meter(4)).unwrap();
    rogue
        .set_registration(PostalRegistration {
            subdomain: sub("USPS/US"),
            isn: Isn::parse("0400000099").unwrap(),
        })
        .unwrap();
    let unregistered = rogue.print(&mailing(today), 1, |_| Ok::<_, MeterError>(())).unwrap();
    // Two characters of one field misread: refused, never repaired.
    let twice = misread(&misread(&text(&good[4]), 1, 0, 'Z'), 1, 1, 'Z');

    let texts = [
        forged.as_str(),
        &forged_vendor,
        &altered,
        &unknown.to_text(),
        &text(&early[0]),
        &text(&unregistered[0]),
        &twice,
        "PK14MX hello",
    ];
    let r = verify(&v, &texts).await;
    let code = |c: ResponseCode| Some(c.0);
    assert_eq!(outcome(&r[0]), ("bad", "good", "bad", code(ResponseCode::TOKEN_BAD)));
    assert_eq!(outcome(&r[1]), ("bad", "bad", "good", code(ResponseCode::TOKEN_BAD)));
    assert_eq!(outcome(&r[2]), ("bad", "bad", "bad", code(ResponseCode::TOKEN_BAD)));
    assert_eq!(
        outcome(&r[3]),
        ("unknown-meter", "unknown-meter", "unknown-meter", code(ResponseCode::ISN_NOT_REGISTERED))
    );
    assert_eq!(
        outcome(&r[4]),
        (
            "date-before-registration",
            "date-before-registration",
            "date-before-registration",
            code(ResponseCode::DATE_BEFORE_REGISTRATION)
        )
    );
    // The archive has no key under that ISN: the rogue's claim of registration is its own.
    assert_eq!(r[5].outcome, "unknown-meter");
    for m in [&r[6], &r[7]] {
        assert_eq!(
            outcome(m),
            ("malformed", "malformed", "malformed", code(ResponseCode::INDICIUM_MALFORMED))
        );
        assert!(m.reason.is_some());
    }
    let archived = postkey_archive::Store::errors_in_order(&w.store, 0, 1000).await.unwrap();
    assert!(
        archived.iter().any(|e| e.entry.response_code == ResponseCode::INDICIUM_MALFORMED),
        "a malformed indicium is in the error log"
    );

    // One misread character of each field is repaired, reported, and the mailpiece is good.
    let repaired = misread(&misread(&text(&good[5]), 1, 2, 'Q'), 8, 0, 'Z');
    let r = verify(&v, &[&repaired]).await;
    assert_eq!(r[0].outcome, "good", "{r:?}");
    let fields: Vec<&str> = r[0].repairs.iter().map(|f| f.field).collect();
    assert_eq!(fields.len(), 2, "{r:?}");

    // Only good mailpieces enter the memory: the forged copies of pieces 1 to 3 did not take
    // their counts, so the real ones are good now.
    let real: Vec<String> = good[..3].iter().map(text).collect();
    let r = verify(&v, &real.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert!(r.iter().all(VerifyReport::is_good), "{r:?}");

    // A withdrawn meter's mailpieces are obsolete, its earlier ones included.
    let late = w.home.print(&meter(3), &mailing(today), 1).unwrap();
    v.close().await.unwrap();
    let lock = w.home.lock(Access::Shared, Wait::No).unwrap();
    let r = Registrar::for_withdrawal(&lock, w.store.clone(), &w.media(), &meter(3)).await.unwrap();
    r.withdraw(&meter(3), "stolen").await.unwrap();
    r.close();
    let v = verifier(&w, "LAB").await;
    let r = verify(&v, &[&text(&late[0])]).await;
    assert_eq!(
        outcome(&r[0]),
        ("obsolete", "obsolete", "obsolete", code(ResponseCode::KEY_OBSOLETE))
    );
    v.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meter_printing_under_another_meters_isn_is_bad() {
    // Meter 2 is keyed, never registered; its file is made to claim meter 1's ISN. The
    // verifier finds meter 1's keys under that ISN, and meter 2's tokens are not theirs.
    let w = setup(2, 1).await;
    let keys = postkey_archive::Store::keys_of_meters(&w.store, &[meter(2)]).await.unwrap();
    assert!(keys.iter().all(|k| k.status == postkey_archive::KeyStatus::Installed));
    let mut m2 = w.home.load_meter(&meter(2)).unwrap();
    let claimed = Isn::parse("0400000001").unwrap();
    m2.set_registration(PostalRegistration { subdomain: sub("USPS/US"), isn: claimed }).unwrap();
    let p = m2.print(&mailing(date_days_ago(0)), 1, |_| Ok::<_, MeterError>(())).unwrap();
    let v = verifier(&w, "LAB").await;
    let r = verify(&v, &[&text(&p[0])]).await;
    assert_eq!(outcome(&r[0]), ("bad", "bad", "bad", Some(ResponseCode::TOKEN_BAD.0)));
    assert_eq!(r[0].meter.as_deref(), Some("PB7777-000001"));
    v.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_verifiers_racing_on_one_mailpiece_one_good_one_duplicate() {
    let w = setup(1, 1).await;
    let printed = w.home.print(&meter(1), &mailing(date_days_ago(0)), 8).unwrap();
    let v = std::sync::Arc::new(verifier(&w, "RACE").await);
    for p in &printed {
        let t = text(p);
        let (a, b) = (v.clone(), v.clone());
        let (ta, tb) = (t.clone(), t.clone());
        let one = tokio::spawn(async move { a.verify_texts(&[ta.as_str()]).await.unwrap() });
        let two = tokio::spawn(async move { b.verify_texts(&[tb.as_str()]).await.unwrap() });
        let (one, two) = (one.await.unwrap(), two.await.unwrap());
        let mut outcomes = [one[0].outcome, two[0].outcome];
        outcomes.sort_unstable();
        assert_eq!(outcomes, ["duplicate", "good"]);
    }
    std::sync::Arc::into_inner(v).unwrap().close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_duplicate_memory_is_chained_and_the_audit_finds_a_sighting_removed_or_added() {
    let w = setup(1, 1).await;
    let printed = w.home.print(&meter(1), &mailing(date_days_ago(0)), 3).unwrap();
    let v = verifier(&w, "CHI").await;
    let texts: Vec<String> = printed.iter().map(text).collect();
    let r = verify(&v, &texts.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert!(r.iter().all(VerifyReport::is_good));
    v.close().await.unwrap();
    let report = postkey_audit::verify(&w.store, &w.trust.anchors).await.unwrap();
    assert!(report.holds(), "{:?}", report.faults);
    assert_eq!(report.sightings, 3);

    // A sighting removed by hand (a copy would verify good again): the audit finds it.
    w.store.with_raw_connection(|c| {
        common::drop_guards(c);
        c.execute("DELETE FROM sightings WHERE piece_count = 2", []).unwrap();
    });
    let report = postkey_audit::verify(&w.store, &w.trust.anchors).await.unwrap();
    assert!(!report.holds());
    assert!(
        report.faults.iter().any(|f| f.detail.contains("duplicate memory")),
        "{:?}",
        report.faults
    );

    // Put back, and one added by hand (a real mailpiece burned in advance): found too.
    w.store.with_raw_connection(|c| {
        c.execute(
            "INSERT INTO sightings SELECT meter, 2, stamp FROM sightings WHERE piece_count = 1",
            [],
        )
        .unwrap();
    });
    assert!(postkey_audit::verify(&w.store, &w.trust.anchors).await.unwrap().holds());
    // Under the batch's stamp, under none, and under a stamp of an event the chain lacks.
    w.store.with_raw_connection(|c| {
        c.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        c.execute(
            "INSERT INTO sighting_stamps (id, seq, first_seen, site) VALUES (999, 999999, 0, 'X')",
            [],
        )
        .unwrap();
    });
    for stamp in ["stamp", "0", "999"] {
        w.store.with_raw_connection(|c| {
            c.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
            c.execute(
                &format!(
                    "INSERT INTO sightings SELECT meter, 77, {stamp} FROM sightings \
                     WHERE piece_count = 1"
                ),
                [],
            )
            .unwrap();
        });
        let report = postkey_audit::verify(&w.store, &w.trust.anchors).await.unwrap();
        assert!(!report.holds(), "a row added with stamp {stamp}");
        w.store.with_raw_connection(|c| {
            c.execute("DELETE FROM sightings WHERE piece_count = 77", []).unwrap();
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_naming_the_vendor_sub_domain_finds_no_meter_and_spoils_no_other_line() {
    let w = setup(1, 1).await;
    let printed = w.home.print(&meter(1), &mailing(date_days_ago(0)), 2).unwrap();
    // The same ISN names the vendor key in VE/US: a line that names VE/US as its postal
    // sub-domain must not reach the vendor key as if it were the post's, nor change how the
    // real mailpieces of the batch are checked.
    let crafted = swap_field(&text(&printed[0]), 2, "VE");
    let v = verifier(&w, "LAB").await;
    let r = verify(&v, &[&crafted, &text(&printed[0]), &text(&printed[1])]).await;
    assert_eq!(r[0].outcome, "unknown-meter", "{r:?}");
    assert!(r[1].is_good() && r[2].is_good(), "{r:?}");
    v.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_runs_journal_applied_later_never_sets_a_piece_counter_back() {
    let w = setup(1, 1).await;
    let file = w.home.root().join("meters").join("PB7777-000001.meter");
    let before = std::fs::read(&file).unwrap();
    w.home.print(&meter(1), &mailing(date_days_ago(0)), 3).unwrap();
    // A factory run that stopped left a journal with the meter's image from before it printed.
    let mut journal = (before.len() as u32).to_be_bytes().to_vec();
    journal.extend_from_slice(&before);
    std::fs::write(w.home.root().join("meters").join("run-1-1.journal"), journal).unwrap();
    w.home.settle_meter_journals().unwrap();
    let next = w.home.print(&meter(1), &mailing(date_days_ago(0)), 1).unwrap();
    assert_eq!(next[0].mailpiece.count, 4, "the counter went on from 3");
    assert!(w.home.load_meter(&meter(1)).unwrap().registration().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_without_an_audit_box_is_refused() {
    // Without the audit box's checkpoint of the duplicate memory, an archive put back would let
    // copies verify good again: no answer is given.
    let w = world(ram_tempdir(), LINE).await;
    let lock = w.home.lock(Access::Shared, Wait::No).unwrap();
    let refused = Verifier::open(&lock, w.store.clone(), &w.media(), Site::parse("X").unwrap())
        .await
        .unwrap_err();
    assert_eq!(refused.response_code(), ResponseCode::INVALID_ARGUMENT);
}
