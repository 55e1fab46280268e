//! Appending to hash chains inside a write transaction, and reading them.

use std::collections::BTreeMap;

use postkey_archive::backend::{time_to_sql, to_i64};
use postkey_archive::{ChainEvent, ChainHead, EventEntry, StoreError, Subject};
use postkey_wire::{DomainId, KeyId};
use rusqlite::{Connection, Transaction, params};

use crate::conn::Db;
use crate::rows::{self, EVENT_COLUMNS};

/// The chains a transaction appends to: each head is read once (under the transaction's write
/// lock, which `BEGIN IMMEDIATE` took), advanced in memory per event, and written back by
/// [`Chains::finish`] with a guard on the count it was read at.
pub(crate) struct Chains {
    heads: BTreeMap<DomainId, (u64, ChainHead)>,
}

impl Chains {
    pub(crate) fn new() -> Self {
        Self { heads: BTreeMap::new() }
    }

    /// Appends `entry` to `chain`, inserting the event row.
    pub(crate) fn append(
        &mut self,
        tx: &Transaction<'_>,
        chain: &DomainId,
        entry: EventEntry,
    ) -> Result<ChainEvent, StoreError> {
        if !self.heads.contains_key(chain) {
            // Every chain is a domain's (ADMIN's too): a missing one means a missing domain.
            let head = read_head(tx, chain)?
                .ok_or_else(|| StoreError::NotFound(Subject::Domain(chain.clone())))?;
            self.heads.insert(chain.clone(), (head.count, head));
        }
        let Some((_, head)) = self.heads.get_mut(chain) else {
            return Err(StoreError::NotFound(Subject::Domain(chain.clone())));
        };
        let (event, next) = head.append(entry);
        *head = next;
        let e = &event.entry;
        tx.prepare_cached(
            "INSERT INTO events (chain, seq, time, actor, action, key_id, record_type, \
             record_digest, note, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .db()?
        .execute(params![
            event.chain.as_str(),
            to_i64(event.seq)?,
            time_to_sql(e.time)?,
            e.actor.to_string(),
            e.action.encode(),
            e.key_id.map(|k| to_i64(k.get())).transpose()?,
            e.record.map(|r| i64::from(r.record_type.0)),
            e.record.map(|r| r.digest.0.to_vec()),
            e.note.as_deref(),
            event.prev_hash.0.as_slice(),
            event.hash.0.as_slice(),
        ])
        .db()?;
        Ok(event)
    }

    /// Writes every advanced head back.
    pub(crate) fn finish(self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        for (chain, (was, head)) in self.heads {
            let n = tx
                .prepare_cached(
                    "UPDATE chains SET count = ?1, head_hash = ?2 WHERE chain = ?3 AND count = ?4",
                )
                .db()?
                .execute(params![
                    to_i64(head.count)?,
                    head.head_hash.0.as_slice(),
                    chain.as_str(),
                    to_i64(was)?
                ])
                .db()?;
            if n != 1 {
                return Err(StoreError::ChainBroken {
                    chain,
                    seq: head.count,
                    reason: "chain head changed during the append",
                });
            }
        }
        Ok(())
    }
}

/// Creates the head row of a new, empty chain (a new domain's).
pub(crate) fn create(tx: &Transaction<'_>, chain: &DomainId) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO chains (chain, count, head_hash) VALUES (?1, 0, zeroblob(32)) ON CONFLICT DO NOTHING",
        [chain.as_str()],
    )
    .db()?;
    Ok(())
}

pub(crate) fn read_head(
    conn: &Connection,
    chain: &DomainId,
) -> Result<Option<ChainHead>, StoreError> {
    let stmt =
        conn.prepare_cached("SELECT chain, count, head_hash FROM chains WHERE chain = ?1").db()?;
    rows::first(stmt, [chain.as_str()], rows::head)
}

pub(crate) fn heads(conn: &Connection) -> Result<Vec<ChainHead>, StoreError> {
    let stmt =
        conn.prepare_cached("SELECT chain, count, head_hash FROM chains ORDER BY chain").db()?;
    rows::all(stmt, [], rows::head)
}

pub(crate) fn events(
    conn: &Connection,
    chain: &DomainId,
    after: u64,
    limit: u32,
) -> Result<Vec<ChainEvent>, StoreError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE chain = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
    );
    let stmt = conn.prepare_cached(&sql).db()?;
    rows::all(stmt, params![chain.as_str(), to_i64(after)?, limit], rows::event)
}

pub(crate) fn key_history(
    conn: &Connection,
    domain: &DomainId,
    key_id: KeyId,
) -> Result<Vec<ChainEvent>, StoreError> {
    let sql =
        format!("SELECT {EVENT_COLUMNS} FROM events WHERE chain = ?1 AND key_id = ?2 ORDER BY seq");
    let stmt = conn.prepare_cached(&sql).db()?;
    rows::all(stmt, params![domain.as_str(), to_i64(key_id.get())?], rows::event)
}
