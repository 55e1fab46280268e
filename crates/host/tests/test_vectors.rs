//! The published vectors are exactly what the code computes: a change to a token formula, or to
//! the file by hand, fails here.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use postkey_host::test_vectors_json;

#[test]
fn published_test_vectors_match_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/test-vectors.json");
    let published = std::fs::read_to_string(path).expect("docs/test-vectors.json is missing");
    let generated = test_vectors_json().unwrap();
    assert!(
        published == generated,
        "docs/test-vectors.json differs from the code: run `postkey test-vectors --out docs/test-vectors.json` and review the diff"
    );
}

#[test]
fn the_document_is_json_with_every_kind_at_least_four_times() {
    let doc: serde_json::Value = serde_json::from_str(&test_vectors_json().unwrap()).unwrap();
    let vectors = doc["vectors"].as_array().unwrap();
    for kind in ["token_key", "token", "test_tokens", "registration_token", "hpke_info"] {
        let n = vectors.iter().filter(|v| v["kind"] == kind).count();
        assert!(n >= 4, "{kind}: {n} vectors");
    }
    for v in vectors.iter().filter(|v| v["kind"] == "token") {
        assert!(v["value"].is_u64() && v["count"].is_u64());
    }
}
