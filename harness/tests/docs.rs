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
    documents.extend(markdown_under(&repo().join("docs")));
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

/// The Markdown files under `dir`, recursively.
fn markdown_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(markdown_under(&path));
        } else if path.extension().is_some_and(|e| e == "md") {
            found.push(path);
        }
    }
    found
}

/// A known issue bkcache found itself (`bkcache/observed#<name>`) has its upstream report draft,
/// `docs/findings/<name>.md`, which names the id and every scenario that declares it.
#[test]
fn every_observed_issue_has_its_report_draft() {
    let id = regex::Regex::new(r#"id = "bkcache/observed#([a-z0-9-]+)""#).unwrap();
    let mut missing = Vec::new();
    let mut scenarios = Vec::new();
    let mut todo = vec![repo().join("scenarios")];
    while let Some(dir) = todo.pop() {
        for path in std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()) {
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "toml") {
                scenarios.push(path);
            }
        }
    }
    for scenario in &scenarios {
        let text = std::fs::read_to_string(scenario).unwrap();
        for name in id.captures_iter(&text).map(|c| c[1].to_owned()) {
            let draft = repo().join("docs/findings").join(format!("{name}.md"));
            let file = scenario.file_name().unwrap().to_string_lossy().into_owned();
            match std::fs::read_to_string(&draft) {
                Ok(d)
                    if d.contains(&format!("bkcache/observed#{name}"))
                        && d.contains(file.trim_end_matches(".toml")) => {}
                Ok(_) => missing.push(format!("{} does not name bkcache/observed#{name} and {file}", draft.display())),
                Err(_) => missing.push(format!("{}: no {}", scenario.display(), draft.display())),
            }
        }
    }
    assert!(!scenarios.is_empty());
    assert!(missing.is_empty(), "{missing:#?}");
}
