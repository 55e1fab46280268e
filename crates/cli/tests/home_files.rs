//! Files of the home and of the media that lie, as a user can leave them: a torn or edited line
//! in the error-log spool, a FIFO where the spool belongs, a stray or foreign share beside a
//! valid quorum, media of another installation given to `init`, and arguments that name what
//! does not exist. None of them blocks the home, hangs a command, or lets a refused command
//! change anything.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::FileTypeExt as _;

use common::{Home, refused, stderr};

/// The error-log entries with `code`, by message.
fn logged_messages(h: &Home, code: u64) -> Vec<String> {
    let log = h.json(&["errors", "--limit", "1000000"]);
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
    // Reading the log says so and changes nothing: the FIFO is still there.
    let said = logged_messages(&h, 3604);
    assert!(said.iter().any(|m| m.contains("not a regular file")), "{said:?}");
    assert!(std::fs::symlink_metadata(&spool).unwrap().file_type().is_fifo());
    // A refusal logged while the spool is a FIFO, and the move after the run: neither waits.
    let o = h.run(&["box", "self-test", "O00000001", "--shares-dir", "/nonexistent"]);
    refused(&o, 2, 3112);
    h.install_works(1);
    let moved = logged_messages(&h, 3604);
    assert!(moved.iter().any(|m| m.contains("moved aside")), "{moved:?}");
    let aside: Vec<_> = std::fs::read_dir(&h.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("errors.log.unreadable-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    h.install_works(2);
}

/// One spooled line as a component writes it, with its unique ID.
fn spool_line(n: usize) -> String {
    format!(
        r#"{{"time":"2026-12-04T07:00:00Z","unix_micros":{},"component":"kmc","code":3014,"message":"spooled {n}","id":"test-{n}"}}"#,
        1_796_367_600_000_000u64 + n as u64
    )
}

#[test]
fn a_spool_moved_again_after_a_stop_logs_nothing_twice() {
    let h = Home::demo();
    let lines: String = (0..10_000).map(|n| spool_line(n) + "\n").collect();
    std::fs::write(h.path("errors.log"), &lines).unwrap();
    h.install_works(1);
    assert!(!h.path("errors.log").exists());
    // A move stopped after the archive took the entries, before the spool was removed (as a
    // kill -9 leaves it): the next writing command moves it again, and adds nothing twice.
    std::fs::write(h.path("errors.log.moving"), &lines).unwrap();
    h.install_works(2);
    assert!(!h.path("errors.log.moving").exists());
    let logged = logged_messages(&h, 3014);
    let spooled: Vec<_> = logged.iter().filter(|m| m.starts_with("spooled ")).collect();
    assert_eq!(spooled.len(), 10_000, "every entry once");
}

#[test]
fn reading_a_long_spool_reads_its_end_only_and_an_overlong_line_is_named_not_held() {
    let h = Home::demo();
    // About 9 MB of spool, and a 1 MB line with no end in the middle of it.
    let mut text: String = (0..30_000).map(|n| spool_line(n) + "\n").collect();
    text.push_str(&"x".repeat(1 << 20));
    text.push('\n');
    text.extend((30_000..60_000).map(|n| spool_line(n) + "\n"));
    std::fs::write(h.path("errors.log"), &text).unwrap();
    let before = std::fs::read(h.path("errors.log")).unwrap();
    let shown = logged_messages(&h, 3014);
    assert_eq!(shown.last().map(String::as_str), Some("spooled 59999"));
    assert!(shown.len() < 60_000, "{} entries read", shown.len());
    let notes = logged_messages(&h, 3604);
    assert!(notes.iter().any(|m| m.contains("older entries")), "{notes:?}");
    assert_eq!(std::fs::read(h.path("errors.log")).unwrap(), before, "reading wrote");
    // Moved, every entry arrives once and the long line is quoted cut, as one entry.
    h.install_works(1);
    let moved = logged_messages(&h, 3014);
    assert_eq!(moved.iter().filter(|m| m.starts_with("spooled ")).count(), 60_000);
    let unreadable = logged_messages(&h, 3604);
    let quoted: Vec<_> = unreadable.iter().filter(|m| m.contains("xxxx")).collect();
    assert_eq!(quoted.len(), 1, "{unreadable:?}");
    assert!(quoted[0].len() < 1000);
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

/// Every directory of `home` is 0700 and every file 0600 (but the public trust anchors).
fn assert_owners_alone(home: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let mut seen = 0;
    let mut dirs = vec![home.to_path_buf()];
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
    assert!(seen > 5, "{seen} files");
    assert!(home.join("archive.db").exists());
}

/// Runs the shell `script` with `$0` the binary, which must succeed.
fn sh(script: &str, env: &[(&str, &std::path::Path)]) {
    let mut c = std::process::Command::new("sh");
    c.args(["-c", script, common::binary()]);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{script}: {}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn the_home_is_its_owners_alone_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    // A home the demo makes under umask 000.
    let home = dir.path().join("home");
    sh(&format!("umask 000 && exec \"$0\" --home '{}' demo --meters 1", home.display()), &[]);
    assert_owners_alone(&home);
    // A directory the operator made beforehand, open to all, taken by `init`.
    let made = dir.path().join("made");
    sh(
        &format!(
            "umask 000 && mkdir '{0}' '{0}/boxes' '{0}/media' && exec \"$0\" --home '{0}' init",
            made.display()
        ),
        &[],
    );
    assert_owners_alone(&made);
    // The demo's own temporary home.
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    sh("umask 000 && exec \"$0\" demo --meters 0", &[("TMPDIR", &tmp)]);
    let demo = std::fs::read_dir(&tmp).unwrap().next().unwrap().unwrap().path();
    assert!(demo.file_name().unwrap().to_string_lossy().starts_with("postkey-demo-"));
    assert_owners_alone(&demo);
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
        vec!["audit", "verify"],
        vec!["keys", "show", "--meter", &meter],
    ] {
        let o = h.run(&args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
    // The spooled refusal is shown though it is not in the archive yet.
    let errors = h.json(&["errors"]);
    let spooled = errors.as_array().unwrap().iter().find(|e| e["message"] == "spooled");
    assert_eq!(spooled.unwrap()["component"], "O00000001", "{errors}");
    let after = home_snapshot(&h);
    let names = |s: &[(String, Vec<u8>)]| s.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&after), names(&before));
    for ((name, a), (_, b)) in after.iter().zip(&before) {
        assert!(a == b, "{name} changed");
    }
}

#[test]
fn a_first_ceremony_that_stopped_is_named_and_init_runs_again() {
    let h = Home::new();
    h.ok(&["init"]);
    // As a stop before the archive transaction leaves it: every file written, the journal
    // naming them, nothing in the archive.
    let media = h.path("media");
    let mut written = vec![h.path("boxes/M00000001.state"), h.path("trust-anchors.cbor")];
    written.extend(std::fs::read_dir(&media).unwrap().map(|e| e.unwrap().path()));
    let journal: String = written.iter().map(|p| format!("{}\n", p.display())).collect();
    std::fs::write(h.path("init.journal"), journal).unwrap();
    for f in ["archive.db", "archive.db-wal", "archive.db-shm"] {
        let _ = std::fs::remove_file(h.path(f));
    }
    // Every command on the home says what happened and what to do.
    let o = h.run(&["box", "list"]);
    refused(&o, 2, 3603);
    assert!(stderr(&o).contains("run `postkey init` again"), "{}", stderr(&o));
    // And init does it: the stopped attempt's files go, a new first ceremony runs.
    h.ok(&["init"]);
    assert!(!h.path("init.journal").exists());
    assert_eq!(h.boxes(), ["M00000001"]);
    h.ok(&["box", "self-test", "M00000001"]);
}

/// The journal of a stopped first ceremony names files by absolute paths; run again from
/// another directory, the undo removes what that ceremony wrote and nothing of the directory it
/// is run from (a relative line, as an older journal may hold, is never removed).
#[test]
fn an_unfinished_first_ceremony_is_undone_from_any_directory_and_only_where_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(home.join("boxes")).unwrap();
    std::fs::create_dir_all(elsewhere.join("h/boxes")).unwrap();
    let decoy = elsewhere.join("h/boxes/M00000001.state");
    std::fs::write(&decoy, b"not the home's").unwrap();
    let written = home.join("boxes/M00000001.state");
    std::fs::write(&written, b"half a state").unwrap();
    let journal = format!("{}\nh/boxes/M00000001.state\n", written.display());
    std::fs::write(home.join("init.journal"), journal).unwrap();
    let o = std::process::Command::new(common::binary())
        .current_dir(&elsewhere)
        .arg("--home")
        .arg(&home)
        .arg("init")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read(&decoy).unwrap(), b"not the home's", "a file outside the home went");
    assert_ne!(std::fs::read(&written).unwrap(), b"half a state", "the half-written state stayed");
    assert!(!home.join("init.journal").exists());
}
