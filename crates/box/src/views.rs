//! The typed views of a box: one per box type, each with exactly the commands of that type
//! (the manufacturing box's is [`crate::Manufacturing`]). A command of another type cannot even
//! be named on a view; asking a box for the wrong view is refused with `WRONG_BOX_TYPE`.

use postkey_wire::{Aborted, BoxType, KeyForMeter, Message, Timestamp, Verified};

use crate::install::{CheckOutcome, GeneratedKey, InstallOutcome};
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
        self.b.generate_key(mi1, now)
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
}
