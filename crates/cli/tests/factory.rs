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
    let fifo = h.path("../fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let o = h.run(&["factory", "install", "--file", fifo.to_str().unwrap()]);
    refused(&o, 2, 2010);
    let o = h.run(&["factory", "install", "--file", file, "--batch", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = h.run(&["factory", "install", "PB1234-000001", "--file", file]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
