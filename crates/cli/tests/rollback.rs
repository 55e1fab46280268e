//! Rollback, as a user with write access to the home can try it (docs/spec/state-versions.md):
//! every file of the home but the archive copied aside, a box moved on by one or by several
//! steps, the copy put back. Each box type is then refused before any command (4004) and the
//! refusal is in the error log. The archive cannot be swapped or emptied either (4008), and a
//! box legitimately restored from backup is re-baselined only through its quorum and the
//! manufacturing box's, and only when the archive shows nothing it did since.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Home, refused};

const ROLLBACK: u16 = 4004;
const INSTALLATION_MISMATCH: u16 = 4008;
const HOME_FILE_DAMAGED: u16 = 3604;

/// Moves box `id` on by one step: a command that changes its state.
fn step(h: &Home, id: &str, n: u32) {
    match &id[..1] {
        "M" => {
            h.ok(&["box", "manufacture", "--type", "brass", "--with", id]);
        }
        // A factory run moves Oak and Steel on (their last key IDs); Brass keeps no state of
        // an installation, so a process moves it on, as it does a Tin box.
        "O" | "S" => h.install_works(100 + n),
        "B" | "T" => {
            let domain = format!("PT{n}");
            let sub = format!("{domain}/US");
            h.ok(&["domain", "create", &domain, "--kind", "postal", "--subdomain", &sub]);
            h.ok(&["box", "install", id, "--domain", &domain]);
        }
        other => panic!("no step for {other}"),
    }
}

/// Copies every home file but the archive, moves `id` on by `steps`, puts the copy back, and
/// checks that the box is refused at enable, logged, and that nothing else was harmed.
fn rolled_back(id: &str, steps: u32) {
    let h = Home::demo();
    let backup = tempfile::tempdir().unwrap();
    h.copy_all_but_archive(backup.path());
    let version = |h: &Home| {
        let b = h.json(&["box", "show", id]);
        b["state_version"].as_u64().unwrap()
    };
    let before = version(&h);
    for n in 1..=steps {
        step(&h, id, n);
    }
    assert!(version(&h) > before, "{id} did not move on");
    h.restore_all_but_archive(backup.path());
    // Enabling the box alone: refused before any command.
    let o = h.run(&["box", "self-test", id]);
    refused(&o, 3, ROLLBACK);
    assert!(h.logged(id).contains(&ROLLBACK), "{id}: the refusal is not in the error log");
    // The command an operator would run next is refused the same way (a Tin box has none yet
    // but its self-test).
    let next = match &id[..1] {
        "M" => Some(h.run(&["box", "manufacture", "--type", "oak", "--with", id])),
        "T" => None,
        _ => {
            let meter = h.meter(999);
            Some(h.run(&["factory", "install", &meter, "--postal", "USPS"]))
        }
    };
    if let Some(next) = next {
        refused(&next, 3, ROLLBACK);
    }
    // The archive still records the newer version: nothing was written back.
    assert!(version(&h) > before);
}

#[test]
fn a_manufacturing_box_rolled_back_one_or_several_steps_is_refused() {
    rolled_back("M00000001", 1);
    rolled_back("M00000001", 3);
}

#[test]
fn a_second_manufacturing_box_rolled_back_is_refused() {
    rolled_back("M00000002", 1);
}

#[test]
fn oak_steel_and_brass_rolled_back_one_or_several_steps_are_refused() {
    for id in ["O00000001", "S00000001", "B00000001"] {
        rolled_back(id, 1);
        rolled_back(id, 3);
    }
}

#[test]
fn a_tin_box_rolled_back_one_or_several_steps_is_refused() {
    rolled_back("T00000001", 1);
    rolled_back("T00000001", 3);
}

#[test]
fn an_archive_of_another_installation_or_an_emptied_one_is_refused() {
    let a = Home::demo();
    let b = Home::demo();
    // B's archive put in A's home: A's boxes are not run against it.
    for suffix in ["", "-wal", "-shm"] {
        let name = format!("archive.db{suffix}");
        let _ = std::fs::remove_file(a.path(&name));
        if b.path(&name).exists() {
            std::fs::copy(b.path(&name), a.path(&name)).unwrap();
        }
    }
    refused(&a.run(&["box", "self-test", "O00000001"]), 3, INSTALLATION_MISMATCH);
    refused(&a.run(&["box", "list"]), 3, INSTALLATION_MISMATCH);
    // Emptied: every command is refused, and `init` does not fill it again from the home.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(a.path(&format!("archive.db{suffix}")));
    }
    // The archive is missing: damage to restore (3604), never an archive made anew.
    refused(&a.run(&["keys", "list"]), 3, HOME_FILE_DAMAGED);
    refused(&a.run(&["box", "self-test", "M00000001"]), 3, HOME_FILE_DAMAGED);
    refused(&a.run(&["init"]), 3, HOME_FILE_DAMAGED);
    assert!(!a.path("archive.db").exists(), "a refused command made an archive");
    assert!(a.path("boxes/M00000001.state").exists(), "init overwrote the home");
}

#[test]
fn a_box_restored_from_backup_is_rebaselined_only_if_it_did_nothing_since() {
    let h = Home::demo();
    let oak = h.path("boxes/O00000001.state");
    let backup = std::fs::read(&oak).unwrap();
    // After the backup: a process installed (no key). The restored state is refused…
    h.ok(&["domain", "create", "UKRM", "--kind", "postal", "--subdomain", "UKRM/GB"]);
    h.ok(&["box", "install", "O00000001", "--domain", "UKRM"]);
    std::fs::write(&oak, &backup).unwrap();
    refused(&h.run(&["box", "self-test", "O00000001"]), 3, ROLLBACK);
    // …until re-baselined: the quorums of the box and of M00000001, an ADMIN chain event, the
    // process made since delivered again.
    let r = h.json(&["box", "rebaseline", "O00000001"]);
    assert!(r["to"].as_u64().unwrap() < r["from"].as_u64().unwrap(), "{r}");
    assert_eq!(r["authorised_by"], "M00000001");
    assert_eq!(r["redelivered"], serde_json::json!(["UKRM"]));
    h.ok(&["box", "self-test", "O00000001"]);
    h.install_works(1);
    // Nothing to re-baseline now: refused as the caller's mistake.
    refused(&h.run(&["box", "rebaseline", "O00000001"]), 2, 2010);
    // A backup from before keys the line handled (Oak generated them, Steel installed them):
    // never re-baselined.
    let states: Vec<_> = ["O00000001", "S00000001"]
        .iter()
        .map(|id| {
            let path = h.path(&format!("boxes/{id}.state"));
            let bytes = std::fs::read(&path).unwrap();
            (*id, path, bytes)
        })
        .collect();
    h.install_works(2);
    for (id, path, bytes) in &states {
        std::fs::write(path, bytes).unwrap();
        let o = h.run(&["box", "rebaseline", id]);
        refused(&o, 3, ROLLBACK);
        assert!(common::stderr(&o).contains("past"), "{id}: {}", common::stderr(&o));
        refused(&h.run(&["box", "self-test", id]), 3, ROLLBACK);
    }
}

#[test]
fn a_manufacturing_box_that_gave_box_numbers_since_its_backup_is_never_rebaselined() {
    let h = Home::demo();
    let m = h.path("boxes/M00000001.state");
    let backup = std::fs::read(&m).unwrap();
    h.ok(&["box", "manufacture", "--type", "oak"]);
    std::fs::write(&m, &backup).unwrap();
    // The restored M would give O00000002 again: refused, and logged.
    let o = h.run(&["box", "rebaseline", "M00000001", "--with", "M00000002"]);
    refused(&o, 3, ROLLBACK);
    assert!(common::stderr(&o).contains("O00000002"), "{}", common::stderr(&o));
    // Only another manufacturing box authorises it.
    refused(&h.run(&["box", "rebaseline", "M00000001"]), 2, 2010);
    refused(&h.run(&["box", "rebaseline", "O00000001", "--with", "S00000001"]), 2, 2010);
}
