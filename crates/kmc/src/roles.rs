//! The roles of a meter's keys (docs/installation.md, "Roles"): a meter holds one vendor key and
//! one postal key. A vendor key comes from a vendor domain; a postal key from a postal domain or
//! `EARTH`. A meter that holds a live key of a role (`New`, `Installed` or `Active`) gets no other
//! of that role; a key that became `Bad` leaves its role free for a replacement.

use std::collections::{BTreeMap, BTreeSet};

use postkey_archive::{KeyRecord, KeyStatus, Store};
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

    /// The role keys of `domain` play in a meter, from its verified bundle (`None`: no such
    /// domain, or `ADMIN`).
    pub async fn role_of(&self, domain: &DomainId) -> Result<Option<KeyRole>, KmcError> {
        let kinds = self.kinds(std::iter::once(domain)).await?;
        Ok(kinds.get(domain).copied().and_then(KeyRole::of))
    }

    /// The kind of each domain that has a verified bundle (a domain without one is absent);
    /// an archive failure fails it all.
    async fn kinds<'a>(
        &self,
        domains: impl Iterator<Item = &'a DomainId>,
    ) -> Result<BTreeMap<DomainId, DomainKind>, KmcError> {
        let mut kinds = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for domain in domains {
            if !seen.insert(domain.clone()) {
                continue;
            }
            match self.bundle(domain).await {
                Ok(bundle) => {
                    kinds.insert(domain.clone(), bundle.kind);
                }
                Err(KmcError::NoBundle(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(kinds)
    }

    /// The live keys (`New`, `Installed` or `Active`) the archive shows the given meters
    /// holding, by meter and role.
    pub async fn live_keys(
        &self,
        meters: &[MeterId],
    ) -> Result<BTreeMap<(MeterId, KeyRole), KeyRecord>, KmcError> {
        let held = self.store.keys_of_meters(meters).await?;
        let kinds = self.kinds(held.iter().map(|k| &k.domain)).await?;
        let mut live = BTreeMap::new();
        for k in held {
            let alive =
                matches!(k.status, KeyStatus::New | KeyStatus::Installed | KeyStatus::Active);
            let role = kinds.get(&k.domain).copied().and_then(KeyRole::of);
            if let (true, Some(meter), Some(role)) = (alive, k.meter_id.clone(), role) {
                live.insert((meter, role), k);
            }
        }
        Ok(live)
    }

    /// The meters among `meters` that were withdrawn (protocol §6.3): a withdrawn meter has an
    /// `Obsolete` key, and is never registered or keyed again.
    pub async fn withdrawn(&self, meters: &[MeterId]) -> Result<BTreeSet<MeterId>, KmcError> {
        Ok(self
            .store
            .keys_of_meters(meters)
            .await?
            .into_iter()
            .filter(|k| k.status == KeyStatus::Obsolete)
            .filter_map(|k| k.meter_id)
            .collect())
    }

    /// Checks each order's role before any key ID is allocated: its meter was not withdrawn;
    /// its domain gives keys of the role; its meter holds no live key of the role; no earlier
    /// order of `orders` gives the meter that role. One answer per order.
    pub async fn check_orders(
        &self,
        orders: &[KeyOrder],
    ) -> Result<Vec<Result<(), KmcError>>, KmcError> {
        let meters: BTreeSet<&MeterId> = orders.iter().map(|o| &o.meter).collect();
        let meters: Vec<MeterId> = meters.into_iter().cloned().collect();
        let mut live: BTreeMap<(MeterId, KeyRole), String> = self
            .live_keys(&meters)
            .await?
            .into_iter()
            .map(|(at, k)| (at, format!("{} key {}/{}", k.status, k.domain, k.key_id)))
            .collect();
        let withdrawn = self.withdrawn(&meters).await?;
        // A domain without a verified bundle fails its own orders.
        let kinds = self.kinds(orders.iter().map(|o| &o.domain)).await?;
        let mut out = Vec::with_capacity(orders.len());
        for o in orders {
            if withdrawn.contains(&o.meter) {
                out.push(Err(KmcError::MeterWithdrawn(o.meter.clone())));
                continue;
            }
            let Some(&kind) = kinds.get(&o.domain) else {
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
            let at = (o.meter.clone(), o.role);
            if let Some(held) = live.get(&at) {
                out.push(Err(KmcError::MeterHoldsKey {
                    meter: o.meter.clone(),
                    role: o.role.name(),
                    held: held.clone(),
                }));
                continue;
            }
            live.insert(at, format!("the {} key of another order", o.role));
            out.push(Ok(()));
        }
        Ok(out)
    }
}
