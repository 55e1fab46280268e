//! The crash test: a writer killed with SIGKILL in the middle of a batch leaves a database that
//! opens, verifies, and holds each transaction whole or not at all.
//!
//! The backend's test re-runs its own test binary as the child ([`crash_parent`]); the child
//! calls [`crash_child`], which commits batches of keys forever and prints `committed N` after
//! each commit; the parent kills it after a few commits, while it is writing the next batch,
//! then calls [`crash_check`] on a fresh store.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use postkey_wire::RecordType;

use super::fixtures::*;
use crate::{KeyFilter, NewKey, Store};

/// Keys per transaction.
pub const CRASH_BATCH: usize = 50;
/// Commits the parent waits for before it kills the child.
const COMMITS_BEFORE_KILL: u64 = 5;

/// The child: creates domain `VE` and then commits batches of [`CRASH_BATCH`] keys, each key's
/// MI3 bytes naming its batch, until it is killed.
pub async fn crash_child<S: Store>(store: &S) {
    let d = setup_domain(store, "VE").await;
    let mut stdout = std::io::stdout();
    for batch in 1u64.. {
        let range = store.allocate_key_ids(&d, CRASH_BATCH as u32).await.unwrap();
        let keys: Vec<NewKey> = range
            .ids()
            .map(|id| NewKey {
                record: record(RecordType::MI3, &format!("batch {batch} key {id}")),
                ..new_key(&d, id, batch)
            })
            .collect();
        store.create_keys(&keys).await.unwrap();
        writeln!(stdout, "committed {batch}").unwrap();
        stdout.flush().unwrap();
    }
}

/// The parent: runs `test_name` of the current test binary as the child with `env` set, waits
/// until it reports [`COMMITS_BEFORE_KILL`] commits, kills it (SIGKILL on Unix) and returns the
/// last commit it reported.
pub fn crash_parent(test_name: &str, env: &[(&str, &str)]) -> u64 {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut last = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("committed ") {
            last = n.trim().parse().unwrap();
            if last >= COMMITS_BEFORE_KILL {
                break;
            }
        }
    }
    assert!(last >= COMMITS_BEFORE_KILL, "the child stopped after {last} commits");
    // Child::kill sends SIGKILL: no destructor, no rollback, no flush runs in the child.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child must have been killed");
    last
}

/// Checks the database after the kill: every batch the child reported is there, every batch
/// present is whole, and the chains verify.
pub async fn crash_check<S: Store>(store: &S, reported: u64) {
    let d = dom("VE");
    let keys = store.keys(&KeyFilter::domain(d.clone(), u32::MAX)).await.unwrap();
    let mut batches: BTreeMap<u64, usize> = BTreeMap::new();
    for k in &keys {
        let records = store.records(&d, k.key_id).await.unwrap();
        assert_eq!(records.len(), 1);
        let text = String::from_utf8(records[0].record.bytes.clone()).unwrap();
        let batch: u64 = text.split(' ').nth(2).unwrap().parse().unwrap();
        *batches.entry(batch).or_default() += 1;
    }
    assert!(batches.values().all(|&n| n == CRASH_BATCH), "a batch is partly there: {batches:?}");
    let committed: Vec<u64> = batches.keys().copied().collect();
    let max = committed.last().copied().unwrap_or(0);
    assert!(max >= reported, "batch {reported} was reported committed but is missing");
    assert_eq!(committed, (1..=max).collect::<Vec<_>>());
    assert_eq!(store.verify_chain(&d).await.unwrap().count, max * CRASH_BATCH as u64);
    store.verify_chain(&dom("ADMIN")).await.unwrap();
}
