//! protocol §7.2 item 7: before anything else, a box signs its state version over a fresh nonce; the
//! KMC checks the signature with the box's registered identity key and refuses the box if it
//! belongs to another installation than the archive's, or if the version is below the highest
//! the archive recorded.

use postkey_archive::{Store, StoreError, Subject};
use postkey_wire::command::AttestState;
use postkey_wire::{BoxId, Nonce, StateVersion};

use crate::link::call_one;
use crate::{Boxes, Kmc, KmcError};

impl<S: Store> Kmc<S> {
    /// Checks box `id`'s state version with `nonce` (fresh, from the caller's OS source) and
    /// records it. Call it when a box is enabled or connected, before any other command.
    pub async fn check_box(
        &self,
        boxes: &impl Boxes,
        id: BoxId,
        nonce: Nonce,
    ) -> Result<StateVersion, KmcError> {
        let record =
            self.store.box_record(id).await?.ok_or(StoreError::NotFound(Subject::Box(id)))?;
        let (attestation, _) = call_one(boxes, id, AttestState { nonce }).await?;
        let attestation = attestation
            .verify(&record.identity_key)
            .map_err(|error| KmcError::BadAnswer { box_id: id, error })?;
        let body = attestation.body();
        if body.nonce != nonce || body.box_id != id {
            return Err(KmcError::WrongAnswer { box_id: id });
        }
        // A box of another installation is never run against this archive.
        if body.installation != self.installation {
            return Err(KmcError::InstallationMismatch { box_id: id });
        }
        match self.store.record_state_version(id, body.version).await {
            Ok(()) => Ok(body.version),
            Err(StoreError::StateVersionWentBackwards { recorded, offered, .. }) => {
                Err(KmcError::Rollback { box_id: id, recorded: recorded.0, presented: offered.0 })
            }
            Err(e) => Err(e.into()),
        }
    }
}
