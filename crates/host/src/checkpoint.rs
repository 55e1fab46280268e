//! The audit trail's checkpoints (protocol §6.6, docs/audit.md): at the start and the end of every
//! command that changes the archive, the audit box (the first Brass box with a process of
//! `ADMIN`) signs, with the audit key, the head of every chain that moved since its last
//! checkpoint, and the archive keeps what it signed. The box refuses a chain behind what it
//! signed before, so an archive put back from an older copy, or rewritten, stops the command
//! that finds it (3676) before it changes anything.

use std::path::Path;

use postkey_archive::{NewCheckpoint, SignedRecord, Store};
use postkey_crypto::VerifyingKey;
use postkey_wire::command::{CheckpointChain, Checkpointed};
use postkey_wire::{BoxId, BoxType, ChainHash, Checkpoint, DomainId, Sender, Unverified};

use crate::archive::{Trust, bundle};
use crate::{HostError, Session, clock};

/// The box that signs checkpoints: the lowest-numbered Brass box with a process of `ADMIN`, if
/// the installation has one yet (before, nothing is checkpointed).
pub(crate) async fn audit_box(store: &impl Store) -> Result<Option<BoxId>, HostError> {
    let mut brass = store.boxes(Some(BoxType::Brass)).await?;
    brass.sort_by_key(|b| b.id);
    for b in brass {
        if store.domain_processes(b.id).await?.iter().any(|p| p.domain.is_admin()) {
            return Ok(Some(b.id));
        }
    }
    Ok(None)
}

/// When a command checkpoints: at its start every chain is shown to the audit box, moved or
/// not (a chain equal to its last kept checkpoint may still be behind what the box signed:
/// an archive put back whole); at its end only the chains that moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum When {
    /// Before the command changes anything: every chain.
    Start,
    /// After it changed the archive: the chains that moved.
    End,
}

/// Enables the audit box in `session` if it is not yet (from `shares_dir`), and checkpoints
/// the chains with it. Nothing when the installation has no audit box yet.
pub(crate) async fn checkpoint_all(
    session: &mut Session,
    store: &impl Store,
    trust: &Trust,
    shares_dir: &Path,
    when: When,
) -> Result<u64, HostError> {
    let Some(brass) = audit_box(store).await? else { return Ok(0) };
    if !session.enabled().any(|b| b == brass) {
        crate::ceremony::enable(session, store, trust, brass, shares_dir).await?;
    }
    checkpoint_chains(session, store, trust, brass, when).await
}

/// What a command recorded so far is checkpointed: its refusals, spooled as they happened, go
/// into the archive's error log, and the audit box (enabled in `session`), if there is one,
/// checkpoints the chains that moved.
pub(crate) async fn moved(
    home: &crate::Home,
    store: &impl Store,
    session: &Session,
    trust: &Trust,
    audit: Option<BoxId>,
) -> Result<(), HostError> {
    crate::archive::move_error_spool(home, store).await?;
    if let Some(audit) = audit {
        checkpoint_chains(session, store, trust, audit, When::End).await?;
    }
    Ok(())
}

/// Checkpoints, with `brass` (enabled in `session`), the chains `when` says, and keeps what the
/// box signs; the number of checkpoints kept. The `ADMIN` chain goes last, since keeping the
/// others' appends to it. A refusal is the box's word that the archive is behind or forks from
/// what it signed (3676, in the error log already).
pub(crate) async fn checkpoint_chains(
    session: &Session,
    store: &impl Store,
    trust: &Trust,
    brass: BoxId,
    when: When,
) -> Result<u64, HostError> {
    let admin = bundle(store, trust, &DomainId::admin()).await?;
    let audit_key =
        admin.body().public.audit.ok_or_else(|| {
            HostError::ArchiveRecord("the ADMIN bundle names no audit key".into())
        })?;
    let mut chains: Vec<DomainId> =
        store.chain_heads().await?.into_iter().map(|h| h.chain).collect();
    chains.sort_by_key(DomainId::is_admin);
    let mut kept = 0;
    for chain in chains {
        // Read again: keeping the other chains' checkpoints moved the ADMIN head.
        let Some(head) = store.chain_head(&chain).await? else { continue };
        let last = store.latest_checkpoint(&chain).await?;
        let moved = match &last {
            Some(l) if chain.is_admin() && l.count < head.count => {
                // Keeping checkpoints appends to ADMIN: only other events move it.
                let after = store.chain_events(&chain, l.count, 64).await?;
                after.len() as u64 != head.count - l.count
                    || after.iter().any(|e| {
                        !matches!(e.entry.action, postkey_archive::Action::CheckpointStored { .. })
                    })
            }
            Some(l) => l.count != head.count || l.head != head.head_hash,
            None => head.count > 0,
        };
        if !moved && when == When::End {
            continue;
        }
        let kept_record = last
            .as_ref()
            .map(|l| Unverified::<Checkpoint>::from_bytes(&l.record.bytes))
            .transpose()
            .map_err(|e| HostError::ArchiveRecord(format!("a checkpoint of {chain}: {e}")))?;
        let request = CheckpointChain {
            chain: chain.clone(),
            count: head.count,
            head: ChainHash(head.head_hash.0),
            kept: kept_record.into_iter().collect(),
        };
        let Checkpointed { missing, checkpoint } = session.call_one(brass, request)?;
        let mut number = last.map_or(0, |l| l.number);
        for signed in missing.into_iter().chain([checkpoint]) {
            let c = checked(&signed, &audit_key, trust, &chain)?;
            if c.number <= number {
                continue;
            }
            store
                .store_checkpoint(&NewCheckpoint {
                    chain: chain.clone(),
                    number: c.number,
                    count: c.count,
                    head: postkey_archive::Digest(c.head.0),
                    record: SignedRecord {
                        record_type: postkey_wire::RecordType::CHECKPOINT,
                        bytes: signed.as_bytes().to_vec(),
                    },
                    time: clock::now(),
                    actor: Sender::Box(brass),
                })
                .await?;
            number = c.number;
            kept += 1;
        }
    }
    Ok(kept)
}

/// A checkpoint the audit box answered, checked: the audit key's signature, this installation,
/// the chain asked for.
fn checked(
    signed: &Unverified<Checkpoint>,
    audit_key: &VerifyingKey,
    trust: &Trust,
    chain: &DomainId,
) -> Result<Checkpoint, HostError> {
    let bad = |why: String| {
        HostError::refused(
            signed.header().sender.clone(),
            postkey_wire::Refusal::new(postkey_wire::ResponseCode::ANSWER_MISMATCH, why),
        )
    };
    let v = signed.clone().verify(audit_key).map_err(|e| bad(format!("a checkpoint: {e}")))?;
    let c = v.body().clone();
    if c.installation != trust.installation || &c.chain != chain {
        return Err(bad(format!("a checkpoint of {} for another installation or chain", c.chain)));
    }
    Ok(c)
}
