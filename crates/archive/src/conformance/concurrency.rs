//! Cases with several writers: key ID allocation, racing transitions, restarts.

use std::collections::BTreeSet;

use super::Harness;
use super::fixtures::*;
use crate::{KeyStatus, Store, StoreError};

/// IDs each writer allocates.
const PER_WRITER: usize = 25;

/// `stores` handles on one database (each with its own connections, like separate KMS
/// computers), each used by `tasks_per_store` concurrent tasks, allocate key IDs at once: every
/// ID is handed out once, each task sees its IDs strictly increasing, and together they are
/// exactly `1..=n` (none lost, none reused).
pub async fn concurrent_key_ids<H: Harness>(h: &H, stores: usize, tasks_per_store: usize) {
    let first = h.open().await;
    let d = setup_domain(&first, "VE").await;
    let mut tasks = Vec::new();
    for _ in 0..stores {
        let store = h.open().await;
        for _ in 0..tasks_per_store {
            let (store, d) = (store.clone(), d.clone());
            tasks.push(tokio::spawn(async move {
                let mut ids = Vec::with_capacity(PER_WRITER);
                for _ in 0..PER_WRITER {
                    ids.push(store.allocate_key_id(&d).await.unwrap().get());
                }
                ids
            }));
        }
    }
    let mut all = BTreeSet::new();
    for task in tasks {
        let ids = task.await.unwrap();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "not increasing: {ids:?}");
        for id in ids {
            assert!(all.insert(id), "key ID {id} handed out twice");
        }
    }
    let n = (stores * tasks_per_store * PER_WRITER) as u64;
    assert_eq!(all, (1..=n).collect::<BTreeSet<_>>());
    assert_eq!(first.allocate_key_id(&d).await.unwrap(), kid(n + 1));
}

/// A key ID is never reused after the store is closed and opened again.
pub async fn key_ids_survive_restart<H: Harness>(h: &H) {
    let d = {
        let s = h.open().await;
        let d = setup_domain(&s, "VE").await;
        s.allocate_key_ids(&d, 10).await.unwrap();
        d
    };
    let s = h.open().await;
    assert_eq!(s.allocate_key_id(&d).await.unwrap(), kid(11));
}

/// Two writers on separate handles race to move the same `New` keys, one to `Installed` and one
/// to `Bad`: for each key exactly one wins, the other gets [`StoreError::StatusConflict`], and
/// the history holds exactly one transition.
pub async fn racing_transitions_one_wins<H: Harness>(h: &H) {
    let a = h.open().await;
    let b = h.open().await;
    let d = setup_domain(&a, "VE").await;
    let mut now = 10;
    for _ in 0..8 {
        let (key, next) = key_in(&a, &d, KeyStatus::New, now).await;
        now = next;
        let install = transition(&d, key.key_id, KeyStatus::New, KeyStatus::Installed, now);
        let bad = transition(&d, key.key_id, KeyStatus::New, KeyStatus::Bad, now);
        let (a2, b2) = (a.clone(), b.clone());
        let ta = tokio::spawn(async move { a2.transition(&install).await });
        let tb = tokio::spawn(async move { b2.transition(&bad).await });
        let (ra, rb) = (ta.await.unwrap(), tb.await.unwrap());
        let winner = match (ra, rb) {
            (Ok(k), Err(e)) | (Err(e), Ok(k)) => {
                assert!(matches!(e, StoreError::StatusConflict { .. }), "{e:?}");
                assert_eq!(e.response_code(), postkey_wire::ResponseCode::STATUS_CONFLICT);
                k.status
            }
            other => panic!("exactly one transition must win: {other:?}"),
        };
        let stored = a.key(&d, key.key_id).await.unwrap().unwrap();
        assert_eq!(stored.status, winner);
        assert_eq!(a.key_history(&d, key.key_id).await.unwrap().len(), 2);
        now += 2;
    }
    a.verify_chain(&d).await.unwrap();
}
