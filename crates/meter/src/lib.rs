//! The meter SDK: what a postage meter's firmware links (protocol §10). A meter has a transport key
//! pair made at manufacture, receives its master keys from a Steel box over the meter link
//! (one vendor key and one postal key, each installed once), and proves each with its test
//! tokens. Registration tokens, mailpiece tokens and indicia join it with registration.
//!
//! Start from [`Meter`]; [`SimulatedMeter`] is the simulator that puts one behind the meter link
//! ([`postkey_wire::MeterLink`]), the trait a real meter's link implements too.
//!
//! Key design decision: a master key enters a meter only through [`Meter::install`], which opens
//! MI5 with the meter's own transport key under the HPKE `info` that binds domain, key ID and
//! meter ID, and refuses a second key for a domain: one key, one meter, one try.

#![forbid(unsafe_code)]

mod link;
mod meter;

pub use link::SimulatedMeter;
pub use meter::{InstalledKey, MAX_KEYS, Mailing, Meter, MeterError, PostalRegistration, Printed};
