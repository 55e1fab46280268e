//! `postkey meter print` and `postkey verify` as a mail facility runs them
//! (docs/verification.md): a printed indicium, as text and as a PNG, verifies `good`; again, it
//! is `duplicate` with its first sighting; exit 0 only if every mailpiece is good, 1 otherwise
//! (a malformed line included), 2 for usage errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Home, refused, stderr, stdout};

/// A home with meter 1 keyed (VE, USPS) and registered in USPS/US as ISN 0400000001.
fn registered() -> (Home, String) {
    let h = Home::demo();
    h.install_works(1);
    let meter = "PB1234-000001".to_owned();
    h.ok(&["factory", "register", &meter, "--subdomain", "USPS/US", "--isn", "0400000001"]);
    (h, meter)
}

fn print(h: &Home, meter: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["meter", "print", meter, "--value", "65", "--zip", "06484-1234"];
    args.extend_from_slice(extra);
    stdout(&h.run(&args)).lines().map(str::to_owned).collect()
}

#[test]
fn a_printed_indicium_verifies_good_as_text_and_picture_then_duplicate() {
    let (h, meter) = registered();
    let png = h.root.join("piece.png");
    let svg = h.root.join("piece.svg");
    let texts = print(
        &h,
        &meter,
        &["--count", "2", "--png", png.to_str().unwrap(), "--svg", svg.to_str().unwrap()],
    );
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    // The counter went on durably: the next print is piece 3.
    let next = h.json(&["meter", "print", &meter, "--value", "65", "--zip", "06484"]);
    assert_eq!(next["indicia"][0]["count"], 3, "{next}");

    let first = h.json(&["verify", &texts[1], "--site", "CHI-NDC"]);
    assert_eq!(first["outcome"], "good", "{first}");
    assert_eq!(first["meter"], meter.as_str());
    // The picture is of piece 1: good, read from the Data Matrix.
    let o = h.run(&["verify", "--image", png.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let pic: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(pic["count"], 1, "{pic}");
    // Seen again: duplicate, with where and when it was first seen; exit 1.
    let o = h.run(&["verify", &texts[1], "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let again: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(again["outcome"], "duplicate");
    assert_eq!(again["code"], 5007);
    assert_eq!(again["first_seen"]["site"], "CHI-NDC");
    let o = h.run(&["verify", "--image", png.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).starts_with("duplicate"), "{}", stdout(&o));
}

#[test]
fn a_file_of_indicia_gets_one_answer_a_line_and_a_count_of_each_outcome() {
    let (h, meter) = registered();
    let texts = print(&h, &meter, &["--count", "3"]);
    let two_errors = {
        let mut words: Vec<String> = texts[2].split(' ').map(str::to_owned).collect();
        words[1].replace_range(0..2, "ZZ");
        words.join(" ")
    };
    let file = h.root.join("day.txt");
    let body = format!(
        "{}\n\n{}\n{}\r\n{}\nnot an indicium\n{}",
        texts[0],
        texts[1],
        texts[0],
        two_errors,
        "X".repeat(10_000)
    );
    std::fs::write(&file, body).unwrap();
    let o = h.run(&["verify", "--file", file.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let outcomes: Vec<(u64, &str)> = r["mailpieces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["line"].as_u64().unwrap(), m["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outcomes,
        [
            (1, "good"),
            (3, "good"),
            (4, "duplicate"),
            (5, "malformed"),
            (6, "malformed"),
            (7, "malformed")
        ]
    );
    assert_eq!(r["outcomes"], serde_json::json!({"duplicate": 1, "good": 2, "malformed": 3}));
    assert!(h.logged("kmc").contains(&5006), "a malformed indicium is in the error log");
    // All good: exit 0, with a count line.
    let fresh = print(&h, &meter, &["--count", "2"]);
    std::fs::write(&file, fresh.join("\n")).unwrap();
    let o = h.run(&["verify", "--file", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).ends_with("2 mailpieces: 2 good\n"), "{}", stdout(&o));
}

#[test]
fn usage_errors_exit_2_and_bad_input_is_refused_without_blocking() {
    let (h, meter) = registered();
    // No input; two inputs; a bad site; a count of 0; an unregistered meter prints nothing.
    for args in [
        vec!["verify"],
        vec!["verify", "PK1", "--file", "x"],
        vec!["verify", "PK1", "--site", "a b"],
        vec!["meter", "print", &meter, "--value", "1", "--zip", "1", "--count", "0"],
        vec!["meter", "print", &meter, "--value", "-1", "--zip", "1"],
        vec!["meter", "print", &meter, "--value", "1", "--zip", "no/zip"],
    ] {
        let o = h.run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
    let other = h.meter(2);
    let o = h.run(&["meter", "print", &other, "--value", "65", "--zip", "06484"]);
    refused(&o, 2, 3033);
    assert!(h.logged("meter").contains(&3033));
    // A FIFO where the file should be: refused at once, never read.
    let fifo = h.root.join("fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let o = h.run(&["verify", "--file", fifo.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = h.run(&["verify", "--image", fifo.to_str().unwrap()]);
    assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
    // A picture that is no PNG: a malformed indicium, exit 1.
    let junk = h.root.join("junk.png");
    std::fs::write(&junk, b"not a png").unwrap();
    let o = h.run(&["verify", "--image", junk.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stdout(&o).contains("\"malformed\""), "{}", stdout(&o));
    // An existing --png is never overwritten.
    let o = h.run(&[
        "meter",
        "print",
        &meter,
        "--value",
        "1",
        "--zip",
        "1",
        "--png",
        junk.to_str().unwrap(),
    ]);
    assert_ne!(o.status.code(), Some(0));
    assert_eq!(std::fs::read(&junk).unwrap(), b"not a png");
}

#[test]
fn two_verifier_processes_racing_on_one_mailpiece_one_good_one_duplicate() {
    let (h, meter) = registered();
    let texts = print(&h, &meter, &["--count", "4"]);
    for t in &texts {
        let a = h.spawn(&["--wait", "verify", t, "--site", "A"]);
        let b = h.spawn(&["--wait", "verify", t, "--site", "B"]);
        let mut codes = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()]
            .map(|o| o.status.code().unwrap());
        codes.sort_unstable();
        assert_eq!(codes, [0, 1]);
    }
}

#[test]
fn an_archive_put_back_after_a_verification_is_refused_never_good_twice() {
    let (h, meter) = registered();
    let texts = print(&h, &meter, &["--count", "2"]);
    let backup = h.root.join("..").join("backup");
    std::fs::create_dir_all(&backup).unwrap();
    let archive: Vec<std::path::PathBuf> = std::fs::read_dir(&h.root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("archive"))
        .collect();
    for p in &archive {
        std::fs::copy(p, backup.join(p.file_name().unwrap())).unwrap();
    }
    assert_eq!(h.run(&["verify", &texts[0]]).status.code(), Some(0));
    for p in &archive {
        std::fs::copy(backup.join(p.file_name().unwrap()), p).unwrap();
    }
    // The audit box signed the duplicate memory's chain before the answer left: the older
    // archive is behind it.
    let o = h.run(&["verify", &texts[0]]);
    refused(&o, 3, 3676);
}

#[test]
fn an_output_path_that_cannot_be_written_takes_no_piece_count_and_pictures_say_why() {
    let (h, meter) = registered();
    let taken = h.root.join("taken.png");
    std::fs::write(&taken, b"x").unwrap();
    let nowhere = h.root.join("no-such-dir").join("p.png");
    for path in [&taken, &nowhere] {
        let o = h.run(&[
            "meter",
            "print",
            &meter,
            "--value",
            "1",
            "--zip",
            "1",
            "--count",
            "50",
            "--png",
            path.to_str().unwrap(),
        ]);
        refused(&o, 2, 2010);
    }
    assert!(!nowhere.parent().unwrap().exists(), "no directory is made");
    assert!(h.logged("host").contains(&2010));
    let next = h.json(&["meter", "print", &meter, "--value", "65", "--zip", "06484"]);
    assert_eq!(next["indicia"][0]["count"], 1, "no count was taken: {next}");
    // A picture without a readable symbol says so.
    let o = h.run(&["verify", "--image", taken.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let r: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(r["outcome"], "malformed");
    assert!(r["reason"].as_str().unwrap().contains("no readable indicium"), "{r}");
    // A file with no indicium is a usage error, logged; a long line says how long it is not.
    let empty = h.root.join("empty.txt");
    std::fs::write(&empty, "\n \n").unwrap();
    let o = h.run(&["verify", "--file", empty.to_str().unwrap()]);
    refused(&o, 2, 2010);
    let long = h.root.join("long.txt");
    std::fs::write(&long, format!("\u{FEFF}{}\n{}", "A".repeat(5000), "B")).unwrap();
    let o = h.run(&["verify", "--file", long.to_str().unwrap(), "--json"]);
    let r: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(r["mailpieces"][0]["reason"].as_str().unwrap().contains("longer than 4096"), "{r}");
}

#[test]
fn verifiers_waiting_on_each_other_never_see_a_healthy_archive_as_damaged() {
    let (h, meter) = registered();
    for round in 0..4 {
        let t = print(&h, &meter, &[]).remove(0);
        let children: Vec<_> = (0..8).map(|_| h.spawn(&["--wait", "verify", &t])).collect();
        let mut codes: Vec<i32> = children
            .into_iter()
            .map(|c| {
                let o = c.wait_with_output().unwrap();
                assert!(matches!(o.status.code(), Some(0 | 1)), "round {round}: {}", stderr(&o));
                o.status.code().unwrap()
            })
            .collect();
        codes.sort_unstable();
        assert_eq!(codes, [0, 1, 1, 1, 1, 1, 1, 1], "round {round}");
    }
    h.ok(&["audit", "verify"]);
}

#[test]
fn answers_that_cannot_be_written_stop_the_run_and_no_later_mailpiece_is_remembered() {
    let (h, meter) = registered();
    let texts = print(&h, &meter, &["--count", "6"]);
    let file = h.root.join("day.txt");
    std::fs::write(&file, texts.join("\n")).unwrap();
    let path = file.to_str().unwrap();
    // A full disk under standard output: the first answer cannot be written, so the run stops
    // there (3602) instead of verifying, and remembering, the rest of the file unanswered.
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let o = h.run_to(&["verify", "--file", path, "--batch", "1"], full.into());
    refused(&o, 3, 3602);
    assert!(stderr(&o).contains("writing the answers failed"), "{}", stderr(&o));
    // Only the batch whose answer was being written is remembered: one duplicate, five good.
    let again = h.run(&["verify", "--file", path, "--json"]);
    let r: serde_json::Value = serde_json::from_str(&stdout(&again)).unwrap();
    assert_eq!(r["outcomes"], serde_json::json!({"duplicate": 1, "good": 5}), "{r}");
    // The same with --json (whose reports have no line ends to flush them), on fresh ones.
    let texts = print(&h, &meter, &["--count", "6"]);
    std::fs::write(&file, texts.join("\n")).unwrap();
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let o = h.run_to(&["verify", "--file", path, "--batch", "1", "--json"], full.into());
    refused(&o, 3, 3602);
    let again = h.run(&["verify", "--file", path, "--json"]);
    let r: serde_json::Value = serde_json::from_str(&stdout(&again)).unwrap();
    assert_eq!(r["outcomes"], serde_json::json!({"duplicate": 1, "good": 5}), "{r}");
    // A pager that quits (a closed pipe): the same, on fresh mailpieces.
    let texts = print(&h, &meter, &["--count", "6"]);
    std::fs::write(&file, texts.join("\n")).unwrap();
    let mut child = h.spawn(&["verify", "--file", path, "--batch", "1"]);
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    refused(&o, 3, 3602);
    let again = h.run(&["verify", "--file", path, "--json"]);
    let r: serde_json::Value = serde_json::from_str(&stdout(&again)).unwrap();
    assert_eq!(r["outcomes"], serde_json::json!({"duplicate": 1, "good": 5}), "{r}");
}

#[test]
fn the_error_log_names_a_malformed_line_by_its_line_of_the_file_in_every_batch() {
    let (h, meter) = registered();
    let good = print(&h, &meter, &[]);
    let file = h.root.join("day.txt");
    // Lines 2, 4 and 6 are malformed; line 3 is blank (skipped, still counted).
    std::fs::write(&file, format!("{}\nhello\n\nbad line\n{}\nX", good[0], good[0])).unwrap();
    let o = h.run(&["verify", "--file", file.to_str().unwrap(), "--batch", "2"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let log = h.json(&["errors"]);
    let mut named: Vec<String> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["code"] == 5006)
        .map(|e| e["message"].as_str().unwrap().split(':').next().unwrap().to_owned())
        .collect();
    named.sort();
    let at = |n: u32| format!("{} line {n}", file.display());
    assert_eq!(named, [at(2), at(4), at(6)], "{log}");
}
