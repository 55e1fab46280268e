//! The CLI's contract: help text, exit codes (0 success, 1 check failed, 2 usage, 3 operational
//! error) and its one-line errors.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

fn postkey(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_postkey")).args(args).output().expect("postkey runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_lists_every_command() {
    let o = postkey(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    let help = stdout(&o);
    assert!(help.starts_with("postkey: key management for digital postage meters"), "{help}");
    for cmd in [
        "init",
        "domain",
        "box",
        "share",
        "meter",
        "factory",
        "keys",
        "errors",
        "audit",
        "demo",
        "bench",
        "test-vectors",
        "self-test",
        "help",
    ] {
        assert!(help.contains(cmd), "help lacks {cmd}:\n{help}");
    }
    for sub in [
        &["test-vectors", "--help"][..],
        &["self-test", "--help"],
        &["init", "--help"],
        &["domain", "create", "--help"],
        &["box", "manufacture", "--help"],
        &["box", "list", "--help"],
        &["share", "check", "--help"],
        &["demo", "--help"],
        &["audit", "verify", "--help"],
        &["keys", "show", "--help"],
    ] {
        assert_eq!(postkey(sub).status.code(), Some(0), "{sub:?}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let o = postkey(&["no-such-command"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unrecognized subcommand"), "{}", stderr(&o));
    assert_eq!(postkey(&["test-vectors", "--out", "a", "--check", "b"]).status.code(), Some(2));
}

#[test]
fn self_test_passes_and_reports_json() {
    let o = postkey(&["self-test", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(doc["passed"], true);
    assert!(doc["results"].as_array().unwrap().len() >= 12);
}

#[test]
fn test_vectors_check_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    assert_eq!(postkey(&["test-vectors", "--out", good.to_str().unwrap()]).status.code(), Some(0));
    assert_eq!(
        postkey(&["test-vectors", "--check", good.to_str().unwrap()]).status.code(),
        Some(0)
    );

    // A bare file name is written in the current directory.
    let o = Command::new(env!("CARGO_BIN_EXE_postkey"))
        .args(["test-vectors", "--out", "bare.json"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read(dir.path().join("bare.json")).unwrap(), std::fs::read(&good).unwrap());

    // The file from --out is what plain stdout prints.
    let printed = postkey(&["test-vectors"]);
    assert_eq!(stdout(&printed), std::fs::read_to_string(&good).unwrap());

    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&good).unwrap().replacen("2329ABC12CA06EF8", "2329ABC12CA06EF9", 1),
    )
    .unwrap();
    let o = postkey(&["test-vectors", "--check", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("differs"), "{}", stderr(&o));

    // A file the caller names that is not there, or not a regular file, is the caller's
    // mistake (exit 2), said once; a FIFO is refused without blocking.
    let missing = dir.path().join("missing.json");
    let o = postkey(&["test-vectors", "--check", missing.to_str().unwrap()]);
    refused(&o, 2, "2010");
    let err = stderr(&o);
    assert!(err.contains("missing.json: No such file or directory"), "{err}");
    assert_eq!(err.matches("missing.json").count(), 1, "{err}");
    let fifo = dir.path().join("fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let o = postkey(&["test-vectors", "--check", fifo.to_str().unwrap()]);
    refused(&o, 2, "2010");
    assert!(stderr(&o).contains("is not a regular file"), "{}", stderr(&o));
}

fn at(home: &std::path::Path, args: &[&str]) -> Output {
    let mut all = vec!["--home", home.to_str().unwrap()];
    all.extend_from_slice(args);
    postkey(&all)
}

#[test]
fn init_box_and_share_commands_speak_json_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let o = at(home, &["init", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let init: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(init["id"], "M00000001");
    assert!(stderr(&o).contains("warning: simulation"), "the simulator warning of protocol §12");

    // A second first ceremony: the caller's mistake (3011), usage exit 2, one friendly line.
    let o = at(home, &["init"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("3011"));

    let o = at(home, &["domain", "create", "USPS", "--kind", "postal", "--subdomain", "USPS/US"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = at(home, &["box", "manufacture", "--type", "brass", "--domain", "USPS", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = at(home, &["box", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let brass = list.as_array().unwrap().iter().find(|b| b["type"] == "brass").unwrap();
    assert_eq!(brass["id"], "B00000001");
    assert_eq!(brass["domains"], serde_json::json!(["USPS"]));

    // Usage errors exit 2: a malformed box ID, a domain kind that does not exist.
    assert_eq!(at(home, &["box", "show", "B1"]).status.code(), Some(2));
    assert_eq!(
        at(home, &["domain", "create", "UKRM", "--kind", "moon", "--subdomain", "UKRM/GB"])
            .status
            .code(),
        Some(2)
    );

    // A share checked alone: valid exits 0, corrupted exits 1.
    let share = std::fs::read_dir(home.join("media"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("B00000001-operation-combination"))
        .unwrap();
    let o = at(home, &["share", "check", share.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let mut bytes = std::fs::read(&share).unwrap();
    bytes[30] ^= 1;
    let bad = dir.path().join("bad.share");
    std::fs::write(&bad, bytes).unwrap();
    let o = at(home, &["share", "check", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("INVALID"));

    let o = at(home, &["box", "self-test", "B00000001", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = at(home, &["errors", "--json"]);
    let errors: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(errors.as_array().unwrap().iter().any(|e| e["code"] == 3011));
}

/// Exit code, and the one error line on standard error, which names the response code.
fn refused(o: &Output, exit: i32, code: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(exit), "{err}");
    assert!(err.starts_with("postkey: error: ") && err.lines().count() == 1, "{err}");
    assert!(err.contains(&format!("[response code {code}]")), "{err}");
}

#[test]
fn the_callers_mistakes_found_after_parsing_exit_2_and_other_errors_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    // A home with no first ceremony yet.
    refused(&at(&home, &["box", "self-test", "M00000001"]), 2, "3603");
    refused(
        &at(&home, &["domain", "create", "USPS", "--kind", "postal", "--subdomain", "USPS/US"]),
        2,
        "3603",
    );
    assert_eq!(at(&home, &["init"]).status.code(), Some(0));
    let o = at(&home, &["domain", "create", "USPS", "--kind", "postal", "--subdomain", "USPS/US"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = at(&home, &["box", "manufacture", "--type", "oak"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // A box, a domain, a key the home does not hold.
    refused(&at(&home, &["box", "show", "B00000009"]), 2, "3020");
    refused(&at(&home, &["box", "self-test", "T00000001"]), 2, "3020");
    refused(&at(&home, &["box", "install", "O00000001", "--domain", "UKRM"]), 2, "3008");
    refused(&at(&home, &["keys", "show", "USPS", "5"]), 2, "3650");
    refused(&at(&home, &["keys", "list", "--domain", "NOPE"]), 2, "3008");
    // A meter the home does not hold; an installation no line of boxes serves.
    refused(&at(&home, &["factory", "install", "PB1234-999999", "--postal", "USPS"]), 2, "3021");
    let o = at(&home, &["meter", "new", "--product", "PB1234", "--msn", "000001"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // (VE, the vendor domain of every run, does not exist yet: named as such.)
    refused(&at(&home, &["factory", "install", "PB1234-000001", "--postal", "USPS"]), 2, "3008");
    let o = at(&home, &["domain", "create", "VE", "--kind", "vendor", "--subdomain", "VE/US"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    refused(&at(&home, &["factory", "install", "PB1234-000001", "--postal", "USPS"]), 2, "3022");
    // A share split that cannot be made is refused before the manufacturing box uses up an ID.
    let boxes_before = at(&home, &["box", "list"]).stdout;
    refused(&at(&home, &["box", "manufacture", "--type", "steel", "--threshold", "0"]), 2, "2010");
    refused(
        &at(&home, &["box", "manufacture", "--type", "steel", "--threshold", "3", "--count", "2"]),
        2,
        "2010",
    );
    // So is removable media that cannot be written, or that is a file: no orphan state either.
    let o = at(&home, &["box", "manufacture", "--type", "steel", "--media", "/proc/postkey-x"]);
    refused(&o, 3, "3602");
    let o = at(&home, &["box", "manufacture", "--type", "steel", "--media", "/dev/null/x"]);
    refused(&o, 2, "2010");
    let o = at(&home, &["box", "manufacture", "--type", "steel", "--media", "/dev/null"]);
    refused(&o, 2, "2010");
    assert_eq!(at(&home, &["box", "list"]).stdout, boxes_before);
    // A Tin box serves postal domains only; sub-domains are for Brass and Tin boxes only.
    let boxes_before = at(&home, &["box", "list"]).stdout;
    let o = at(&home, &["box", "manufacture", "--type", "tin", "--domain", "VE"]);
    refused(&o, 2, "2010");
    assert!(stderr(&o).contains("VE is a vendor domain: a tin box serves postal domains only"));
    let o = at(
        &home,
        &["box", "manufacture", "--type", "oak", "--domain", "USPS", "--subdomain", "USPS/US"],
    );
    refused(&o, 2, "2010");
    assert_eq!(at(&home, &["box", "list"]).stdout, boxes_before);
    let o = at(&home, &["box", "manufacture", "--type", "tin", "--domain", "USPS", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let tin: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(tin["processes"][0]["subdomains"], serde_json::json!(["USPS/US"]), "{tin}");
    assert!(!home.join("boxes").join("S00000001.state").exists());
    let o = at(&home, &["box", "manufacture", "--type", "steel"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("S00000001"), "the refused attempts used up no ID: {}", stdout(&o));
    // No share files where the caller pointed.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = at(&home, &["box", "self-test", "O00000001", "--shares-dir", empty.to_str().unwrap()]);
    refused(&o, 2, "3112");
    // Not the caller's fault: a file of the home that no longer decodes is an operational error.
    std::fs::write(home.join("trust-anchors.cbor"), b"not cbor").unwrap();
    refused(&at(&home, &["box", "show", "O00000001"]), 3, "3604");
}

#[test]
fn demo_runs_end_to_end_in_the_given_home() {
    let dir = tempfile::tempdir().unwrap();
    let o = at(dir.path(), &["demo", "--meters", "8", "--mailpieces", "200", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["boxes"].as_array().unwrap().len(), 6);
    // Every mailpiece got the outcome expected of it, at Brass and at the Tin box.
    assert_eq!(report["mismatches"], 0, "{}", report["mail"]);
    assert!(report["mail"]["mailpieces"].as_u64().unwrap() > 150, "{}", report["mail"]);
    // The error log holds the demo's refusals and nothing else: each malformed indicium (5006,
    // at Brass and again at the Tin box), and the Tin box's refusal of the older export (3034)
    // with the KMC's entry for it.
    let at_tin: u64 = report["mail"]["tin"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["got"]["malformed"].as_u64())
        .sum();
    let malformed = report["mail"]["outcomes"]["malformed"].as_u64().unwrap() + at_tin;
    assert!(malformed > 0);
    assert_eq!(report["errors"].as_u64(), Some(malformed + 2), "{report}");
    assert_eq!(report["transcripts"], 20);
    // It ends with an audit of the archive it made, which holds.
    assert_eq!(report["audit"]["faults"], serde_json::json!([]), "{}", report["audit"]);
    assert_eq!(report["audit"]["keys"], 16);
    // Every meter got a VE key and a USPS or EARTH key; each was registered (USPS/US, EARTH/DE,
    // EARTH/GB, the vendor keys in VE/<country>), and the last two withdrawn.
    let count = |subdomain: &str, status: &str| {
        report["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["subdomain"] == subdomain && k["status"] == status)
            .map_or(0, |k| k["count"].as_u64().unwrap())
    };
    let active =
        ["USPS/US", "EARTH/DE", "EARTH/GB", "VE/US", "VE/DE", "VE/GB"].map(|s| count(s, "active"));
    assert_eq!(active, [3, 2, 1, 3, 2, 1], "{report}");
    let obsolete = ["USPS/US", "EARTH/GB", "VE/US", "VE/GB"].map(|s| count(s, "obsolete"));
    assert_eq!(obsolete, [1, 1, 1, 1], "{report}");
    assert_eq!(report["registrations"]["registered"], 8, "{report}");
    assert_eq!(report["withdrawn"], serde_json::json!(["PB1234-000007", "PB1234-000008"]));
    // The text form shows the statuses too.
    let other = tempfile::tempdir().unwrap();
    let o = at(other.path(), &["demo", "--meters", "2", "--mailpieces", "100"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("mismatches: 0"), "{}", stdout(&o));
    assert!(stdout(&o).contains("keys of 2 meters (registrations: 2 registered"), "{}", stdout(&o));
    assert!(stdout(&o).contains("audit verify: all holds"), "{}", stdout(&o));
    assert!(
        stdout(&o).lines().any(|l| l.trim_start().starts_with("VE/US") && l.contains("active")),
        "{}",
        stdout(&o)
    );
    // A meter's keys, each event with its actor and the digest of the record that caused it.
    let meters: serde_json::Value =
        serde_json::from_str(&stdout(&at(dir.path(), &["keys", "list", "--json"]))).unwrap();
    let meter = meters[0].clone();
    let id =
        format!("{}-{}", meter["product_code"].as_str().unwrap(), meter["msn"].as_str().unwrap());
    let o = at(dir.path(), &["keys", "show", "--meter", &id, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let keys: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 2, "a vendor and a postal key");
    for k in keys {
        let history = k["history"].as_array().unwrap();
        let mi7 = history.iter().find(|e| e["record"] == "MI7").expect("the MI7 event");
        assert_eq!(mi7["record_digest"].as_str().unwrap().len(), 64, "{mi7}");
        assert!(history.iter().all(|e| !e["actor"].as_str().unwrap().is_empty()));
    }
    let text = stdout(&at(dir.path(), &["keys", "show", "--meter", &id]));
    assert_eq!(text.matches("key ").count(), 2, "{text}");
    assert!(text.contains("(MI9 sha256:"), "{text}");
    // An export the auditor carries away, verified with the anchors alone and no home.
    let export = other.path().join("archive.export");
    let o = at(dir.path(), &["audit", "export", export.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let anchors = dir.path().join("media/trust-anchors.cbor");
    let nowhere = other.path().join("no-home");
    let args = [
        "audit",
        "verify",
        "--file",
        export.to_str().unwrap(),
        "--anchors",
        anchors.to_str().unwrap(),
    ];
    let o = at(&nowhere, &args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("all holds"), "{}", stdout(&o));
    assert!(!nowhere.exists(), "verifying an export made a home");
    // A registration list: the demo's own registration again changes nothing; a withdrawn
    // meter is refused (3026), and the command says so with exit 1.
    let list = other.path().join("registrations.txt");
    std::fs::write(
        &list,
        "# meter subdomain isn\nPB1234-000001 USPS/US 0400000001\nPB1234-000008 EARTH/GB GB00000008\n",
    )
    .unwrap();
    let o = at(dir.path(), &["factory", "register", "--file", list.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(r["outcomes"], serde_json::json!({"unchanged": 1, "refused": 1}), "{r}");
    assert_eq!(r["meters"][1]["code"], 3026, "{r}");
    std::fs::write(&list, "PB1234-000001 USPS/US\n").unwrap();
    let o = at(dir.path(), &["factory", "register", "--file", list.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("line 1: expected `METER SUBDOMAIN ISN [DATE]`"), "{}", stderr(&o));
    // With the boxes at hand, each Oak and Steel box attests its state, and none is ahead of the
    // archive or behind it.
    let o = at(dir.path(), &["audit", "verify", "--boxes", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let boxes = r["boxes"].as_array().unwrap();
    assert!(boxes.len() >= 2 && boxes.iter().all(|b| b["version"].as_u64().is_some()), "{r}");
    let text = stdout(&at(dir.path(), &["audit", "verify", "--boxes"]));
    assert!(text.contains("state version") && text.contains("all holds"), "{text}");
    // A second run in the same home refuses: the first ceremony already happened there (3011,
    // the caller's fault: usage exit 2).
    let o = at(dir.path(), &["demo"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("3011"), "{}", stderr(&o));
}

#[test]
fn bench_install_reports_its_figures_and_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let o = at(dir.path(), &["bench", "install", "--meters", "2", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(r["keys"], 4);
    for field in ["keys_per_second", "cpu_us_per_key", "public_key_ops_us_per_key", "ratio"] {
        assert!(r[field].as_f64().unwrap() > 0.0, "{field}: {r}");
    }
}

#[test]
fn bench_audit_measures_the_audit_beside_its_floor_and_leaves_no_home() {
    let tmp = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_postkey"))
        .args(["bench", "audit", "--meters", "2", "--json"])
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!((r["keys"].as_u64(), r["holds"].as_bool()), (Some(4), Some(true)), "{r}");
    assert!(r["signatures"].as_u64().unwrap() > r["keys"].as_u64().unwrap() * 3, "{r}");
    for field in ["audit_seconds", "baseline_seconds", "ratio"] {
        assert!(r[field].as_f64().unwrap() > 0.0, "{field}: {r}");
    }
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "a home was left behind");
}

#[test]
fn bench_install_leaves_no_home_and_no_schema_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let bench = |extra: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_postkey"))
            .args(["bench", "install", "--meters", "1", "--json"])
            .args(extra)
            .env("TMPDIR", tmp.path())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let r: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "a home was left behind");
        r
    };
    bench(&[]);
    // On PostgreSQL its schema goes too (checked with the server's own client, where both are
    // at hand).
    let Some(url) = postkey_archive_postgres::testing::server_url("bench on PostgreSQL") else {
        return;
    };
    let r = bench(&["--postgres", &url]);
    let archive = r["archive"].as_str().unwrap();
    let schema = archive.rsplit(' ').next().unwrap();
    assert!(schema.starts_with("postkey_bench_"), "{archive}");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let exists = rt.block_on(postkey_archive_postgres::testing::schema_exists(&url, schema));
    assert!(!exists.unwrap(), "schema {schema} left behind");
}

#[test]
fn bench_install_cleans_up_when_stopped_and_keeps_its_home_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let bench = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_postkey"))
            .args(["bench", "install"])
            .args(args)
            .env("TMPDIR", tmp.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // SIGTERM while it runs: it removes its home and says so, exit 143.
    let child = bench(&["--meters", "1000000"]);
    let started = std::time::Instant::now();
    while std::fs::read_dir(tmp.path()).unwrap().count() == 0 {
        assert!(started.elapsed().as_secs() < 60, "the bench made no home");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(143), "{}", stderr(&o));
    assert!(stderr(&o).contains("interrupted"), "{}", stderr(&o));
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "a home was left behind");
    // A signal at any instant of the start, before or after the home exists: none is left.
    for delay_ms in [5, 10, 20, 40, 80] {
        let child = bench(&["--meters", "1000000"]);
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let pid = child.id().to_string();
        assert!(
            std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success()
        );
        let o = child.wait_with_output().unwrap();
        assert!(matches!(o.status.code(), Some(143) | None), "{delay_ms} ms: {}", stderr(&o));
        let left = std::fs::read_dir(tmp.path()).unwrap().count();
        assert_eq!(left, 0, "{delay_ms} ms: a home was left behind");
    }
    // --keep: the home stays, named on standard error.
    let o = bench(&["--meters", "1", "--keep"]).wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let kept: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(kept.len(), 1);
    assert!(stderr(&o).contains(kept[0].to_str().unwrap()), "{}", stderr(&o));
    assert!(kept[0].join("archive.db").exists());
}

// Commands on a missing or empty home: `exit_codes.rs`, with every command's exit codes.

#[test]
fn arguments_are_bounded_and_a_huge_one_is_not_echoed_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let huge = "A".repeat(100_000);
    let o = at(&home, &["keys", "show", &huge, "1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stderr.len() < 1_000, "{} bytes of error", o.stderr.len());
    assert!(stderr(&o).contains("bytes in all)"), "{}", stderr(&o));
    for args in [
        &["demo", "--meters", "1000001"][..],
        &["bench", "install", "--meters", "0"],
        &["bench", "install", "--batch", "1025"],
    ] {
        let o = at(&home, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(!home.exists(), "{args:?} made a home");
    }
    // Help still goes to standard output with exit 0.
    let o = at(&home, &["--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("Usage: postkey"));
}
