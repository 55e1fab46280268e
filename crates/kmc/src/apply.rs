//! One refused item never fails its batch (docs/installation.md, "Batches and the pipeline"):
//! a stage's changes go to the archive in one transaction; if the archive refuses them for what
//! one item holds, each key's changes are applied alone, so that only the refused keys fail.

use std::collections::BTreeMap;

use postkey_archive::{BurnKeyId, Changes, Store, StoreError};
use postkey_wire::{DomainId, KeyId, Role, Sender, Timestamp};

use crate::{Kmc, KmcError};

/// The keys whose changes the archive refused, with why.
pub(crate) type Refused = BTreeMap<(DomainId, KeyId), StoreError>;

/// Whether an error of the whole transaction says nothing about one item: the archive is down,
/// busy, or broken, and applying less would not help.
pub(crate) fn whole(e: &StoreError) -> bool {
    e.is_retryable() || matches!(e.root(), StoreError::Corrupt(_) | StoreError::ChainBroken { .. })
}

impl<S: Store> Kmc<S> {
    /// Applies `changes`, in one transaction if the archive takes it whole, else key by key:
    /// the boxes' versions first, then each key's burns, creation, updates and transitions
    /// together, then the reservations. A key whose creation is refused has its ID burned, so
    /// that its reservation ends; a reservation that still cannot end is left to the next
    /// settling. Errors that concern the whole archive stop the stage.
    pub(crate) async fn apply_each(
        &self,
        changes: Changes,
        now: &(impl Fn() -> Timestamp + Sync),
    ) -> Result<Refused, KmcError> {
        if changes.is_empty() {
            return Ok(Refused::new());
        }
        match self.store.apply(&changes).await {
            Ok(_) => return Ok(Refused::new()),
            Err(e) if whole(&e) => return Err(e.into()),
            Err(_) => {}
        }
        let Changes { versions, burns, new_keys, updates, transitions, released, .. } = changes;
        if !versions.is_empty() {
            self.store.apply(&Changes { versions, ..Changes::default() }).await?;
        }
        let mut per_key: BTreeMap<(DomainId, KeyId), Changes> = BTreeMap::new();
        for b in burns {
            per_key.entry((b.domain.clone(), b.key_id)).or_default().burns.push(b);
        }
        for n in new_keys {
            per_key.entry((n.domain.clone(), n.key_id)).or_default().new_keys.push(n);
        }
        for u in updates {
            per_key.entry((u.domain.clone(), u.key_id)).or_default().updates.push(u);
        }
        for t in transitions {
            per_key.entry((t.domain.clone(), t.key_id)).or_default().transitions.push(t);
        }
        let mut refused = Refused::new();
        for (key, c) in per_key {
            match self.store.apply(&c).await {
                Ok(_) => {}
                Err(e) if whole(&e) => return Err(e.into()),
                Err(e) => {
                    if !c.new_keys.is_empty() {
                        let burn = BurnKeyId {
                            domain: key.0.clone(),
                            key_id: key.1,
                            reason: format!(
                                "the archive refused its MI3: {e} [response code {}]",
                                e.response_code()
                            ),
                            time: now(),
                            actor: Sender::Role(Role::Kmc),
                        };
                        // Left unburned, the ID stays reserved and the next settling burns it.
                        let _ = self.store.burn_key_id(&burn).await;
                    }
                    refused.insert(key, e);
                }
            }
        }
        if !released.is_empty() {
            match self.store.apply(&Changes { released, ..Changes::default() }).await {
                Err(e) if whole(&e) => return Err(e.into()),
                _ => {}
            }
        }
        Ok(refused)
    }
}
