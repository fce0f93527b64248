//! Content digests read from documents bkcache did not write (a registry's manifests, a user's cache
//! directory). A digest names a file (`blobs/sha256/<hex>`) and a URL path, so it is parsed once into a
//! [`BlobDigest`] — `sha256:` and 64 lowercase hex digits, nothing else — before it names anything:
//! `sha256:../../x` or an absolute path can then never reach `Path::join`. Content fetched or copied
//! under a digest is [`BlobDigest::verify`]ed against it (and its declared size) before it is written.

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// A checked `sha256:<64 hex>` digest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobDigest(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("digest `{text}` is not `sha256:` and 64 lowercase hex digits (BuildKit's caches name content that way)")]
    Malformed { text: String },
    #[error("content of {digest} hashes to {actual}: it is not what its document names")]
    Mismatch { digest: BlobDigest, actual: BlobDigest },
    #[error("content of {digest} is {actual} bytes; its descriptor says {declared}")]
    Size { digest: BlobDigest, declared: u64, actual: u64 },
}

impl BlobDigest {
    pub fn parse(text: &str) -> Result<BlobDigest, DigestError> {
        let hex = text
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        match hex {
            Some(_) => Ok(BlobDigest(text.to_owned())),
            None => Err(DigestError::Malformed { text: text.chars().take(100).collect() }),
        }
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> BlobDigest {
        let hex: String = Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
        BlobDigest(format!("sha256:{hex}"))
    }

    /// The 64 hex digits: a file name that cannot leave its directory.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Where an OCI layout at `layout` keeps this blob.
    pub fn blob_path(&self, layout: &Path) -> PathBuf {
        layout.join("blobs").join("sha256").join(self.hex())
    }

    /// Checks `bytes` are this digest's content, of the `declared` size when one is given.
    pub fn verify(&self, bytes: &[u8], declared: Option<u64>) -> Result<(), DigestError> {
        if let Some(declared) = declared.filter(|d| *d != bytes.len() as u64) {
            return Err(DigestError::Size { digest: self.clone(), declared, actual: bytes.len() as u64 });
        }
        let actual = BlobDigest::of(bytes);
        match actual == *self {
            true => Ok(()),
            false => Err(DigestError::Mismatch { digest: self.clone(), actual }),
        }
    }
}

impl fmt::Display for BlobDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sha256_hex_names_a_file() {
        let good = BlobDigest::of(b"x");
        assert_eq!(BlobDigest::parse(good.as_str()).unwrap(), good);
        assert_eq!(good.blob_path(Path::new("/l")), Path::new("/l/blobs/sha256").join(good.hex()));
        for bad in [
            "sha256:../../x",
            "/etc/passwd",
            "sha256:/etc/passwd",
            "sha512:00",
            "",
            &format!("sha256:{}", "A".repeat(64)),
            &format!("sha256:{}/", "a".repeat(63)),
            &format!("{}x", good),
        ] {
            assert!(BlobDigest::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn content_must_match_its_digest_and_size() {
        let d = BlobDigest::of(b"abc");
        d.verify(b"abc", Some(3)).unwrap();
        d.verify(b"abc", None).unwrap();
        assert!(matches!(d.verify(b"abd", None), Err(DigestError::Mismatch { .. })));
        assert!(matches!(d.verify(b"abc", Some(4)), Err(DigestError::Size { .. })));
    }
}
