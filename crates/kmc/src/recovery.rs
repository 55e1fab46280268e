//! What the KMC does after a restart (SPEC §6.1): interrupted installations become `Bad`, never
//! retried with the same key.

use postkey_archive::{Cause, Changes, KeyFilter, KeyStatus, SignedRecord, Store};
use postkey_wire::command::Recover;
use postkey_wire::{BoxId, DomainId, KeyId, Role, Sender, Timestamp};

use crate::link::call_one;
use crate::{Boxes, Kmc, KmcError};

impl<S: Store> Kmc<S> {
    /// Asks Steel box `steel` for ABORTED records of installations a stop interrupted, and makes
    /// each key `Bad` with its record. Returns the keys made `Bad`.
    pub async fn recover_steel(
        &self,
        boxes: &impl Boxes,
        steel: BoxId,
        now: impl Fn() -> Timestamp,
    ) -> Result<Vec<(DomainId, KeyId)>, KmcError> {
        let (aborted, version) = call_one(boxes, steel, Recover {}).await?;
        let mut failed = Vec::new();
        let mut transitions = Vec::new();
        for unverified in aborted {
            let domain = unverified.header().domain.clone();
            let keys = self.domain_keys(&domain).await?;
            let aborted = unverified
                .verify(&keys.steel_auth)
                .map_err(|error| KmcError::BadAnswer { box_id: steel, error })?;
            let key_id = aborted.header().key_id.ok_or(KmcError::WrongAnswer { box_id: steel })?;
            if let Some(record) = self.store.key(&domain, key_id).await?
                && record.status == KeyStatus::New
            {
                transitions.push(bad(
                    &domain,
                    key_id,
                    Cause::Record(SignedRecord::from_verified(&aborted)),
                    now(),
                    Sender::Box(steel),
                ));
                failed.push((domain, key_id));
            }
        }
        // The keys made Bad and Steel's new version, together.
        let changes = Changes { transitions, versions: vec![version], ..Changes::default() };
        self.store.apply(&changes).await?;
        Ok(failed)
    }

    /// After a KMC restart: every `New` key of `domain` requested longer ago than the configured
    /// time without an MI7 becomes `Bad`. Returns them.
    pub async fn fail_stale_keys(
        &self,
        domain: &DomainId,
        now: Timestamp,
    ) -> Result<Vec<KeyId>, KmcError> {
        let cutoff = Timestamp::from_unix_micros(
            now.unix_micros().saturating_sub(self.config.mi7_timeout_micros),
        );
        let mut failed = Vec::new();
        let mut after = None;
        loop {
            let filter = KeyFilter {
                status: Some(KeyStatus::New),
                requested_before: Some(cutoff),
                after,
                ..KeyFilter::domain(domain.clone(), 500)
            };
            let page = self.store.keys(&filter).await?;
            let Some(last) = page.last() else { return Ok(failed) };
            after = Some(last.key_id);
            for k in page {
                // A key whose MI7 arrived has its PSR Install Time: it waits for Brass, not MI7.
                if k.times.psr_install.is_some() {
                    continue;
                }
                let reason = "no MI7 within the configured time after a KMC restart".to_owned();
                self.fail_key(
                    domain,
                    k.key_id,
                    Cause::Reason(reason),
                    now,
                    Sender::Role(Role::Kmc),
                )
                .await?;
                failed.push(k.key_id);
            }
        }
    }

    pub(crate) async fn fail_key(
        &self,
        domain: &DomainId,
        key_id: KeyId,
        cause: Cause,
        now: Timestamp,
        actor: Sender,
    ) -> Result<(), KmcError> {
        self.store.transition(&bad(domain, key_id, cause, now, actor)).await?;
        Ok(())
    }
}

/// A `New` key's transition to `Bad`.
fn bad(
    domain: &DomainId,
    key_id: KeyId,
    cause: Cause,
    now: Timestamp,
    actor: Sender,
) -> postkey_archive::Transition {
    postkey_archive::Transition {
        domain: domain.clone(),
        key_id,
        from: KeyStatus::New,
        to: KeyStatus::Bad,
        time: now,
        actor,
        cause,
        fields: postkey_archive::KeyFields::default(),
    }
}
