//! Replays the indicium's fuzz corpora under `cargo test` (the wire decoders' are replayed by
//! postkey-wire's own test): every file of `fuzz/corpus/<target>/` goes through the target's
//! check; files named `valid-*` must be accepted and `invalid-*` refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

/// The target `parse_indicium`: what parses prints back to the same indicium, with no repair.
fn parse_indicium(bytes: &[u8]) -> bool {
    let Ok(text) = core::str::from_utf8(bytes) else { return false };
    let Ok(parsed) = postkey_indicium::parse(text) else { return false };
    let again = postkey_indicium::parse(&parsed.indicium.to_text()).unwrap();
    assert_eq!(again.indicium, parsed.indicium);
    assert!(again.repairs.is_empty());
    true
}

/// The target `read_indicium_png`: never panics; a symbol read back is accepted.
fn read_indicium_png(bytes: &[u8]) -> bool {
    postkey_indicium::symbol::read_png(bytes).is_ok()
}

/// A target's check: runs its assertions and says whether the input was accepted.
type Check = fn(&[u8]) -> bool;

const TARGETS: &[(&str, Check)] =
    &[("parse_indicium", parse_indicium), ("read_indicium_png", read_indicium_png)];

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

#[test]
fn every_indicium_target_has_its_corpus_and_it_passes() {
    for (target, check) in TARGETS {
        assert!(fuzz_dir().join("fuzz_targets").join(format!("{target}.rs")).is_file());
        let dir = fuzz_dir().join("corpus").join(target);
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !n.starts_with('.'))
            .collect();
        files.sort();
        assert!(files.iter().any(|f| f.starts_with("valid-")), "{target}: no valid seed");
        assert!(files.iter().any(|f| f.starts_with("invalid-")), "{target}: no invalid seed");
        for file in &files {
            let accepted = check(&std::fs::read(dir.join(file)).unwrap());
            if file.starts_with("valid-") {
                assert!(accepted, "{target}/{file} is no longer accepted");
            } else if file.starts_with("invalid-") {
                assert!(!accepted, "{target}/{file} is now accepted");
            }
        }
    }
}
