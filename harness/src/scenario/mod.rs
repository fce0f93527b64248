//! Scenarios: what to build, on which builders, in which phases, and what must be CACHED or re-run.

mod file;
mod lint;
mod model;

pub use file::{load, MAX_REPEAT};
pub use model::*;

use std::path::{Path, PathBuf};

use crate::errors::ConfigError;
use crate::profiles::Profiles;

/// The file in a scenarios directory that holds builder profiles rather than a scenario.
pub const BUILDERS_FILE: &str = "builders.toml";

/// Expands the paths given on the command line: files as they are, directories to the `*.toml` scenario
/// files in them and their subdirectories (a corpus is grouped in folders), sorted, without builders
/// files, hidden directories or symbolic links to directories.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ConfigError> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            scenarios_in(path, &mut files)?;
        } else if path.exists() {
            files.push(path.clone());
        } else {
            return Err(ConfigError::Usage {
                message: format!("no such scenario file or directory: {}", path.display()),
                fix: "pass scenario files or directories, e.g. `bkcache run scenarios/`".into(),
            });
        }
    }
    // the same file named twice (or through a directory and by name) runs once
    let mut seen = std::collections::BTreeSet::new();
    files.retain(|f| seen.insert(f.canonicalize().unwrap_or_else(|_| f.clone())));
    Ok(files)
}

fn scenarios_in(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), ConfigError> {
    let mut entries: Vec<std::fs::DirEntry> =
        std::fs::read_dir(dir).map_err(ConfigError::read(dir))?.filter_map(Result::ok).collect();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        let kind = entry.file_type().map_err(ConfigError::read(&path))?;
        if kind.is_dir() && !name.to_string_lossy().starts_with('.') {
            scenarios_in(&path, files)?;
        } else if !kind.is_dir() && path.extension().is_some_and(|x| x == "toml") && name != BUILDERS_FILE {
            files.push(path);
        }
    }
    Ok(())
}

/// Loads every scenario file; the first invalid one stops the run before any builder exists. Two
/// scenarios whose names have one slug (`a.b` and `a-b`, or `x` in two directories) would share registry
/// refs and report rows, so they are refused.
pub fn load_all(files: &[PathBuf], profiles: &Profiles) -> Result<Vec<Scenario>, ConfigError> {
    let mut scenarios: Vec<Scenario> = Vec::new();
    for file in files {
        let scenario = load(file, profiles)?;
        if let Some(other) = scenarios.iter().find(|s| s.name.slug() == scenario.name.slug()) {
            return Err(ConfigError::Usage {
                message: format!(
                    "scenarios {} and {} would share registry refs and report rows (both are `{}`)",
                    other.file.display(),
                    scenario.file.display(),
                    scenario.name.slug()
                ),
                fix: "rename one of the files, or run them separately".into(),
            });
        }
        scenarios.push(scenario);
    }
    Ok(scenarios)
}

/// Known issues of `scenario` that apply to none of the profiles it runs on: they explain nothing, and a
/// `versions` range or a scope with a typo is the likely cause. Warnings, not errors: a builders file may
/// leave out the releases an issue is about.
pub fn unmatched_known_issues(scenario: &Scenario, profiles: &Profiles, builders_file: &Path) -> Vec<ConfigError> {
    let runs_on = |p: &&std::sync::Arc<crate::profiles::BuilderProfile>| {
        scenario.builders.as_ref().is_none_or(|only| only.contains(&p.name))
    };
    scenario
        .known_issues
        .iter()
        .filter(|k| !profiles.profiles.iter().filter(runs_on).any(|p| k.applies_to(p)))
        .map(|k| ConfigError::Invalid {
            at: k.at.clone(),
            message: format!(
                "known issue `{}` applies to no builder profile this scenario runs on in {}, so it explains nothing",
                k.id,
                builders_file.display()
            ),
            fix: "correct its `versions`, `snapshotter` or `builders`, or add a profile it is about".into(),
        })
        .collect()
}

/// The builders file that goes with these scenario paths: `builders.toml` beside the first one.
pub fn default_builders_file(paths: &[PathBuf]) -> PathBuf {
    let first = paths.first().map(PathBuf::as_path).unwrap_or(Path::new("scenarios"));
    let dir = if first.is_dir() { first } else { first.parent().unwrap_or(Path::new(".")) };
    dir.join(BUILDERS_FILE)
}
