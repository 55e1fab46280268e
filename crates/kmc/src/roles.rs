//! The roles of a meter's keys (docs/installation.md, "Roles"): a meter holds one vendor key and
//! one postal key. A vendor key comes from a vendor domain; a postal key from a postal domain or
//! `EARTH`. A meter that holds a live key of a role (`New`, `Installed` or `Active`) gets no other
//! of that role; a key that became `Bad` leaves its role free for a replacement.

use std::collections::{BTreeMap, BTreeSet};

use postkey_archive::{KeyStatus, Store};
use postkey_wire::{DomainBundle, DomainId, DomainKind, MeterId, Unverified};

use crate::{KeyOrder, Kmc, KmcError};

/// The role a key plays in its meter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyRole {
    /// The vendor's key: from a vendor domain.
    Vendor,
    /// The postal operator's key: from a postal domain or `EARTH`.
    Postal,
}

impl KeyRole {
    /// The role keys of a domain of `kind` play; `ADMIN` keys go into no meter.
    pub fn of(kind: DomainKind) -> Option<Self> {
        match kind {
            DomainKind::Vendor => Some(Self::Vendor),
            DomainKind::Postal | DomainKind::Earth => Some(Self::Postal),
            DomainKind::Admin => None,
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Vendor => "vendor",
            Self::Postal => "postal",
        }
    }
}

impl core::fmt::Display for KeyRole {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

fn kind_name(kind: DomainKind) -> &'static str {
    match kind {
        DomainKind::Admin => "administration",
        DomainKind::Vendor => "vendor",
        DomainKind::Postal => "postal",
        DomainKind::Earth => "Earth",
    }
}

impl<S: Store> Kmc<S> {
    /// The domain's latest bundle, checked against the Domain Key Set.
    pub(crate) async fn bundle(&self, domain: &DomainId) -> Result<DomainBundle, KmcError> {
        let bundle = self
            .store
            .latest_bundle(domain)
            .await?
            .ok_or_else(|| KmcError::NoBundle(domain.clone()))?;
        let verified = Unverified::<DomainBundle>::from_bytes(&bundle.bundle.bytes)
            .and_then(|b| b.verify(&self.domain_key_set))
            .map_err(|_| KmcError::NoBundle(domain.clone()))?;
        if &verified.body().domain != domain {
            return Err(KmcError::NoBundle(domain.clone()));
        }
        Ok(verified.body().clone())
    }

    /// Checks each order's role before any key ID is allocated: its domain gives keys of the
    /// role; its meter holds no live key of the role; no earlier order of `orders` gives the
    /// meter that role. One answer per order.
    pub async fn check_orders(
        &self,
        orders: &[KeyOrder],
    ) -> Result<Vec<Result<(), KmcError>>, KmcError> {
        // A domain without a verified bundle fails its own orders; an archive failure, all.
        let mut kinds: BTreeMap<DomainId, Option<DomainKind>> = BTreeMap::new();
        let meters: BTreeSet<&MeterId> = orders.iter().map(|o| &o.meter).collect();
        let meters: Vec<MeterId> = meters.into_iter().cloned().collect();
        let held = self.store.keys_of_meters(&meters).await?;
        for domain in orders.iter().map(|o| &o.domain).chain(held.iter().map(|k| &k.domain)) {
            if !kinds.contains_key(domain) {
                let kind = match self.bundle(domain).await {
                    Ok(bundle) => Some(bundle.kind),
                    Err(KmcError::NoBundle(_)) => None,
                    Err(e) => return Err(e),
                };
                kinds.insert(domain.clone(), kind);
            }
        }
        let role_of = |d: &DomainId| kinds.get(d).copied().flatten().and_then(KeyRole::of);
        let mut live: BTreeMap<(&MeterId, KeyRole), String> = BTreeMap::new();
        for k in &held {
            let alive =
                matches!(k.status, KeyStatus::New | KeyStatus::Installed | KeyStatus::Active);
            if let (true, Some(meter), Some(role)) = (alive, &k.meter_id, role_of(&k.domain)) {
                live.insert((meter, role), format!("{} key {}/{}", k.status, k.domain, k.key_id));
            }
        }
        let mut out = Vec::with_capacity(orders.len());
        for o in orders {
            let Some(kind) = kinds.get(&o.domain).copied().flatten() else {
                out.push(Err(KmcError::NoBundle(o.domain.clone())));
                continue;
            };
            if KeyRole::of(kind) != Some(o.role) {
                out.push(Err(KmcError::WrongRole {
                    domain: o.domain.clone(),
                    kind: kind_name(kind),
                    role: o.role.name(),
                }));
                continue;
            }
            if let Some(held) = live.get(&(&o.meter, o.role)) {
                out.push(Err(KmcError::MeterHoldsKey {
                    meter: o.meter.clone(),
                    role: o.role.name(),
                    held: held.clone(),
                }));
                continue;
            }
            live.insert((&o.meter, o.role), format!("the {} key of another order", o.role));
            out.push(Ok(()));
        }
        Ok(out)
    }
}
