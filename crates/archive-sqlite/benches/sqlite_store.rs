//! Benchmarks of the SQLite archive: durable status transitions (one per transaction, and 100
//! per transaction) and key-record point lookups at 10,000 and 1,000,000 keys. The figures and
//! the command are in `docs/benchmarks.md`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use postkey_archive::Store;
use postkey_archive::conformance::setup_domain;
use postkey_archive::conformance::workload::{KeyIds, install, populate};
use postkey_archive_sqlite::SqliteStore;

const BATCH: usize = 100;

fn benches(c: &mut Criterion) {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();

    let store = rt.block_on(SqliteStore::open(dir.path().join("transitions.db"))).unwrap();
    let d = rt.block_on(setup_domain(&store, "VE"));
    let mut g = c.benchmark_group("sqlite/transition");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(1));
    g.bench_function("durable, 1 per transaction", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let ids = populate(&store, &d, iters, 10_000).await;
                let start = Instant::now();
                for id in ids {
                    store.transition(&install(&d, id)).await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    // Baseline, measured in the same run: a bare durable commit (BEGIN IMMEDIATE, one INSERT,
    // COMMIT) through rusqlite with the same pragmas, on a file of its own.
    let raw = rusqlite::Connection::open(dir.path().join("commits.db")).unwrap();
    raw.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; CREATE TABLE t (n INTEGER NOT NULL);",
    )
    .unwrap();
    g.bench_function("baseline: raw rusqlite durable commit", |b| {
        b.iter(|| {
            raw.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (1); COMMIT;").unwrap();
        })
    });
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("durable, 100 per transaction", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let ids = populate(&store, &d, iters * BATCH as u64, 10_000).await;
                let batches: Vec<Vec<_>> = ids
                    .chunks(BATCH)
                    .map(|c| c.iter().map(|&id| install(&d, id)).collect())
                    .collect();
                let start = Instant::now();
                for batch in &batches {
                    store.transitions(batch).await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    g.finish();

    let mut g = c.benchmark_group("sqlite/lookup");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(1));
    for n in [10_000u64, 1_000_000] {
        let store =
            rt.block_on(SqliteStore::open(dir.path().join(format!("lookup-{n}.db")))).unwrap();
        let d = rt.block_on(async {
            let d = setup_domain(&store, "VE").await;
            populate(&store, &d, n, 20_000).await;
            d
        });
        // Move the WAL into the database file, as SQLite's automatic checkpoints do in time,
        // so both sizes are measured in the same steady state.
        store.with_raw_connection(|c| c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")).unwrap();
        // Baseline, measured in the same run: the same point SELECT through rusqlite directly
        // (prepared, its row read as columns, no types built), on a connection of its own.
        let raw = rusqlite::Connection::open(dir.path().join(format!("lookup-{n}.db"))).unwrap();
        raw.pragma_update(None, "mmap_size", 16i64 << 30).unwrap();
        g.bench_with_input(BenchmarkId::new("baseline: raw rusqlite SELECT", n), &n, |b, &n| {
            let mut ids = KeyIds::new(n);
            let mut stmt = raw
                .prepare("SELECT domain, key_id, status, oak_id, steel_id, updated FROM keys WHERE domain = ?1 AND key_id = ?2")
                .unwrap();
            b.iter(|| {
                let id = ids.next_id().get() as i64;
                let row: (String, i64, String, String, String, i64) = stmt
                    .query_row(rusqlite::params!["VE", id], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
                    })
                    .unwrap();
                std::hint::black_box(row);
            })
        });
        g.bench_with_input(BenchmarkId::new("key by ID", n), &n, |b, &n| {
            let mut ids = KeyIds::new(n);
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let key = store.key(&d, ids.next_id()).await.unwrap();
                        std::hint::black_box(key);
                    }
                    start.elapsed()
                })
            })
        });
    }
    g.finish();
}

criterion_group!(archive, benches);
criterion_main!(archive);
