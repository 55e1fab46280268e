//! The project stands on its own: code comments and documents cite `docs/protocol.md` ("protocol
//! §N"), every cited section exists there, and nothing cites a specification the repository
//! does not hold.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Every `.rs` and `.md` file of the repository's sources and documents.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "target" || name.starts_with('.') || name == "corpus" {
            continue;
        }
        if path.is_dir() {
            sources(&path, out);
        } else if name.ends_with(".rs") || name.ends_with(".md") {
            out.push(path);
        }
    }
}

/// The section numbers `docs/protocol.md` has headings for ("6.1" of "### 6.1 Installation").
fn sections(protocol: &str) -> BTreeSet<String> {
    protocol
        .lines()
        .filter(|l| l.starts_with('#'))
        .filter_map(|l| l.trim_start_matches('#').split_whitespace().next())
        .map(|n| n.trim_end_matches('.').to_owned())
        .filter(|n| n.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .collect()
}

/// The section numbers cited as "protocol §N" or "protocol §N.M" in `text`.
fn cited(text: &str) -> Vec<String> {
    let text = text.replace("\n//! ", " ").replace("\n/// ", " ");
    text.match_indices("protocol §")
        .map(|(at, m)| {
            let rest = &text[at + m.len()..];
            let n: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
            n.trim_end_matches('.').to_owned()
        })
        // "protocol §N" in prose about the form itself.
        .filter(|n| !n.is_empty())
        .collect()
}

#[test]
fn every_citation_names_a_section_of_the_protocol_document() {
    let root = root();
    let protocol = std::fs::read_to_string(root.join("docs/protocol.md")).unwrap();
    let sections = sections(&protocol);
    assert!(sections.contains("7.2") && sections.len() >= 20, "{sections:?}");
    let mut files = Vec::new();
    for dir in ["crates", "docs", "fuzz"] {
        sources(&root.join(dir), &mut files);
    }
    for top in ["ARCHITECTURE.md", "SECURITY.md", "README.md"] {
        files.push(root.join(top));
    }
    let mut wrong = Vec::new();
    let mut count = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let shown = file.strip_prefix(&root).unwrap().display().to_string();
        // This test names the forbidden forms itself.
        if !shown.ends_with("protocol_citations.rs")
            && (text.contains(concat!("SPEC", " §")) || text.contains(concat!("SPEC", ".md")))
        {
            wrong.push(format!("{shown}: cites a specification outside the repository"));
        }
        for n in cited(&text) {
            count += 1;
            if !sections.contains(&n) {
                wrong.push(format!("{shown}: protocol §{n} is not a section of docs/protocol.md"));
            }
        }
    }
    assert!(count > 100, "only {count} citations found: is the scan looking in the right place?");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
