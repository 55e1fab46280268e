//! Files of the home and of the media that lie, as a user can leave them: a torn or edited line
//! in the error-log spool, a FIFO where the spool belongs, a stray or foreign share beside a
//! valid quorum, media of another installation given to `init`, and arguments that name what
//! does not exist. None of them blocks the home, hangs a command, or lets a refused command
//! change anything.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Home, refused, stderr};

/// The error-log entries with `code`, by message.
fn logged_messages(h: &Home, code: u64) -> Vec<String> {
    let log = h.json(&["errors"]);
    log.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["code"].as_u64() == Some(code))
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_torn_line_in_the_error_log_spool_blocks_nothing() {
    let h = Home::demo();
    let spool = h.path("errors.log");
    let torn = r#"{"time":"2026-12-03T22:12:24.388015Z","unix_micros":17963"#;
    std::fs::write(&spool, format!("{torn}\nnot json either\n")).unwrap();
    // The factory run succeeds and says so; the spool moves into the archive.
    h.install_works(1);
    let quoted = logged_messages(&h, 3604);
    assert_eq!(quoted.len(), 2, "{quoted:?}");
    assert!(quoted.iter().any(|m| m.contains("unix_micros")), "{quoted:?}");
    assert!(!spool.exists(), "the spool stayed behind");
    h.install_works(2);
}

#[test]
fn a_fifo_where_the_error_log_spool_belongs_hangs_nothing() {
    let h = Home::demo();
    let spool = h.path("errors.log");
    let made = std::process::Command::new("mkfifo").arg(&spool).status().unwrap();
    assert!(made.success());
    // A refusal logged while the spool is a FIFO, and the move after the run: neither waits.
    let o = h.run(&["box", "self-test", "O00000001", "--shares-dir", "/nonexistent"]);
    refused(&o, 2, 3112);
    h.install_works(1);
    let moved = logged_messages(&h, 3604);
    assert!(moved.iter().any(|m| m.contains("moved aside")), "{moved:?}");
    h.install_works(2);
}

#[test]
fn a_stray_or_foreign_share_beside_a_valid_quorum_is_left_out_and_named() {
    let h = Home::demo();
    let other = Home::demo();
    // A garbage file and another installation's share of the same box ID.
    std::fs::write(h.path("media/O00000001-operation-combination-zzzz-3of2.share"), b"x").unwrap();
    let foreign = std::fs::read_dir(other.path("media"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("O00000001-operation-combination"))
        .unwrap();
    std::fs::copy(&foreign, h.path("media/O00000001-operation-combination-ffff-1of2.share"))
        .unwrap();
    h.ok(&["box", "self-test", "O00000001"]);
    h.install_works(1);
    let named = logged_messages(&h, 3110);
    assert!(named.iter().any(|m| m.contains("zzzz")), "{named:?}");
    assert!(named.iter().any(|m| m.contains("ffff")), "{named:?}");
}

#[test]
fn init_refuses_media_of_another_installation_and_writes_nothing() {
    let a = Home::demo();
    let b = Home::new();
    common::copy_tree(&a.path("media"), &b.path("media"), &|_| true);
    let o = b.run(&["init"]);
    refused(&o, 2, 2010);
    assert!(stderr(&o).contains("another installation"), "{}", stderr(&o));
    assert!(!b.path("boxes").exists() && !b.path("trust-anchors.cbor").exists());
    // Empty media: the first ceremony runs.
    let empty = tempfile::tempdir().unwrap();
    b.ok(&["init", "--media", empty.path().to_str().unwrap()]);
}

#[test]
fn manufacture_arguments_are_checked_before_an_id_is_used() {
    let h = Home::demo();
    let before = h.boxes();
    let cases: &[(&[&str], i32, u16)] = &[
        (&["--type", "steel", "--domain", "NOPE"], 2, 3008),
        (&["--type", "steel", "--domain", "VE", "--domain", "VE"], 2, 2010),
        (&["--type", "steel", "--domain", "VE", "--subdomain", "VE/US"], 2, 2010),
        (&["--type", "brass", "--domain", "VE", "--subdomain", "XX/US"], 2, 2010),
        (&["--type", "brass", "--domain", "VE", "--subdomain", "VE/FR"], 2, 2010),
    ];
    for (args, exit, code) in cases {
        let mut all = vec!["box", "manufacture"];
        all.extend_from_slice(args);
        refused(&h.run(&all), *exit, *code);
    }
    assert_eq!(h.boxes(), before);
    assert!(!h.path("boxes/S00000002.state").exists() && !h.path("boxes/B00000002.state").exists());
    // A process the box has already, or a sub-domain of another domain, for `box install`.
    refused(&h.run(&["box", "install", "B00000001", "--domain", "USPS"]), 2, 3651);
    let o = h.run(&["box", "install", "O00000001", "--domain", "USPS", "--subdomain", "VE/US"]);
    refused(&o, 2, 2010);
    // Nothing was used up: the next steel box is S00000002.
    let report = h.json(&["box", "manufacture", "--type", "steel", "--domain", "VE"]);
    assert_eq!(report["id"], "S00000002", "{report}");
    assert_eq!(report["domains"], serde_json::json!(["VE"]));
}

#[test]
fn the_home_is_its_owners_alone_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let script =
        format!("umask 000 && exec \"$0\" --home '{}' demo --meters 1", home.to_str().unwrap());
    let o =
        std::process::Command::new("sh").args(["-c", &script, common::binary()]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let mut seen = 0;
    let mut dirs = vec![home.clone()];
    while let Some(d) = dirs.pop() {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            seen += 1;
            if p.is_dir() {
                dirs.push(p);
            } else if !p.ends_with("trust-anchors.cbor") {
                // The trust anchors are public; every other file is the owner's alone.
                assert_eq!(mode(&p), 0o600, "{}", p.display());
            }
        }
    }
    assert!(seen > 20, "{seen} files");
    assert!(home.join("archive.db").exists());
}

/// Every file of the home with its bytes, but the SQLite coordination files a reader may leave
/// (an empty WAL, the shared-memory index), which hold no data.
fn home_snapshot(h: &Home) -> Vec<(String, Vec<u8>)> {
    fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                walk(&path, root, out);
            } else if name != "archive.db-shm" && name != "home.lock" {
                let bytes = std::fs::read(&path).unwrap();
                if name == "archive.db-wal" && bytes.is_empty() {
                    continue;
                }
                out.push((name, bytes));
            }
        }
    }
    let mut out = Vec::new();
    walk(&h.path(""), &h.path(""), &mut out);
    out.sort();
    out
}

/// The read commands (an auditor's) open the archive read-only and write nothing: the home is
/// byte for byte as they found it, archive and error log included.
#[test]
fn read_commands_leave_the_home_as_they_found_it() {
    let h = Home::demo();
    h.ok(&["meter", "new", "--product", "PB1234", "--msn", "000001"]);
    h.ok(&["factory", "install", "PB1234-000001", "--postal", "USPS"]);
    // A refusal spooled in the error log, not yet moved into the archive.
    let line = r#"{"time":"2026-12-04T07:00:00Z","unix_micros":1796367600000000,"component":"O00000001","code":3014,"message":"spooled"}"#;
    std::fs::write(h.path("errors.log"), format!("{line}\n")).unwrap();
    let before = home_snapshot(&h);
    let key = h.json(&["keys", "list"])[0].clone();
    let (domain, id) = (key["domain"].as_str().unwrap(), key["key_id"].to_string());
    let meter =
        format!("{}-{}", key["product_code"].as_str().unwrap(), key["msn"].as_str().unwrap());
    for args in [
        vec!["keys", "list"],
        vec!["keys", "show", domain, &id],
        vec!["box", "list", "--json"],
        vec!["box", "show", "O00000001"],
        vec!["domain", "list"],
        vec!["meter", "show", &meter],
        vec!["errors", "--json"],
    ] {
        let o = h.run(&args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
    // The spooled refusal is shown though it is not in the archive yet.
    let errors = h.json(&["errors"]);
    let spooled = errors.as_array().unwrap().iter().find(|e| e["message"] == "spooled");
    assert_eq!(spooled.unwrap()["component"], "o00000001", "{errors}");
    let after = home_snapshot(&h);
    let names = |s: &[(String, Vec<u8>)]| s.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&after), names(&before));
    for ((name, a), (_, b)) in after.iter().zip(&before) {
        assert!(a == b, "{name} changed");
    }
}
