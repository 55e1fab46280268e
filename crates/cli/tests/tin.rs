//! `postkey tin export`, `tin import` and `tin verify` as a post's remote site runs them
//! (docs/tin.md): a month's export verifies postal tokens offline; a withdrawal followed by a
//! superseding export makes the meter unknown there; an older export, or an older state of the
//! Tin box, is refused; bad arguments exit 2 and leave no file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Home, refused, stderr, stdout};

/// A home with meters 1 and 2 keyed (VE, USPS) and registered in USPS/US; one indicium of each
/// and the month they were printed in.
fn two_meters() -> (Home, Vec<String>, String) {
    let h = Home::demo();
    let mut texts = Vec::new();
    let mut month = String::new();
    for n in 1..=2u32 {
        h.install_works(n);
        let meter = format!("PB1234-{n:06}");
        let isn = format!("04000000{n:02}");
        h.ok(&["factory", "register", &meter, "--subdomain", "USPS/US", "--isn", &isn]);
        let printed = h.json(&["meter", "print", &meter, "--value", "65", "--zip", "06484"]);
        month = printed["indicia"][0]["date"].as_str().unwrap()[..6].to_owned();
        let text = h.ok(&["meter", "print", &meter, "--value", "65", "--zip", "06484"]);
        texts.push(text.trim().to_owned());
    }
    (h, texts, month)
}

fn export(h: &Home, month: &str, file: &std::path::Path) -> serde_json::Value {
    let out = file.to_str().unwrap();
    h.json(&[
        "tin",
        "export",
        "--tin",
        "T00000001",
        "--subdomain",
        "USPS/US",
        "--month",
        month,
        "--out",
        out,
    ])
}

fn tin_verify(h: &Home, text: &str) -> (Option<i32>, serde_json::Value) {
    let o = h.run(&["tin", "verify", "--tin", "T00000001", text, "--json"]);
    (o.status.code(), serde_json::from_str(&stdout(&o)).unwrap_or_default())
}

#[test]
fn a_tin_box_verifies_postal_tokens_offline_and_takes_only_newer_exports() {
    let (h, texts, month) = two_meters();
    let first = h.root.join("first.tinexport");
    assert_eq!(export(&h, &month, &first)["meters"], 2);
    let taken = h.json(&["tin", "import", first.to_str().unwrap()]);
    assert_eq!((taken["meters"].clone(), taken["have"].clone()), (2.into(), 1.into()), "{taken}");
    let (exit, r) = tin_verify(&h, &texts[0]);
    assert_eq!((exit, r["outcome"].as_str()), (Some(0), Some("good")), "{r}");
    assert!(r["covers"].as_str().unwrap().contains("postal token only"), "{r}");
    // The text form says what the answers cover, first.
    let o = h.run(&["tin", "verify", "--tin", "T00000001", &texts[1]]);
    assert!(stdout(&o).starts_with("tin T00000001: answers cover the postal token only"));
    // The same export again changes nothing.
    h.ok(&["tin", "import", first.to_str().unwrap()]);
    let state = h.path("boxes/T00000001.state");
    let backup = std::fs::read(&state).unwrap();

    // Meter 1 withdrawn, and a superseding export: meter 1 is unknown there, meter 2 good.
    h.ok(&["withdraw", "PB1234-000001", "--reason", "stolen"]);
    let second = h.root.join("second.tinexport");
    assert_eq!(export(&h, &month, &second)["meters"], 1);
    h.ok(&["tin", "import", second.to_str().unwrap()]);
    let (exit, r) = tin_verify(&h, &texts[0]);
    assert_eq!(
        (exit, r["outcome"].as_str(), r["code"].as_u64()),
        (Some(1), Some("unknown-meter"), Some(5002))
    );
    assert_eq!(tin_verify(&h, &texts[1]).1["outcome"], "good");
    // The older export is a replay: refused, logged.
    refused(&h.run(&["tin", "import", first.to_str().unwrap()]), 3, 3034);
    assert!(h.logged("T00000001").contains(&3034));
    // An older state of the Tin box, which still holds the first export: refused.
    std::fs::write(&state, &backup).unwrap();
    refused(&h.run(&["tin", "verify", "--tin", "T00000001", &texts[0]]), 3, 4004);
}

#[test]
fn a_tin_export_refuses_bad_arguments_before_any_box_works_and_never_overwrites() {
    let (h, _, month) = two_meters();
    let kept = h.root.join("kept.tinexport");
    std::fs::write(&kept, b"mine").unwrap();
    let args = |tin: &str, month: &str, out: &str| {
        h.run(&[
            "tin",
            "export",
            "--tin",
            tin,
            "--subdomain",
            "USPS/US",
            "--month",
            month,
            "--out",
            out,
        ])
    };
    let o = args("T00000001", &month, kept.to_str().unwrap());
    refused(&o, 2, 2010);
    assert_eq!(std::fs::read(&kept).unwrap(), b"mine");
    let fresh = h.root.join("fresh.tinexport");
    let fresh = fresh.to_str().unwrap();
    refused(&args("B00000001", &month, fresh), 2, 2010);
    refused(&args("T00000009", &month, fresh), 2, 2010);
    refused(&args("T00000001", "209912", fresh), 2, 2010);
    assert_eq!(args("T00000001", "202613", fresh).status.code(), Some(2));
    assert!(!std::path::Path::new(fresh).exists(), "a refused export left a file");
    // The vendor's sub-domain is never exported to a Tin box.
    let o = h.run(&[
        "tin",
        "export",
        "--tin",
        "T00000001",
        "--subdomain",
        "VE/US",
        "--month",
        &month,
        "--out",
        fresh,
    ]);
    refused(&o, 2, 3012);
    assert!(!std::path::Path::new(fresh).exists(), "{}", stderr(&o));
    // A file that is no export: refused as the caller's, logged.
    refused(&h.run(&["tin", "import", kept.to_str().unwrap()]), 2, 2010);
    let dir = h.root.to_str().unwrap();
    refused(&h.run(&["tin", "import", dir]), 2, 2010);
}
