//! Reading the user's TOML files so every problem points at `file:line:column`.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::Spanned;

use crate::errors::{ConfigError, Location};

/// A parsed TOML document that remembers its text, so later validation can locate spans too.
pub struct TomlFile<T> {
    pub path: PathBuf,
    pub text: String,
    pub doc: T,
}

impl<T: DeserializeOwned> TomlFile<T> {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(ConfigError::read(path))?;
        Self::parse(path, text)
    }

    pub fn parse(path: &Path, text: String) -> Result<Self, ConfigError> {
        match toml::from_str(&text) {
            Ok(doc) => Ok(TomlFile { path: path.to_owned(), text, doc }),
            Err(e) => Err(ConfigError::Parse {
                at: Location::from_offset(path.to_owned(), &text, e.span().map_or(0, |s| s.start)),
                message: e.message().trim().to_owned(),
            }),
        }
    }
}

impl<T> TomlFile<T> {
    pub fn at<U>(&self, spanned: &Spanned<U>) -> Location {
        Location::from_offset(self.path.clone(), &self.text, spanned.span().start)
    }

    pub fn invalid<U>(&self, spanned: &Spanned<U>, message: impl Into<String>, fix: impl Into<String>) -> ConfigError {
        ConfigError::Invalid { at: self.at(spanned), message: message.into(), fix: fix.into() }
    }
}

/// The directory relative paths in `path` are resolved against (`.` for a bare file name).
pub fn dir_of(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}
