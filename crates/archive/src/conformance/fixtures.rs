//! Values the cases build on: IDs, times, records and the steps of a key's life.

use postkey_wire::{
    BoxId, Date, DomainId, Isn, KeyId, MeterId, RecordType, Role, Sender, SubdomainId, Timestamp,
};

use crate::{
    Cause, KeyFields, KeyRecord, KeyStatus, KeyTimes, NewDomain, NewKey, NewSubdomain,
    Registration, SignedRecord, Store, Transition,
};

/// 2026-11-29T01:00:00Z, the day every case lives in.
const BASE_MICROS: u64 = 1_795_914_000_000_000;

/// `n` seconds after the cases' base time.
pub fn ts(n: u64) -> Timestamp {
    Timestamp::from_unix_micros(BASE_MICROS + n * 1_000_000)
}

/// The base day.
pub fn day() -> Date {
    Date::parse("20261129").unwrap()
}

/// A domain ID.
pub fn dom(s: &str) -> DomainId {
    DomainId::parse(s).unwrap()
}

/// A sub-domain ID.
pub fn sub(s: &str) -> SubdomainId {
    SubdomainId::parse(s).unwrap()
}

/// A box ID.
pub fn bx(s: &str) -> BoxId {
    BoxId::parse(s).unwrap()
}

/// A key ID.
pub fn kid(n: u64) -> KeyId {
    KeyId::new(n).unwrap()
}

/// The `n`th meter.
pub fn meter(n: u64) -> MeterId {
    MeterId::parse(&format!("PB1234-{n:06}")).unwrap()
}

/// The `n`th ISN.
pub fn isn(n: u64) -> Isn {
    Isn::parse(&format!("ISN{n:06}")).unwrap()
}

/// The KMC as an actor.
pub fn kmc() -> Sender {
    Sender::Role(Role::Kmc)
}

/// Opaque record bytes of a type, made unique by `tag`. The archive never decodes them.
pub fn record(record_type: RecordType, tag: &str) -> SignedRecord {
    SignedRecord { record_type, bytes: format!("{record_type} {tag}").into_bytes() }
}

/// Creates `domain` with its sub-domains `/US` and `/DE`.
pub async fn setup_domain<S: Store>(store: &S, domain: &str) -> DomainId {
    let d = dom(domain);
    let actor = Sender::Box(bx("M00000001"));
    store
        .create_domain(&NewDomain { id: d.clone(), time: ts(0), actor: actor.clone() })
        .await
        .unwrap();
    for cc in ["US", "DE"] {
        let s = sub(&format!("{domain}/{cc}"));
        store
            .add_subdomain(&NewSubdomain { id: s, time: ts(0), actor: actor.clone() })
            .await
            .unwrap();
    }
    d
}

/// The MI3-created key `key_id` of `domain`, requested at `at - 1` and archived at `at`.
pub fn new_key(domain: &DomainId, key_id: KeyId, at: u64) -> NewKey {
    NewKey {
        domain: domain.clone(),
        key_id,
        oak_id: bx("O00000001"),
        steel_id: bx("S00000001"),
        meter_id: meter(key_id.get()),
        kms_request_time: ts(at.saturating_sub(1)),
        time: ts(at),
        actor: Sender::Box(bx("O00000001")),
        record: record(RecordType::MI3, &format!("{domain}/{key_id}")),
    }
}

/// Allocates an ID and creates its key `New` at time `at`.
pub async fn create<S: Store>(store: &S, domain: &DomainId, at: u64) -> KeyRecord {
    let id = store.allocate_key_id(domain).await.unwrap();
    store.create_key(&new_key(domain, id, at)).await.unwrap()
}

/// The transition of key `key_id` from `from` to `to` at time `at`, with the fields and record
/// `to` needs (a meter for `Installed`; sub-domain `/US`, ISN and registration times for
/// `Active`; the Obsolete Time for `Obsolete`). The meter and ISN are numbered by the key.
pub fn transition(
    domain: &DomainId,
    key_id: KeyId,
    from: KeyStatus,
    to: KeyStatus,
    at: u64,
) -> Transition {
    let n = key_id.get();
    let mut fields = KeyFields::default();
    let record_type = match to {
        KeyStatus::New => RecordType::MI3,
        KeyStatus::Installed => {
            fields.meter_id = Some(meter(n));
            fields.times = KeyTimes {
                psr_install: Some(ts(at.saturating_sub(1))),
                kms_install: Some(ts(at)),
                ..KeyTimes::default()
            };
            RecordType::MI9
        }
        KeyStatus::Active => {
            fields.registration =
                Some(Registration { subdomain: sub(&format!("{domain}/US")), isn: isn(n) });
            fields.times = KeyTimes {
                meter_registration: Some(day()),
                kms_key_registration: Some(ts(at)),
                ..KeyTimes::default()
            };
            RecordType::MR3
        }
        KeyStatus::Bad => RecordType::BAD,
        KeyStatus::Obsolete => {
            fields.times.obsolete = Some(ts(at));
            RecordType::WITHDRAW
        }
    };
    Transition {
        domain: domain.clone(),
        key_id,
        from,
        to,
        time: ts(at),
        actor: Sender::Box(bx("B00000001")),
        cause: Cause::Record(record(record_type, &format!("{domain}/{key_id} {from}>{to}"))),
        fields,
    }
}

/// A path of allowed transitions from `New` to `status`.
pub fn path_to(status: KeyStatus) -> &'static [KeyStatus] {
    use KeyStatus::*;
    match status {
        New => &[],
        Installed => &[Installed],
        Active => &[Installed, Active],
        Bad => &[Bad],
        Obsolete => &[Installed, Obsolete],
    }
}

/// Creates a key at time `at` and walks it to `status`, one step per second; returns it and the
/// next free second.
pub async fn key_in<S: Store>(
    store: &S,
    domain: &DomainId,
    status: KeyStatus,
    at: u64,
) -> (KeyRecord, u64) {
    let mut key = create(store, domain, at).await;
    let mut now = at + 2;
    for &to in path_to(status) {
        key = store.transition(&transition(domain, key.key_id, key.status, to, now)).await.unwrap();
        now += 2;
    }
    assert_eq!(key.status, status);
    (key, now)
}
