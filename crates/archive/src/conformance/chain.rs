//! Cases for the audit trail's hash chains.

use postkey_wire::RecordType;

use super::fixtures::*;
use super::{Harness, Tamper};
use crate::{KeyStatus, NewRecord, Store, StoreError};

/// Builds some history in `domain`: three keys through several changes, 8 events in all.
async fn some_history<S: Store>(s: &S, domain: &str) {
    let d = setup_domain(s, domain).await;
    let mut now = 10;
    for status in [KeyStatus::Active, KeyStatus::Bad, KeyStatus::Installed] {
        now = key_in(s, &d, status, now).await.1;
    }
    let r = NewRecord {
        domain: d.clone(),
        key_id: kid(1),
        record: record(RecordType::MR4, "x"),
        time: ts(now),
        actor: kmc(),
    };
    s.store_record(&r).await.unwrap();
    assert_eq!(s.chain_head(&d).await.unwrap().unwrap().count, 8);
}

/// Events are only ever appended: every earlier event stays exactly as it was, and a refused
/// change adds none.
pub async fn event_history_only_grows<H: Harness>(h: &H) {
    let s = h.open().await;
    some_history(&s, "VE").await;
    let d = dom("VE");
    let before = s.chain_events(&d, 0, 1000).await.unwrap();
    // A refused change leaves the chain alone.
    let refused =
        s.transition(&transition(&d, kid(2), KeyStatus::Bad, KeyStatus::Installed, 500)).await;
    assert!(refused.is_err());
    assert_eq!(s.chain_events(&d, 0, 1000).await.unwrap(), before);
    // More changes only add events after the existing ones.
    s.transition(&transition(&d, kid(3), KeyStatus::Installed, KeyStatus::Obsolete, 500))
        .await
        .unwrap();
    let (_, _) = key_in(&s, &d, KeyStatus::Installed, 502).await;
    let after = s.chain_events(&d, 0, 1000).await.unwrap();
    assert_eq!(after.len(), before.len() + 3);
    assert_eq!(&after[..before.len()], &before[..]);
    assert!(after.windows(2).all(|w| w[1].seq == w[0].seq + 1 && w[1].prev_hash == w[0].hash));
    // Paging gives the same events.
    let mut paged = s.chain_events(&d, 0, 4).await.unwrap();
    paged.extend(s.chain_events(&d, 4, 100).await.unwrap());
    assert_eq!(paged, after);
    assert_eq!(s.verify_chain(&d).await.unwrap().count, after.len() as u64);
}

/// Verification finds an altered, a removed and a reordered event, each in its own chain, and
/// leaves untouched chains verified.
pub async fn chain_verification_finds_tampering<H: Harness>(h: &H) {
    let s = h.open().await;
    for domain in ["VE", "USPS", "EARTH", "UKRM"] {
        some_history(&s, domain).await;
        s.verify_chain(&dom(domain)).await.unwrap();
    }
    h.tamper(&s, Tamper::AlterEvent { chain: dom("VE"), seq: 4 }).await;
    h.tamper(&s, Tamper::RemoveEvent { chain: dom("USPS"), seq: 5 }).await;
    h.tamper(&s, Tamper::SwapEvents { chain: dom("EARTH"), a: 6, b: 7 }).await;
    for (domain, seq) in [("VE", 4), ("USPS", 5), ("EARTH", 6)] {
        let err = s.verify_chain(&dom(domain)).await.unwrap_err();
        assert!(
            matches!(err, StoreError::ChainBroken { seq: found, .. } if found == seq),
            "{domain}: {err:?}"
        );
        assert_eq!(err.response_code(), postkey_wire::ResponseCode::ARCHIVE_CHAIN_BROKEN);
    }
    s.verify_chain(&dom("UKRM")).await.unwrap();
    s.verify_chain(&dom("ADMIN")).await.unwrap();
}

/// The database itself refuses to update or delete an event, so history cannot be rewritten
/// through SQL that bypasses the store either (short of dropping the guard).
pub async fn sql_cannot_rewrite_history<H: Harness>(h: &H) {
    let s = h.open().await;
    some_history(&s, "VE").await;
    let before = s.chain_events(&dom("VE"), 0, 100).await.unwrap();
    assert!(h.history_refuses_sql(&s, dom("VE"), 3).await);
    assert_eq!(s.chain_events(&dom("VE"), 0, 100).await.unwrap(), before);
    s.verify_chain(&dom("VE")).await.unwrap();
}
