//! Workloads the backends' benchmarks share, so that both measure the same thing.

use postkey_wire::{DomainId, KeyId};

use super::fixtures::{new_key, transition};
use crate::{KeyStatus, Store, Transition};

/// Allocates and creates `n` keys `New` in `domain` at time `ts(1)`, `batch` per transaction;
/// returns their IDs in order.
pub async fn populate<S: Store>(store: &S, domain: &DomainId, n: u64, batch: u32) -> Vec<KeyId> {
    let mut ids = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    let mut left = n;
    while left > 0 {
        let count = u32::try_from(left.min(u64::from(batch))).unwrap();
        let range = store.allocate_key_ids(domain, count).await.unwrap();
        let keys: Vec<_> = range.ids().map(|id| new_key(domain, id, 1)).collect();
        store.create_keys(&keys).await.unwrap();
        ids.extend(range.ids());
        left -= u64::from(count);
    }
    ids
}

/// The MI9 transition `New → Installed` of `key_id`, at time `ts(10)`.
pub fn install(domain: &DomainId, key_id: KeyId) -> Transition {
    transition(domain, key_id, KeyStatus::New, KeyStatus::Installed, 10)
}

/// A small deterministic generator of key IDs in `1..=n`, for lookups in random order.
#[derive(Debug)]
pub struct KeyIds {
    state: u64,
    n: u64,
}

impl KeyIds {
    /// IDs in `1..=n`.
    pub fn new(n: u64) -> Self {
        Self { state: 0x9E37_79B9_7F4A_7C15, n }
    }

    /// The next ID (xorshift64).
    pub fn next_id(&mut self) -> KeyId {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        KeyId::new(self.state % self.n + 1).unwrap()
    }
}
