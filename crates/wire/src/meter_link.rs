//! The meter link: the direct channel between a Steel box and the meter it installs a key into,
//! on the secured production line (protocol §6.1). The PSR orchestrates the installation but does not
//! carry this channel; the Steel box's dispatcher drives it, and a real meter and the meter
//! simulator sit behind the same trait.
//!
//! ```text
//!  Steel box                         meter
//!    hello(domain)  ───────────────►
//!                   ◄─────────────── MeterHello (its transport public key; header: its meter ID)
//!    install(MI5)   ───────────────►  (K sealed to the transport key)
//!                   ◄─────────────── MI6 (test tokens from the installed K)
//! ```

use crate::{DomainId, KeyForMeter, Message, MeterHello, MeterTestTokens, Refusal, Timestamp};

/// The meter side of the meter link, as a Steel box drives it.
pub trait MeterLink {
    /// The meter's greeting for an installation of a key of `domain`: its transport key.
    fn hello(&mut self, domain: &DomainId, now: Timestamp) -> Result<Message<MeterHello>, Refusal>;

    /// Delivers MI5. The meter makes the key durable, then answers MI6.
    fn install(
        &mut self,
        mi5: &Message<KeyForMeter>,
        now: Timestamp,
    ) -> Result<Message<MeterTestTokens>, Refusal>;
}
