//! Appending to hash chains inside a transaction, with their head rows locked, and reading them.

use std::collections::{BTreeMap, BTreeSet};

use deadpool_postgres::{GenericClient, Transaction};
use postkey_archive::backend::to_i64;
use postkey_archive::{ChainEvent, ChainHead, EventEntry, StoreError, Subject};
use postkey_wire::{DomainId, KeyId};

use crate::bulk;
use crate::conn::Pg;
use crate::rows::{self, EVENT_COLUMNS};

/// The chains a transaction appends to. Their head rows are locked `FOR UPDATE` up front, in
/// name order (so two transactions never wait for each other's heads crosswise); events are
/// computed in memory as they are appended, and [`Chains::finish`] inserts them all in one
/// statement and writes the heads back.
pub(crate) struct Chains {
    heads: BTreeMap<DomainId, (u64, ChainHead)>,
    pending: Vec<ChainEvent>,
}

impl Chains {
    /// Locks the head rows of `chains`; a missing one means its domain does not exist.
    pub(crate) async fn lock(
        tx: &Transaction<'_>,
        chains: impl IntoIterator<Item = DomainId>,
    ) -> Result<Self, StoreError> {
        let wanted: BTreeSet<DomainId> = chains.into_iter().collect();
        let stmt = tx
            .prepare_cached(
                "SELECT chain, count, head_hash FROM chains WHERE chain = $1 FOR UPDATE",
            )
            .await
            .pg()?;
        let mut heads = BTreeMap::new();
        for chain in wanted {
            let row = tx.query_opt(&stmt, &[&chain.as_str()]).await.pg()?;
            let head = row
                .as_ref()
                .map(rows::head)
                .transpose()?
                .ok_or_else(|| StoreError::NotFound(Subject::Domain(chain.clone())))?;
            heads.insert(chain, (head.count, head));
        }
        Ok(Self { heads, pending: Vec::new() })
    }

    /// Appends `entry` to `chain`, which [`Chains::lock`] locked; its position.
    pub(crate) fn append(
        &mut self,
        chain: &DomainId,
        entry: EventEntry,
    ) -> Result<u64, StoreError> {
        let Some((_, head)) = self.heads.get_mut(chain) else {
            return Err(StoreError::NotFound(Subject::Domain(chain.clone())));
        };
        let (event, next) = head.append(entry);
        *head = next;
        let seq = event.seq;
        self.pending.push(event);
        Ok(seq)
    }

    /// Inserts the events appended and writes every advanced head back.
    pub(crate) async fn finish(self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        bulk::insert_events(tx, &self.pending).await?;
        let stmt = tx
            .prepare_cached(
                "UPDATE chains SET count = $1, head_hash = $2 WHERE chain = $3 AND count = $4",
            )
            .await
            .pg()?;
        for (chain, (was, head)) in self.heads {
            if head.count == was {
                continue;
            }
            let n = tx
                .execute(
                    &stmt,
                    &[
                        &to_i64(head.count)?,
                        &head.head_hash.0.as_slice(),
                        &chain.as_str(),
                        &to_i64(was)?,
                    ],
                )
                .await
                .pg()?;
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
pub(crate) async fn create(tx: &Transaction<'_>, chain: &DomainId) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO chains (chain, count, head_hash) VALUES ($1, 0, decode(repeat('00', 32), 'hex')) \
         ON CONFLICT DO NOTHING",
        &[&chain.as_str()],
    )
    .await
    .pg()?;
    Ok(())
}

pub(crate) async fn read_head(
    c: &impl GenericClient,
    chain: &DomainId,
) -> Result<Option<ChainHead>, StoreError> {
    let stmt = c
        .prepare_cached("SELECT chain, count, head_hash FROM chains WHERE chain = $1")
        .await
        .pg()?;
    c.query_opt(&stmt, &[&chain.as_str()]).await.pg()?.as_ref().map(rows::head).transpose()
}

pub(crate) async fn heads(c: &impl GenericClient) -> Result<Vec<ChainHead>, StoreError> {
    let rows =
        c.query("SELECT chain, count, head_hash FROM chains ORDER BY chain", &[]).await.pg()?;
    rows::all(&rows, rows::head)
}

pub(crate) async fn events(
    c: &impl GenericClient,
    chain: &DomainId,
    after: u64,
    limit: u32,
) -> Result<Vec<ChainEvent>, StoreError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3"
    );
    let stmt = c.prepare_cached(&sql).await.pg()?;
    let rows = c.query(&stmt, &[&chain.as_str(), &to_i64(after)?, &i64::from(limit)]).await.pg()?;
    rows::all(&rows, rows::event)
}

pub(crate) async fn key_history(
    c: &impl GenericClient,
    domain: &DomainId,
    key_id: KeyId,
) -> Result<Vec<ChainEvent>, StoreError> {
    let sql =
        format!("SELECT {EVENT_COLUMNS} FROM events WHERE chain = $1 AND key_id = $2 ORDER BY seq");
    let stmt = c.prepare_cached(&sql).await.pg()?;
    let rows = c.query(&stmt, &[&domain.as_str(), &to_i64(key_id.get())?]).await.pg()?;
    rows::all(&rows, rows::event)
}
