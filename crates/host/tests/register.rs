//! Registration and withdrawal through the home (docs/registration.md): both keys of a meter
//! become `Active` together or neither does, each refusal has its response code and an
//! error-log entry, and a withdrawn meter is never registered or keyed again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{LINE, World, d, ram_tempdir, sub, world};
use postkey_archive::{KeyStatus, Store as _};
use postkey_host::{Access, Registrar, RegistrationOrder, Wait};
use postkey_wire::{Date, Isn, MeterId, ResponseCode};

fn meter(n: u32) -> MeterId {
    MeterId::parse(&format!("PB7777-{n:06}")).unwrap()
}

fn today() -> Date {
    let (y, m, d) = postkey_host::now().utc_date();
    Date::new(y as u16, m, d).unwrap()
}

fn order(n: u32, subdomain: &str, isn: &str, date: Date) -> RegistrationOrder {
    RegistrationOrder {
        meter: meter(n),
        subdomain: sub(subdomain),
        isn: Isn::parse(isn).unwrap(),
        date,
    }
}

async fn registrar(w: &World) -> Registrar {
    let lock = w.home.lock(Access::Shared, Wait::No).unwrap();
    Registrar::for_subdomains(&lock, w.store.clone(), &w.media(), &[sub("USPS/US")]).await.unwrap()
}

/// Whether the error log (the spool, or the archive's once moved there) has an entry of `code`.
async fn logged(w: &World, code: ResponseCode) -> bool {
    let archived = w.store.errors_in_order(0, 1000).await.unwrap();
    common::logged(&w.home, code) || archived.iter().any(|e| e.entry.response_code == code)
}

/// Each meter's keys' statuses, VE first.
async fn statuses(w: &World, n: u32) -> Vec<KeyStatus> {
    let mut keys = w.store.keys_of_meters(&[meter(n)]).await.unwrap();
    keys.sort_by_key(|k| k.domain.as_str() != "VE");
    keys.iter().map(|k| k.status).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_keys_register_together_and_every_refusal_has_its_code() {
    let w = world(ram_tempdir(), LINE).await;
    common::key_meters_on(&w, w.store.clone(), 1..=4).await.unwrap();
    let mut r = registrar(&w).await;
    let yesterday = {
        let t = postkey_host::now().unix_micros() - 2 * 86_400_000_000;
        let (y, m, d) = postkey_wire::Timestamp::from_unix_micros(t).utc_date();
        Date::new(y as u16, m, d).unwrap()
    };
    let orders = vec![
        order(1, "USPS/US", "A1", today()),
        // The same ISN for another meter of the sub-domain, in the same batch.
        order(2, "USPS/US", "A1", today()),
        // Dated before the keys were installed.
        order(3, "USPS/US", "A3", yesterday),
    ];
    let reports = r.register_many(&orders, 8, |_| {}).await.unwrap();
    let outcome: Vec<_> = reports.iter().map(|r| (r.outcome, r.code)).collect();
    assert_eq!(
        outcome,
        [
            ("registered", None),
            ("refused", Some(ResponseCode::ISN_TAKEN.0)),
            ("refused", Some(ResponseCode::TIME_WENT_BACKWARDS.0)),
        ],
        "{reports:?}"
    );
    assert_eq!(statuses(&w, 1).await, [KeyStatus::Active, KeyStatus::Active]);
    for n in [2, 3] {
        assert_eq!(statuses(&w, n).await, [KeyStatus::Installed, KeyStatus::Installed], "{n}");
    }
    let keys = w.store.keys_of_meters(&[meter(1)]).await.unwrap();
    for k in &keys {
        let reg = k.registration.as_ref().unwrap();
        assert_eq!(reg.isn.as_str(), "A1");
        let expected = if k.domain == d("VE") { "VE/US" } else { "USPS/US" };
        assert_eq!(reg.subdomain, sub(expected));
        assert_eq!(k.times.meter_registration, Some(today()));
        assert!(k.times.kms_key_registration.is_some());
        let types: Vec<_> = w
            .store
            .records(&k.domain, k.key_id)
            .await
            .unwrap()
            .iter()
            .map(|s| s.record.record_type)
            .collect();
        assert!(types.contains(&postkey_wire::RecordType::MR3), "{types:?}");
        assert!(types.contains(&postkey_wire::RecordType::MR4), "{types:?}");
    }
    let vendor = keys.iter().find(|k| k.domain == d("VE")).unwrap();
    assert_eq!(
        w.store
            .key_by_isn(&sub("VE/US"), &Isn::parse("A1").unwrap())
            .await
            .unwrap()
            .unwrap()
            .key_id,
        vendor.key_id
    );

    // The same registration again changes nothing; another one for a registered meter is refused.
    let head = w.store.chain_head(&d("USPS")).await.unwrap();
    let again = r.register_many(&[order(1, "USPS/US", "A1", today())], 8, |_| {}).await.unwrap();
    assert_eq!(again[0].outcome, "unchanged", "{again:?}");
    assert_eq!(w.store.chain_head(&d("USPS")).await.unwrap(), head);
    let moved = r.register_many(&[order(1, "USPS/US", "B1", today())], 8, |_| {}).await.unwrap();
    assert_eq!(moved[0].code, Some(ResponseCode::METER_REGISTERED.0), "{moved:?}");
    for code in
        [ResponseCode::ISN_TAKEN, ResponseCode::TIME_WENT_BACKWARDS, ResponseCode::METER_REGISTERED]
    {
        assert!(logged(&w, code).await, "{code} in the error log");
    }
    r.close();

    // No Brass box serves a sub-domain the domain does not have: that meter is refused alone.
    let mut r = registrar(&w).await;
    let reports = r.register_many(&[order(4, "USPS/CA", "C4", today())], 8, |_| {}).await.unwrap();
    assert_eq!(reports[0].code, Some(ResponseCode::SUBDOMAIN_NOT_SERVED.0), "{reports:?}");
    r.close();

    // Withdrawal: both keys Obsolete together; then the meter is never registered, withdrawn
    // or keyed again.
    let lock = w.home.lock(Access::Shared, Wait::No).unwrap();
    let r = Registrar::for_withdrawal(&lock, w.store.clone(), &w.media(), &meter(1)).await.unwrap();
    let withdrawn = r.withdraw(&meter(1), "scrapped").await.unwrap();
    assert_eq!(withdrawn.len(), 2);
    assert_eq!(statuses(&w, 1).await, [KeyStatus::Obsolete, KeyStatus::Obsolete]);
    assert!(
        w.store
            .keys_of_meters(&[meter(1)])
            .await
            .unwrap()
            .iter()
            .all(|k| k.times.obsolete.is_some())
    );
    let e = r.withdraw(&meter(1), "again").await.unwrap_err();
    assert_eq!(e.response_code(), ResponseCode::METER_WITHDRAWN, "{e}");
    let e = r.withdraw(&meter(99), "unknown").await.unwrap_err();
    assert_eq!(e.response_code(), ResponseCode::UNKNOWN_METER, "{e}");
    r.close();
    drop(lock);
    let mut r = registrar(&w).await;
    let back = r.register_many(&[order(1, "USPS/US", "A1", today())], 8, |_| {}).await.unwrap();
    assert_eq!(back[0].code, Some(ResponseCode::METER_WITHDRAWN.0), "{back:?}");
    r.close();
    let lock = w.home.lock(Access::Shared, Wait::No).unwrap();
    let mut f =
        postkey_host::Factory::open(&lock, &w.media(), &[d("VE"), d("USPS")]).await.unwrap();
    let e = f.install(&meter(1), &d("VE"), &d("USPS")).await.unwrap_err();
    assert_eq!(e.response_code(), ResponseCode::METER_WITHDRAWN, "{e}");
    f.close();
    assert!(logged(&w, ResponseCode::METER_WITHDRAWN).await);

    // A meter with a key still Installed, unregistered, is withdrawn too.
    let lock = w.home.lock(Access::Shared, Wait::No).unwrap();
    let r = Registrar::for_withdrawal(&lock, w.store.clone(), &w.media(), &meter(4)).await.unwrap();
    r.withdraw(&meter(4), "never registered").await.unwrap();
    assert_eq!(statuses(&w, 4).await, [KeyStatus::Obsolete, KeyStatus::Obsolete]);
    r.close();
    drop(lock);

    // A sub-domain of the vendor's, one of a domain the meter holds no key of, or one that
    // does not exist: each meter refused alone (3031), the others registered.
    let mut r = registrar(&w).await;
    let mixed = [
        order(2, "VE/US", "V2", today()),
        order(3, "NOPE/US", "N3", today()),
        order(2, "USPS/US", "A2", today()),
    ];
    let reports = r.register_many(&mixed[..2], 8, |_| {}).await.unwrap();
    let codes: Vec<_> = reports.iter().map(|r| r.code).collect();
    assert_eq!(codes, [Some(ResponseCode::SUBDOMAIN_MISMATCH.0); 2], "{reports:?}");
    let reports = r.register_many(&mixed[2..], 8, |_| {}).await.unwrap();
    assert_eq!(reports[0].outcome, "registered", "{reports:?}");
    r.close();

    // The audit holds over registrations and withdrawals.
    let report = postkey_audit::verify(&w.store, &w.trust.anchors).await.unwrap();
    assert!(report.holds(), "{:?}", report.faults);

    // Two keys of one sub-domain under one ISN, each consistent with its own history: the
    // archive's unique index dropped, meter 2's ISN renamed so that meter 3 registers under
    // it through Brass, then renamed back.
    let edit = |sql: &'static str| {
        w.store.with_raw_connection(|c| {
            common::drop_guards(c);
            c.execute_batch(sql).unwrap();
        });
    };
    edit("DROP INDEX keys_by_isn; UPDATE keys SET isn = 'TMP' WHERE isn = 'A2'");
    let mut r = registrar(&w).await;
    let reports = r.register_many(&[order(3, "USPS/US", "A2", today())], 8, |_| {}).await.unwrap();
    assert_eq!(reports[0].outcome, "registered", "{reports:?}");
    r.close();
    edit("UPDATE keys SET isn = 'A2' WHERE isn = 'TMP'");
    let report = postkey_audit::verify(&w.store, &w.trust.anchors).await.unwrap();
    let first = &report.faults[0];
    assert_eq!(first.kind, postkey_audit::FaultKind::Field, "{first}");
    assert!(first.detail.contains("ISN A2 in USPS/US is key"), "{first}");

    // An ISN edited in the index.
    let usps = w.store.keys_of_meters(&[meter(1)]).await.unwrap();
    let usps = usps.iter().find(|k| k.domain == d("USPS")).unwrap();
    w.store.with_raw_connection(|c| {
        common::drop_guards(c);
        c.execute("UPDATE keys SET isn = 'Z9' WHERE domain = 'USPS' AND isn = 'A1'", []).unwrap();
    });
    let report = postkey_audit::verify(&w.store, &w.trust.anchors).await.unwrap();
    assert!(
        report.faults.iter().any(|f| f.kind == postkey_audit::FaultKind::Field
            && matches!(&f.position, postkey_audit::Position::Key { domain, key_id }
                if domain == "USPS" && *key_id == usps.key_id.get())),
        "{:?}",
        report.faults
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_and_withdrawal_hold_on_postgresql_too() {
    let Some(url) = postkey_archive_postgres::testing::server_url("registration on PostgreSQL")
    else {
        return;
    };
    let schema =
        format!("pk_test_register_{}_{}", postkey_host::now().unix_micros(), std::process::id());
    let config =
        postkey_host::PgConfig { schema: Some(schema), ..postkey_host::PgConfig::new(&url) };
    let store = postkey_archive_postgres::PgStore::connect(&config).await.unwrap();
    let w = common::world_on(tempfile::tempdir().unwrap(), store.clone(), LINE).await;
    common::key_meters_on(&w, store.clone(), 1..=3).await.unwrap();
    let lock = w.home.lock(Access::Shared, Wait::No).unwrap();
    let orders = [
        order(1, "USPS/US", "P1", today()),
        order(2, "USPS/US", "P1", today()),
        order(3, "USPS/US", "P3", today()),
    ];
    let mut r = Registrar::for_orders(&lock, store.clone(), &w.media(), &orders).await.unwrap();
    // One meter a batch: meter 2's batch is prepared while meter 1's commits, so its ISN is
    // found taken by the archive's unique index if not before.
    let reports = r.register_many(&orders, 1, |_| {}).await.unwrap();
    let outcome: Vec<_> = reports.iter().map(|r| (r.outcome, r.code)).collect();
    assert_eq!(
        outcome,
        [("registered", None), ("refused", Some(ResponseCode::ISN_TAKEN.0)), ("registered", None)],
        "{reports:?}"
    );
    let again = r.register_many(&orders[..1], 8, |_| {}).await.unwrap();
    assert_eq!(again[0].outcome, "unchanged");
    r.close();
    let r = Registrar::for_withdrawal(&lock, store.clone(), &w.media(), &meter(3)).await.unwrap();
    r.withdraw(&meter(3), "scrapped").await.unwrap();
    r.close();
    let statuses = |n: u32| {
        let store = store.clone();
        async move {
            let mut keys = store.keys_of_meters(&[meter(n)]).await.unwrap();
            keys.sort_by_key(|k| k.domain.as_str() != "VE");
            keys.iter().map(|k| k.status).collect::<Vec<_>>()
        }
    };
    assert_eq!(statuses(1).await, [KeyStatus::Active, KeyStatus::Active]);
    assert_eq!(statuses(2).await, [KeyStatus::Installed, KeyStatus::Installed]);
    assert_eq!(statuses(3).await, [KeyStatus::Obsolete, KeyStatus::Obsolete]);
    let report = postkey_audit::verify(&store, &w.trust.anchors).await.unwrap();
    assert!(report.holds(), "{:?}", report.faults);
    store.drop_schema().await.unwrap();
}
