//! Benchmarks of the PostgreSQL archive against the server named by `POSTKEY_TEST_PG_URL`
//! (default: the local test database): durable status transitions (one per transaction, and 100
//! per transaction) and key-record point lookups at 10,000 and 1,000,000 keys, each in a schema
//! of its own that is dropped at the end. The figures and the command are in
//! `docs/benchmarks.md`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use postkey_archive::Store;
use postkey_archive::conformance::setup_domain;
use postkey_archive::conformance::workload::{KeyIds, install, populate};
use postkey_archive_postgres::{PgConfig, PgStore};
use tokio::runtime::Runtime;
use tokio_postgres::NoTls;

const BATCH: usize = 100;
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A schema for one benchmark, created now and dropped by [`drop_schema`].
fn schema(rt: &Runtime, url: &str, name: &str) -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let schema = format!("pk_test_{secs}_bench_{name}");
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
            ))
            .await
            .unwrap();
    });
    schema
}

fn drop_schema(rt: &Runtime, url: &str, schema: &str) {
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
        tokio::spawn(conn);
        client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await.unwrap();
    });
}

/// Gathers fresh statistics, as autovacuum does in time.
async fn analyze(store: &PgStore) {
    let client = store.raw_client().await.unwrap();
    client.batch_execute("VACUUM ANALYZE keys, records, events, chains, domains").await.unwrap();
}

fn open(rt: &Runtime, url: &str, schema: &str) -> PgStore {
    let config =
        PgConfig { url: url.to_owned(), schema: Some(schema.to_owned()), max_connections: 4 };
    rt.block_on(PgStore::connect(&config)).unwrap()
}

fn benches(c: &mut Criterion) {
    let url = std::env::var("POSTKEY_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    let name = schema(&rt, &url, "transitions");
    let store = open(&rt, &url, &name);
    let d = rt.block_on(async {
        let d = setup_domain(&store, "VE").await;
        // A table of some size with fresh statistics, as autovacuum keeps it: plans made for an
        // empty table (which the foreign-key checks cache, too) would scan it as it grows.
        populate(&store, &d, 20_000, 10_000).await;
        analyze(&store).await;
        d
    });
    let mut g = c.benchmark_group("postgres/transition");
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
    // Baseline, measured in the same run: a bare durable commit (BEGIN, one INSERT, COMMIT) on a
    // plain tokio-postgres connection.
    let raw = rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE TABLE {name}.commits (n BIGINT NOT NULL)"))
            .await
            .unwrap();
        client
    });
    let insert =
        rt.block_on(raw.prepare(&format!("INSERT INTO {name}.commits VALUES (1)"))).unwrap();
    g.bench_function("baseline: raw tokio-postgres durable commit", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    raw.batch_execute("BEGIN").await.unwrap();
                    raw.execute(&insert, &[]).await.unwrap();
                    raw.batch_execute("COMMIT").await.unwrap();
                }
                start.elapsed()
            })
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
    drop(store);
    drop_schema(&rt, &url, &name);

    let mut g = c.benchmark_group("postgres/lookup");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(1));
    // Baseline, measured in the same run: one round trip of a prepared `SELECT 1` on a plain
    // tokio-postgres connection, on the same runtime. A lookup cannot be cheaper.
    let (client, stmt) = rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        tokio::spawn(conn);
        let stmt = client.prepare("SELECT 1").await.unwrap();
        (client, stmt)
    });
    g.bench_function("baseline: raw tokio-postgres SELECT 1", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    std::hint::black_box(client.query_one(&stmt, &[]).await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    for n in [10_000u64, 1_000_000] {
        let name = schema(&rt, &url, &format!("lookup_{n}"));
        let store = open(&rt, &url, &name);
        let d = rt.block_on(async {
            let d = setup_domain(&store, "VE").await;
            let start = Instant::now();
            populate(&store, &d, n, 10_000).await;
            eprintln!("populated {n} keys in {:.1} s", start.elapsed().as_secs_f64());
            d
        });
        rt.block_on(analyze(&store));
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
        drop(store);
        drop_schema(&rt, &url, &name);
    }
    g.finish();
}

criterion_group!(archive, benches);
criterion_main!(archive);
