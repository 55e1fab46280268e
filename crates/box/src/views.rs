//! The typed views of a box: one per box type, each with exactly the commands of that type
//! (the manufacturing box's is [`crate::Manufacturing`]). A command of another type cannot even
//! be named on a view; asking a box for the wrong view is refused with `WRONG_BOX_TYPE`.

use postkey_wire::{Aborted, BoxType, DomainId, KeyForMeter, KeyId, Message, Timestamp, Verified};

use crate::install::{CheckOutcome, GeneratedKey, InstallOutcome, PapersMemo};
use crate::{BoxError, SecureBox};

/// An Oak box's commands.
#[derive(Debug)]
pub struct Oak<'a> {
    b: &'a mut SecureBox,
}

/// A Steel box's commands.
#[derive(Debug)]
pub struct Steel<'a> {
    b: &'a mut SecureBox,
}

/// A Brass box's commands.
#[derive(Debug)]
pub struct Brass<'a> {
    b: &'a mut SecureBox,
}

impl SecureBox {
    fn expect_type(&self, t: BoxType) -> Result<(), BoxError> {
        if self.box_type() == t {
            Ok(())
        } else {
            Err(BoxError::WrongBoxType { expected: t.name(), actual: self.box_type().name() })
        }
    }

    /// The Oak view; any other type is refused.
    pub fn oak(&mut self) -> Result<Oak<'_>, BoxError> {
        self.expect_type(BoxType::Oak)?;
        Ok(Oak { b: self })
    }

    /// The Steel view; any other type is refused.
    pub fn steel(&mut self) -> Result<Steel<'_>, BoxError> {
        self.expect_type(BoxType::Steel)?;
        Ok(Steel { b: self })
    }

    /// The Brass view; any other type is refused.
    pub fn brass(&mut self) -> Result<Brass<'_>, BoxError> {
        self.expect_type(BoxType::Brass)?;
        Ok(Brass { b: self })
    }
}

impl Oak<'_> {
    /// MI1 → MI3 + MI4 (SPEC §6.1).
    pub fn generate_key(&mut self, mi1: &[u8], now: Timestamp) -> Result<GeneratedKey, BoxError> {
        self.b.generate_key(mi1, now, &mut PapersMemo::default())
    }

    /// A batch of MI1 (SPEC §6.1 allows one durable write over a range of keys): each is
    /// checked and answered on its own, in order, exactly as [`Self::generate_key`] would; the
    /// runtime's one commit after the batch makes every advanced key ID durable before any
    /// answer leaves.
    pub fn generate_keys(
        &mut self,
        mi1s: &[&[u8]],
        now: Timestamp,
    ) -> Vec<Result<GeneratedKey, BoxError>> {
        let mut memo = PapersMemo::default();
        mi1s.iter().map(|mi1| self.b.generate_key(mi1, now, &mut memo)).collect()
    }
}

impl Steel<'_> {
    /// MI4 and the meter's greeting → MI5, the installation sealed as in flight.
    pub fn begin_install(
        &mut self,
        mi4: &[u8],
        hello: &[u8],
        now: Timestamp,
    ) -> Result<Message<KeyForMeter>, BoxError> {
        self.b.begin_install(mi4, hello, now)
    }

    /// A batch of MI4 with their meters' greetings: each checked and answered on its own, in
    /// order; the runtime's one commit seals every installation in flight before any MI5 leaves.
    pub fn begin_installs(
        &mut self,
        items: &[(&[u8], &[u8])],
        now: Timestamp,
    ) -> Vec<Result<Message<KeyForMeter>, BoxError>> {
        items.iter().map(|(mi4, hello)| self.b.begin_install(mi4, hello, now)).collect()
    }

    /// A batch of MI6, each answered on its own.
    pub fn finish_installs(
        &mut self,
        mi6s: &[&[u8]],
        now: Timestamp,
    ) -> Vec<Result<InstallOutcome, BoxError>> {
        mi6s.iter().map(|mi6| self.b.finish_install(mi6, now)).collect()
    }

    /// The meter link failed for the installation of `key_id`: ABORTED ends it.
    pub fn abort_install(
        &mut self,
        domain: &DomainId,
        key_id: KeyId,
        reason: &str,
        now: Timestamp,
    ) -> Result<Verified<Aborted>, BoxError> {
        self.b.abort_install(domain, key_id, reason, now)
    }

    /// MI6 → MI7, or ABORTED if the meter's test tokens differ.
    pub fn finish_install(
        &mut self,
        mi6: &[u8],
        now: Timestamp,
    ) -> Result<InstallOutcome, BoxError> {
        self.b.finish_install(mi6, now)
    }

    /// After a restart: ABORTED for every installation a stop interrupted.
    pub fn abort_interrupted(
        &mut self,
        now: Timestamp,
    ) -> Result<Vec<Verified<Aborted>>, BoxError> {
        self.b.abort_interrupted(now)
    }
}

impl Brass<'_> {
    /// MI3 + MI7 → MI9 and MI10, or BAD.
    pub fn check_install(
        &mut self,
        mi3: &[u8],
        mi7: &[u8],
        now: Timestamp,
    ) -> Result<CheckOutcome, BoxError> {
        self.b.check_install(mi3, mi7, now)
    }

    /// A batch of MI3 + MI7 pairs, each checked and answered on its own.
    pub fn check_installs(
        &mut self,
        items: &[(&[u8], &[u8])],
        now: Timestamp,
    ) -> Vec<Result<CheckOutcome, BoxError>> {
        items.iter().map(|(mi3, mi7)| self.b.check_install(mi3, mi7, now)).collect()
    }
}
