//! Master key records, their six times (protocol §6.6), and the rules every change of one obeys.
//!
//! The rules are pure functions here, so both backends apply exactly the same ones: a backend
//! loads the record inside its write transaction (with the domain's chain head locked), asks
//! [`KeyRecord::apply_transition`] or [`KeyRecord::apply_update`] for the new record and its
//! event, and writes both with a guarded update.

use postkey_wire::Timestamp;
use postkey_wire::{BoxId, BoxType, Date, DomainId, Isn, KeyId, MeterId, Sender, SubdomainId};

use crate::chain::{Action, EventEntry, RecordRef};
use crate::{KeyStatus, SignedRecord, StoreError};

/// How far a time from another clock (the PSR's) may lie before a KMS time already recorded and
/// still count as not going backwards; the Meter Registration Date compares by UTC day
/// (protocol §6.6).
pub use postkey_wire::CLOCK_SKEW_TOLERANCE_MICROS;

/// The six times of protocol §6.6, each set once; all UTC.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyTimes {
    /// When the KMC sent MI1 to Oak (KMS clock).
    pub kms_request: Option<Timestamp>,
    /// When the PSR installed the key into the meter (PSR clock).
    pub psr_install: Option<Timestamp>,
    /// When the KMC sent MI8 to Brass (KMS clock).
    pub kms_install: Option<Timestamp>,
    /// The date the meter registered (meter's calendar, compared by UTC day).
    pub meter_registration: Option<Date>,
    /// When the KMC recorded the registration (KMS clock).
    pub kms_key_registration: Option<Timestamp>,
    /// When the key became obsolete (KMS clock).
    pub obsolete: Option<Timestamp>,
}

/// Which clock a time comes from, which decides how it is compared.
#[derive(Clone, Copy)]
enum Clock {
    Kms,
    Psr,
    MeterDate,
}

/// A time of one of the six slots, for comparison.
#[derive(Clone, Copy)]
enum Instant {
    At(Timestamp),
    Day(Date),
}

impl Instant {
    fn day(self) -> (i64, u8, u8) {
        match self {
            Self::At(t) => t.utc_date(),
            Self::Day(d) => (i64::from(d.year()), d.month(), d.day()),
        }
    }
}

impl KeyTimes {
    fn slots(&self) -> [(&'static str, Clock, Option<Instant>); 6] {
        let at = |t: Option<Timestamp>| t.map(Instant::At);
        [
            ("KMS Request Time", Clock::Kms, at(self.kms_request)),
            ("PSR Install Time", Clock::Psr, at(self.psr_install)),
            ("KMS Install Time", Clock::Kms, at(self.kms_install)),
            (
                "Meter Registration Date",
                Clock::MeterDate,
                self.meter_registration.map(Instant::Day),
            ),
            ("KMS Key Registration Time", Clock::Kms, at(self.kms_key_registration)),
            ("Obsolete Time", Clock::Kms, at(self.obsolete)),
        ]
    }

    /// Checks that the recorded times, in the order of protocol §6.6, never go backwards; on failure
    /// names the time that is earlier than one before it. Every pair is compared, not only
    /// neighbours, because a tolerance makes "not before" intransitive.
    pub fn check_order(&self) -> Result<(), &'static str> {
        let slots = self.slots();
        for (i, &(_, clock_a, a)) in slots.iter().enumerate() {
            for &(name_b, clock_b, b) in &slots[i + 1..] {
                let (Some(a), Some(b)) = (a, b) else { continue };
                let in_order = match (clock_a, clock_b, a, b) {
                    (Clock::MeterDate, ..) | (_, Clock::MeterDate, ..) => a.day() <= b.day(),
                    (Clock::Kms, Clock::Kms, Instant::At(a), Instant::At(b)) => a <= b,
                    (_, _, Instant::At(a), Instant::At(b)) => {
                        a.unix_micros()
                            <= b.unix_micros().saturating_add(CLOCK_SKEW_TOLERANCE_MICROS)
                    }
                    _ => a.day() <= b.day(),
                };
                if !in_order {
                    return Err(name_b);
                }
            }
        }
        Ok(())
    }
}

/// Where a key is registered (protocol §6.2): its sub-domain, of the key's own domain, and the ISN.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Registration {
    /// The sub-domain.
    pub subdomain: SubdomainId,
    /// The meter's ISN, unique within the sub-domain for ever.
    pub isn: Isn,
}

/// A master key record: what the archive knows about one key, never the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The key's domain.
    pub domain: DomainId,
    /// The key's ID in its domain.
    pub key_id: KeyId,
    /// Its status.
    pub status: KeyStatus,
    /// The Oak box that generated it.
    pub oak_id: BoxId,
    /// The Steel box it was addressed to.
    pub steel_id: BoxId,
    /// The meter it was installed into, once known.
    pub meter_id: Option<MeterId>,
    /// Its sub-domain and ISN, once registered.
    pub registration: Option<Registration>,
    /// The six times.
    pub times: KeyTimes,
    /// The time of its latest event; a later change may not be earlier.
    pub updated: Timestamp,
}

/// A new key, from its MI3 record: created `New`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// The key's domain.
    pub domain: DomainId,
    /// Its ID, allocated by this archive and not burned.
    pub key_id: KeyId,
    /// The Oak box that generated it.
    pub oak_id: BoxId,
    /// The Steel box it is addressed to.
    pub steel_id: BoxId,
    /// The meter its order names: it goes into that meter or nowhere.
    pub meter_id: MeterId,
    /// When the KMC sent MI1.
    pub kms_request_time: Timestamp,
    /// When the KMC archives it.
    pub time: Timestamp,
    /// Who made it (the Oak box).
    pub actor: Sender,
    /// The MI3 record, exactly as received.
    pub record: SignedRecord,
}

impl NewKey {
    /// The record this creates and its event, after the checks that need no stored data.
    pub fn plan(&self) -> Result<(KeyRecord, EventEntry), StoreError> {
        if self.oak_id.box_type() != BoxType::Oak {
            return Err(StoreError::Mismatch("the generating box is not an Oak box"));
        }
        if self.steel_id.box_type() != BoxType::Steel {
            return Err(StoreError::Mismatch("the addressed box is not a Steel box"));
        }
        if self.time < self.kms_request_time {
            return Err(StoreError::TimeWentBackwards {
                domain: self.domain.clone(),
                key_id: self.key_id,
                field: "event time",
            });
        }
        let record = KeyRecord {
            domain: self.domain.clone(),
            key_id: self.key_id,
            status: KeyStatus::New,
            oak_id: self.oak_id,
            steel_id: self.steel_id,
            meter_id: Some(self.meter_id.clone()),
            registration: None,
            times: KeyTimes { kms_request: Some(self.kms_request_time), ..KeyTimes::default() },
            updated: self.time,
        };
        let note = format!(
            "oak={} steel={} meter={} kms_request={}",
            self.oak_id,
            self.steel_id,
            self.meter_id,
            self.kms_request_time.unix_micros()
        );
        let event = EventEntry {
            time: self.time,
            actor: self.actor.clone(),
            action: Action::KeyCreated,
            key_id: Some(self.key_id),
            record: Some(RecordRef::of(&self.record)),
            note: Some(note),
        };
        Ok((record, event))
    }
}

/// Fields a change sets. Each is set once: giving the value already recorded is fine, another
/// value is refused, so no change rewrites what an earlier one recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFields {
    /// The meter the key went into.
    pub meter_id: Option<MeterId>,
    /// The sub-domain and ISN.
    pub registration: Option<Registration>,
    /// Any of the six times.
    pub times: KeyTimes,
}

/// Why a key changes status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The box-signed record that caused it (MI9, MR3, BAD, ABORTED, ...), kept as received.
    Record(SignedRecord),
    /// The KMC's own reason; only for `→ Bad` (protocol §6.4).
    Reason(String),
}

/// A status change of one key, allowed only from `from`, which the key must be in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The key's domain.
    pub domain: DomainId,
    /// The key.
    pub key_id: KeyId,
    /// The status the caller read; the change happens only if the key is still in it.
    pub from: KeyStatus,
    /// The new status.
    pub to: KeyStatus,
    /// When the KMC records it; not before the key's previous event.
    pub time: Timestamp,
    /// Who caused it.
    pub actor: Sender,
    /// The record or reason.
    pub cause: Cause,
    /// Fields set with it: the meter for `Installed`; sub-domain, ISN and the registration times
    /// for `Active`; the Obsolete Time for `Obsolete`.
    pub fields: KeyFields,
}

impl Transition {
    /// The checks that need no stored data: the six transitions of protocol §6.4, and a box-signed
    /// record for everything but the KMC's own `→ Bad`.
    pub fn check(&self) -> Result<(), StoreError> {
        if !KeyStatus::allowed(self.from, self.to) {
            return Err(StoreError::TransitionNotAllowed { from: self.from, to: self.to });
        }
        if matches!(self.cause, Cause::Reason(_)) && self.to != KeyStatus::Bad {
            return Err(StoreError::MissingField { field: "box-signed record" });
        }
        Ok(())
    }
}

/// A change of a key's fields without a status change: a time recorded, a record received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUpdate {
    /// The key's domain.
    pub domain: DomainId,
    /// The key.
    pub key_id: KeyId,
    /// When the KMC records it; not before the key's previous event.
    pub time: Timestamp,
    /// Who caused it.
    pub actor: Sender,
    /// The record that carried the fields, if any (an MI7 with the PSR Install Time).
    pub record: Option<SignedRecord>,
    /// The fields set.
    pub fields: KeyFields,
}

impl KeyRecord {
    /// The record after `t` and the event that records it, or why `t` is refused. The caller
    /// holds the record's domain chain locked, so nothing changes it meanwhile; its guarded
    /// update (`... WHERE status = from`) checks that once more.
    pub fn apply_transition(&self, t: &Transition) -> Result<(KeyRecord, EventEntry), StoreError> {
        t.check()?;
        if self.status != t.from {
            return Err(StoreError::StatusConflict {
                domain: self.domain.clone(),
                key_id: self.key_id,
                expected: t.from,
                actual: self.status,
            });
        }
        let mut next = self.with_fields(t.time, &t.fields)?;
        next.status = t.to;
        let missing = |field| Err(StoreError::MissingField { field });
        match t.to {
            KeyStatus::Installed if next.meter_id.is_none() => return missing("meter ID"),
            KeyStatus::Active => {
                if next.meter_id.is_none() {
                    return missing("meter ID");
                }
                if next.registration.is_none() {
                    return missing("sub-domain and ISN");
                }
                if next.times.meter_registration.is_none() {
                    return missing("Meter Registration Date");
                }
                if next.times.kms_key_registration.is_none() {
                    return missing("KMS Key Registration Time");
                }
            }
            KeyStatus::Obsolete if next.times.obsolete.is_none() => {
                return missing("Obsolete Time");
            }
            _ => {}
        }
        let (record, note) = match &t.cause {
            Cause::Record(r) => (Some(RecordRef::of(r)), t.fields.describe()),
            Cause::Reason(reason) => {
                let note = match t.fields.describe() {
                    Some(fields) => format!("{reason}; {fields}"),
                    None => reason.clone(),
                };
                (None, Some(note))
            }
        };
        let event = EventEntry {
            time: t.time,
            actor: t.actor.clone(),
            action: Action::StatusChanged { from: t.from, to: t.to },
            key_id: Some(self.key_id),
            record,
            note,
        };
        Ok((next, event))
    }

    /// The record after `u` and its event, or why `u` is refused.
    pub fn apply_update(&self, u: &KeyUpdate) -> Result<(KeyRecord, EventEntry), StoreError> {
        let next = self.with_fields(u.time, &u.fields)?;
        let event = EventEntry {
            time: u.time,
            actor: u.actor.clone(),
            action: Action::KeyUpdated,
            key_id: Some(self.key_id),
            record: u.record.as_ref().map(RecordRef::of),
            note: u.fields.describe(),
        };
        Ok((next, event))
    }

    /// This record with `fields` set (once each) at `time`, checked for domain separation and
    /// for times that go backwards.
    fn with_fields(&self, time: Timestamp, fields: &KeyFields) -> Result<KeyRecord, StoreError> {
        let backwards = |field| StoreError::TimeWentBackwards {
            domain: self.domain.clone(),
            key_id: self.key_id,
            field,
        };
        if time < self.updated {
            return Err(backwards("event time"));
        }
        let mut next = self.clone();
        next.updated = time;
        set_once(&mut next.meter_id, &fields.meter_id, "meter ID")?;
        if let Some(reg) = &fields.registration
            && reg.subdomain.domain() != &self.domain
        {
            return Err(StoreError::Mismatch("sub-domain of another domain than the key's"));
        }
        set_once(&mut next.registration, &fields.registration, "sub-domain and ISN")?;
        let (t, f) = (&mut next.times, &fields.times);
        set_once(&mut t.kms_request, &f.kms_request, "KMS Request Time")?;
        set_once(&mut t.psr_install, &f.psr_install, "PSR Install Time")?;
        set_once(&mut t.kms_install, &f.kms_install, "KMS Install Time")?;
        set_once(&mut t.meter_registration, &f.meter_registration, "Meter Registration Date")?;
        set_once(
            &mut t.kms_key_registration,
            &f.kms_key_registration,
            "KMS Key Registration Time",
        )?;
        set_once(&mut t.obsolete, &f.obsolete, "Obsolete Time")?;
        next.times.check_order().map_err(backwards)?;
        Ok(next)
    }
}

fn set_once<T: Clone + PartialEq>(
    slot: &mut Option<T>,
    value: &Option<T>,
    field: &'static str,
) -> Result<(), StoreError> {
    match (slot.as_ref(), value) {
        (_, None) => Ok(()),
        (None, Some(v)) => {
            *slot = Some(v.clone());
            Ok(())
        }
        (Some(old), Some(v)) if old == v => Ok(()),
        (Some(_), Some(_)) => Err(StoreError::FieldAlreadySet { field }),
    }
}

impl KeyFields {
    /// The fields set, as the canonical text a chain event records (`name=value`, in a fixed
    /// order, times in Unix microseconds); `None` when nothing is set.
    pub fn describe(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(m) = &self.meter_id {
            parts.push(format!("meter={m}"));
        }
        if let Some(r) = &self.registration {
            parts.push(format!("subdomain={} isn={}", r.subdomain, r.isn));
        }
        let t = &self.times;
        let micros =
            |name: &str, v: Option<Timestamp>| v.map(|v| format!("{name}={}", v.unix_micros()));
        parts.extend(micros("kms_request", t.kms_request));
        parts.extend(micros("psr_install", t.psr_install));
        parts.extend(micros("kms_install", t.kms_install));
        parts.extend(t.meter_registration.map(|d| format!("meter_registration={d}")));
        parts.extend(micros("kms_key_registration", t.kms_key_registration));
        parts.extend(micros("obsolete", t.obsolete));
        (!parts.is_empty()).then(|| parts.join(" "))
    }
}

/// Which keys [`crate::Store::keys`] lists: those of one domain matching every filter given,
/// in key-ID order, from after `after`, at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFilter {
    /// The domain.
    pub domain: DomainId,
    /// Only keys in this status.
    pub status: Option<KeyStatus>,
    /// Only keys of this meter.
    pub meter_id: Option<MeterId>,
    /// Only keys requested (KMS Request Time) before this time.
    pub requested_before: Option<Timestamp>,
    /// Only key IDs above this one (for paging).
    pub after: Option<KeyId>,
    /// At most this many.
    pub limit: u32,
}

impl KeyFilter {
    /// The first `limit` keys of `domain`.
    pub fn domain(domain: DomainId, limit: u32) -> Self {
        Self { domain, status: None, meter_id: None, requested_before: None, after: None, limit }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> Option<Timestamp> {
        Some(Timestamp::from_unix_micros(s * 1_000_000))
    }

    #[test]
    fn kms_times_compare_exactly_and_psr_times_within_the_tolerance() {
        let ok = KeyTimes { kms_request: at(100), kms_install: at(100), ..Default::default() };
        assert_eq!(ok.check_order(), Ok(()));
        let back = KeyTimes { kms_request: at(100), kms_install: at(99), ..Default::default() };
        assert_eq!(back.check_order(), Err("KMS Install Time"));
        // The PSR clock may run up to five minutes behind the KMC's.
        let skew = KeyTimes { kms_request: at(1000), psr_install: at(700), ..Default::default() };
        assert_eq!(skew.check_order(), Ok(()));
        let far = KeyTimes { kms_request: at(1000), psr_install: at(699), ..Default::default() };
        assert_eq!(far.check_order(), Err("PSR Install Time"));
    }

    #[test]
    fn the_meter_registration_date_compares_by_utc_day() {
        let d = Date::parse("20261129").ok();
        let t = |s| Some(Timestamp::from_unix_micros(s));
        // 2026-11-29T18:37:14Z.
        let install = t(1_795_977_434_000_000);
        let same_day =
            KeyTimes { kms_install: install, meter_registration: d, ..Default::default() };
        assert_eq!(same_day.check_order(), Ok(()));
        let earlier = Date::parse("20261128").ok();
        let before =
            KeyTimes { kms_install: install, meter_registration: earlier, ..Default::default() };
        assert_eq!(before.check_order(), Err("Meter Registration Date"));
    }
}
