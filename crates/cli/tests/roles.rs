//! The order names the meter and the roles (docs/installation.md, "Roles"): a meter takes one
//! vendor key from a vendor domain and one postal key from a postal domain or `EARTH`; a mix-up,
//! or a meter that has its key of a role, is a usage error before any key ID is allocated.

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
    // A second key of either role is refused, whatever the postal domain, and allocates nothing.
    let o = h.run(&["factory", "install", &meter, "--postal", "EARTH"]);
    refused(&o, 2, 3024);
    assert!(stderr(&o).contains("VE/1"), "names the key it holds: {}", stderr(&o));
    assert!(h.logged("kmc").contains(&3024));
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
