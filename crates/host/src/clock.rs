//! The host's clock: boxes are sans-IO and are handed the time.

use postkey_wire::Timestamp;

/// The current UTC time.
pub fn now() -> Timestamp {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros().min(u128::from(u64::MAX)) as u64)
        .unwrap_or(0);
    Timestamp::from_unix_micros(micros)
}
