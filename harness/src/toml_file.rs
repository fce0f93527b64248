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

/// The largest input file bkcache reads (scenarios, builders, pins, Dockerfiles, patches): more is a
/// mistake, such as `/dev/zero`, not an input.
pub const MAX_INPUT_BYTES: u64 = 4 << 20;

/// Reads a user's text file: a regular file (a FIFO would block forever), at most
/// [`MAX_INPUT_BYTES`], UTF-8 (the first invalid byte is located).
pub fn read_input(path: &Path) -> Result<String, ConfigError> {
    let bytes = read_input_bytes(path)?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(&e.as_bytes()[..valid]).into_owned();
        ConfigError::Invalid {
            at: Location::from_offset(path.to_owned(), &text, valid),
            message: "not UTF-8 text (an invalid byte here)".into(),
            fix: "save the file as UTF-8".into(),
        }
    })
}

/// [`read_input`] without the UTF-8 check (patches are bytes).
pub fn read_input_bytes(path: &Path) -> Result<Vec<u8>, ConfigError> {
    let meta = std::fs::metadata(path).map_err(ConfigError::read(path))?;
    let refuse = |message: String, fix: &str| ConfigError::Usage { message, fix: fix.into() };
    if meta.is_dir() {
        return Err(refuse(format!("{} is a directory, not a file", path.display()), "give the path of a file"));
    }
    if !meta.is_file() {
        return Err(refuse(
            format!("{} is not a regular file (a pipe, socket or device)", path.display()),
            "give the path of a regular file",
        ));
    }
    if meta.len() > MAX_INPUT_BYTES {
        return Err(refuse(
            format!("{} is {} bytes; inputs are at most {MAX_INPUT_BYTES}", path.display(), meta.len()),
            "give the right file",
        ));
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open(path).map_err(ConfigError::read(path))?, MAX_INPUT_BYTES + 1),
        &mut bytes,
    )
    .map_err(ConfigError::read(path))?;
    Ok(bytes)
}

impl<T: DeserializeOwned> TomlFile<T> {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::parse(path, read_input(path)?)
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
