//! The README stays a short introduction (the reference lives in docs/, measurements in FINDINGS.md),
//! and every relative link of the README, docs/ and the top-level documents names a file that exists.

#[macro_use]
mod common;

use common::repo;

use std::path::{Path, PathBuf};

#[test]
fn the_readme_is_at_most_300_lines() {
    let lines = std::fs::read_to_string(repo().join("README.md")).unwrap().lines().count();
    assert!(lines <= 300, "README.md has {lines} lines: move reference text to docs/");
}

#[test]
fn relative_links_name_files_that_exist() {
    let link = regex::Regex::new(r"\]\(([^)#:]+)(#[^)]*)?\)").unwrap();
    let mut documents: Vec<PathBuf> =
        ["README.md", "ARCHITECTURE.md", "FINDINGS.md"].iter().map(|f| repo().join(f)).collect();
    documents.extend(std::fs::read_dir(repo().join("docs")).unwrap().flatten().map(|e| e.path()));
    let mut broken = Vec::new();
    for document in &documents {
        let text = std::fs::read_to_string(document).unwrap();
        let dir = document.parent().unwrap_or(Path::new("."));
        for target in link.captures_iter(&text).map(|c| c[1].to_owned()) {
            if !dir.join(&target).exists() {
                broken.push(format!("{}: {target}", document.display()));
            }
        }
    }
    assert!(broken.is_empty(), "links to nothing: {broken:#?}");
}
