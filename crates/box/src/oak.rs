//! The Oak box: it generates each meter's master key K (protocol §6.1, MI1 → MI3 + MI4). Its
//! processes hold the domain Oak authentication key and nothing else.

use postkey_crypto::HpkeRecordType;
use postkey_secrets::MasterKey;
use postkey_wire::{
    BoxType, Certificate, GenerateKey, KeyForSteel, Message, NewKeyRecord, ProcessRecord,
    Timestamp, Unverified, Verified,
};

use crate::BoxError;
use crate::core::TypedBox;
use crate::install::{brass_recipient, header_key, key_info};
use crate::process::{OakKeys, Processes, serving_role};

/// How far above the last processed key ID an Oak box accepts a new one (protocol §6.1 default).
pub const DEFAULT_KEY_ID_WINDOW: u64 = 1_000_000;

/// An Oak box's role: its processes, each with its last processed key ID.
#[derive(Debug, Default)]
pub struct Oak {
    pub(crate) processes: Processes<OakKeys>,
}

serving_role!(Oak, OakKeys);

/// What an Oak box makes for one key (MI2).
#[derive(Debug)]
pub(crate) struct GeneratedKey {
    /// MI3, for the archive.
    pub mi3: Verified<NewKeyRecord>,
    /// MI4, for the Steel box; leaves the KMC only after MI3 is committed.
    pub mi4: Verified<KeyForSteel>,
}

/// The Steel papers of MI1 verified earlier in the same batch: the same bytes under the same
/// trust anchor verify the same way, so a batch of keys for one Steel box checks them once.
#[derive(Default)]
pub(crate) struct PapersMemo {
    last: Option<(Verified<Certificate>, Verified<ProcessRecord>)>,
}

impl PapersMemo {
    fn verify(
        &mut self,
        anchor: &postkey_crypto::VerifyingKey,
        papers: &GenerateKey,
    ) -> Result<(Verified<Certificate>, Verified<ProcessRecord>), BoxError> {
        if let Some((cert, record)) = &self.last
            && cert.as_bytes() == papers.steel_certificate.as_slice()
            && record.as_bytes() == papers.steel_process.as_slice()
        {
            return Ok((cert.clone(), record.clone()));
        }
        let cert =
            Unverified::<Certificate>::from_bytes(&papers.steel_certificate)?.verify(anchor)?;
        let record =
            Unverified::<ProcessRecord>::from_bytes(&papers.steel_process)?.verify(anchor)?;
        self.last = Some((cert.clone(), record.clone()));
        Ok((cert, record))
    }
}

impl TypedBox<Oak> {
    /// Oak, MI1 → MI3 + MI4: checks that the domain is served here, that the Steel box is
    /// certified and runs a process of the domain, and that the key ID is fresh and within the
    /// window; then generates K and its test tokens and seals them.
    pub(crate) fn generate_key(
        &mut self,
        mi1: &Message<GenerateKey>,
        now: Timestamp,
        memo: &mut PapersMemo,
    ) -> Result<GeneratedKey, BoxError> {
        let domain = mi1.header().domain.clone();
        let key_id = header_key(mi1.header().key_id)?;
        let process = self.process_of(&domain)?;
        let (cert, record) = memo.verify(&self.core.anchors.steel, mi1.body())?;
        let steel = cert.body().box_id;
        if steel.box_type() != BoxType::Steel {
            return Err(BoxError::WrongBoxType {
                expected: "steel",
                actual: steel.box_type().name(),
            });
        }
        if record.body().box_id != steel || record.body().domain != domain {
            return Err(BoxError::NotCertifiedForDomain(steel, domain));
        }
        let last = process.last_key_id;
        if key_id.get() <= last {
            return Err(BoxError::KeyIdNotFresh { got: key_id.get(), last });
        }
        if key_id.get() - last > DEFAULT_KEY_ID_WINDOW {
            return Err(BoxError::KeyIdBeyondWindow {
                got: key_id.get(),
                last,
                window: DEFAULT_KEY_ID_WINDOW,
            });
        }
        let brass_conf = process.public().brass_conf;
        let rng = &mut self.core.rng;
        let key = MasterKey::generate(rng)?;
        let tokens = key.test_tokens();
        let mi3_sealed = key.seal_to(
            &brass_conf,
            &key_info(HpkeRecordType::Mi3, &domain, key_id, &brass_recipient(&domain))?,
            rng,
        )?;
        let mut both = zeroize::Zeroizing::new([0u8; 48]);
        both[..32].copy_from_slice(key.expose_secret());
        both[32..].copy_from_slice(&tokens.to_bytes());
        let mi4_sealed = postkey_secrets::seal_secret(
            &cert.body().confidentiality,
            &key_info(HpkeRecordType::Mi4, &domain, key_id, &steel.to_string())?,
            &*both,
            rng,
        )?;
        drop(key);
        // Everything authenticated and made: now the counter advances, durably before MI2 leaves.
        if let Some(p) = self.role.processes.0.get_mut(&domain) {
            p.last_key_id = key_id.get();
        }
        self.core.changed();
        let context = self.core.key_context(&domain, key_id, None, now);
        let oak = self.core.id;
        let oak_auth = &self.process_of(&domain)?.keys.oak_auth;
        let mi3 = postkey_wire::sign(
            Message::new(context.clone(), NewKeyRecord { oak, steel, sealed: mi3_sealed }),
            oak_auth,
        );
        let mi4 = postkey_wire::sign(
            Message::new(context, KeyForSteel { oak, steel, sealed: mi4_sealed }),
            oak_auth,
        );
        Ok(GeneratedKey { mi3, mi4 })
    }
}
