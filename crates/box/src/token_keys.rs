//! The token keys a Brass box derived while verifying (protocol §6.5, docs/verification.md
//! "Speed"): deriving one costs an MR3 MAC check, a KWP unwrap and an HKDF, several times the
//! work of a token, and a meter's mailpieces of one month all use the same. The cache is bounded
//! and lives in the box's memory only (never in its sealed state): the oldest entry goes first,
//! and every entry zeroizes when it goes.
//!
//! An entry is found by the SHA-256 of the checked MR3 it was derived from (which fixes the
//! domain, key ID, sub-domain, ISN and wrapped K the derivation took) and the period. Beside
//! it, the MR3s whose MAC was checked are kept by that digest ([`CheckedMr3s`]): a `VERIFY` key
//! named by its digest alone is used only if the box checked an MR3 of exactly those bytes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use postkey_secrets::TokenMac;
use postkey_wire::{DomainId, Isn, KeyId, Period, SubdomainId};

use crate::BoxError;

/// The most token keys a Brass box keeps: two keys (vendor, postal) of 32,768 meters for one
/// month, or of 16,384 across a month's turn. Each entry holds a prepared AES-256-CMAC (about
/// 300 bytes: the encryption key schedule and the two subkeys).
pub const TOKEN_KEY_CACHE_CAPACITY: usize = 65_536;

/// What a cached token key was derived for: the checked MR3, by digest, and the month (public
/// values only: the key itself is the cache entry, which prints redacted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct DerivedFor {
    pub mr3: postkey_wire::Mr3Digest,
    pub period: Period,
}

/// What Brass took from an MR3 whose MAC it checked: found again by the MR3's digest, so a
/// later `VERIFY` item may name the MR3 without sending it. The wrapped K is as public as
/// the MR3 it came from (it opens only under the sub-domain's confidentiality key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckedMr3 {
    pub domain: DomainId,
    pub key_id: KeyId,
    pub subdomain: SubdomainId,
    pub isn: Isn,
    pub wrapped: postkey_wire::WrappedKey,
}

/// The bounded caches of a Brass box's memory: the oldest entry goes first when one is full.
pub(crate) struct Bounded<K, V> {
    capacity: usize,
    inner: Mutex<Entries<K, V>>,
}

struct Entries<K, V> {
    map: HashMap<K, V>,
    /// Insertion order: the first goes first when the cache is full.
    order: VecDeque<K>,
}

impl<K, V> Default for Entries<K, V> {
    fn default() -> Self {
        Self { map: HashMap::new(), order: VecDeque::new() }
    }
}

/// The prepared token keys, by what they were derived for.
pub(crate) type TokenKeys = Bounded<DerivedFor, Arc<TokenMac>>;

/// The MR3s checked, by digest.
pub(crate) type CheckedMr3s = Bounded<postkey_wire::Mr3Digest, Arc<CheckedMr3>>;

impl<K, V> Default for Bounded<K, V> {
    fn default() -> Self {
        Self::with_capacity(TOKEN_KEY_CACHE_CAPACITY)
    }
}

impl<K, V> core::fmt::Debug for Bounded<K, V> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Bounded({} of {}, [redacted])", self.len(), self.capacity)
    }
}

impl<K, V> Bounded<K, V> {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), inner: Mutex::new(Entries::default()) }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries<K, V>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many it holds.
    pub(crate) fn len(&self) -> usize {
        self.entries().map.len()
    }
}

impl<K: Clone + Eq + core::hash::Hash, V: Clone> Bounded<K, V> {
    /// The entry of `id`, if held.
    pub(crate) fn get(&self, id: &K) -> Option<V> {
        self.entries().map.get(id).cloned()
    }

    /// The entries of `ids`, in order, with one lock.
    pub(crate) fn get_many<'k>(&self, ids: impl Iterator<Item = &'k K>) -> Vec<Option<V>>
    where
        K: 'k,
    {
        let e = self.entries();
        ids.map(|id| e.map.get(id).cloned()).collect()
    }

    /// The entry of `id`, made by `derive` if not held (outside the lock: other threads of
    /// the same command go on meanwhile). A failed derivation caches nothing.
    pub(crate) fn get_or_derive(
        &self,
        id: K,
        derive: impl FnOnce() -> Result<V, BoxError>,
    ) -> Result<V, BoxError> {
        if let Some(hit) = self.get(&id) {
            return Ok(hit);
        }
        let made = derive()?;
        let mut e = self.entries();
        if let Some(raced) = e.map.get(&id) {
            return Ok(raced.clone());
        }
        while e.map.len() >= self.capacity {
            let Some(oldest) = e.order.pop_front() else { break };
            e.map.remove(&oldest);
        }
        e.order.push_back(id.clone());
        e.map.insert(id, made.clone());
        Ok(made)
    }
}

#[cfg(test)]
mod tests {
    use postkey_secrets::MasterKey;

    use super::*;

    fn id(n: u8) -> DerivedFor {
        DerivedFor {
            mr3: postkey_wire::Mr3Digest([n; 32]),
            period: Period::parse("202612").unwrap(),
        }
    }

    fn mac() -> TokenMac {
        let k = MasterKey::from_bytes([1; 32]);
        let isn = Isn::parse("0401234567").unwrap();
        k.token_key(&DomainId::parse("USPS").unwrap(), &isn, id(1).period).prepare()
    }

    #[test]
    fn derives_once_and_stays_bounded() {
        let cache: TokenKeys = Bounded::with_capacity(3);
        let mut derived = 0;
        for n in [1, 2, 1, 3, 2] {
            cache
                .get_or_derive(id(n), || {
                    derived += 1;
                    Ok(Arc::new(mac()))
                })
                .unwrap();
        }
        assert_eq!(derived, 3, "a key held is not derived again");
        cache.get_or_derive(id(4), || Ok(Arc::new(mac()))).unwrap();
        assert_eq!(cache.len(), 3, "the cache never holds more than its capacity");
        // The oldest (1) went; 2, 3 and 4 are held.
        let mut again = 0;
        for n in [2, 3, 4, 1] {
            cache
                .get_or_derive(id(n), || {
                    again += 1;
                    Ok(Arc::new(mac()))
                })
                .unwrap();
        }
        assert_eq!(again, 1);
    }

    #[test]
    fn a_failed_derivation_caches_nothing() {
        let cache: TokenKeys = Bounded::with_capacity(4);
        let refused = cache.get_or_derive(id(1), || Err(BoxError::RecordMismatch("forged")));
        assert!(refused.is_err());
        assert_eq!(cache.len(), 0);
        assert!(format!("{cache:?}").contains("redacted"));
    }
}
