//! The crate's module layers, as ARCHITECTURE.md's table states them: every top-level module is listed
//! in one layer, imports only its own layer or lower ones, and no two modules import each other,
//! directly or around a cycle. An import is a `crate::<module>` path (also inside `use crate::{...}`)
//! outside comments.

#[macro_use]
mod common;

use common::repo;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module → layer number, from the `| layer | modules | ... |` table of ARCHITECTURE.md.
fn layers() -> BTreeMap<String, u32> {
    let text = std::fs::read_to_string(repo().join("ARCHITECTURE.md")).unwrap();
    let name = regex::Regex::new(r"`([a-z_]+)`").unwrap();
    let mut layers = BTreeMap::new();
    for row in text.lines().filter(|l| l.starts_with("| ")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let Some(layer) = cells[1].split_whitespace().next().and_then(|n| n.parse::<u32>().ok()) else { continue };
        for m in name.captures_iter(cells[2]) {
            assert!(layers.insert(m[1].to_owned(), layer).is_none(), "`{}` is listed twice", &m[1]);
        }
    }
    assert!(!layers.is_empty(), "ARCHITECTURE.md has no layer table");
    layers
}

/// Top-level module → the top-level modules its files import.
fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    let mut pending = vec![src.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(src).unwrap();
                let top = rel.components().next().unwrap().as_os_str().to_string_lossy();
                let top = top.trim_end_matches(".rs").to_owned();
                if top != "lib" && top != "main" {
                    files.push((top, path));
                }
            }
        }
    }
    let comment = regex::Regex::new(r"//[^\n]*").unwrap();
    let path = regex::Regex::new(r"crate::([a-z_][a-z0-9_]*)").unwrap();
    let group = regex::Regex::new(r"(?s)use crate::\{(.*?)\};").unwrap();
    let head = regex::Regex::new(r"(?:^|[\s,{])([a-z_][a-z0-9_]*)(?:::|\s*[,}]|\s*$)").unwrap();
    let modules: BTreeSet<String> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = modules.iter().map(|m| (m.clone(), BTreeSet::new())).collect();
    for (module, file) in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let code = comment.replace_all(&text, "");
        let mut named: Vec<String> = path.captures_iter(&code).map(|c| c[1].to_owned()).collect();
        for g in group.captures_iter(&code) {
            named.extend(head.captures_iter(&g[1]).map(|c| c[1].to_owned()));
        }
        let edges = graph.get_mut(module).unwrap();
        edges.extend(named.into_iter().filter(|n| n != module && modules.contains(n)));
    }
    graph
}

/// A cycle through `start`, if there is one (depth-first search).
fn cycle_through(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_owned(), vec![start.to_owned()])];
    let mut seen = BTreeSet::new();
    while let Some((at, trail)) = stack.pop() {
        for next in &graph[&at] {
            if next == start {
                return Some([trail.clone(), vec![start.to_owned()]].concat());
            }
            if seen.insert(next.clone()) {
                stack.push((next.clone(), [trail.clone(), vec![next.clone()]].concat()));
            }
        }
    }
    None
}

#[test]
fn modules_import_only_their_layer_or_lower_ones_and_form_no_cycle() {
    let layers = layers();
    let graph = imports(&repo().join("harness/src"));
    let unlisted: Vec<&String> = graph.keys().filter(|m| !layers.contains_key(*m)).collect();
    assert!(unlisted.is_empty(), "modules ARCHITECTURE.md's layer table does not list: {unlisted:?}");
    let gone: Vec<&String> = layers.keys().filter(|m| !graph.contains_key(*m)).collect();
    assert!(gone.is_empty(), "ARCHITECTURE.md lists modules that do not exist: {gone:?}");
    let upward: Vec<String> = graph
        .iter()
        .flat_map(|(m, to)| to.iter().filter(|t| layers[*t] > layers[m]).map(move |t| format!("{m} → {t}")))
        .collect();
    assert!(upward.is_empty(), "imports of a higher layer: {upward:?}");
    for module in graph.keys() {
        if let Some(cycle) = cycle_through(&graph, module) {
            panic!("import cycle: {}", cycle.join(" → "));
        }
    }
}

#[test]
fn the_check_sees_imports_and_cycles() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir(src.join("a")).unwrap();
    std::fs::write(src.join("a/mod.rs"), "// crate::c is a comment\nuse crate::{b::X, errors};\n").unwrap();
    std::fs::write(src.join("b.rs"), "fn f() { crate::a::g() }\n").unwrap();
    std::fs::write(src.join("c.rs"), "").unwrap();
    std::fs::write(src.join("errors.rs"), "").unwrap();
    let graph = imports(src);
    assert_eq!(graph["a"], ["b", "errors"].map(String::from).into());
    assert_eq!(cycle_through(&graph, "a").unwrap(), ["a", "b", "a"]);
    assert_eq!(cycle_through(&graph, "c"), None);
}
