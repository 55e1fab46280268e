//! The Tin box: it verifies postal tokens at remote sites from the per-period token keys a
//! Brass process exports to it (protocol §6.5). Its processes hold no domain secret, and exist
//! only for postal domains: [`crate::process::TinKeys`] refuses a delivery of any other kind.

use crate::process::{Processes, TinKeys, serving_role};

/// A Tin box's role: its processes, of postal domains only.
#[derive(Debug, Default)]
pub struct Tin {
    pub(crate) processes: Processes<TinKeys>,
}

serving_role!(Tin, TinKeys);
