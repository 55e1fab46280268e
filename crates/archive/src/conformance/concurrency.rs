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

fn sighting(meter: &str, count: u32, time: u64, site: &str) -> crate::Sighting {
    crate::Sighting {
        meter: postkey_wire::MeterId::parse(meter).unwrap(),
        count,
        time: postkey_wire::Timestamp::from_unix_micros(time),
        site: postkey_wire::Site::parse(site).unwrap(),
    }
}

/// The duplicate memory: a (meter, piece count) is new once; each later sighting, in a later
/// batch or later in the same one, answers the first; another piece count or meter is new.
pub async fn sightings_answer_the_first<H: Harness>(h: &H) {
    let a = h.open().await;
    let first = sighting("PB1234-000001", 7, 100, "CHI");
    let got = a.record_sightings(vec![first.clone()]).await.unwrap();
    assert_eq!(got, vec![None]);
    let batch = vec![
        sighting("PB1234-000001", 7, 200, "NYC"),
        sighting("PB1234-000001", 8, 200, "NYC"),
        sighting("PB1234-000002", 7, 200, "NYC"),
        sighting("PB1234-000001", 8, 201, "LAX"),
    ];
    let got = a.record_sightings(batch.clone()).await.unwrap();
    assert_eq!(got[0].as_ref(), Some(&first), "a copy answers the first sighting");
    assert_eq!(got[1], None);
    assert_eq!(got[2], None, "another meter's same count is another mailpiece");
    assert_eq!(got[3].as_ref(), Some(&batch[1]), "a copy in the same batch answers the first");
    // Durable and shared: another handle on the archive sees them.
    let b = h.open().await;
    let again = b.record_sightings(vec![sighting("PB1234-000002", 7, 300, "SEA")]).await.unwrap();
    assert_eq!(again, vec![Some(batch[2].clone())]);
    assert_eq!(a.record_sightings(Vec::new()).await.unwrap(), Vec::new());
}

/// Two verifiers racing on the same mailpieces: each is new for exactly one of them.
pub async fn racing_sightings_one_first<H: Harness>(h: &H) {
    let a = h.open().await;
    let b = h.open().await;
    for round in 0..8u32 {
        let pieces: Vec<u32> = (0..16).map(|i| round * 100 + i).collect();
        let mine = |site: &'static str, t: u64| {
            pieces.iter().map(|&c| sighting("PB1234-000009", c, t, site)).collect::<Vec<_>>()
        };
        let (sa, sb) = (mine("A", 1000), mine("B", 1001));
        let (a2, b2) = (a.clone(), b.clone());
        let ta = tokio::spawn(async move { a2.record_sightings(sa).await });
        let tb = tokio::spawn(async move { b2.record_sightings(sb).await });
        let (ra, rb) = (ta.await.unwrap().unwrap(), tb.await.unwrap().unwrap());
        for (x, y) in ra.iter().zip(&rb) {
            match (x, y) {
                (None, Some(first)) => assert_eq!(first.site.as_str(), "A"),
                (Some(first), None) => assert_eq!(first.site.as_str(), "B"),
                other => panic!("exactly one verifier sees a mailpiece first: {other:?}"),
            }
        }
    }
}
