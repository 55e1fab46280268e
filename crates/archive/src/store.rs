//! The [`Store`] trait: everything the KMS computer keeps, behind one interface.

use core::future::Future;

use postkey_wire::{
    BoxId, BoxType, DomainId, Isn, KeyId, MeterId, RecordType, StateVersion, SubdomainId, Timestamp,
};

use crate::{
    Applied, BoxRecord, BurnKeyId, BurnedKeyId, ChainEvent, ChainHead, ChainVerifier, Changes,
    DomainBundle, DomainProcess, DomainRecord, ErrorLogEntry, ErrorLogQuery, InstallationRecord,
    KeyFilter, KeyIdRange, KeyRecord, KeyUpdate, LoggedError, NewBox, NewBundle, NewCheckpoint,
    NewDomain, NewDomainProcess, NewKey, NewRecord, NewSubdomain, NewTranscript, Reservation,
    Sighting, StoreError, StoredCheckpoint, StoredRecord, SubdomainRecord, Subject, Transcript,
    TranscriptId, Transition,
};

/// Events read per round trip by [`Store::verify_chain`].
const VERIFY_PAGE: u32 = 1000;

/// The domain archive.
///
/// Every method is one transaction: it happens whole or not at all. Rules that protect the
/// system (the six status transitions, set-once fields, times that never go backwards, key IDs
/// allocated once and never reused, state versions that only grow) are enforced inside the
/// store, so no caller can break them. Nothing here updates or deletes an event or a signed
/// record: history is append-only. Each mutation appends its event to a hash chain (the key's
/// domain, or `ADMIN` for boxes, domains and ceremonies) in the same transaction.
///
/// Lookups answer `Ok(None)` for what does not exist; mutations refuse with
/// [`StoreError::NotFound`].
pub trait Store: Send + Sync {
    // --- the installation and changes of several kinds ---

    /// The installation this archive belongs to; `None` before the first ceremony.
    fn installation(
        &self,
    ) -> impl Future<Output = Result<Option<InstallationRecord>, StoreError>> + Send;

    /// Applies changes of several kinds in one transaction, in this order: the installation
    /// (once; [`StoreError::Duplicate`] after), domains, sub-domains, bundles, boxes, domain
    /// processes, state versions, transcripts (`ADMIN` chain), then burned key IDs, new keys,
    /// key updates and transitions (domain chains). Every rule of the single-kind methods holds
    /// per item; a failure rolls all of it back.
    fn apply(&self, changes: &Changes) -> impl Future<Output = Result<Applied, StoreError>> + Send;

    // --- domains ---

    /// Creates a domain (key IDs from 1, an empty chain); `ADMIN` chain event.
    fn create_domain(
        &self,
        domain: &NewDomain,
    ) -> impl Future<Output = Result<DomainRecord, StoreError>> + Send;

    /// A domain.
    fn domain(
        &self,
        id: &DomainId,
    ) -> impl Future<Output = Result<Option<DomainRecord>, StoreError>> + Send;

    /// Every domain, by ID.
    fn domains(&self) -> impl Future<Output = Result<Vec<DomainRecord>, StoreError>> + Send;

    /// Adds a sub-domain to its domain; `ADMIN` chain event.
    fn add_subdomain(
        &self,
        subdomain: &NewSubdomain,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The sub-domains of a domain, by ID.
    fn subdomains(
        &self,
        domain: &DomainId,
    ) -> impl Future<Output = Result<Vec<SubdomainRecord>, StoreError>> + Send;

    // --- the box registry ---

    /// Registers a box; a box ID is registered once, for ever. `ADMIN` chain event.
    fn register_box(&self, new: &NewBox) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A registered box.
    fn box_record(
        &self,
        id: BoxId,
    ) -> impl Future<Output = Result<Option<BoxRecord>, StoreError>> + Send;

    /// The registered boxes, of one type or all, by ID.
    fn boxes(
        &self,
        box_type: Option<BoxType>,
    ) -> impl Future<Output = Result<Vec<BoxRecord>, StoreError>> + Send;

    /// Records a domain process made in a box; once per box and domain. `ADMIN` chain event.
    fn add_domain_process(
        &self,
        process: &NewDomainProcess,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The domain processes of a box, by domain.
    fn domain_processes(
        &self,
        box_id: BoxId,
    ) -> impl Future<Output = Result<Vec<DomainProcess>, StoreError>> + Send;

    /// Records a state version a box presented. Refuses one below the highest recorded
    /// ([`StoreError::StateVersionWentBackwards`]); the same one again is fine.
    fn record_state_version(
        &self,
        box_id: BoxId,
        version: StateVersion,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The highest state version recorded for a box.
    fn highest_state_version(
        &self,
        box_id: BoxId,
    ) -> impl Future<Output = Result<StateVersion, StoreError>> + Send;

    /// The highest key ID of each domain that box `box_id` may have handled, as the archive shows
    /// it: keys an Oak box generated, keys generated for a Steel box (a `New` key's MI4 may have
    /// reached it before a stop, so every key counts); none for other types. What the
    /// re-baseline of a restored state is checked against.
    fn key_ids_seen(
        &self,
        box_id: BoxId,
    ) -> impl Future<Output = Result<Vec<(DomainId, KeyId)>, StoreError>> + Send;

    // --- domain key bundles ---

    /// Stores a domain key bundle; once per domain and version. `ADMIN` chain event.
    fn store_bundle(
        &self,
        bundle: &NewBundle,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One version of a domain's bundle.
    fn bundle(
        &self,
        domain: &DomainId,
        version: u32,
    ) -> impl Future<Output = Result<Option<DomainBundle>, StoreError>> + Send;

    /// The highest version of a domain's bundle.
    fn latest_bundle(
        &self,
        domain: &DomainId,
    ) -> impl Future<Output = Result<Option<DomainBundle>, StoreError>> + Send;

    // --- key IDs ---

    /// Allocates `count` (at least 1) consecutive key IDs of a domain, atomically: IDs are
    /// strictly increasing and never handed out twice, also across restarts and writers.
    fn allocate_key_ids(
        &self,
        domain: &DomainId,
        count: u32,
    ) -> impl Future<Output = Result<KeyIdRange, StoreError>> + Send;

    /// Allocates one key ID (MI0').
    fn allocate_key_id(
        &self,
        domain: &DomainId,
    ) -> impl Future<Output = Result<KeyId, StoreError>> + Send {
        async move { self.allocate_key_ids(domain, 1).await.map(|r| r.first) }
    }

    /// Allocates `count` key IDs as [`Store::allocate_key_ids`] does and, in the same
    /// transaction, reserves them for `holder` until a change releases them.
    fn reserve_key_ids(
        &self,
        domain: &DomainId,
        count: u32,
        holder: BoxId,
        time: Timestamp,
    ) -> impl Future<Output = Result<KeyIdRange, StoreError>> + Send;

    /// The reservations `holder` has not released, by domain and first ID.
    fn reservations(
        &self,
        holder: BoxId,
    ) -> impl Future<Output = Result<Vec<Reservation>, StoreError>> + Send;

    /// Records an allocated ID that never became a key; it never becomes one. Domain chain event.
    fn burn_key_id(&self, burn: &BurnKeyId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The burned IDs of a domain, by ID.
    fn burned_key_ids(
        &self,
        domain: &DomainId,
    ) -> impl Future<Output = Result<Vec<BurnedKeyId>, StoreError>> + Send;

    // --- master key records ---

    /// Creates keys `New` from their MI3 records, all in one transaction (a batch is whole or
    /// not at all; [`StoreError::Batch`] says which failed). Each ID must be allocated, not
    /// burned and not yet a key. Domain chain events.
    fn create_keys(
        &self,
        keys: &[NewKey],
    ) -> impl Future<Output = Result<Vec<KeyRecord>, StoreError>> + Send;

    /// Creates one key.
    fn create_key(
        &self,
        key: &NewKey,
    ) -> impl Future<Output = Result<KeyRecord, StoreError>> + Send {
        async move { single(self.create_keys(core::slice::from_ref(key)).await) }
    }

    /// Applies status transitions in one transaction, each a guarded update (it succeeds only if
    /// the key is still in `from`) with its chain event. Whole or not at all.
    fn transitions(
        &self,
        transitions: &[Transition],
    ) -> impl Future<Output = Result<Vec<KeyRecord>, StoreError>> + Send;

    /// Applies one status transition.
    fn transition(
        &self,
        transition: &Transition,
    ) -> impl Future<Output = Result<KeyRecord, StoreError>> + Send {
        async move { single(self.transitions(core::slice::from_ref(transition)).await) }
    }

    /// Sets fields of keys without a status change (and stores their records, if any), all in
    /// one transaction: whole or not at all ([`StoreError::Batch`] says which failed).
    fn update_keys(
        &self,
        updates: &[KeyUpdate],
    ) -> impl Future<Output = Result<Vec<KeyRecord>, StoreError>> + Send;

    /// Sets fields of one key.
    fn update_key(
        &self,
        update: &KeyUpdate,
    ) -> impl Future<Output = Result<KeyRecord, StoreError>> + Send {
        async move { single(self.update_keys(core::slice::from_ref(update)).await) }
    }

    /// A key record.
    fn key(
        &self,
        domain: &DomainId,
        key_id: KeyId,
    ) -> impl Future<Output = Result<Option<KeyRecord>, StoreError>> + Send;

    /// The key registered under an ISN in a sub-domain (for verification).
    fn key_by_isn(
        &self,
        subdomain: &SubdomainId,
        isn: &Isn,
    ) -> impl Future<Output = Result<Option<KeyRecord>, StoreError>> + Send;

    /// The keys registered under any of the given (sub-domain, ISN) pairs, by domain and key
    /// ID: one lookup for a batch (registration's ISN check, verification's key records).
    fn keys_by_isns(
        &self,
        isns: &[(SubdomainId, Isn)],
    ) -> impl Future<Output = Result<Vec<KeyRecord>, StoreError>> + Send;

    /// Keys matching a filter, by key ID.
    fn keys(
        &self,
        filter: &KeyFilter,
    ) -> impl Future<Output = Result<Vec<KeyRecord>, StoreError>> + Send;

    /// How many keys a domain has (for the key-ID accounting checked at every open).
    fn count_keys(&self, domain: &DomainId)
    -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Every key of the given meters, whatever their domain or status, by domain and key ID.
    fn keys_of_meters(
        &self,
        meters: &[MeterId],
    ) -> impl Future<Output = Result<Vec<KeyRecord>, StoreError>> + Send;

    // --- signed records ---

    /// Keeps a signed record with its key, exactly as received; storing the same bytes again
    /// changes nothing. Domain chain event.
    fn store_record(
        &self,
        record: &NewRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The records of a key, in the order stored (those that caused its events included).
    fn records(
        &self,
        domain: &DomainId,
        key_id: KeyId,
    ) -> impl Future<Output = Result<Vec<StoredRecord>, StoreError>> + Send;

    /// The records of type `record_type` of the given keys, each with its key, in the order
    /// stored: one read for a batch (registration reads each key's MI9 so).
    fn records_of_type(
        &self,
        keys: &[(DomainId, KeyId)],
        record_type: RecordType,
    ) -> impl Future<Output = Result<Vec<(DomainId, KeyId, StoredRecord)>, StoreError>> + Send;

    // --- the audit trail ---

    /// A chain's head row.
    fn chain_head(
        &self,
        chain: &DomainId,
    ) -> impl Future<Output = Result<Option<ChainHead>, StoreError>> + Send;

    /// Every chain's head, by chain.
    fn chain_heads(&self) -> impl Future<Output = Result<Vec<ChainHead>, StoreError>> + Send;

    /// Up to `limit` events of a chain with `seq` above `after`, in `seq` order.
    fn chain_events(
        &self,
        chain: &DomainId,
        after: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<ChainEvent>, StoreError>> + Send;

    /// The history of one key, oldest first.
    fn key_history(
        &self,
        domain: &DomainId,
        key_id: KeyId,
    ) -> impl Future<Output = Result<Vec<ChainEvent>, StoreError>> + Send;

    /// Recomputes a chain from its events and checks it against its head row.
    fn verify_chain(
        &self,
        chain: &DomainId,
    ) -> impl Future<Output = Result<ChainHead, StoreError>> + Send {
        async move {
            // Read the head first: events appended meanwhile lie past its count and are ignored.
            let head = self
                .chain_head(chain)
                .await?
                .ok_or_else(|| StoreError::NotFound(Subject::Chain(chain.clone())))?;
            let mut verifier = ChainVerifier::new(head);
            while !verifier.is_complete() {
                let page = self.chain_events(chain, verifier.next_seq() - 1, VERIFY_PAGE).await?;
                if page.is_empty() {
                    break;
                }
                page.iter().try_for_each(|e| verifier.feed(e))?;
            }
            verifier.finish()
        }
    }

    // --- checkpoints ---

    /// Keeps a signed checkpoint of a chain: its number must follow the chain's last kept and
    /// its count be no smaller ([`StoreError::Mismatch`] otherwise). `ADMIN` chain event.
    fn store_checkpoint(
        &self,
        checkpoint: &NewCheckpoint,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to `limit` checkpoints of a chain numbered above `after`, by number.
    fn checkpoints(
        &self,
        chain: &DomainId,
        after: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<StoredCheckpoint>, StoreError>> + Send;

    /// The newest checkpoint kept of a chain.
    fn latest_checkpoint(
        &self,
        chain: &DomainId,
    ) -> impl Future<Output = Result<Option<StoredCheckpoint>, StoreError>> + Send;

    // --- verification's duplicate memory ---

    /// Records the first sighting of each good mailpiece, in order, in one transaction that is
    /// durable before this returns, with one event of the `SIGHTS` chain for the sightings it
    /// added ([`Sighting::batch_event`]), which each added row names. For each: `None` if it is
    /// the first sighting of its (meter, piece count), now recorded; else the first sighting recorded, by another
    /// verifier, an earlier batch or an earlier entry of this one. The unique (meter, piece
    /// count) decides which of two verifiers racing on one mailpiece sees it first. Rows are
    /// only added: none is ever updated or deleted. Taken whole: a verifier's batch is tens of
    /// thousands, handed to the archive's writer without a copy.
    fn record_sightings(
        &self,
        sightings: Vec<Sighting>,
    ) -> impl Future<Output = Result<Vec<Option<Sighting>>, StoreError>> + Send;

    /// The sightings the event `seq` of the `SIGHTS` chain added, in (meter, count) order (for
    /// the audit).
    fn sightings_of_event(
        &self,
        seq: u64,
    ) -> impl Future<Output = Result<Vec<Sighting>, StoreError>> + Send;

    /// How many sightings name an event of the `SIGHTS` chain up to `seq` (for the audit: a
    /// row added by hand names none, or one whose digest it breaks).
    fn count_sightings(
        &self,
        up_to_seq: u64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    // --- the error log ---

    /// Writes an entry to the error log, and its event to the error log's chain (`ERRORS`).
    fn log_error(
        &self,
        entry: &ErrorLogEntry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Writes entries to the error log in one transaction, skipping each whose `origin` the log
    /// holds already; returns how many were written.
    fn log_errors(
        &self,
        entries: &[ErrorLogEntry],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Up to `limit` entries of the error log numbered above `after`, oldest first (for audits).
    fn errors_in_order(
        &self,
        after: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<LoggedError>, StoreError>> + Send;

    /// Entries of the error log, newest first.
    fn error_log(
        &self,
        query: &ErrorLogQuery,
    ) -> impl Future<Output = Result<Vec<LoggedError>, StoreError>> + Send;

    // --- ceremony transcripts ---

    /// Keeps a ceremony transcript and gives it a number. `ADMIN` chain event.
    fn store_transcript(
        &self,
        transcript: &NewTranscript,
    ) -> impl Future<Output = Result<TranscriptId, StoreError>> + Send;

    /// A transcript.
    fn transcript(
        &self,
        id: TranscriptId,
    ) -> impl Future<Output = Result<Option<Transcript>, StoreError>> + Send;

    /// The transcripts about one box, or all, by number.
    fn transcripts(
        &self,
        box_id: Option<BoxId>,
    ) -> impl Future<Output = Result<Vec<Transcript>, StoreError>> + Send;
}

/// The one result of a batch of one, without the batch wrapper on its error.
fn single(result: Result<Vec<KeyRecord>, StoreError>) -> Result<KeyRecord, StoreError> {
    match result {
        Ok(mut v) => v.pop().ok_or(StoreError::Invalid("empty batch result")),
        Err(StoreError::Batch { error, .. }) => Err(*error),
        Err(e) => Err(e),
    }
}
