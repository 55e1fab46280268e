//! [`Store`] for [`SqliteStore`]: each write is one `BEGIN IMMEDIATE` transaction on the writer;
//! each read runs on a reader connection.

use postkey_archive::backend::to_i64;
use postkey_archive::{
    Applied, BoxRecord, BurnKeyId, BurnedKeyId, ChainEvent, ChainHead, Changes, DomainBundle,
    DomainProcess, DomainRecord, ErrorLogEntry, ErrorLogQuery, InstallationRecord, KeyFilter,
    KeyIdRange, KeyRecord, KeyUpdate, LoggedError, NewBox, NewBundle, NewCheckpoint, NewDomain,
    NewDomainProcess, NewKey, NewRecord, NewSubdomain, NewTranscript, Reservation, Sighting, Store,
    StoreError, StoredCheckpoint, StoredRecord, SubdomainRecord, Transcript, TranscriptId,
    Transition,
};
use postkey_wire::{
    BoxId, BoxType, DomainId, Isn, KeyId, MeterId, RecordType, StateVersion, SubdomainId, Timestamp,
};
use rusqlite::params;

use crate::conn::{Db, SqliteStore};
use crate::rows::{self, BOX_COLUMNS, BUNDLE_COLUMNS, DOMAIN_COLUMNS, TRANSCRIPT_COLUMNS};
use crate::{chain, keys, registry};

impl Store for SqliteStore {
    async fn installation(&self) -> Result<Option<InstallationRecord>, StoreError> {
        self.read_now(registry::installation)
    }

    async fn apply(&self, changes: &Changes) -> Result<Applied, StoreError> {
        let c = changes.clone();
        self.write(move |tx| {
            if let Some(i) = &c.installation {
                registry::create_installation(tx, i)?;
            }
            for d in &c.domains {
                registry::create_domain(tx, d)?;
            }
            for s in &c.subdomains {
                registry::add_subdomain(tx, s)?;
            }
            for b in &c.bundles {
                registry::store_bundle(tx, b)?;
            }
            for b in &c.boxes {
                registry::register_box(tx, b)?;
            }
            for p in &c.processes {
                registry::add_domain_process(tx, p)?;
            }
            for r in &c.rebaselines {
                registry::rebaseline(tx, r)?;
            }
            for v in &c.versions {
                registry::record_state_version(tx, v.box_id, v.version)?;
            }
            let mut transcripts = Vec::with_capacity(c.transcripts.len());
            for t in &c.transcripts {
                transcripts.push(registry::store_transcript(tx, t)?);
            }
            for b in &c.burns {
                keys::burn(tx, b)?;
            }
            if !c.new_keys.is_empty() {
                keys::create_keys(tx, &c.new_keys)?;
            }
            for r in &c.released {
                keys::release(tx, r)?;
            }
            if !c.updates.is_empty() {
                keys::updates(tx, &c.updates)?;
            }
            if !c.transitions.is_empty() {
                keys::transitions(tx, &c.transitions)?;
            }
            Ok(Applied { transcripts })
        })
        .await
    }

    async fn create_domain(&self, domain: &NewDomain) -> Result<DomainRecord, StoreError> {
        let d = domain.clone();
        self.write(move |tx| registry::create_domain(tx, &d)).await
    }

    async fn domain(&self, id: &DomainId) -> Result<Option<DomainRecord>, StoreError> {
        self.read_now(|c| {
            let sql = format!("SELECT {DOMAIN_COLUMNS} FROM domains WHERE id = ?1");
            rows::first(c.prepare_cached(&sql).db()?, [id.as_str()], rows::domain)
        })
    }

    async fn domains(&self) -> Result<Vec<DomainRecord>, StoreError> {
        self.read(|c| {
            let sql = format!("SELECT {DOMAIN_COLUMNS} FROM domains ORDER BY id");
            rows::all(c.prepare_cached(&sql).db()?, [], rows::domain)
        })
        .await
    }

    async fn add_subdomain(&self, subdomain: &NewSubdomain) -> Result<(), StoreError> {
        let s = subdomain.clone();
        self.write(move |tx| registry::add_subdomain(tx, &s)).await
    }

    async fn subdomains(&self, domain: &DomainId) -> Result<Vec<SubdomainRecord>, StoreError> {
        let d = domain.clone();
        self.read(move |c| {
            let sql = "SELECT id, created FROM subdomains WHERE domain = ?1 ORDER BY id";
            rows::all(c.prepare_cached(sql).db()?, [d.as_str()], rows::subdomain)
        })
        .await
    }

    async fn register_box(&self, new: &NewBox) -> Result<(), StoreError> {
        let b = new.clone();
        self.write(move |tx| registry::register_box(tx, &b)).await
    }

    async fn box_record(&self, id: BoxId) -> Result<Option<BoxRecord>, StoreError> {
        self.read_now(|c| {
            let sql = format!("SELECT {BOX_COLUMNS} FROM boxes WHERE id = ?1");
            rows::first(c.prepare_cached(&sql).db()?, [id.to_string()], rows::box_record)
        })
    }

    async fn boxes(&self, box_type: Option<BoxType>) -> Result<Vec<BoxRecord>, StoreError> {
        self.read(move |c| {
            let letter = box_type.map(|t| t.letter().to_string());
            let sql = format!(
                "SELECT {BOX_COLUMNS} FROM boxes WHERE ?1 IS NULL OR box_type = ?1 ORDER BY box_type, id"
            );
            rows::all(c.prepare_cached(&sql).db()?, [letter], rows::box_record)
        })
        .await
    }

    async fn add_domain_process(&self, process: &NewDomainProcess) -> Result<(), StoreError> {
        let p = process.clone();
        self.write(move |tx| registry::add_domain_process(tx, &p)).await
    }

    async fn domain_processes(&self, box_id: BoxId) -> Result<Vec<DomainProcess>, StoreError> {
        self.read(move |c| {
            let sql = "SELECT box_id, domain, subdomains, record_type, record, created \
                       FROM domain_processes WHERE box_id = ?1 ORDER BY domain";
            rows::all(c.prepare_cached(sql).db()?, [box_id.to_string()], rows::domain_process)
        })
        .await
    }

    async fn record_state_version(
        &self,
        box_id: BoxId,
        version: StateVersion,
    ) -> Result<(), StoreError> {
        self.write(move |tx| registry::record_state_version(tx, box_id, version)).await
    }

    async fn highest_state_version(&self, box_id: BoxId) -> Result<StateVersion, StoreError> {
        self.read_now(|c| registry::state_version(c, box_id))
    }

    async fn key_ids_seen(&self, box_id: BoxId) -> Result<Vec<(DomainId, KeyId)>, StoreError> {
        self.read_now(|c| registry::key_ids_seen(c, box_id))
    }

    async fn store_bundle(&self, bundle: &NewBundle) -> Result<(), StoreError> {
        let b = bundle.clone();
        self.write(move |tx| registry::store_bundle(tx, &b)).await
    }

    async fn bundle(
        &self,
        domain: &DomainId,
        version: u32,
    ) -> Result<Option<DomainBundle>, StoreError> {
        self.read_now(|c| {
            let sql =
                format!("SELECT {BUNDLE_COLUMNS} FROM bundles WHERE domain = ?1 AND version = ?2");
            rows::first(
                c.prepare_cached(&sql).db()?,
                params![domain.as_str(), version],
                rows::bundle,
            )
        })
    }

    async fn latest_bundle(&self, domain: &DomainId) -> Result<Option<DomainBundle>, StoreError> {
        self.read_now(|c| {
            let sql = format!(
                "SELECT {BUNDLE_COLUMNS} FROM bundles WHERE domain = ?1 ORDER BY version DESC LIMIT 1"
            );
            rows::first(c.prepare_cached(&sql).db()?, [domain.as_str()], rows::bundle)
        })
    }

    async fn allocate_key_ids(
        &self,
        domain: &DomainId,
        count: u32,
    ) -> Result<KeyIdRange, StoreError> {
        let d = domain.clone();
        self.write(move |tx| keys::allocate(tx, &d, count)).await
    }

    async fn reserve_key_ids(
        &self,
        domain: &DomainId,
        count: u32,
        holder: BoxId,
        time: Timestamp,
    ) -> Result<KeyIdRange, StoreError> {
        let d = domain.clone();
        self.write(move |tx| keys::reserve(tx, &d, count, holder, time)).await
    }

    async fn reservations(&self, holder: BoxId) -> Result<Vec<Reservation>, StoreError> {
        self.read(move |c| {
            let sql = "SELECT domain, first_id, last_id, holder, time FROM key_id_reservations \
                       WHERE holder = ?1 ORDER BY domain, first_id";
            rows::all(c.prepare_cached(sql).db()?, [holder.to_string()], rows::reservation)
        })
        .await
    }

    async fn burn_key_id(&self, burn: &BurnKeyId) -> Result<(), StoreError> {
        let b = burn.clone();
        self.write(move |tx| keys::burn(tx, &b)).await
    }

    async fn burned_key_ids(&self, domain: &DomainId) -> Result<Vec<BurnedKeyId>, StoreError> {
        let d = domain.clone();
        self.read(move |c| {
            let sql = "SELECT domain, key_id, reason, time FROM burned_key_ids WHERE domain = ?1 ORDER BY key_id";
            rows::all(c.prepare_cached(sql).db()?, [d.as_str()], rows::burned)
        })
        .await
    }

    async fn create_keys(&self, new: &[NewKey]) -> Result<Vec<KeyRecord>, StoreError> {
        let k = new.to_vec();
        self.write(move |tx| keys::create_keys(tx, &k)).await
    }

    async fn transitions(&self, transitions: &[Transition]) -> Result<Vec<KeyRecord>, StoreError> {
        let t = transitions.to_vec();
        self.write(move |tx| keys::transitions(tx, &t)).await
    }

    async fn update_keys(&self, updates: &[KeyUpdate]) -> Result<Vec<KeyRecord>, StoreError> {
        let u = updates.to_vec();
        self.write(move |tx| keys::updates(tx, &u)).await
    }

    async fn key(&self, domain: &DomainId, key_id: KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.read_now(|c| keys::read_key(c, domain, key_id))
    }

    async fn key_by_isn(
        &self,
        subdomain: &SubdomainId,
        isn: &Isn,
    ) -> Result<Option<KeyRecord>, StoreError> {
        self.read_now(|c| keys::read_key_by_isn(c, subdomain, isn))
    }

    async fn keys_by_isns(
        &self,
        isns: &[(SubdomainId, Isn)],
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let isns = isns.to_vec();
        self.read(move |c| keys::by_isns(c, &isns)).await
    }

    async fn keys(&self, filter: &KeyFilter) -> Result<Vec<KeyRecord>, StoreError> {
        let f = filter.clone();
        self.read(move |c| keys::list(c, &f)).await
    }

    async fn count_keys(&self, domain: &DomainId) -> Result<u64, StoreError> {
        let d = domain.clone();
        self.read(move |c| {
            let n: i64 = c
                .prepare_cached("SELECT count(*) FROM keys WHERE domain = ?1")
                .db()?
                .query_row([d.as_str()], |r| r.get(0))
                .db()?;
            postkey_archive::backend::to_u64(n, "key count")
        })
        .await
    }

    async fn keys_of_meters(&self, meters: &[MeterId]) -> Result<Vec<KeyRecord>, StoreError> {
        let m = meters.to_vec();
        self.read(move |c| keys::of_meters(c, &m)).await
    }

    async fn store_record(&self, record: &NewRecord) -> Result<(), StoreError> {
        let r = record.clone();
        self.write(move |tx| keys::store_record(tx, &r)).await
    }

    async fn records(
        &self,
        domain: &DomainId,
        key_id: KeyId,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let d = domain.clone();
        self.read(move |c| keys::records(c, &d, key_id)).await
    }

    async fn records_of_type(
        &self,
        keys: &[(DomainId, KeyId)],
        record_type: RecordType,
    ) -> Result<Vec<(DomainId, KeyId, StoredRecord)>, StoreError> {
        let keys = keys.to_vec();
        self.read(move |c| keys::records_of_type(c, &keys, record_type)).await
    }

    async fn chain_head(&self, chain: &DomainId) -> Result<Option<ChainHead>, StoreError> {
        self.read_now(|c| chain::read_head(c, chain))
    }

    async fn chain_heads(&self) -> Result<Vec<ChainHead>, StoreError> {
        self.read(chain::heads).await
    }

    async fn chain_events(
        &self,
        chain: &DomainId,
        after: u64,
        limit: u32,
    ) -> Result<Vec<ChainEvent>, StoreError> {
        let d = chain.clone();
        self.read(move |c| chain::events(c, &d, after, limit)).await
    }

    async fn key_history(
        &self,
        domain: &DomainId,
        key_id: KeyId,
    ) -> Result<Vec<ChainEvent>, StoreError> {
        let d = domain.clone();
        self.read(move |c| chain::key_history(c, &d, key_id)).await
    }

    async fn record_sightings(
        &self,
        sightings: Vec<Sighting>,
    ) -> Result<Vec<Option<Sighting>>, StoreError> {
        self.write(move |tx| registry::record_sightings(tx, &sightings)).await
    }

    async fn sightings_of_event(&self, seq: u64) -> Result<Vec<Sighting>, StoreError> {
        self.read(move |c| registry::sightings_of_event(c, seq)).await
    }

    async fn count_sightings(&self, up_to_seq: u64) -> Result<u64, StoreError> {
        self.read(move |c| {
            let n: i64 = c
                .prepare_cached(
                    // A row naming no stamp counts too: the audit then finds more rows than
                    // the events name.
                    "SELECT count(*) FROM sightings s LEFT JOIN sighting_stamps t \
                     ON t.id = s.stamp WHERE t.seq IS NULL OR t.seq <= ?1",
                )
                .db()?
                .query_row([to_i64(up_to_seq)?], |r| r.get(0))
                .db()?;
            postkey_archive::backend::to_u64(n, "sighting count")
        })
        .await
    }

    async fn log_error(&self, entry: &ErrorLogEntry) -> Result<(), StoreError> {
        let e = entry.clone();
        self.write(move |tx| registry::log_error(tx, &e).map(drop)).await
    }

    async fn log_errors(&self, entries: &[ErrorLogEntry]) -> Result<u64, StoreError> {
        let entries = entries.to_vec();
        self.write(move |tx| {
            let mut written = 0;
            for e in &entries {
                written += u64::from(registry::log_error(tx, e)?);
            }
            Ok(written)
        })
        .await
    }

    async fn errors_in_order(
        &self,
        after: u64,
        limit: u32,
    ) -> Result<Vec<LoggedError>, StoreError> {
        self.read(move |c| registry::errors_in_order(c, after, limit)).await
    }

    async fn error_log(&self, query: &ErrorLogQuery) -> Result<Vec<LoggedError>, StoreError> {
        let q = query.clone();
        self.read(move |c| registry::error_log(c, &q)).await
    }

    async fn store_checkpoint(&self, checkpoint: &NewCheckpoint) -> Result<(), StoreError> {
        let c = checkpoint.clone();
        self.write(move |tx| registry::store_checkpoint(tx, &c)).await
    }

    async fn checkpoints(
        &self,
        chain: &DomainId,
        after: u64,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let chain = chain.clone();
        self.read(move |c| registry::checkpoints(c, &chain, after, limit)).await
    }

    async fn latest_checkpoint(
        &self,
        chain: &DomainId,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        let chain = chain.clone();
        self.read(move |c| registry::latest_checkpoint(c, &chain)).await
    }

    async fn store_transcript(
        &self,
        transcript: &NewTranscript,
    ) -> Result<TranscriptId, StoreError> {
        let t = transcript.clone();
        self.write(move |tx| registry::store_transcript(tx, &t)).await
    }

    async fn transcript(&self, id: TranscriptId) -> Result<Option<Transcript>, StoreError> {
        self.read_now(|c| {
            let sql = format!("SELECT {TRANSCRIPT_COLUMNS} FROM transcripts WHERE id = ?1");
            rows::first(c.prepare_cached(&sql).db()?, [to_i64(id.0)?], rows::transcript)
        })
    }

    async fn transcripts(&self, box_id: Option<BoxId>) -> Result<Vec<Transcript>, StoreError> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {TRANSCRIPT_COLUMNS} FROM transcripts WHERE ?1 IS NULL OR box_id = ?1 ORDER BY id"
            );
            rows::all(c.prepare_cached(&sql).db()?, [box_id.map(|b| b.to_string())], rows::transcript)
        })
        .await
    }
}
