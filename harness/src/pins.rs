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
        let text = crate::toml_file::read_input(path)?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let mut values = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let invalid = |message: String| ConfigError::Invalid {
                at: Location { path: path.to_owned(), line: i + 1, column: 1 },
                message,
                fix:
                    "write pins as plain shell assignments, e.g. BUILDKIT_NEWEST=v0.34.2 (comments on their own lines)"
                        .into(),
            };
            let Some((key, value)) = line.split_once('=') else {
                return Err(invalid(format!("expected KEY=VALUE, found `{line}`")));
            };
            let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
            // what the shell scripts that source this file and bkcache read must be the same: no quoting,
            // expansion, spaces or trailing comments
            let plain_key = key.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
                && key.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            let plain_value =
                !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || "._:/@+-".contains(c));
            if !plain_key || !plain_value {
                return Err(invalid(format!("`{line}` is not a plain KEY=VALUE assignment")));
            }
            values.insert(key.to_owned(), value.to_owned());
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

    /// The container that serves it (the set-up's `ci/start-registry.sh` names it).
    pub fn registry_container(&self) -> &str {
        self.get("REGISTRY_CONTAINER").unwrap_or("bkcache-registry")
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
    fn values_shell_and_rust_could_read_differently_are_refused() {
        for bad in ["A=v1 # newest", "A=$B", "A='v1'", "a=v1", "A=", "A=v 1", "A = v1"] {
            let err = Pins::parse(Path::new("v.env"), &format!("{bad}\n")).unwrap_err().to_string();
            assert!(err.contains("not a plain KEY=VALUE"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_line_without_assignment_is_located() {
        let err = Pins::parse(Path::new("v.env"), "A=1\noops\n").unwrap_err().to_string();
        assert!(err.starts_with("v.env:2:1: expected KEY=VALUE"), "{err}");
    }
}
