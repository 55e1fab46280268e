//! The Brass box: it checks installations (protocol §6.1, MI8 = MI3 + MI7 → MI9 + MI10, or
//! BAD); registration, withdrawal, verification and Tin exports follow (protocol §6.2, §6.3,
//! §6.5). Its processes hold the domain Brass keys and the keys of the sub-domains they serve.

use postkey_crypto::HpkeRecordType;
use postkey_wire::{
    BadKey, InstallConfirmed, Installed, InstalledKeyRecord, Message, NewKeyRecord, ResponseCode,
    Timestamp, Unverified, Verified,
};
use subtle::ConstantTimeEq as _;

use crate::BoxError;
use crate::core::TypedBox;
use crate::install::{brass_recipient, header_key, header_meter, key_info};
use crate::process::{BrassKeys, Processes, serving_role};

/// A Brass box's role: its processes.
#[derive(Debug, Default)]
pub struct Brass {
    pub(crate) processes: Processes<BrassKeys>,
}

serving_role!(Brass, BrassKeys);

/// What a Brass process found in MI3 and MI7.
// Made once per key and moved once: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum CheckOutcome {
    /// They match: MI9 for the archive and MI10 for the KDC.
    Installed {
        /// MI9.
        mi9: Verified<InstalledKeyRecord>,
        /// MI10.
        mi10: Verified<InstallConfirmed>,
    },
    /// They do not: BAD.
    Bad(Verified<BadKey>),
}

impl TypedBox<Brass> {
    /// Brass, MI8 (MI3 + MI7) → MI9 + MI10, or BAD: checks Oak's and Steel's signatures with the
    /// domain's keys, that both records name the same key and boxes, opens K from MI3 and
    /// recomputes the test tokens the meter reported in MI7.
    pub(crate) fn check_install(
        &mut self,
        unverified3: Unverified<NewKeyRecord>,
        mi7: Unverified<Installed>,
        now: Timestamp,
    ) -> Result<CheckOutcome, BoxError> {
        let domain = unverified3.header().domain.clone();
        let this = self.core.id;
        let process = self.role.processes.of(&self.core.tables, &domain)?;
        let BrassKeys { brass_conf, brass_auth, .. } = &process.keys;
        let public = process.public();
        let mi3 = unverified3.verify(&public.oak_auth)?;
        let mi7 = mi7.verify(&public.steel_auth)?;
        if mi7.header().domain != domain {
            return Err(BoxError::RecordMismatch("MI3 and MI7 belong to different domains"));
        }
        let key_id = header_key(mi3.header().key_id)?;
        let meter_id = header_meter(mi7.header().meter_id.as_ref())?;
        let context = self.core.key_context(&domain, key_id, Some(meter_id), now);
        let bad = |code: ResponseCode, reason: &str| {
            let body = BadKey { brass: this, code: code.0, reason: reason.into() };
            CheckOutcome::Bad(postkey_wire::sign(Message::new(context.clone(), body), brass_auth))
        };
        if mi7.header().key_id != Some(key_id)
            || mi7.body().oak != mi3.body().oak
            || mi7.body().steel != mi3.body().steel
        {
            return Ok(bad(
                ResponseCode::RECORD_MISMATCH,
                "MI3 and MI7 name different keys or boxes",
            ));
        }
        let info = key_info(HpkeRecordType::Mi3, &domain, key_id, &brass_recipient(&domain))?;
        let Ok(key) = brass_conf.open_master_key(&info, &mi3.body().sealed) else {
            return Ok(bad(
                ResponseCode::DECRYPTION_FAILED,
                "the archive copy of the key does not open",
            ));
        };
        if !bool::from(key.test_tokens().ct_eq(&mi7.body().test_tokens)) {
            return Ok(bad(
                ResponseCode::TEST_TOKENS_MISMATCH,
                "the meter's test tokens do not match the archive copy of the key",
            ));
        }
        let sealed = key.seal_to(
            &public.brass_conf,
            &key_info(HpkeRecordType::Mi9, &domain, key_id, &brass_recipient(&domain))?,
            &mut self.core.rng,
        )?;
        drop(key);
        let mi9 = postkey_wire::sign(
            Message::new(
                context.clone(),
                InstalledKeyRecord { oak: mi3.body().oak, steel: mi3.body().steel, sealed },
            ),
            brass_auth,
        );
        let mi10 =
            postkey_wire::sign(Message::new(context, InstallConfirmed { brass: this }), brass_auth);
        Ok(CheckOutcome::Installed { mi9, mi10 })
    }
}
