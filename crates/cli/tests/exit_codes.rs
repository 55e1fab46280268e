//! Every command's exit codes, one table per outcome: 2 for each usage error wherever it is
//! found (arguments, unknown boxes, domains, keys and meters, files the caller names, a home
//! that is missing or not initialized), 1 for a check that ran and failed, 3 for operational
//! failures (a corrupt home file, storage). Each failure is one line on standard error that
//! names its response code; clap's own usage errors exit 2 as well.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::FileTypeExt as _;

use common::{Home, code, stderr};

/// A demo home with meter PB1234-000001 keyed, and a share file of O00000001.
struct Fixture {
    home: Home,
    share: String,
}

fn fixture() -> Fixture {
    let home = Home::demo();
    home.ok(&["meter", "new", "--product", "PB1234", "--msn", "000001"]);
    home.ok(&["factory", "install", "PB1234-000001", "--postal", "USPS"]);
    let share = std::fs::read_dir(home.path("media"))
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().into_owned())
        .find(|p| p.contains("O00000001-operation-combination"))
        .unwrap();
    Fixture { home, share }
}

/// One call of every command that works on a home (but `share check`, which reads its file
/// first, and `init`, which makes the home).
fn on_a_home() -> [&'static [&'static str]; 18] {
    [
        &["domain", "create", "VE2", "--kind", "vendor", "--subdomain", "VE2/US"],
        &["domain", "list"],
        &["box", "manufacture", "--type", "oak"],
        &["box", "install", "O00000001", "--domain", "VE"],
        &["box", "list"],
        &["box", "show", "O00000001"],
        &["box", "self-test", "O00000001"],
        &["box", "rebaseline", "O00000001"],
        &["meter", "new", "--product", "PB1234", "--msn", "000002"],
        &["meter", "show", "PB1234-000001"],
        &["factory", "install", "PB1234-000001", "--postal", "USPS"],
        &["factory", "register", "PB1234-000001", "--subdomain", "USPS/US", "--isn", "A1"],
        &["withdraw", "PB1234-000001"],
        &["keys", "list"],
        &["keys", "show", "USPS", "1"],
        &["errors"],
        &["audit", "verify"],
        &["audit", "export", "/nonexistent-dir/archive-copy.db"],
    ]
}

/// Runs `args` on `home` and checks the exit code and, for our own errors, the response code
/// and the one line.
fn expect(home: &Home, args: &[&str], exit: i32, response: Option<u16>) {
    let o = home.run(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(exit), "postkey {args:?}: {err}");
    if let Some(response) = response {
        assert_eq!(code(&o), Some(response), "postkey {args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "postkey {args:?}: {err}");
        assert!(err.starts_with("postkey: error: "), "postkey {args:?}: {err}");
        // A long argument is cut, not echoed whole.
        assert!(err.len() < 1000, "postkey {args:?}: {} bytes", err.len());
    }
}

#[test]
fn usage_errors_exit_2_for_every_command() {
    let f = fixture();
    let h = &f.home;
    let missing = h.path("no-such-file");
    let missing = missing.to_str().unwrap();
    let empty = h.path("empty");
    std::fs::create_dir(&empty).unwrap();
    let root = h.path("");
    let a_file = f.share.as_str();
    // Where a file is to be written: a FIFO (which would block), a link (which would be
    // followed), a directory that does not exist.
    let fifo = h.path("fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let link = h.path("link");
    std::os::unix::fs::symlink(h.path("elsewhere"), &link).unwrap();
    let no_dir = h.path("no-dir/vectors.json");
    let long_name = "n".repeat(5000);
    let long_reason = "r".repeat(300);
    let table: Vec<(Vec<&str>, Option<u16>)> = vec![
        (vec!["init"], Some(3011)),
        (vec!["init", "--media", a_file], Some(3011)),
        (vec!["domain", "create", "VE", "--kind", "vendor", "--subdomain", "VE/US"], Some(3010)),
        (vec!["domain", "create", "UKRM", "--kind", "moon", "--subdomain", "UKRM/GB"], None),
        (vec!["domain", "list", "--bogus"], None),
        (vec!["box", "manufacture", "--type", "oak", "--threshold", "0"], Some(2010)),
        (vec!["box", "manufacture", "--type", "oak", "--media", a_file], Some(2010)),
        (vec!["box", "manufacture", "--type", "tin", "--domain", "VE"], Some(2010)),
        (vec!["box", "install", "O00000001", "--domain", "NOPE"], Some(3008)),
        (vec!["box", "install", "O00000001", "--domain", "USPS"], Some(3651)),
        (vec!["box", "list", "extra"], None),
        (vec!["box", "show", "B00000009"], Some(3020)),
        (vec!["box", "show", "B1"], None),
        (vec!["box", "self-test", "T00000009"], Some(3020)),
        (
            vec!["box", "self-test", "O00000001", "--shares-dir", empty.to_str().unwrap()],
            Some(3112),
        ),
        (vec!["box", "self-test", "O00000001", "--shares-dir", a_file], Some(2010)),
        (vec!["box", "manufacture", "--type", "oak", "--anchors-fingerprint", "zz"], None),
        (
            vec![
                "domain",
                "create",
                "VE3",
                "--kind",
                "vendor",
                "--subdomain",
                "VE3/US",
                "--subdomain",
                "VE3/US",
            ],
            Some(2010),
        ),
        (vec!["box", "rebaseline", "O00000001"], Some(2010)),
        (vec!["share", "check", missing], Some(2010)),
        (vec!["share", "check", root.to_str().unwrap()], Some(2010)),
        (vec!["meter", "new", "--product", "PB1234", "--msn", "x"], None),
        (vec!["meter", "new", "--product", "PB1234", "--msn", "000001"], Some(3651)),
        (vec!["meter", "show", "PB1234-999999"], Some(3021)),
        (vec!["factory", "install", "PB1234-999999", "--postal", "USPS"], Some(3021)),
        (vec!["factory", "install", "--file", missing], Some(2010)),
        (vec!["factory", "install", "PB1234-000001", "--postal", "VE"], Some(3024)),
        (vec!["factory", "install", "PB1234-000001", "--postal", "ZZZ"], Some(3008)),
        (
            vec!["factory", "register", "PB1234-999999", "--subdomain", "USPS/US", "--isn", "A1"],
            Some(3021),
        ),
        (vec!["factory", "register", "PB1234-000001", "--subdomain", "USPS/US"], None),
        (vec!["factory", "register", "PB1234-000001", "--subdomain", "US", "--isn", "A1"], None),
        (
            vec!["factory", "register", "PB1234-000001", "--subdomain", "USPS/US", "--isn", "a-1"],
            None,
        ),
        (
            vec![
                "factory",
                "register",
                "PB1234-000001",
                "--subdomain",
                "USPS/US",
                "--isn",
                "A1",
                "--date",
                "2026-12-04",
            ],
            None,
        ),
        (vec!["factory", "register", "--file", missing], Some(2010)),
        (vec!["withdraw", "PB1234-999999"], Some(3021)),
        (vec!["withdraw", "PB1234-000001", "--reason", &long_reason], Some(2010)),
        (vec!["withdraw", "PB1234-000001", "--reason", "bad\x1b[31m"], Some(2010)),
        (vec!["withdraw", "PB1234-000001", "--reason", "two\nlines"], Some(2010)),
        (vec!["withdraw", "PB1234-000001", "--reason", " "], Some(2010)),
        (vec!["keys", "list", "--domain", "NOPE"], Some(3008)),
        (vec!["keys", "show", "ZZ", "1"], Some(3008)),
        (vec!["keys", "show", "USPS", "99"], Some(3650)),
        (vec!["keys", "show", "--meter", "PB1234-999999"], Some(3650)),
        (vec!["keys", "show", "USPS"], None),
        (vec!["keys", "show", "USPS", "1", "--meter", "PB1234-000001"], None),
        (vec!["errors", "--limit", "0"], None),
        (vec!["demo", "--meters", "1000001"], None),
        (vec!["bench", "install", "--meters", "0"], None),
        (vec!["test-vectors", "--check", missing], Some(2010)),
        (vec!["test-vectors", "--out", fifo.to_str().unwrap()], Some(2010)),
        (vec!["test-vectors", "--out", link.to_str().unwrap()], Some(2010)),
        (vec!["test-vectors", "--out", no_dir.to_str().unwrap()], Some(2010)),
        (vec!["share", "check", &long_name], Some(2010)),
        (vec!["audit", "export", a_file], Some(2010)),
        (vec!["audit", "export", no_dir.to_str().unwrap()], Some(2010)),
        (vec!["audit", "verify", "--file", missing, "--anchors", missing], Some(2010)),
        (vec!["audit", "verify", "--file", a_file, "--anchors", a_file], Some(2010)),
        (
            vec!["audit", "verify", "--file", fifo.to_str().unwrap(), "--anchors", a_file],
            Some(2010),
        ),
        (vec!["audit", "verify", "--file", a_file], None),
        (vec!["audit", "verify", "--boxes", "--file", a_file, "--anchors", a_file], None),
        (vec!["audit", "verify", "--shares-dir", empty.to_str().unwrap()], None),
        (vec!["audit", "verify", "--boxes", "--shares-dir", a_file], Some(2010)),
        (vec!["self-test", "extra"], None),
    ];
    for (args, response) in &table {
        expect(h, args, 2, *response);
    }
    // A name with control characters is shown escaped: it cannot rewrite the terminal.
    let o = h.run(&["share", "check", "bad\x1b[2Jname\n"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(!err.trim_end().contains(['\x1b', '\n']) && err.contains("\\u{1b}[2J"), "{err:?}");
    // Nothing was written through the link or into the FIFO's place.
    assert!(!h.path("elsewhere").exists());
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    // The home still works after every refusal.
    h.install_works(2);
}

#[test]
fn commands_that_need_a_home_exit_2_on_a_missing_or_uninitialized_one_and_create_nothing() {
    for initialized_dir in [false, true] {
        let h = Home::new();
        if initialized_dir {
            // A directory that exists but holds no home.
            std::fs::create_dir_all(&h.root).unwrap();
        }
        for args in &on_a_home() {
            expect(&h, args, 2, Some(3603));
            let left: Vec<_> = match std::fs::read_dir(&h.root) {
                Ok(entries) => entries.map(|e| e.unwrap().file_name()).collect(),
                Err(_) => Vec::new(),
            };
            assert!(left.is_empty(), "postkey {args:?} made {left:?}");
            assert_eq!(h.root.exists(), initialized_dir, "postkey {args:?}");
        }
    }
}

#[test]
fn a_home_that_is_no_directory_is_a_usage_error_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let long = dir.path().join("n".repeat(5000));
    for root in [file.clone(), file.join("below"), long, std::path::PathBuf::from("/dev/null")] {
        let h = Home::at(root);
        for args in &on_a_home() {
            expect(&h, args, 2, Some(2010));
        }
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

#[test]
fn failed_checks_exit_1() {
    let f = fixture();
    let h = &f.home;
    // A share that does not verify.
    let mut bytes = std::fs::read(&f.share).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    let bad = h.path("bad.share");
    std::fs::write(&bad, bytes).unwrap();
    let o = h.run(&["share", "check", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // Published vectors that differ from the code's.
    let vectors = h.path("vectors.json");
    assert_eq!(h.run(&["test-vectors", "--out", vectors.to_str().unwrap()]).status.code(), Some(0));
    let text = std::fs::read_to_string(&vectors).unwrap();
    std::fs::write(&vectors, text.replacen('A', "B", 1)).unwrap();
    let o = h.run(&["test-vectors", "--check", vectors.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // The checks that pass exit 0.
    assert_eq!(h.run(&["share", "check", &f.share]).status.code(), Some(0));
    assert_eq!(h.run(&["self-test"]).status.code(), Some(0));
    assert_eq!(h.run(&["box", "self-test", "O00000001"]).status.code(), Some(0));
    // An archive that does not verify against the home's anchors (another installation's, put
    // in its place): the audit names it and exits 1.
    let other = Home::demo();
    let o = h.run(&["audit", "verify", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for f in ["archive.db", "archive.db-wal", "archive.db-shm"] {
        let _ = std::fs::remove_file(h.path(f));
        if other.path(f).exists() {
            std::fs::copy(other.path(f), h.path(f)).unwrap();
        }
    }
    let o = h.run(&["audit", "verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        common::stdout(&o).contains("FAILED at the installation record"),
        "{}",
        common::stdout(&o)
    );
}

#[test]
fn operational_failures_exit_3() {
    let f = fixture();
    let h = &f.home;
    // A file of the home that no longer decodes: every command on the home says so (3604).
    std::fs::write(h.path("trust-anchors.cbor"), b"not cbor").unwrap();
    let share = ["share", "check", f.share.as_str()];
    for args in on_a_home().into_iter().chain([&share[..]]) {
        expect(h, args, 3, Some(3604));
    }
    std::fs::copy(h.path("media/trust-anchors.cbor"), h.path("trust-anchors.cbor")).unwrap();
    // A box's sealed state removed: the archive records the box, so the home is damaged (not
    // an unknown box).
    std::fs::rename(h.path("boxes/O00000001.state"), h.path("O00000001.state.away")).unwrap();
    expect(h, &["box", "self-test", "O00000001"], 3, Some(3604));
    // A FIFO in its place: refused at once as storage that is not a file, not as a state
    // altered, and never waited on.
    let state = h.path("boxes/O00000001.state");
    assert!(std::process::Command::new("mkfifo").arg(&state).status().unwrap().success());
    expect(h, &["box", "self-test", "O00000001"], 3, Some(3602));
    std::fs::remove_file(&state).unwrap();
    std::fs::rename(h.path("O00000001.state.away"), &state).unwrap();
    // The trust anchors removed from a home with boxes: damaged, not "not initialized".
    std::fs::remove_file(h.path("trust-anchors.cbor")).unwrap();
    for args in on_a_home() {
        expect(h, args, 3, Some(3604));
    }
    std::fs::copy(h.path("media/trust-anchors.cbor"), h.path("trust-anchors.cbor")).unwrap();
    h.ok(&["box", "self-test", "O00000001"]);
    // Media that cannot be made: the first ceremony stops, and runs again once they can.
    let fresh = Home::new();
    expect(&fresh, &["init", "--media", "/proc/postkey-media"], 3, Some(3602));
    assert_eq!(fresh.run(&["init"]).status.code(), Some(0), "the stopped ceremony blocks");
    // Storage that fails where the caller could not know it would.
    let o = h.run(&["test-vectors", "--out", "/proc/version"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(code(&o), Some(3602), "{}", stderr(&o));
}

#[test]
fn a_refusal_asked_for_as_json_is_json_on_standard_output_too() {
    let h = Home::demo();
    let o = h.run(&["withdraw", "PB1234-999999", "--json"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&common::stdout(&o)).unwrap();
    assert_eq!(v["error"]["code"], 3021, "{v}");
    assert_eq!(v["error"]["fault"], "caller", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("PB1234-999999"), "{v}");
    // Without --json, standard output stays empty.
    let o = h.run(&["withdraw", "PB1234-999999"]);
    assert!(common::stdout(&o).is_empty());
    // A standard output that cannot be written (full): the refusal stays on standard error with
    // its exit code, and nothing panics.
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let o = std::process::Command::new(common::binary())
        .arg("--home")
        .arg(h.path(""))
        .args(["verify", "--file", "no-such-file", "--json"])
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}
