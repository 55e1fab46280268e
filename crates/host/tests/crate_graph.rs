//! Architecture invariants read from the crate graph:
//!
//! - only the box, meter and host crates may depend on the secrets crate, and no other workspace
//!   crate may reach it through any chain of normal or dev dependencies, save the `postkey`
//!   binary, which wires the host. So the KMS computer, the archive, the wire codec and the
//!   public crypto crate cannot name a plaintext key type, not even in their tests;
//! - the boxes never reach the archive, the KMS computer or the host (nor the archive's backends),
//!   by any chain of normal or dev dependencies: a box is sans-IO and knows nothing of who drives
//!   it or where its records are kept.
//!
//! Read from `cargo metadata`, so a new crate or a new dependency is checked the day it is added.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

const SECRETS: &str = "postkey-secrets";
/// The crates that may depend on the secrets crate directly.
const MAY_HOLD_SECRETS: &[&str] = &["postkey-box", "postkey-meter", "postkey-host"];
/// The binary: it parses arguments and calls the host, so it reaches the secrets crate through
/// the host and nothing else.
const BINARY: &str = "postkey";

/// Workspace crate → the workspace crates it depends on through normal or dev dependencies.
type Graph = BTreeMap<String, BTreeSet<String>>;

fn workspace_graph() -> Graph {
    graph_of(&[None, Some("dev")])
}

/// Workspace crate → the workspace crates it depends on through dependencies of `kinds` (`None`
/// is a normal dependency).
fn graph_of(kinds: &[Option<&str>]) -> Graph {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let names: BTreeSet<String> =
        packages.iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                // Build scripts cannot hand a key to the crate at run time; normal and dev can.
                .filter(|d| kinds.contains(&d["kind"].as_str()))
                .map(|d| d["name"].as_str().unwrap().to_owned())
                .filter(|n| names.contains(n))
                .collect();
            (p["name"].as_str().unwrap().to_owned(), deps)
        })
        .collect()
}

/// Every rule broken by `graph`, as sentences.
fn violations(graph: &Graph) -> Vec<String> {
    let mut found = Vec::new();
    for (name, deps) in graph {
        if name == SECRETS || MAY_HOLD_SECRETS.contains(&name.as_str()) {
            continue;
        }
        // Walk every chain of dependencies: reaching the secrets crate by any route means this
        // crate (or its tests) could name a secret type. Only the binary may, through the host.
        let mut stack: Vec<(&String, Vec<&String>)> = deps.iter().map(|d| (d, vec![d])).collect();
        let mut seen = BTreeSet::new();
        while let Some((dep, path)) = stack.pop() {
            if !seen.insert(dep) {
                continue;
            }
            if dep == SECRETS {
                let via_host_only =
                    name == BINARY && path.first().is_some_and(|p| p.as_str() == "postkey-host");
                if !via_host_only {
                    let chain: Vec<&str> = path.iter().map(|s| s.as_str()).collect();
                    found.push(format!("{name} reaches {SECRETS} through {}", chain.join(" -> ")));
                }
                continue;
            }
            for next in graph.get(dep).into_iter().flatten() {
                let mut p = path.clone();
                p.push(next);
                stack.push((next, p));
            }
        }
    }
    found
}

/// The crates a box must never reach.
const NOT_FOR_BOXES: &[&str] = &[
    "postkey-archive",
    "postkey-archive-sqlite",
    "postkey-archive-postgres",
    "postkey-kmc",
    "postkey-host",
];

/// Every chain by which the box crate reaches a crate of [`NOT_FOR_BOXES`], as sentences.
fn box_violations(graph: &Graph) -> Vec<String> {
    let mut found = Vec::new();
    let start = "postkey-box".to_owned();
    let mut stack: Vec<(&String, Vec<&String>)> =
        graph.get(&start).into_iter().flatten().map(|d| (d, vec![d])).collect();
    let mut seen = BTreeSet::new();
    while let Some((dep, path)) = stack.pop() {
        if !seen.insert(dep) {
            continue;
        }
        if NOT_FOR_BOXES.contains(&dep.as_str()) {
            let chain: Vec<&str> = path.iter().map(|s| s.as_str()).collect();
            found.push(format!("postkey-box reaches {dep} through {}", chain.join(" -> ")));
        }
        for next in graph.get(dep).into_iter().flatten() {
            let mut p = path.clone();
            p.push(next);
            stack.push((next, p));
        }
    }
    found
}

#[test]
fn boxes_never_reach_the_archive_the_kmc_or_the_host() {
    let graph = workspace_graph();
    for crate_ in NOT_FOR_BOXES.iter().chain(&["postkey-box"]) {
        assert!(graph.contains_key(*crate_), "{crate_} is in the workspace and so under the rule");
    }
    let v = box_violations(&graph);
    assert!(v.is_empty(), "crate graph breaks the boxes rule:\n{}", v.join("\n"));
}

#[test]
fn the_boxes_rule_catches_direct_and_indirect_dependencies() {
    // The box crate's tests depending on the host (a dev dependency) is caught.
    let mut graph = workspace_graph();
    graph.get_mut("postkey-box").unwrap().insert("postkey-host".into());
    let v = box_violations(&graph);
    assert!(v.iter().any(|s| s.contains("postkey-host")), "{v:?}");
    // So is reaching the archive through the meter.
    let mut graph = workspace_graph();
    graph.get_mut("postkey-meter").unwrap().insert("postkey-archive".into());
    let v = box_violations(&graph);
    assert!(v.iter().any(|s| s.contains("postkey-meter -> postkey-archive")), "{v:?}");
}

#[test]
fn only_boxes_meter_and_host_reach_the_secrets_crate() {
    let graph = workspace_graph();
    assert!(graph.contains_key(SECRETS), "the secrets crate is in the workspace");
    for crate_ in [
        "postkey-wire",
        "postkey-crypto",
        "postkey-kmc",
        "postkey-archive",
        "postkey-archive-sqlite",
        "postkey-archive-postgres",
    ] {
        assert!(graph.contains_key(crate_), "{crate_} is in the workspace and so under the rule");
    }
    let v = violations(&graph);
    assert!(v.is_empty(), "crate graph breaks the secrets rule:\n{}", v.join("\n"));
}

#[test]
fn the_rule_catches_direct_and_indirect_dependencies() {
    let mut graph = workspace_graph();
    // A KMS computer that depends on the wire crate, which (wrongly) depends on the secrets crate.
    graph.insert("postkey-kmc".into(), ["postkey-wire".to_owned()].into());
    graph.get_mut("postkey-wire").unwrap().insert(SECRETS.into());
    let v = violations(&graph);
    assert!(v.iter().any(|s| s.starts_with("postkey-wire reaches")), "{v:?}");
    assert!(v.iter().any(|s| s.starts_with("postkey-kmc reaches")), "{v:?}");
    // The KMS computer's tests may not reach it through the host either.
    let mut graph = workspace_graph();
    graph.get_mut("postkey-kmc").unwrap().insert("postkey-host".into());
    assert!(violations(&graph).iter().any(|s| s.starts_with("postkey-kmc reaches")));
    // The binary reaches it through the host, and only so.
    let graph = workspace_graph();
    assert!(graph["postkey"].contains("postkey-host"));
    assert!(violations(&graph).is_empty());
}

/// ARCHITECTURE.md's code map lists, for each crate, the workspace crates it depends on: exactly
/// the normal dependencies `cargo metadata` shows, so the map a newcomer reads is the graph.
#[test]
fn the_architecture_page_lists_every_dependency_edge_as_it_is() {
    let page =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../ARCHITECTURE.md"))
            .expect("ARCHITECTURE.md");
    let graph = graph_of(&[None]);
    let mut listed: Graph = Graph::new();
    for row in page.lines().filter(|l| l.starts_with("| `crates/")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let deps: BTreeSet<String> = match cells[cells.len() - 2] {
            "nothing of ours" => BTreeSet::new(),
            list => list
                .split(", ")
                .map(|d| if d == "cli" { BINARY.to_owned() } else { format!("postkey-{d}") })
                .collect(),
        };
        // One row may name several crates (`crates/archive-sqlite`, `crates/archive-postgres`).
        for name in cells[1].split(", ") {
            let dir = name.trim_matches('`').split_whitespace().next().unwrap();
            let dir = dir.trim_end_matches('`').trim_start_matches("crates/");
            let package = if dir == "cli" { BINARY.to_owned() } else { format!("postkey-{dir}") };
            listed.insert(package, deps.clone());
        }
    }
    assert_eq!(listed, graph, "ARCHITECTURE.md's code map differs from the crate graph");
}

/// The features the `postkey` binary is built with, as `cargo tree` shows them.
fn binary_features(extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "-p", BINARY, "-e", "normal,features", "--offline"])
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Test-only entry points (raw connections, raw primitives, lenient checks, entering a box's
/// error state) are behind `testing` features that only dev-dependencies turn on; the
/// benchmarks' CPU accounting is in the binary only with its `bench` feature.
#[test]
fn the_release_binary_has_no_test_entry_points_and_benchmarks_only_by_choice() {
    let release = binary_features(&[]);
    assert!(release.contains("postkey-wire"), "{release}");
    assert!(!release.contains("feature \"testing\""), "{release}");
    let lean = binary_features(&["--no-default-features"]);
    assert!(lean.contains("postkey-wire"), "{lean}");
    assert!(!lean.contains("feature \"metrics\"") && !lean.contains("feature \"bench\""), "{lean}");
}
