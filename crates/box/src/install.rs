//! What the installation processes of protocol §6.1 share across the box types that run them
//! ([`crate::Oak`] generates, [`crate::Steel`] installs, [`crate::Brass`] checks): the HPKE
//! `info` of sealed keys, the header fields every key message must carry, and bounded reasons.
//!
//! Last-seen key IDs advance only after everything the message carries has been authenticated,
//! and every change is sealed by the runtime before the answer leaves the box. Refusals happen
//! before any change, so a refused message leaves the box as it was.

use postkey_crypto::{HpkeInfo, HpkeRecordType};
use postkey_wire::{Context, DomainId, KeyId, MeterId, Timestamp};

use crate::BoxError;
use crate::core::Core;

/// The HPKE `info` for a sealed key (protocol §4).
pub(crate) fn key_info(
    record: HpkeRecordType,
    domain: &DomainId,
    key_id: KeyId,
    recipient: &str,
) -> Result<HpkeInfo, BoxError> {
    HpkeInfo::new(record, domain.as_str(), key_id.get(), recipient)
        .map_err(|_| BoxError::Secret(postkey_secrets::SecretError::Malformed))
}

/// `BRASS:<domain>`, the recipient of MI3 and MI9.
pub(crate) fn brass_recipient(domain: &DomainId) -> String {
    format!("BRASS:{domain}")
}

/// The first `max` bytes of `text`, cut at a character boundary.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// The key ID a key message's header must carry.
pub(crate) fn header_key(key_id: Option<KeyId>) -> Result<KeyId, BoxError> {
    key_id.ok_or(BoxError::Wire(postkey_wire::WireError::InvalidField {
        field: "key ID",
        reason: "missing from the header",
    }))
}

/// The meter ID a key message's header must carry.
pub(crate) fn header_meter(meter_id: Option<&MeterId>) -> Result<MeterId, BoxError> {
    meter_id.cloned().ok_or(BoxError::Wire(postkey_wire::WireError::InvalidField {
        field: "meter ID",
        reason: "missing from the header",
    }))
}

impl Core {
    /// The header context of a message about one key.
    pub(crate) fn key_context(
        &self,
        domain: &DomainId,
        key_id: KeyId,
        meter_id: Option<MeterId>,
        now: Timestamp,
    ) -> Context {
        Context { key_id: Some(key_id), meter_id, ..self.context(domain.clone(), now) }
    }
}
