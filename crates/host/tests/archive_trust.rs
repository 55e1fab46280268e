//! Only signed things are trusted (docs/spec/state-versions.md): the host checks every record it
//! reads back from the archive against the home's trust anchors or the certified Domain Key Set.
//! A certificate, a bundle or a process record changed in the database is refused (3673); a
//! Domain Key Set certificate changed, or the installation's anchors, refuse the whole archive
//! (4008).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{LINE, World, d, ram_tempdir, world};
use postkey_host::{Expected, HostError, Trust};
use postkey_wire::ResponseCode;

/// Flips the last byte (inside the signature) of the blob `column` of the row of `table` that
/// `key` selects, behind the store's back (its guards dropped first, as an attacker would).
fn flip(w: &World, table: &str, column: &str, key: &str) {
    w.store.with_raw_connection(|c| {
        c.execute_batch(&format!("DROP TRIGGER IF EXISTS {table}_no_update")).unwrap();
        let select = format!("SELECT {column} FROM {table} WHERE {key}");
        let mut bytes: Vec<u8> = c.query_row(&select, [], |r| r.get(0)).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        let update = format!("UPDATE {table} SET {column} = ?1 WHERE {key}");
        assert_eq!(c.execute(&update, [bytes]).unwrap(), 1);
    });
}

fn code(e: &HostError) -> ResponseCode {
    e.response_code()
}

#[tokio::test]
async fn a_certificate_bundle_or_process_record_changed_in_the_archive_is_refused() {
    let w = world(ram_tempdir(), LINE).await;
    let oak = w.made[0];
    // Everything verifies as made.
    postkey_host::box_report(&w.store, &w.trust, oak).await.unwrap();
    postkey_host::domains(&w.store, &w.trust).await.unwrap();

    flip(&w, "domain_processes", "record", &format!("box_id = '{oak}' AND domain = 'USPS'"));
    let err = postkey_host::box_report(&w.store, &w.trust, oak).await.unwrap_err();
    assert_eq!(code(&err), ResponseCode::ARCHIVE_RECORD_INVALID, "{err}");

    flip(&w, "bundles", "bundle", "domain = 'VE'");
    let err = postkey_host::domains(&w.store, &w.trust).await.unwrap_err();
    assert_eq!(code(&err), ResponseCode::ARCHIVE_RECORD_INVALID, "{err}");
    let lock = w.home.lock(postkey_host::Access::Exclusive, postkey_host::Wait::No).unwrap();
    let c = postkey_host::Ceremonies::open(&lock, w.store.clone()).await.unwrap();
    let err = c.plan_processes(None, postkey_wire::BoxType::Oak, &[d("VE")], &[]).await;
    assert_eq!(code(&err.unwrap_err()), ResponseCode::ARCHIVE_RECORD_INVALID);
    c.close();

    // A certificate: the box is not even enabled.
    flip(&w, "boxes", "certificate", &format!("id = '{oak}'"));
    let err = Expected::of(&w.store, &w.trust, oak).await.unwrap_err();
    assert_eq!(code(&err), ResponseCode::ARCHIVE_RECORD_INVALID, "{err}");
}

#[tokio::test]
async fn a_domain_key_set_certificate_or_anchors_changed_refuse_the_archive() {
    let w = world(ram_tempdir(), LINE).await;
    Trust::load(&w.home, &w.store).await.unwrap();
    flip(&w, "installation", "dks_certificate", "singleton = 1");
    let err = Trust::load(&w.home, &w.store).await.unwrap_err();
    assert_eq!(code(&err), ResponseCode::INSTALLATION_MISMATCH, "{err}");

    let w = world(ram_tempdir(), LINE).await;
    flip(&w, "installation", "anchors", "singleton = 1");
    let err = Trust::load(&w.home, &w.store).await.unwrap_err();
    assert_eq!(code(&err), ResponseCode::INSTALLATION_MISMATCH, "{err}");
}
