//! The fixed-size symmetric secrets of protocol §5.

use crate::secret::secret_bytes;

secret_bytes!(
    /// A meter master key K (protocol §2): 256 bits from an Oak box's generator, one per meter and
    /// domain. Outside a box or a meter it exists only sealed (HPKE) or wrapped (AES-KWP).
    MasterKey, 32
);

secret_bytes!(
    /// A token key `K_T`, derived from a master key for one meter and one month (protocol §4).
    TokenKey, 32
);

secret_bytes!(
    /// A box's operation combination: the random secret that must be reconstructed from its
    /// shares for the box to work; its sealed state's key is derived from it.
    OperationCombination, 32
);

secret_bytes!(
    /// The seed of the Domain Key Set: the confidentiality (HPKE) and authentication (Ed25519)
    /// key pairs under which every domain key bundle is sealed and signed. Shared 2-of-3.
    DomainKeySetSeed, 32
);

secret_bytes!(
    /// A sub-domain's confidentiality key: AES-256, wraps K inside MR3 records (AES-KWP).
    SubdomainConfKey, 32
);

secret_bytes!(
    /// A sub-domain's authentication key: HMAC-SHA256 over MR3 records.
    SubdomainAuthKey, 32
);

secret_bytes!(
    /// The AES-256-GCM-SIV key that seals a box's state at rest, derived from its operation
    /// combination and box ID.
    StateSealingKey, 32
);
