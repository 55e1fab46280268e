//! [`Store`] for [`PgStore`]: each write is one transaction on a pooled connection; each read
//! one statement.

use deadpool_postgres::GenericClient;
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
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::conn::{Pg, PgStore, in_tx};
use crate::rows::{
    self, BOX_COLUMNS, BUNDLE_COLUMNS, CHECKPOINT_COLUMNS, DOMAIN_COLUMNS, PROCESS_COLUMNS,
    TRANSCRIPT_COLUMNS,
};
use crate::{chain, keys, registry};

impl PgStore {
    async fn query_opt<T>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        read: fn(&Row) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.pg()?;
        client.query_opt(&stmt, params).await.pg()?.as_ref().map(read).transpose()
    }

    async fn query_all<T>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        read: fn(&Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.pg()?;
        rows::all(&client.query(&stmt, params).await.pg()?, read)
    }
}

/// The changes of [`Store::apply`], in its order, in transaction `tx`.
async fn apply_in(
    tx: &deadpool_postgres::Transaction<'_>,
    c: &Changes,
) -> Result<Applied, StoreError> {
    if let Some(i) = &c.installation {
        registry::create_installation(tx, i).await?;
    }
    for d in &c.domains {
        registry::create_domain(tx, d).await?;
    }
    for s in &c.subdomains {
        registry::add_subdomain(tx, s).await?;
    }
    for b in &c.bundles {
        registry::store_bundle(tx, b).await?;
    }
    for b in &c.boxes {
        registry::register_box(tx, b).await?;
    }
    for p in &c.processes {
        registry::add_domain_process(tx, p).await?;
    }
    for r in &c.rebaselines {
        registry::rebaseline(tx, r).await?;
    }
    for v in &c.versions {
        registry::record_state_version(tx, v.box_id, v.version).await?;
    }
    let mut transcripts = Vec::with_capacity(c.transcripts.len());
    for t in &c.transcripts {
        transcripts.push(registry::store_transcript(tx, t).await?);
    }
    for b in &c.burns {
        keys::burn(tx, b).await?;
    }
    if !c.new_keys.is_empty() {
        keys::create_keys(tx, &c.new_keys).await?;
    }
    for r in &c.released {
        keys::release(tx, r).await?;
    }
    if !c.updates.is_empty() {
        keys::updates(tx, &c.updates).await?;
    }
    if !c.transitions.is_empty() {
        keys::transitions(tx, &c.transitions).await?;
    }
    Ok(Applied { transcripts })
}

impl Store for PgStore {
    async fn installation(&self) -> Result<Option<InstallationRecord>, StoreError> {
        registry::installation(&self.client().await?).await
    }

    async fn apply(&self, changes: &Changes) -> Result<Applied, StoreError> {
        in_tx!(self, |tx| apply_in(&tx, changes))
    }

    async fn create_domain(&self, domain: &NewDomain) -> Result<DomainRecord, StoreError> {
        in_tx!(self, |tx| registry::create_domain(&tx, domain))
    }

    async fn domain(&self, id: &DomainId) -> Result<Option<DomainRecord>, StoreError> {
        let sql = format!("SELECT {DOMAIN_COLUMNS} FROM domains WHERE id = $1");
        self.query_opt(&sql, &[&id.as_str()], rows::domain).await
    }

    async fn domains(&self) -> Result<Vec<DomainRecord>, StoreError> {
        let sql = format!("SELECT {DOMAIN_COLUMNS} FROM domains ORDER BY id");
        self.query_all(&sql, &[], rows::domain).await
    }

    async fn add_subdomain(&self, subdomain: &NewSubdomain) -> Result<(), StoreError> {
        in_tx!(self, |tx| registry::add_subdomain(&tx, subdomain))
    }

    async fn subdomains(&self, domain: &DomainId) -> Result<Vec<SubdomainRecord>, StoreError> {
        let sql = "SELECT id, created FROM subdomains WHERE domain = $1 ORDER BY id";
        self.query_all(sql, &[&domain.as_str()], rows::subdomain).await
    }

    async fn register_box(&self, new: &NewBox) -> Result<(), StoreError> {
        in_tx!(self, |tx| registry::register_box(&tx, new))
    }

    async fn box_record(&self, id: BoxId) -> Result<Option<BoxRecord>, StoreError> {
        let sql = format!("SELECT {BOX_COLUMNS} FROM boxes WHERE id = $1");
        self.query_opt(&sql, &[&id.to_string()], rows::box_record).await
    }

    async fn boxes(&self, box_type: Option<BoxType>) -> Result<Vec<BoxRecord>, StoreError> {
        let letter = box_type.map(|t| t.letter().to_string());
        let sql = format!(
            "SELECT {BOX_COLUMNS} FROM boxes WHERE $1::TEXT IS NULL OR box_type = $1 ORDER BY box_type, id"
        );
        self.query_all(&sql, &[&letter], rows::box_record).await
    }

    async fn add_domain_process(&self, process: &NewDomainProcess) -> Result<(), StoreError> {
        in_tx!(self, |tx| registry::add_domain_process(&tx, process))
    }

    async fn domain_processes(&self, box_id: BoxId) -> Result<Vec<DomainProcess>, StoreError> {
        let sql = format!(
            "SELECT {PROCESS_COLUMNS} FROM domain_processes WHERE box_id = $1 ORDER BY domain"
        );
        self.query_all(&sql, &[&box_id.to_string()], rows::domain_process).await
    }

    async fn record_state_version(
        &self,
        box_id: BoxId,
        version: StateVersion,
    ) -> Result<(), StoreError> {
        registry::record_state_version(&self.client().await?, box_id, version).await
    }

    async fn highest_state_version(&self, box_id: BoxId) -> Result<StateVersion, StoreError> {
        registry::state_version(&self.client().await?, box_id).await
    }

    async fn key_ids_seen(&self, box_id: BoxId) -> Result<Vec<(DomainId, KeyId)>, StoreError> {
        registry::key_ids_seen(&self.client().await?, box_id).await
    }

    async fn store_bundle(&self, bundle: &NewBundle) -> Result<(), StoreError> {
        in_tx!(self, |tx| registry::store_bundle(&tx, bundle))
    }

    async fn bundle(
        &self,
        domain: &DomainId,
        version: u32,
    ) -> Result<Option<DomainBundle>, StoreError> {
        let sql =
            format!("SELECT {BUNDLE_COLUMNS} FROM bundles WHERE domain = $1 AND version = $2");
        self.query_opt(&sql, &[&domain.as_str(), &i64::from(version)], rows::bundle).await
    }

    async fn latest_bundle(&self, domain: &DomainId) -> Result<Option<DomainBundle>, StoreError> {
        let sql = format!(
            "SELECT {BUNDLE_COLUMNS} FROM bundles WHERE domain = $1 ORDER BY version DESC LIMIT 1"
        );
        self.query_opt(&sql, &[&domain.as_str()], rows::bundle).await
    }

    async fn allocate_key_ids(
        &self,
        domain: &DomainId,
        count: u32,
    ) -> Result<KeyIdRange, StoreError> {
        in_tx!(self, |tx| keys::allocate(&tx, domain, count))
    }

    async fn reserve_key_ids(
        &self,
        domain: &DomainId,
        count: u32,
        holder: BoxId,
        time: Timestamp,
    ) -> Result<KeyIdRange, StoreError> {
        in_tx!(self, |tx| keys::reserve(&tx, domain, count, holder, time))
    }

    async fn reservations(&self, holder: BoxId) -> Result<Vec<Reservation>, StoreError> {
        let sql = "SELECT domain, first_id, last_id, holder, time FROM key_id_reservations \
                   WHERE holder = $1 ORDER BY domain, first_id";
        self.query_all(sql, &[&holder.to_string()], rows::reservation).await
    }

    async fn burn_key_id(&self, burn: &BurnKeyId) -> Result<(), StoreError> {
        in_tx!(self, |tx| keys::burn(&tx, burn))
    }

    async fn burned_key_ids(&self, domain: &DomainId) -> Result<Vec<BurnedKeyId>, StoreError> {
        let sql = "SELECT domain, key_id, reason, time FROM burned_key_ids WHERE domain = $1 ORDER BY key_id";
        self.query_all(sql, &[&domain.as_str()], rows::burned).await
    }

    async fn create_keys(&self, new: &[NewKey]) -> Result<Vec<KeyRecord>, StoreError> {
        in_tx!(self, |tx| keys::create_keys(&tx, new))
    }

    async fn transitions(&self, transitions: &[Transition]) -> Result<Vec<KeyRecord>, StoreError> {
        in_tx!(self, |tx| keys::transitions(&tx, transitions))
    }

    async fn update_keys(&self, updates: &[KeyUpdate]) -> Result<Vec<KeyRecord>, StoreError> {
        in_tx!(self, |tx| keys::updates(&tx, updates))
    }

    async fn key(&self, domain: &DomainId, key_id: KeyId) -> Result<Option<KeyRecord>, StoreError> {
        keys::read_key(&self.client().await?, domain, key_id).await
    }

    async fn key_by_isn(
        &self,
        subdomain: &SubdomainId,
        isn: &Isn,
    ) -> Result<Option<KeyRecord>, StoreError> {
        keys::read_key_by_isn(&self.client().await?, subdomain, isn).await
    }

    async fn keys_by_isns(
        &self,
        isns: &[(SubdomainId, Isn)],
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let subdomains: Vec<String> = isns.iter().map(|(s, _)| s.to_string()).collect();
        let isns: Vec<&str> = isns.iter().map(|(_, i)| i.as_str()).collect();
        let sql = format!(
            "SELECT {} FROM keys WHERE (subdomain, isn) IN \
             (SELECT * FROM unnest($1::text[], $2::text[])) ORDER BY domain, key_id",
            rows::KEY_COLUMNS
        );
        self.query_all(&sql, &[&subdomains, &isns], rows::key).await
    }

    async fn keys(&self, filter: &KeyFilter) -> Result<Vec<KeyRecord>, StoreError> {
        keys::list(&self.client().await?, filter).await
    }

    async fn count_keys(&self, domain: &DomainId) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let stmt =
            client.prepare_cached("SELECT count(*) FROM keys WHERE domain = $1").await.pg()?;
        let row = client.query_one(&stmt, &[&domain.as_str()]).await.pg()?;
        let n: i64 = row.try_get(0).pg()?;
        postkey_archive::backend::to_u64(n, "key count")
    }

    async fn keys_of_meters(&self, meters: &[MeterId]) -> Result<Vec<KeyRecord>, StoreError> {
        let ids: Vec<String> = meters.iter().map(ToString::to_string).collect();
        let sql = format!(
            "SELECT {} FROM keys WHERE meter_id = ANY($1) ORDER BY domain, key_id",
            rows::KEY_COLUMNS
        );
        self.query_all(&sql, &[&ids], rows::key).await
    }

    async fn store_record(&self, record: &NewRecord) -> Result<(), StoreError> {
        in_tx!(self, |tx| keys::store_record(&tx, record))
    }

    async fn records(
        &self,
        domain: &DomainId,
        key_id: KeyId,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        keys::records(&self.client().await?, domain, key_id).await
    }

    async fn records_of_type(
        &self,
        keys: &[(DomainId, KeyId)],
        record_type: RecordType,
    ) -> Result<Vec<(DomainId, KeyId, StoredRecord)>, StoreError> {
        let domains: Vec<&str> = keys.iter().map(|(d, _)| d.as_str()).collect();
        let ids = keys.iter().map(|(_, k)| to_i64(k.get())).collect::<Result<Vec<i64>, _>>()?;
        let sql = "SELECT record_type, digest, bytes, stored, domain, key_id FROM records \
             WHERE record_type = $3 AND (domain, key_id) IN \
             (SELECT * FROM unnest($1::text[], $2::bigint[])) ORDER BY id";
        self.query_all(sql, &[&domains, &ids, &i64::from(record_type.0)], rows::keyed_record).await
    }

    async fn chain_head(&self, chain: &DomainId) -> Result<Option<ChainHead>, StoreError> {
        chain::read_head(&self.client().await?, chain).await
    }

    async fn chain_heads(&self) -> Result<Vec<ChainHead>, StoreError> {
        chain::heads(&self.client().await?).await
    }

    async fn chain_events(
        &self,
        chain: &DomainId,
        after: u64,
        limit: u32,
    ) -> Result<Vec<ChainEvent>, StoreError> {
        chain::events(&self.client().await?, chain, after, limit).await
    }

    async fn key_history(
        &self,
        domain: &DomainId,
        key_id: KeyId,
    ) -> Result<Vec<ChainEvent>, StoreError> {
        chain::key_history(&self.client().await?, domain, key_id).await
    }

    async fn log_error(&self, entry: &ErrorLogEntry) -> Result<(), StoreError> {
        in_tx!(self, |tx| registry::log_error(&tx, entry)).map(drop)
    }

    async fn errors_in_order(
        &self,
        after: u64,
        limit: u32,
    ) -> Result<Vec<LoggedError>, StoreError> {
        registry::errors_in_order(&self.client().await?, after, limit).await
    }

    async fn record_sightings(
        &self,
        sightings: Vec<Sighting>,
    ) -> Result<Vec<Option<Sighting>>, StoreError> {
        in_tx!(self, |tx| registry::record_sightings(&tx, &sightings))
    }

    async fn sightings_of_event(&self, seq: u64) -> Result<Vec<Sighting>, StoreError> {
        registry::sightings_of_event(&self.client().await?, seq).await
    }

    async fn count_sightings(&self, up_to_seq: u64) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let stmt =
            client.prepare_cached("SELECT count(*) FROM sightings WHERE seq <= $1").await.pg()?;
        let row = client.query_one(&stmt, &[&to_i64(up_to_seq)?]).await.pg()?;
        let n: i64 = row.try_get(0).pg()?;
        postkey_archive::backend::to_u64(n, "sighting count")
    }

    async fn log_errors(&self, entries: &[ErrorLogEntry]) -> Result<u64, StoreError> {
        in_tx!(self, |tx| registry::log_errors(&tx, entries))
    }

    async fn error_log(&self, query: &ErrorLogQuery) -> Result<Vec<LoggedError>, StoreError> {
        registry::error_log(&self.client().await?, query).await
    }

    async fn store_checkpoint(&self, checkpoint: &NewCheckpoint) -> Result<(), StoreError> {
        in_tx!(self, |tx| registry::store_checkpoint(&tx, checkpoint))
    }

    async fn checkpoints(
        &self,
        chain: &DomainId,
        after: u64,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let sql = format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE chain = $1 AND number > $2 \
             ORDER BY number LIMIT $3"
        );
        let params: [&(dyn ToSql + Sync); 3] =
            [&chain.as_str(), &to_i64(after)?, &i64::from(limit)];
        self.query_all(&sql, &params, rows::checkpoint).await
    }

    async fn latest_checkpoint(
        &self,
        chain: &DomainId,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        let sql = format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE chain = $1 \
             ORDER BY number DESC LIMIT 1"
        );
        self.query_opt(&sql, &[&chain.as_str()], rows::checkpoint).await
    }

    async fn store_transcript(
        &self,
        transcript: &NewTranscript,
    ) -> Result<TranscriptId, StoreError> {
        in_tx!(self, |tx| registry::store_transcript(&tx, transcript))
    }

    async fn transcript(&self, id: TranscriptId) -> Result<Option<Transcript>, StoreError> {
        let sql = format!("SELECT {TRANSCRIPT_COLUMNS} FROM transcripts WHERE id = $1");
        self.query_opt(&sql, &[&to_i64(id.0)?], rows::transcript).await
    }

    async fn transcripts(&self, box_id: Option<BoxId>) -> Result<Vec<Transcript>, StoreError> {
        let sql = format!(
            "SELECT {TRANSCRIPT_COLUMNS} FROM transcripts WHERE $1::TEXT IS NULL OR box_id = $1 ORDER BY id"
        );
        self.query_all(&sql, &[&box_id.map(|b| b.to_string())], rows::transcript).await
    }
}
