//! The secure boxes of postkey: Manufacturing, Oak, Steel, Brass and Tin (protocol §3, §7).
//!
//! Start from [`first_manufacturing_box`] and [`BlankBox`], which make a [`SecureBox`], and from
//! [`dispatch`], the one entry point every command goes through (the commands and answers are
//! typed in [`postkey_wire::command`]); [`runtime`] keeps boxes sealed at rest and enables them
//! from their custodians' shares.
//!
//! Key design decision: a box is sans-IO. It takes its state, a message, the time and its own
//! generator, and returns its answer with its state changed in memory; it never reads a clock,
//! a file or a socket. The runtime seals the state and writes it durably before any answer
//! leaves, so every protocol path can be tested in memory with a controlled clock, and the same
//! core serves the embedded default and boxes on other hosts. This crate never depends on the
//! archive or the server.

#![forbid(unsafe_code)]

mod blank;
mod brass;
mod ceremony;
mod core;
mod dispatch;
mod error;
mod image;
mod install;
mod manufacturing;
mod oak;
mod process;
pub mod runtime;
mod secure_box;
mod state;
mod steel;
pub mod tables;
mod tin;
mod token_keys;

pub use token_keys::TOKEN_KEY_CACHE_CAPACITY;

pub use blank::{BlankBox, Initialization, Rejected, SharePolicy};
pub use brass::Brass;
pub use ceremony::{FirstCeremony, first_manufacturing_box};
pub use core::{Health, Role, TypedBox};
pub use dispatch::{Host, NoHost, Stopped, call, dispatch};
pub use error::BoxError;
pub use manufacturing::{DELEGATED_BLOCK, DeliveryOutput, DomainKeySetPublic, Manufacturing};
pub use oak::{DEFAULT_KEY_ID_WINDOW, Oak};
pub use process::{
    BrassKeys, DomainProcess, OakKeys, ProcessKeys, Processes, Serving, SteelKeys, SubdomainKeys,
    TinKeys,
};
pub use secure_box::SecureBox;
pub use state::{MAX_SEALED_LEN, Seal, SealedState};
pub use steel::{InFlight, MAX_IN_FLIGHT, Steel};
pub use tin::{TIN_MAX_CHUNK_BYTES, TIN_MAX_KEYS, TIN_WINDOW_MONTHS, Tin, in_tin_window};
