//! The conformance suite: every rule of the [`Store`] contract as a test case, written once and
//! run against each backend.
//!
//! A backend's test file implements [`Harness`] (a fresh database per case, plus direct access
//! for the tamper cases) and invokes [`conformance_suite!`](crate::conformance_suite) for the
//! cases that need nothing else; the cases that take parameters (the concurrency ones, the crash
//! test) it calls itself. Cases fail by panicking, like any test.

// This module is a test suite: a failed expectation panics, which is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod chain;
mod concurrency;
mod crash;
mod fixtures;
mod keys;
mod registry;
pub mod workload;

use core::future::Future;

use postkey_wire::DomainId;

use crate::Store;

pub use chain::{
    chain_verification_finds_tampering, event_history_only_grows, sql_cannot_rewrite_history,
};
pub use concurrency::{
    concurrent_key_ids, key_ids_survive_restart, racing_sightings_one_first,
    racing_transitions_one_wins, sightings_answer_the_first,
};
pub use crash::{CRASH_BATCH, crash_check, crash_child, crash_parent};
pub use fixtures::*;
pub use keys::{
    batches_are_whole_or_nothing, every_disallowed_transition_is_refused,
    key_id_reservations_are_released_when_accounted, key_ids_allocate_and_burn,
    key_lifecycle_and_records, key_listing_and_lookups, kmc_reason_only_for_bad,
    set_once_fields_and_domain_separation, times_never_go_backwards,
    transition_only_from_expected_status,
};
pub use registry::{
    apply_is_whole_or_nothing, box_registry, bundles_and_transcripts,
    checkpoints_are_numbered_and_never_go_back, domains_and_subdomains, error_log,
    error_log_origins_are_logged_once, history_keeps_ids_from_being_given_twice,
    installation_is_made_once, rebaseline_is_guarded_and_chained, schema_version_is_checked,
    state_version_only_grows,
};

/// A change made behind the store's back, as someone with access to the database could.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tamper {
    /// Changes the note of one event.
    AlterEvent {
        /// The chain.
        chain: DomainId,
        /// The event.
        seq: u64,
    },
    /// Deletes one event.
    RemoveEvent {
        /// The chain.
        chain: DomainId,
        /// The event.
        seq: u64,
    },
    /// Sets a domain's key-ID counter back to `next`, as if IDs above it were never allocated.
    RewindKeyIds {
        /// The domain.
        domain: DomainId,
        /// The counter's new value.
        next: u64,
    },
    /// Deletes a box's row and its processes, as if it were never registered.
    ForgetBox(postkey_wire::BoxId),
    /// Swaps the positions (`seq`) of two events.
    SwapEvents {
        /// The chain.
        chain: DomainId,
        /// One event.
        a: u64,
        /// The other.
        b: u64,
    },
}

/// A backend under test: one fresh, empty database per harness.
pub trait Harness: Sync {
    /// The backend's store.
    type Store: Store + Clone + core::fmt::Debug + 'static;

    /// A new store handle, with its own connections, on this harness's database.
    fn open(&self) -> impl Future<Output = Self::Store> + Send;

    /// Applies `tamper` directly in the database, disabling whatever guards it first.
    fn tamper(&self, store: &Self::Store, tamper: Tamper) -> impl Future<Output = ()> + Send;

    /// Tries a plain SQL `UPDATE` and `DELETE` of event `seq` of `chain`, guards left in place;
    /// returns whether the database refused both.
    fn history_refuses_sql(
        &self,
        store: &Self::Store,
        chain: DomainId,
        seq: u64,
    ) -> impl Future<Output = bool> + Send;

    /// Marks the database as written by schema version `version` (to show the store refuses to
    /// open a newer one).
    fn set_schema_version(
        &self,
        store: &Self::Store,
        version: u32,
    ) -> impl Future<Output = ()> + Send;

    /// Opens a store on this harness's database, returning the error instead of panicking.
    fn try_open(&self) -> impl Future<Output = Result<Self::Store, crate::StoreError>> + Send;
}

/// Defines one `#[tokio::test]` per conformance case that takes only the harness. `$harness` is
/// an async function returning `Option<H>`; `None` skips the case (a backend that is not
/// configured here).
#[macro_export]
macro_rules! conformance_suite {
    ($harness:path) => {
        $crate::conformance_suite!(@cases $harness;
            domains_and_subdomains,
            installation_is_made_once,
            apply_is_whole_or_nothing,
            rebaseline_is_guarded_and_chained,
            history_keeps_ids_from_being_given_twice,
            box_registry,
            state_version_only_grows,
            bundles_and_transcripts,
            error_log,
            error_log_origins_are_logged_once,
            checkpoints_are_numbered_and_never_go_back,
            schema_version_is_checked,
            key_ids_allocate_and_burn,
            key_id_reservations_are_released_when_accounted,
            key_ids_survive_restart,
            key_lifecycle_and_records,
            key_listing_and_lookups,
            every_disallowed_transition_is_refused,
            transition_only_from_expected_status,
            kmc_reason_only_for_bad,
            set_once_fields_and_domain_separation,
            times_never_go_backwards,
            batches_are_whole_or_nothing,
            event_history_only_grows,
            chain_verification_finds_tampering,
            sql_cannot_rewrite_history,
            racing_transitions_one_wins,
            sightings_answer_the_first,
            racing_sightings_one_first
        );
    };
    (@cases $harness:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let Some(harness) = $harness().await {
                    $crate::conformance::$case(&harness).await;
                }
            }
        )*
    };
}
