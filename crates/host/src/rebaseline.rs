//! The re-baseline of a box legitimately restored from backup (docs/spec/state-versions.md): the
//! archive's recorded state version is set back to the restored state's, once the quorums of
//! the box and of a manufacturing box have enabled them, and only if the archive shows nothing
//! the box handled after the backup was taken. It is an `ADMIN` chain event with a transcript
//! the manufacturing box signs.
//!
//! ```text
//!  enable M (its quorum) ──► enable the box, its older state kept (its quorum)
//!      ──► attested: version, last key ID per domain, free box numbers (M)
//!      ──► archive: keys it handled past those? boxes with numbers it would give again?  refused
//!      ──► processes archived after the backup: delivered again by M (the same records)
//!      ──► transcript signed by M ──► one archive transaction: re-baseline, versions, transcript
//! ```

use std::path::Path;

use postkey_archive::{Changes, Rebaseline, Store};
use postkey_wire::command::{Deliver, InstallProcess};
use postkey_wire::{BoxId, BoxType, StateAttestation, Transcript};

use crate::archive::Expected;
use crate::ceremony::{sign_transcript, versions};
use crate::{Ceremonies, HostError, Usage, clock, ser};

/// What a re-baseline did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RebaselineReport {
    /// The box.
    #[serde(serialize_with = "ser::display")]
    pub id: BoxId,
    /// The version the archive recorded before.
    pub from: u64,
    /// The restored state's version, recorded now.
    pub to: u64,
    /// The manufacturing box that authorised it.
    #[serde(serialize_with = "ser::display")]
    pub authorised_by: BoxId,
    /// The processes the archive records that the restored state lacked, delivered again.
    pub redelivered: Vec<String>,
}

impl<S: Store> Ceremonies<'_, S> {
    /// Re-baselines box `id`, restored from backup, with manufacturing box `m`; both are enabled
    /// from their shares in `shares_dir`.
    pub async fn rebaseline(
        &mut self,
        m: BoxId,
        id: BoxId,
        shares_dir: &Path,
    ) -> Result<RebaselineReport, HostError> {
        self.lock.exclusive()?;
        if m.box_type() != BoxType::Manufacturing || m == id {
            return Err(Usage::InvalidArgument(format!(
                "{m} cannot authorise the re-baseline of {id}: name another, manufacturing box \
                 with --with"
            ))
            .into());
        }
        let expected = Expected::of(&self.store, &self.trust, id).await?;
        self.enable(m, shares_dir).await?;
        let attested = self.session.enable_restored(id, shares_dir, &expected)?;
        if attested.version >= expected.version {
            return Err(Usage::NotBehind {
                box_id: id,
                recorded: expected.version,
                presented: attested.version,
            }
            .into());
        }
        if let Err(why) = self.handled_since(id, &attested).await? {
            return Err(self.session.logged(id, HostError::RebaselineRefused(why)));
        }
        let redelivered = self.redeliver_processes(m, id, &attested).await?;
        let (from, to) = (expected.version, attested.version);
        let presented = self.session.presented(m).into_iter().chain(self.session.presented(id));
        let identity = crate::archive::certificate(&self.store, &self.trust, m).await?;
        let transcript = sign_transcript(
            &self.session,
            m,
            &identity.body().identity,
            Transcript {
                ceremony: "rebaseline-box".into(),
                conducted_by: m,
                subject: Some(id),
                domain: None,
                shares_presented: presented.collect(),
                anchors: self.trust.anchors.fingerprint(),
                shares_written: Vec::new(),
                outcome: format!(
                    "{id} restored from backup: its recorded state version set back from {} to \
                     {}; the archive shows nothing it handled after the backup{}",
                    from.0,
                    to.0,
                    if redelivered.is_empty() {
                        String::new()
                    } else {
                        format!("; processes delivered again: {}", redelivered.join(", "))
                    }
                ),
            },
        )?;
        let changes = Changes {
            rebaselines: vec![Rebaseline {
                box_id: id,
                from,
                to,
                time: clock::now(),
                actor: postkey_wire::Sender::Box(m),
            }],
            versions: versions(&self.session, &[m, id]),
            transcripts: vec![transcript],
            ..Changes::default()
        };
        self.store.apply(&changes).await?;
        Ok(RebaselineReport { id, from: from.0, to: to.0, authorised_by: m, redelivered })
    }

    /// Delivers again, through `m`, each process the archive records for `id` that its restored
    /// state lacks (made after the backup): the new process record must be the archived one.
    async fn redeliver_processes(
        &mut self,
        m: BoxId,
        id: BoxId,
        attested: &StateAttestation,
    ) -> Result<Vec<String>, HostError> {
        let mut redelivered = Vec::new();
        let cert = crate::archive::certificate(&self.store, &self.trust, id).await?;
        for p in crate::archive::processes(&self.store, &self.trust, id).await? {
            let domain = &p.body().domain;
            if attested.last_key_ids.iter().any(|l| &l.domain == domain) {
                continue;
            }
            let bundle = crate::archive::bundle(&self.store, &self.trust, domain).await?;
            let item = Deliver {
                bundle: bundle.into(),
                recipient: cert.clone().into(),
                subdomains: p.body().subdomains.clone(),
            };
            let out = self.session.call_one(m, item)?;
            if out.record.claimed_body() != p.body() {
                let why =
                    format!("{m} delivered {domain} to {id} as another process than archived");
                return Err(self.session.logged(m, HostError::RebaselineRefused(why)));
            }
            self.session.call_one(id, InstallProcess { delivery: out.delivery })?;
            redelivered.push(domain.to_string());
        }
        Ok(redelivered)
    }

    /// `Err(why)` when the archive shows box `id` handled something after the state it attests:
    /// a key ID past the state's last for its domain (Oak, Steel), or a box number the state
    /// would give again (a manufacturing box).
    async fn handled_since(
        &self,
        id: BoxId,
        attested: &StateAttestation,
    ) -> Result<Result<(), String>, HostError> {
        for (domain, seen) in self.store.key_ids_seen(id).await? {
            let last =
                attested.last_key_ids.iter().find(|l| l.domain == domain).map_or(0, |l| l.last);
            if seen.get() > last {
                return Ok(Err(format!(
                    "the archive shows {id} handled {domain} key {seen}, past {last}, the last its \
                     restored state knows: it would take that key ID again; it is not \
                     re-baselined"
                )));
            }
        }
        for range in &attested.free_box_ids {
            let Some(box_type) = BoxType::ALL.get(usize::from(range.box_type)) else { continue };
            for b in self.store.boxes(Some(*box_type)).await? {
                if (range.first..=range.last).contains(&b.id.number()) {
                    return Ok(Err(format!(
                        "the archive holds {}, a box number the restored state of {id} would give \
                         again: it is not re-baselined",
                        b.id
                    )));
                }
            }
        }
        Ok(Ok(()))
    }
}
