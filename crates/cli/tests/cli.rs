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
    for cmd in ["test-vectors", "self-test", "help"] {
        assert!(help.contains(cmd), "help lacks {cmd}:\n{help}");
    }
    for sub in [&["test-vectors", "--help"][..], &["self-test", "--help"]] {
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

    let missing = dir.path().join("missing.json");
    let o = postkey(&["test-vectors", "--check", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    let err = stderr(&o);
    assert!(err.starts_with("postkey: error: reading ") && err.lines().count() == 1, "{err}");
}
