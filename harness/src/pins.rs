//! `ci/versions.env`: the one place every pinned version lives. The set-up scripts source it as shell;
//! bkcache reads the same `KEY=VALUE` lines so builder profiles can say `buildkit = "$BUILDKIT_NEWEST"`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::errors::{ConfigError, Location};

#[derive(Debug, Clone)]
pub struct Pins {
    pub path: PathBuf,
    values: BTreeMap<String, String>,
}

impl Pins {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(ConfigError::read(path))?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let mut values = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(ConfigError::Invalid {
                    at: Location { path: path.to_owned(), line: i + 1, column: 1 },
                    message: format!("expected KEY=VALUE, found `{line}`"),
                    fix: "write pins as shell assignments, e.g. BUILDKIT_NEWEST=v0.34.2".into(),
                });
            };
            values.insert(key.trim().to_owned(), value.trim().trim_matches('"').to_owned());
        }
        Ok(Pins { path: path.to_owned(), values })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// The local registry every bkcache image lives in.
    pub fn registry(&self) -> &str {
        self.get("REGISTRY_ADDR").unwrap_or("127.0.0.1:5000")
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_shell_assignments_and_skips_comments() {
        let pins = Pins::parse(Path::new("v.env"), "# c\nA=v1\nREGISTRY_ADDR=\"127.0.0.1:6000\"\n\n").unwrap();
        assert_eq!(pins.get("A"), Some("v1"));
        assert_eq!(pins.registry(), "127.0.0.1:6000");
    }

    #[test]
    fn a_line_without_assignment_is_located() {
        let err = Pins::parse(Path::new("v.env"), "A=1\noops\n").unwrap_err().to_string();
        assert!(err.starts_with("v.env:2:1: expected KEY=VALUE"), "{err}");
    }
}
