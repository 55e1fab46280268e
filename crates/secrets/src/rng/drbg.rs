//! HMAC_DRBG of NIST SP 800-90A Rev. 1 §10.1.2 with SHA-256, without prediction resistance.
//!
//! Written here (about 100 lines on `hmac`) because the box must export and re-import the
//! working state in its sealed state, which DRBG crates do not allow. Checked against the NIST
//! CAVP vectors in `tests/vectors/`.

use hmac::digest::{Key, KeyInit, Mac};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::error::RngError;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// SHA-256 output length: the size of K and V.
const OUT_LEN: usize = 32;
/// The security strength (256 bits): the minimum entropy input length.
const MIN_ENTROPY_LEN: usize = 32;
/// At most 2^19 bits per generate request (SP 800-90A Table 2).
const MAX_REQUEST_BYTES: usize = 1 << 16;
/// At most 2^35 bits of entropy, nonce, personalization or additional input.
const MAX_INPUT_BYTES: u64 = 1 << 32;
/// At most 2^48 generate requests between reseeds (SP 800-90A Table 2).
const RESEED_INTERVAL: u64 = 1 << 48;

/// The version byte of the exported state layout.
const STATE_VERSION: u8 = 1;

/// The working state of an [`HmacDrbg`] (K, V and the reseed counter), for the box's sealed
/// state. Layout of [`to_bytes`](Self::to_bytes), 73 bytes: version `0x01`, K (32), V (32),
/// reseed counter (8, big-endian, in 1..=2^48 + 1).
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct DrbgState {
    key: [u8; OUT_LEN],
    value: [u8; OUT_LEN],
    reseed_counter: u64,
}

impl DrbgState {
    /// The length of the exported form.
    pub const LEN: usize = 1 + OUT_LEN + OUT_LEN + 8;

    /// The exported form, to be written only inside a sealed state.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(Self::LEN));
        out.push(STATE_VERSION);
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&self.value);
        out.extend_from_slice(&self.reseed_counter.to_be_bytes());
        out
    }

    /// Reads the exported form, rejecting another length, another version or a counter that
    /// no DRBG can have reached.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RngError> {
        if bytes.len() != Self::LEN {
            return Err(RngError::StateLength { expected: Self::LEN, found: bytes.len() });
        }
        let (version, rest) = (bytes[0], &bytes[1..]);
        if version != STATE_VERSION {
            return Err(RngError::StateVersion(version));
        }
        let mut state = Self { key: [0; OUT_LEN], value: [0; OUT_LEN], reseed_counter: 0 };
        let (key, rest) = rest.split_at(OUT_LEN);
        let (value, counter) = rest.split_at(OUT_LEN);
        state.key.copy_from_slice(key);
        state.value.copy_from_slice(value);
        let mut counter_bytes = [0u8; 8];
        counter_bytes.copy_from_slice(counter);
        state.reseed_counter = u64::from_be_bytes(counter_bytes);
        if !(1..=RESEED_INTERVAL + 1).contains(&state.reseed_counter) {
            return Err(RngError::StateCounter);
        }
        Ok(state)
    }

    /// A copy for export; deliberately not `Clone`, so copies of the state stay explicit.
    fn copy(&self) -> Self {
        Self { key: self.key, value: self.value, reseed_counter: self.reseed_counter }
    }
}

impl core::fmt::Debug for DrbgState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("DrbgState([redacted])")
    }
}

/// HMAC_DRBG (SHA-256, security strength 256 bits, no prediction resistance).
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct HmacDrbg {
    state: DrbgState,
}

impl HmacDrbg {
    /// Instantiates from at least 32 bytes of entropy, a nonce and an optional personalization
    /// string (SP 800-90A §10.1.2.3).
    pub fn instantiate(
        entropy: &[u8],
        nonce: &[u8],
        personalization: &[u8],
    ) -> Result<Self, RngError> {
        check_entropy(entropy)?;
        check_input(nonce)?;
        check_input(personalization)?;
        Ok(Self::instantiate_unchecked(entropy, nonce, personalization))
    }

    /// Instantiation without the length checks, for callers whose inputs are fixed and valid.
    pub(super) fn instantiate_unchecked(
        entropy: &[u8],
        nonce: &[u8],
        personalization: &[u8],
    ) -> Self {
        let state = DrbgState { key: [0x00; OUT_LEN], value: [0x01; OUT_LEN], reseed_counter: 1 };
        let mut drbg = Self { state };
        drbg.update(&[entropy, nonce, personalization]);
        drbg
    }

    /// Reseeds from at least 32 bytes of fresh entropy and optional additional input (§10.1.2.4).
    pub fn reseed(&mut self, entropy: &[u8], additional: &[u8]) -> Result<(), RngError> {
        check_entropy(entropy)?;
        check_input(additional)?;
        self.update(&[entropy, additional]);
        self.state.reseed_counter = 1;
        Ok(())
    }

    /// Fills `out` (at most 65536 bytes) with the next output, after mixing in optional
    /// additional input (§10.1.2.5). On error `out` is zeroed and the state is unchanged.
    pub fn generate(&mut self, out: &mut [u8], additional: &[u8]) -> Result<(), RngError> {
        if let Err(e) = self.check_request(out.len(), additional) {
            out.zeroize();
            return Err(e);
        }
        if !additional.is_empty() {
            self.update(&[additional]);
        }
        for chunk in out.chunks_mut(OUT_LEN) {
            self.state.value =
                finish(keyed(&self.state.key).chain_update(self.state.value.as_slice()));
            chunk.copy_from_slice(&self.state.value[..chunk.len()]);
        }
        self.update(&[additional]);
        self.state.reseed_counter += 1;
        Ok(())
    }

    /// Exports the working state for the sealed state.
    pub fn state(&self) -> DrbgState {
        self.state.copy()
    }

    /// Resumes from an exported state. The caller should reseed before use unless it can prove
    /// this state was never used before (a [`BoxRng`](super::BoxRng) always reseeds).
    pub fn from_state(state: DrbgState) -> Self {
        Self { state }
    }

    /// Brings the reseed counter to its limit, so that the next request needs a reseed: fault
    /// injection for tests of what the box does then, without 2^48 requests.
    /// Mixes `input` into the state with the HMAC_DRBG update function, as additional input
    /// does (SP 800-90A §10.1.2.2): the stream moves to one that depends on `input`.
    pub(super) fn mix(&mut self, input: &[u8]) -> Result<(), RngError> {
        check_input(input)?;
        self.update(&[input]);
        Ok(())
    }

    #[cfg(any(test, feature = "testing"))]
    pub(super) fn exhaust(&mut self) {
        self.state.reseed_counter = RESEED_INTERVAL + 1;
    }

    fn check_request(&self, len: usize, additional: &[u8]) -> Result<(), RngError> {
        if len > MAX_REQUEST_BYTES {
            return Err(RngError::RequestTooLarge);
        }
        if self.state.reseed_counter > RESEED_INTERVAL {
            return Err(RngError::ReseedRequired);
        }
        check_input(additional)
    }

    /// HMAC_DRBG_Update (§10.1.2.2); `provided` is the concatenation of its parts, passed in
    /// pieces so that seed material is never copied into a buffer of its own.
    fn update(&mut self, provided: &[&[u8]]) {
        let st = &mut self.state;
        st.key = step(&st.key, &st.value, 0x00, provided);
        st.value = finish(keyed(&st.key).chain_update(st.value.as_slice()));
        if provided.iter().all(|p| p.is_empty()) {
            return;
        }
        st.key = step(&st.key, &st.value, 0x01, provided);
        st.value = finish(keyed(&st.key).chain_update(st.value.as_slice()));
    }
}

impl core::fmt::Debug for HmacDrbg {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("HmacDrbg([redacted])")
    }
}

fn check_entropy(entropy: &[u8]) -> Result<(), RngError> {
    if entropy.len() < MIN_ENTROPY_LEN {
        return Err(RngError::EntropyTooShort);
    }
    check_input(entropy)
}

fn check_input(input: &[u8]) -> Result<(), RngError> {
    // `usize` to `u64` never truncates on the 32- and 64-bit targets Rust supports.
    if input.len() as u64 > MAX_INPUT_BYTES {
        return Err(RngError::InputTooLong);
    }
    Ok(())
}

/// K' = HMAC(K, V || separator || provided), one step of HMAC_DRBG_Update.
fn step(
    key: &[u8; OUT_LEN],
    value: &[u8; OUT_LEN],
    separator: u8,
    provided: &[&[u8]],
) -> [u8; OUT_LEN] {
    let mut mac = keyed(key);
    mac.update(value);
    mac.update(&[separator]);
    for part in provided {
        mac.update(part);
    }
    finish(mac)
}

/// HMAC-SHA256 keyed with a 32-byte key.
fn keyed(key: &[u8; OUT_LEN]) -> HmacSha256 {
    // HMAC pads a short key with zeros to the block size (FIPS 198-1), so the padded 64-byte
    // key is the same key; it lets us use the infallible `new` instead of `new_from_slice`.
    let mut padded = Key::<HmacSha256>::default();
    padded[..OUT_LEN].copy_from_slice(key);
    let mac = <HmacSha256 as KeyInit>::new(&padded);
    padded.as_mut_slice().zeroize();
    mac
}

fn finish(mac: HmacSha256) -> [u8; OUT_LEN] {
    mac.finalize().into_bytes().into()
}
