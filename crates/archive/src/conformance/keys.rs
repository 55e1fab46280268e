//! Cases for key IDs, key records, status transitions and times.

use postkey_wire::{RecordType, ResponseCode};

use super::Harness;
use super::fixtures::*;
use crate::{
    BurnKeyId, Cause, Changes, KeyFields, KeyFilter, KeyStatus, KeyTimes, KeyUpdate, NewKey,
    NewRecord, Registration, Reservation, Store, StoreError, Subject,
};

/// Key IDs are allocated strictly increasing per domain; a burned ID never becomes a key; a key
/// needs an allocated ID.
pub async fn key_ids_allocate_and_burn<H: Harness>(h: &H) {
    let s = h.open().await;
    let ve = setup_domain(&s, "VE").await;
    let usps = setup_domain(&s, "USPS").await;
    assert_eq!(s.allocate_key_id(&ve).await.unwrap(), kid(1));
    assert_eq!(s.allocate_key_id(&ve).await.unwrap(), kid(2));
    // Domains count separately.
    assert_eq!(s.allocate_key_id(&usps).await.unwrap(), kid(1));
    let range = s.allocate_key_ids(&ve, 3).await.unwrap();
    assert_eq!((range.first, range.last), (kid(3), kid(5)));
    assert_eq!(range.ids().count(), 3);
    assert_eq!(s.domain(&ve).await.unwrap().unwrap().next_key_id, kid(6));
    assert!(matches!(s.allocate_key_ids(&ve, 0).await, Err(StoreError::Invalid(_))));
    assert!(matches!(
        s.allocate_key_id(&dom("NONE")).await,
        Err(StoreError::NotFound(Subject::Domain(_)))
    ));

    // Never allocated: no key.
    let err = s.create_key(&new_key(&ve, kid(6), 10)).await.unwrap_err();
    assert!(matches!(err, StoreError::KeyIdNotAllocated { .. }), "{err:?}");
    assert_eq!(err.response_code(), ResponseCode::KEY_ID_NOT_ALLOCATED);

    // Burned: never a key, never burned twice.
    let burn = BurnKeyId {
        domain: ve.clone(),
        key_id: kid(2),
        reason: "Oak refused it as not fresh".into(),
        time: ts(10),
        actor: kmc(),
    };
    s.burn_key_id(&burn).await.unwrap();
    let err = s.burn_key_id(&burn).await.unwrap_err();
    assert!(matches!(err, StoreError::Duplicate(Subject::BurnedKeyId { .. })), "{err:?}");
    assert_eq!(err.response_code(), ResponseCode::ARCHIVE_DUPLICATE);
    let err = s.create_key(&new_key(&ve, kid(2), 11)).await.unwrap_err();
    assert!(matches!(err, StoreError::KeyIdBurned { .. }), "{err:?}");
    assert_eq!(err.response_code(), postkey_wire::ResponseCode::KEY_ID_BURNED);

    // A key's ID cannot be burned; an unallocated one neither.
    s.create_key(&new_key(&ve, kid(1), 12)).await.unwrap();
    let err = s.burn_key_id(&BurnKeyId { key_id: kid(1), ..burn.clone() }).await.unwrap_err();
    assert!(matches!(err, StoreError::Duplicate(Subject::Key { .. })), "{err:?}");
    assert_eq!(err.response_code(), ResponseCode::ARCHIVE_DUPLICATE);
    let err = s.burn_key_id(&BurnKeyId { key_id: kid(99), ..burn.clone() }).await.unwrap_err();
    assert!(matches!(err, StoreError::KeyIdNotAllocated { .. }), "{err:?}");
    assert_eq!(err.response_code(), ResponseCode::KEY_ID_NOT_ALLOCATED);
    // A key is created once.
    let err = s.create_key(&new_key(&ve, kid(1), 13)).await.unwrap_err();
    assert!(matches!(err, StoreError::Duplicate(Subject::Key { .. })), "{err:?}");
    assert_eq!(err.response_code(), ResponseCode::ARCHIVE_DUPLICATE);

    let burned = s.burned_key_ids(&ve).await.unwrap();
    assert_eq!(burned.len(), 1);
    assert_eq!(
        (burned[0].key_id, burned[0].reason.as_str()),
        (kid(2), "Oak refused it as not fresh")
    );
    // The burn is in the domain's history.
    let history = s.key_history(&ve, kid(2)).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].entry.action, crate::Action::KeyIdBurned);
}

/// Reserved key IDs stay with their holder until a change releases them, which it does only
/// when each ID is a key or burned; another holder's reservations are not listed.
pub async fn key_id_reservations_are_released_when_accounted<H: Harness>(h: &H) {
    let s = h.open().await;
    let ve = setup_domain(&s, "VE").await;
    let (oak, other) = (bx("O00000001"), bx("O00000002"));
    let range = s.reserve_key_ids(&ve, 3, oak, ts(10)).await.unwrap();
    assert_eq!((range.first, range.last), (kid(1), kid(3)));
    let theirs = s.reserve_key_ids(&ve, 1, other, ts(11)).await.unwrap();
    assert_eq!(theirs.first, kid(4), "reserved IDs are allocated");
    let held = s.reservations(oak).await.unwrap();
    let mine = Reservation { domain: ve.clone(), range, holder: oak, time: ts(10) };
    assert_eq!(held, vec![mine.clone()]);
    // Two IDs became keys, one did not: the reservation cannot be released yet, and nothing of
    // the change is kept.
    let changes = Changes {
        new_keys: vec![new_key(&ve, kid(1), 12), new_key(&ve, kid(2), 12)],
        released: vec![mine.clone()],
        ..Changes::default()
    };
    assert!(matches!(s.apply(&changes).await, Err(StoreError::Invalid(_))));
    assert!(s.key(&ve, kid(1)).await.unwrap().is_none());
    // With the third burned, it is released in the same transaction.
    let burn = BurnKeyId {
        domain: ve.clone(),
        key_id: kid(3),
        reason: "Oak refused it".into(),
        time: ts(12),
        actor: kmc(),
    };
    s.apply(&Changes { burns: vec![burn], ..changes }).await.unwrap();
    assert!(s.reservations(oak).await.unwrap().is_empty());
    // Released once; another holder's reservation is not this holder's to release.
    let again = Changes { released: vec![mine], ..Changes::default() };
    assert!(matches!(s.apply(&again).await, Err(StoreError::Invalid(_))));
    assert_eq!(s.reservations(other).await.unwrap().len(), 1);
}

/// A key goes New → Installed → Active → Obsolete; its fields, times and every signed record are
/// kept, byte for byte, and each step is an event.
pub async fn key_lifecycle_and_records<H: Harness>(h: &H) {
    let s = h.open().await;
    let d = setup_domain(&s, "USPS").await;
    let created = create(&s, &d, 10).await;
    let k = created.key_id;
    assert_eq!(created.status, KeyStatus::New);
    assert_eq!(s.key(&d, k).await.unwrap().as_ref(), Some(&created));

    // MI7 arrives before MI9: kept with the key, with the PSR Install Time.
    let mi7 = record(RecordType::MI7, "installed");
    let update = KeyUpdate {
        domain: d.clone(),
        key_id: k,
        time: ts(12),
        actor: kmc(),
        record: Some(mi7.clone()),
        fields: KeyFields {
            times: KeyTimes { psr_install: Some(ts(11)), ..KeyTimes::default() },
            ..KeyFields::default()
        },
    };
    let updated = s.update_key(&update).await.unwrap();
    assert_eq!(updated.times.psr_install, Some(ts(11)));
    s.store_record(&NewRecord {
        domain: d.clone(),
        key_id: k,
        record: mi7.clone(),
        time: ts(12),
        actor: kmc(),
    })
    .await
    .unwrap();

    // The PSR Install Time is recorded already; MI9 brings the meter and the KMS Install Time.
    let mut install = transition(&d, k, KeyStatus::New, KeyStatus::Installed, 14);
    install.fields.times.psr_install = None;
    let installed = s.transition(&install).await.unwrap();
    assert_eq!(installed.meter_id, Some(meter(k.get())));
    let active = s
        .transition(&transition(&d, k, KeyStatus::Installed, KeyStatus::Active, 16))
        .await
        .unwrap();
    assert_eq!(active.registration.as_ref().map(|r| &r.isn), Some(&isn(k.get())));
    assert_eq!(s.key_by_isn(&sub("USPS/US"), &isn(k.get())).await.unwrap(), Some(active.clone()));
    assert_eq!(s.key_by_isn(&sub("USPS/DE"), &isn(k.get())).await.unwrap(), None);
    // A batch lookup finds the same key once, whatever else or however often it is asked.
    let asked = [
        (sub("USPS/US"), isn(k.get())),
        (sub("USPS/DE"), isn(k.get())),
        (sub("USPS/US"), isn(k.get())),
    ];
    assert_eq!(s.keys_by_isns(&asked).await.unwrap(), core::slice::from_ref(&active));
    assert!(s.keys_by_isns(&[]).await.unwrap().is_empty());
    let obsolete =
        s.transition(&transition(&d, k, KeyStatus::Active, KeyStatus::Obsolete, 18)).await.unwrap();
    assert_eq!(obsolete.status, KeyStatus::Obsolete);
    let t = obsolete.times;
    assert_eq!(
        (
            t.kms_request,
            t.psr_install,
            t.kms_install,
            t.meter_registration,
            t.kms_key_registration,
            t.obsolete
        ),
        (Some(ts(9)), Some(ts(11)), Some(ts(14)), Some(day()), Some(ts(16)), Some(ts(18)))
    );
    assert_eq!(s.key(&d, k).await.unwrap(), Some(obsolete));

    // Records: MI3, MI7 (once, though given twice), MI9, MR3, WITHDRAW, exactly as given.
    let records = s.records(&d, k).await.unwrap();
    let types: Vec<_> = records.iter().map(|r| r.record.record_type).collect();
    assert_eq!(
        types,
        [RecordType::MI3, RecordType::MI7, RecordType::MI9, RecordType::MR3, RecordType::WITHDRAW]
    );
    assert_eq!(records[1].record, mi7);
    let asked = [(d.clone(), k), (d.clone(), kid(999)), (d.clone(), k)];
    let mi9 = s.records_of_type(&asked, RecordType::MI9).await.unwrap();
    assert_eq!(mi9, [(d.clone(), k, records[2].clone())]);
    assert!(records.iter().all(|r| r.digest == r.record.digest()));

    // History: created, updated, three transitions; each event names its record's digest.
    let history = s.key_history(&d, k).await.unwrap();
    let actions: Vec<_> = history.iter().map(|e| e.entry.action.encode()).collect();
    assert_eq!(
        actions,
        [
            "key-created",
            "key-updated",
            "status:new>installed",
            "status:installed>active",
            "status:active>obsolete"
        ]
    );
    assert_eq!(history[2].entry.record.map(|r| r.digest), Some(records[2].digest));
    s.verify_chain(&d).await.unwrap();
}

/// Listing by status, meter, request time, and paging.
pub async fn key_listing_and_lookups<H: Harness>(h: &H) {
    let s = h.open().await;
    let d = setup_domain(&s, "VE").await;
    let mut now = 10;
    for status in
        [KeyStatus::New, KeyStatus::Installed, KeyStatus::New, KeyStatus::Active, KeyStatus::Bad]
    {
        now = key_in(&s, &d, status, now).await.1;
    }
    let all = s.keys(&KeyFilter::domain(d.clone(), 100)).await.unwrap();
    assert_eq!(all.iter().map(|k| k.key_id.get()).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    let new = s
        .keys(&KeyFilter { status: Some(KeyStatus::New), ..KeyFilter::domain(d.clone(), 100) })
        .await
        .unwrap();
    assert_eq!(new.iter().map(|k| k.key_id.get()).collect::<Vec<_>>(), [1, 3]);
    let page = s
        .keys(&KeyFilter { after: Some(kid(2)), ..KeyFilter::domain(d.clone(), 2) })
        .await
        .unwrap();
    assert_eq!(page.iter().map(|k| k.key_id.get()).collect::<Vec<_>>(), [3, 4]);
    let by_meter = s
        .keys(&KeyFilter { meter_id: Some(meter(4)), ..KeyFilter::domain(d.clone(), 100) })
        .await
        .unwrap();
    assert_eq!(by_meter.len(), 1);
    // A meter's keys across domains, whatever their status; one of another domain joins them.
    let earth = setup_domain(&s, "EARTH").await;
    let id = s.allocate_key_id(&earth).await.unwrap();
    s.create_key(&NewKey { meter_id: meter(4), ..new_key(&earth, id, now) }).await.unwrap();
    let of = s.keys_of_meters(&[meter(4), meter(5), meter(99)]).await.unwrap();
    let of: Vec<(String, u64)> =
        of.iter().map(|k| (k.domain.to_string(), k.key_id.get())).collect();
    assert_eq!(of, [("EARTH".into(), 1), ("VE".into(), 4), ("VE".into(), 5)]);
    assert!(s.keys_of_meters(&[]).await.unwrap().is_empty());
    // Each key's MI9 in one read, in the order stored; a key without one (New) gives none.
    let asked = [(d.clone(), kid(4)), (d.clone(), kid(1)), (d.clone(), kid(2))];
    let mi9 = s.records_of_type(&asked, RecordType::MI9).await.unwrap();
    assert_eq!(mi9.iter().map(|(_, k, _)| k.get()).collect::<Vec<_>>(), [2, 4]);
    for (domain, key_id, record) in &mi9 {
        let all = s.records(domain, *key_id).await.unwrap();
        assert!(all.iter().any(|r| r == record && r.record.record_type == RecordType::MI9));
    }
    assert!(s.records_of_type(&[], RecordType::MI9).await.unwrap().is_empty());
    // Keys 1 and 2 were requested before key 3's request time.
    let early = KeyFilter {
        requested_before: all[2].times.kms_request,
        ..KeyFilter::domain(d.clone(), 100)
    };
    assert_eq!(s.keys(&early).await.unwrap().len(), 2);
    assert_eq!(s.key(&d, kid(77)).await.unwrap(), None);
    assert_eq!(s.keys(&KeyFilter::domain(dom("USPS"), 10)).await.unwrap(), []);
}

/// All 25 ordered pairs of statuses: the six of protocol §6.4 succeed, the other 19 are refused
/// and leave the record and its history exactly as they were.
pub async fn every_disallowed_transition_is_refused<H: Harness>(h: &H) {
    let s = h.open().await;
    let d = setup_domain(&s, "VE").await;
    let mut now = 10;
    let (mut allowed, mut refused) = (0, 0);
    for from in KeyStatus::ALL {
        for to in KeyStatus::ALL {
            let (key, next) = key_in(&s, &d, from, now).await;
            now = next;
            let history = s.key_history(&d, key.key_id).await.unwrap();
            let result = s.transition(&transition(&d, key.key_id, from, to, now)).await;
            now += 2;
            if KeyStatus::allowed(from, to) {
                allowed += 1;
                assert_eq!(result.unwrap().status, to, "{from} -> {to}");
                assert_eq!(s.key_history(&d, key.key_id).await.unwrap().len(), history.len() + 1);
            } else {
                refused += 1;
                let err = result.unwrap_err();
                assert!(
                    matches!(err, StoreError::TransitionNotAllowed { from: f, to: t } if f == from && t == to),
                    "{from} -> {to}: {err:?}"
                );
                assert_eq!(err.response_code(), postkey_wire::ResponseCode::TRANSITION_NOT_ALLOWED);
                assert_eq!(
                    s.key(&d, key.key_id).await.unwrap(),
                    Some(key.clone()),
                    "{from} -> {to}"
                );
                assert_eq!(s.key_history(&d, key.key_id).await.unwrap(), history, "{from} -> {to}");
            }
        }
    }
    assert_eq!((allowed, refused), (6, 19));
    s.verify_chain(&d).await.unwrap();
}

/// A transition applies only if the key is still in the status it starts from.
pub async fn transition_only_from_expected_status<H: Harness>(h: &H) {
    let s = h.open().await;
    let d = setup_domain(&s, "VE").await;
    let (key, now) = key_in(&s, &d, KeyStatus::Installed, 10).await;
    // Allowed in itself (New → Bad), but the key is no longer New.
    let err = s
        .transition(&transition(&d, key.key_id, KeyStatus::New, KeyStatus::Bad, now))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::StatusConflict {
                expected: KeyStatus::New,
                actual: KeyStatus::Installed,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(s.key(&d, key.key_id).await.unwrap(), Some(key.clone()));
    let missing = s
        .transition(&transition(&d, kid(50), KeyStatus::New, KeyStatus::Bad, now))
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound(Subject::Key { .. })), "{missing:?}");
    assert_eq!(missing.response_code(), ResponseCode::ARCHIVE_NOT_FOUND);
}

/// The KMC's own reason is enough only for `→ Bad`; every other change needs a signed record.
pub async fn kmc_reason_only_for_bad<H: Harness>(h: &H) {
    let s = h.open().await;
    let d = setup_domain(&s, "VE").await;
    let (key, now) = key_in(&s, &d, KeyStatus::New, 10).await;
    let mut t = transition(&d, key.key_id, KeyStatus::New, KeyStatus::Installed, now);
    t.cause = Cause::Reason("no MI7 in time".into());
    let err = s.transition(&t).await.unwrap_err();
    assert!(matches!(err, StoreError::MissingField { .. }), "{err:?}");
    assert_eq!(err.response_code(), ResponseCode::ARCHIVE_MISSING_FIELD);
    let mut bad = transition(&d, key.key_id, KeyStatus::New, KeyStatus::Bad, now);
    bad.actor = kmc();
    bad.cause = Cause::Reason("no MI7 in time".into());
    assert_eq!(s.transition(&bad).await.unwrap().status, KeyStatus::Bad);
    let last = s.key_history(&d, key.key_id).await.unwrap().pop().unwrap();
    assert_eq!(last.entry.note.as_deref(), Some("no MI7 in time"));
    assert_eq!(last.entry.record, None);
    assert_eq!(last.entry.actor, kmc());
}

/// Fields are set once; a key is registered only in a sub-domain of its own domain, under an ISN
/// no other key of that sub-domain has.
pub async fn set_once_fields_and_domain_separation<H: Harness>(h: &H) {
    let s = h.open().await;
    let d = setup_domain(&s, "USPS").await;
    setup_domain(&s, "VE").await;
    let (a, now) = key_in(&s, &d, KeyStatus::Installed, 10).await;
    let (b, mut now) = key_in(&s, &d, KeyStatus::Installed, now).await;

    let mut other_domain = transition(&d, a.key_id, KeyStatus::Installed, KeyStatus::Active, now);
    other_domain.fields.registration = Some(Registration { subdomain: sub("VE/US"), isn: isn(1) });
    let err = s.transition(&other_domain).await.unwrap_err();
    assert!(matches!(err, StoreError::Mismatch(_)), "{err:?}");
    assert_eq!(err.response_code(), ResponseCode::ARCHIVE_MISMATCH);

    let mut unknown_sub = transition(&d, a.key_id, KeyStatus::Installed, KeyStatus::Active, now);
    unknown_sub.fields.registration = Some(Registration { subdomain: sub("USPS/GB"), isn: isn(1) });
    let err = s.transition(&unknown_sub).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(Subject::Subdomain(_))), "{err:?}");
    assert_eq!(err.response_code(), ResponseCode::ARCHIVE_NOT_FOUND);

    let mut other_meter = transition(&d, a.key_id, KeyStatus::Installed, KeyStatus::Active, now);
    other_meter.fields.meter_id = Some(meter(999));
    let err = s.transition(&other_meter).await.unwrap_err();
    assert!(matches!(err, StoreError::FieldAlreadySet { field: "meter ID" }), "{err:?}");
    assert_eq!(err.response_code(), ResponseCode::ARCHIVE_FIELD_ALREADY_SET);
    assert_eq!(s.key(&d, a.key_id).await.unwrap(), Some(a.clone()));

    s.transition(&transition(&d, a.key_id, KeyStatus::Installed, KeyStatus::Active, now))
        .await
        .unwrap();
    now += 2;
    // b may not take a's ISN in the same sub-domain.
    let mut same_isn = transition(&d, b.key_id, KeyStatus::Installed, KeyStatus::Active, now);
    same_isn.fields.registration =
        Some(Registration { subdomain: sub("USPS/US"), isn: isn(a.key_id.get()) });
    let err = s.transition(&same_isn).await.unwrap_err();
    assert!(matches!(err, StoreError::Duplicate(Subject::Isn { .. })), "{err:?}");
    assert_eq!(err.response_code(), ResponseCode::ARCHIVE_DUPLICATE);
    assert_eq!(s.key(&d, b.key_id).await.unwrap(), Some(b));
}

/// A change earlier than the key's previous event is refused, as are times out of the order of
/// protocol §6.6 (PSR times within the tolerance); nothing changes.
pub async fn times_never_go_backwards<H: Harness>(h: &H) {
    let s = h.open().await;
    let d = setup_domain(&s, "VE").await;
    let (key, now) = key_in(&s, &d, KeyStatus::New, 1000).await;
    let err = s
        .transition(&transition(&d, key.key_id, KeyStatus::New, KeyStatus::Installed, 999))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TimeWentBackwards { field: "event time", .. }), "{err:?}");
    assert_eq!(err.response_code(), postkey_wire::ResponseCode::TIME_WENT_BACKWARDS);

    // The PSR Install Time may lie a little before the KMS Request Time (clock skew), not an hour.
    let mut skewed = transition(&d, key.key_id, KeyStatus::New, KeyStatus::Installed, now);
    skewed.fields.times.psr_install = Some(ts(999 - 60));
    let mut far = skewed.clone();
    far.fields.times.psr_install = Some(ts(999 - 400));
    let err = s.transition(&far).await.unwrap_err();
    assert!(
        matches!(err, StoreError::TimeWentBackwards { field: "PSR Install Time", .. }),
        "{err:?}"
    );
    let mut kms = skewed.clone();
    kms.fields.times.kms_install = Some(ts(998));
    let err = s.transition(&kms).await.unwrap_err();
    assert!(
        matches!(err, StoreError::TimeWentBackwards { field: "KMS Install Time", .. }),
        "{err:?}"
    );
    assert_eq!(s.key(&d, key.key_id).await.unwrap(), Some(key.clone()));
    s.transition(&skewed).await.unwrap();

    // A time update follows the same rules.
    let update = KeyUpdate {
        domain: d.clone(),
        key_id: key.key_id,
        time: ts(now + 2),
        actor: kmc(),
        record: None,
        fields: KeyFields {
            times: KeyTimes { obsolete: Some(ts(1)), ..KeyTimes::default() },
            ..KeyFields::default()
        },
    };
    let err = s.update_key(&update).await.unwrap_err();
    assert!(matches!(err, StoreError::TimeWentBackwards { field: "Obsolete Time", .. }), "{err:?}");
    assert_eq!(err.response_code(), ResponseCode::TIME_WENT_BACKWARDS);
}

/// A batch of transitions is one transaction: one failure rolls back every change before it.
pub async fn batches_are_whole_or_nothing<H: Harness>(h: &H) {
    let s = h.open().await;
    let d = setup_domain(&s, "VE").await;
    let mut keys = Vec::new();
    let mut now = 10;
    for _ in 0..4 {
        let (k, next) = key_in(&s, &d, KeyStatus::New, now).await;
        keys.push(k);
        now = next;
    }
    let head = s.chain_head(&d).await.unwrap().unwrap();
    let mut batch: Vec<_> = keys
        .iter()
        .map(|k| transition(&d, k.key_id, KeyStatus::New, KeyStatus::Installed, now))
        .collect();
    batch[2].to = KeyStatus::Active;
    let err = s.transitions(&batch).await.unwrap_err();
    assert!(matches!(&err, StoreError::Batch { index: 2, .. }), "{err:?}");
    assert!(matches!(err.root(), StoreError::TransitionNotAllowed { .. }));
    for k in &keys {
        assert_eq!(s.key(&d, k.key_id).await.unwrap().as_ref(), Some(k));
    }
    assert_eq!(s.chain_head(&d).await.unwrap().unwrap(), head);

    batch[2].to = KeyStatus::Installed;
    let done = s.transitions(&batch).await.unwrap();
    assert!(done.iter().all(|k| k.status == KeyStatus::Installed));
    assert_eq!(s.chain_head(&d).await.unwrap().unwrap().count, head.count + 4);
    s.verify_chain(&d).await.unwrap();

    // Updates too: one bad time refuses the batch, and nothing of it is kept.
    let mut fresh = Vec::new();
    for _ in 0..4 {
        let (k, next) = key_in(&s, &d, KeyStatus::New, now).await;
        fresh.push(k);
        now = next;
    }
    let keys = fresh;
    let mut updates: Vec<KeyUpdate> = keys
        .iter()
        .map(|k| KeyUpdate {
            domain: d.clone(),
            key_id: k.key_id,
            time: ts(now + 1),
            actor: kmc(),
            record: Some(record(RecordType::MI7, &format!("mi7 of {}", k.key_id))),
            fields: KeyFields {
                times: KeyTimes { psr_install: Some(ts(now + 1)), ..KeyTimes::default() },
                ..KeyFields::default()
            },
        })
        .collect();
    updates[1].time = ts(1);
    let head = s.chain_head(&d).await.unwrap().unwrap();
    let err = s.update_keys(&updates).await.unwrap_err();
    assert!(matches!(&err, StoreError::Batch { index: 1, .. }), "{err:?}");
    assert_eq!(s.chain_head(&d).await.unwrap().unwrap(), head);
    for k in &keys {
        assert!(
            s.records(&d, k.key_id)
                .await
                .unwrap()
                .iter()
                .all(|r| r.record.record_type != RecordType::MI7)
        );
    }
    updates[1].time = ts(now + 1);
    let done = s.update_keys(&updates).await.unwrap();
    assert!(done.iter().all(|k| k.times.psr_install == Some(ts(now + 1))));
    assert_eq!(s.chain_head(&d).await.unwrap().unwrap().count, head.count + 4);
    s.verify_chain(&d).await.unwrap();
}
