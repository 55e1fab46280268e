//! `postkey factory install` as an operator runs it. The order names the meter and the roles
//! (docs/installation.md, "Roles"): a meter takes one vendor key from a vendor domain and one
//! postal key from a postal domain or `EARTH`; a mix-up, or a meter that has its key of a role
//! from another domain, is a usage error before any key ID is allocated. A list of meters runs in
//! batches, and runs again after a stop.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Home, refused, stderr};

/// Domain and key ID of every key the report lists.
fn keys(report: &serde_json::Value) -> Vec<(String, u64)> {
    let keys = report["keys"].as_array().unwrap();
    keys.iter()
        .map(|k| (k["domain"].as_str().unwrap().to_owned(), k["key_id"].as_u64().unwrap()))
        .collect()
}

#[test]
fn role_mix_ups_and_a_second_key_of_a_role_are_usage_errors_that_allocate_nothing() {
    let h = Home::demo();
    let meter = h.meter(1);
    // Two postal keys; a vendor domain for the postal key.
    let o = h.run(&["factory", "install", &meter, "--vendor", "USPS", "--postal", "EARTH"]);
    refused(&o, 2, 2010);
    let o = h.run(&["factory", "install", &meter, "--vendor", "VE", "--postal", "VE"]);
    refused(&o, 2, 2010);
    assert!(h.logged("kmc").contains(&2010));
    // No key ID was allocated: the first installation gets ID 1 in each domain.
    let report = h.json(&["factory", "install", &meter, "--postal", "USPS"]);
    assert_eq!(keys(&report), [("VE".into(), 1), ("USPS".into(), 1)], "{report}");
    // The same installation again finds both roles held: nothing is made.
    let again = h.json(&["factory", "install", &meter, "--postal", "USPS"]);
    let statuses: Vec<&str> =
        again["keys"].as_array().unwrap().iter().map(|k| k["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["held", "held"], "{again}");
    assert_eq!(keys(&again), [("VE".into(), 1), ("USPS".into(), 1)]);
    // A postal key from another domain is refused and allocates nothing.
    let o = h.run(&["factory", "install", &meter, "--postal", "EARTH"]);
    refused(&o, 2, 3024);
    assert!(stderr(&o).contains("USPS/1"), "names the key it holds: {}", stderr(&o));
    assert!(h.logged("kmc").contains(&3024));
    let shown = h.json(&["meter", "show", &meter]);
    assert_eq!(
        shown["keys"],
        serde_json::json!([{"domain": "USPS", "key_id": 1}, {"domain": "VE", "key_id": 1}])
    );
    let other = h.meter(2);
    let report = h.json(&["factory", "install", &other, "--postal", "EARTH"]);
    assert_eq!(keys(&report), [("VE".into(), 2), ("EARTH".into(), 1)], "{report}");
}

#[test]
fn a_meter_file_that_holds_another_meter_is_refused_before_any_key_is_made() {
    let h = Home::demo();
    let (one, two) = (h.meter(1), h.meter(2));
    std::fs::copy(h.path(&format!("meters/{one}.meter")), h.path(&format!("meters/{two}.meter")))
        .unwrap();
    let o = h.run(&["factory", "install", &two, "--postal", "USPS"]);
    refused(&o, 3, 3604);
    assert!(stderr(&o).contains(&format!("holds meter {one}")), "{}", stderr(&o));
    let keys = h.json(&["keys", "list"]);
    assert_eq!(keys, serde_json::json!([]), "no key was made");
}

#[test]
fn a_list_of_meters_is_keyed_in_batches_and_a_bad_list_is_a_usage_error() {
    let h = Home::demo();
    let list = h.path("../meters.txt");
    let mut text = String::from("# meter postal\n\n");
    for n in 1..=5 {
        let m = h.meter(n);
        text.push_str(&format!("{m} {}\n", if n % 2 == 0 { "EARTH" } else { "USPS" }));
    }
    std::fs::write(&list, &text).unwrap();
    let file = list.to_str().unwrap();
    let report = h.json(&["factory", "install", "--file", file, "--batch", "2"]);
    assert_eq!(report["keys"], serde_json::json!({"installed": 10}), "{report}");
    assert_eq!(report["meters"].as_array().unwrap().len(), 5);
    // Run again: every role is held, nothing is made.
    let again = h.json(&["factory", "install", "--file", file]);
    assert_eq!(again["keys"], serde_json::json!({"held": 10}), "{again}");
    // A line that does not parse names its line; a FIFO is not a list; a batch out of range.
    std::fs::write(&list, format!("{text}PB1234-000009\n")).unwrap();
    let o = h.run(&["factory", "install", "--file", file]);
    refused(&o, 2, 2010);
    assert!(stderr(&o).contains("line 8"), "{}", stderr(&o));
    std::fs::write(&list, format!("{text}PB1234-000001 EARTH\n")).unwrap();
    let o = h.run(&["factory", "install", "--file", file]);
    refused(&o, 2, 2010);
    assert!(
        stderr(&o).contains("line 8: meter PB1234-000001 is listed on line 3"),
        "{}",
        stderr(&o)
    );
    let fifo = h.path("../fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let o = h.run(&["factory", "install", "--file", fifo.to_str().unwrap()]);
    refused(&o, 2, 2010);
    let o = h.run(&["factory", "install", "--file", file, "--batch", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = h.run(&["factory", "install", "PB1234-000001", "--file", file]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// Waits for `child` at most `secs` seconds; kills it and fails if it is still running.
fn finishes(mut child: std::process::Child, secs: u64) -> std::process::Output {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running after {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn two_runs_on_two_lines_never_key_one_meter_twice() {
    // USPS and EARTH on lines of their own: the box locks do not keep the two runs apart.
    let h = Home::new();
    h.ok(&["init"]);
    for (d, kind, sub) in
        [("VE", "vendor", "VE/US"), ("USPS", "postal", "USPS/US"), ("EARTH", "earth", "EARTH/DE")]
    {
        h.ok(&["domain", "create", d, "--kind", kind, "--subdomain", sub]);
    }
    for t in ["oak", "steel", "brass"] {
        for postal in ["USPS", "EARTH"] {
            h.ok(&["box", "manufacture", "--type", t, "--domain", "VE", "--domain", postal]);
        }
    }
    let meter = h.meter(1);
    for wait in [false, true] {
        let args = |postal: &'static str| {
            let mut a = vec!["factory", "install", meter.as_str(), "--postal", postal];
            if wait {
                a.insert(0, "--wait");
            }
            a
        };
        let (a, b) = (h.spawn(&args("USPS")), h.spawn(&args("EARTH")));
        let outputs = [finishes(a, 60), finishes(b, 60)];
        let codes: Vec<Option<u16>> = outputs.iter().map(common::code).collect();
        // The first run keys the meter; the other is refused busy (3605), or waits and then
        // finds the roles taken (3024), or is the same installation again (nothing to do).
        assert!(outputs.iter().filter(|o| o.status.code() == Some(0)).count() >= 1, "{codes:?}");
        for o in &outputs {
            let fine = o.status.code() == Some(0) || matches!(common::code(o), Some(3605 | 3024));
            assert!(fine, "{}", stderr(o));
        }
    }
    let keys = h.json(&["keys", "list"]);
    let installed: Vec<&serde_json::Value> =
        keys.as_array().unwrap().iter().filter(|k| k["status"] == "installed").collect();
    assert_eq!(installed.len(), 2, "one vendor and one postal key: {keys}");
    let shown = h.json(&["meter", "show", &meter]);
    assert_eq!(shown["keys"].as_array().unwrap().len(), 2, "{shown}");
}

#[test]
fn a_journal_that_would_put_back_older_keys_or_is_no_file_changes_no_meter() {
    let h = Home::demo();
    let (one, two) = (h.meter(1), h.meter(2));
    h.ok(&["factory", "install", &one, "--postal", "USPS"]);
    h.ok(&["factory", "install", &two, "--postal", "USPS"]);
    let two_before = h.json(&["meter", "show", &two]);
    // A journal holding meter 1's image renamed as meter 2 (keys VE/1 and USPS/1, older than
    // meter 2's): neither `meter show` nor the next factory run takes it.
    let image = std::fs::read(h.path(&format!("meters/{one}.meter"))).unwrap();
    let at = image.windows(one.len()).position(|w| w == one.as_bytes()).unwrap();
    let mut forged = image.clone();
    forged[at..at + two.len()].copy_from_slice(two.as_bytes());
    let mut journal = (forged.len() as u32).to_be_bytes().to_vec();
    journal.extend_from_slice(&forged);
    std::fs::write(h.path("meters/run-4242-1.journal"), &journal).unwrap();
    assert_eq!(h.json(&["meter", "show", &two]), two_before);
    let three = h.meter(3);
    h.ok(&["factory", "install", &three, "--postal", "USPS"]);
    assert_eq!(h.json(&["meter", "show", &two]), two_before);
    assert!(h.logged("host").contains(&3604));
    // A FIFO where a journal belongs: refused at once, never waited on.
    let fifo = h.path("meters/run-1-2.journal");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let four = h.meter(4);
    let o = finishes(h.spawn(&["factory", "install", &four, "--postal", "USPS"]), 30);
    refused(&o, 3, 3604);
}

#[test]
fn a_meter_file_put_back_without_its_keys_is_not_reported_held() {
    let h = Home::demo();
    let meter = h.meter(1);
    let file = h.path(&format!("meters/{meter}.meter"));
    let blank = std::fs::read(&file).unwrap();
    h.ok(&["factory", "install", &meter, "--postal", "USPS"]);
    std::fs::write(&file, &blank).unwrap();
    let o = h.run(&["factory", "install", &meter, "--postal", "USPS"]);
    refused(&o, 3, 3604);
    assert!(stderr(&o).contains("lacks VE/1"), "{}", stderr(&o));
    assert!(h.logged("host").contains(&3604));
}

/// Every response code the error log holds, whoever logged it.
fn all_logged(h: &Home) -> Vec<u16> {
    let log = h.json(&["errors", "--limit", "10000"]);
    log.as_array().unwrap().iter().map(|e| e["code"].as_u64().unwrap() as u16).collect()
}

/// Asserts `args` fails with `exit` and `response`, and leaves one more entry of that code.
fn refused_and_logged(h: &Home, args: &[&str], exit: i32, response: u16) {
    let count = |h: &Home| all_logged(h).iter().filter(|&&c| c == response).count();
    let before = count(h);
    refused(&h.run(args), exit, response);
    assert_eq!(count(h), before + 1, "{args:?}: no error-log entry of {response}");
}

/// Registration refused before any box answers is in the error log all the same (protocol §9):
/// an unknown meter, a bad list, a Brass box without shares, one another command holds, a meter
/// file that does not read.
#[test]
fn registration_refused_by_the_host_is_in_the_error_log() {
    let h = Home::demo();
    h.install_works(1);
    let meter = "PB1234-000001";
    let order = ["factory", "register", meter, "--subdomain", "USPS/US", "--isn", "A1"];
    refused_and_logged(
        &h,
        &["factory", "register", "PB1234-999999", "--subdomain", "USPS/US", "--isn", "A1"],
        2,
        3021,
    );
    std::fs::write(h.path("bad.txt"), format!("{meter} USPS/US\n")).unwrap();
    let list = h.path("bad.txt");
    refused_and_logged(&h, &["factory", "register", "--file", list.to_str().unwrap()], 2, 2010);
    let empty = h.path("no-shares");
    std::fs::create_dir(&empty).unwrap();
    let no_shares = [&order[..], &["--shares-dir", empty.to_str().unwrap()]].concat();
    refused_and_logged(&h, &no_shares, 2, 3112);
    // Another command holds the Brass box (as a flock on its lock file).
    let brass = h.boxes().into_iter().find(|b| b.starts_with('B')).unwrap();
    let lock = h.path(&format!("locks/{brass}.lock"));
    let mut holder = std::process::Command::new("flock")
        .arg(&lock)
        .args(["sleep", "30"])
        .spawn()
        .expect("flock(1) runs");
    std::thread::sleep(std::time::Duration::from_millis(300));
    refused_and_logged(&h, &order, 3, 4007);
    let _ = holder.kill();
    let _ = holder.wait();
    // The meter's file, damaged.
    let file = h.path(&format!("meters/{meter}.meter"));
    std::fs::write(&file, b"not a meter").unwrap();
    refused_and_logged(&h, &order, 3, 3604);
}
