//! A local cache that lost some of its layer blobs, as a cache directory shared between CI jobs does
//! when something cleans it up behind BuildKit's back (moby/buildkit#6261): the layers that hold a path
//! are deleted, and the cache's documents, which still name them, stay.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::errors::InfraError;
use crate::observe::cache::read_layout;

/// Deletes the layer blobs of the local cache at `dir` whose files include `path` (absolute), and says
/// how many. Layers the cache names but does not hold (a lazy snapshotter's) are not looked at.
pub fn delete_holding(dir: &Path, path: &str) -> Result<usize, InfraError> {
    let exported = read_layout(dir).map_err(|e| InfraError::Io {
        action: format!("reading the cache {} to delete layers from", dir.display()),
        source: std::io::Error::other(e),
    })?;
    let wanted = path.trim_start_matches('/');
    let mut deleted = 0;
    for layer in &exported.config.layers {
        let blob = dir.join("blobs").join("sha256").join(layer.blob.trim_start_matches("sha256:"));
        if !blob.is_file() {
            continue;
        }
        let holds = holds(&blob, wanted).map_err(InfraError::io(format!("reading the layer {}", blob.display())))?;
        if holds {
            std::fs::remove_file(&blob).map_err(InfraError::io(format!("deleting {}", blob.display())))?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// Whether the layer `blob` (a tar, gzip-compressed or not: eStargz is gzip) has an entry `wanted`
/// (relative, as tar writes it).
fn holds(blob: &Path, wanted: &str) -> std::io::Result<bool> {
    let mut file = BufReader::new(File::open(blob)?);
    let reader: Box<dyn Read> = match file.fill_buf()? {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(file)),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => {
            return Err(std::io::Error::other("a zstd layer: bkcache reads gzip and uncompressed layers only"))
        }
        _ => Box::new(file),
    };
    for entry in tar::Archive::new(reader).entries()? {
        let entry = entry?;
        let name = entry.path()?;
        let name = name.to_string_lossy();
        if name.trim_start_matches("./").trim_end_matches('/') == wanted {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layer with these files (gzip-compressed or not), as BuildKit writes them: relative paths.
    fn layer(dir: &Path, name: &str, files: &[&str], gzip: bool) -> std::path::PathBuf {
        let mut tar = tar::Builder::new(Vec::new());
        for f in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(1);
            header.set_cksum();
            tar.append_data(&mut header, f, &b"x"[..]).unwrap();
        }
        let mut bytes = tar.into_inner().unwrap();
        if gzip {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, &bytes).unwrap();
            bytes = gz.finish().unwrap();
        }
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn a_layer_holds_a_path_exactly_not_a_longer_one() {
        let dir = tempfile::tempdir().unwrap();
        let run = layer(dir.path(), "run", &["artifact"], true);
        let copy = layer(dir.path(), "copy", &["app/", "app/artifact"], true);
        let plain = layer(dir.path(), "plain", &["./artifact"], false);
        assert!(holds(&run, "artifact").unwrap());
        assert!(!holds(&copy, "artifact").unwrap());
        assert!(holds(&copy, "app/artifact").unwrap());
        assert!(holds(&copy, "app").unwrap());
        assert!(holds(&plain, "artifact").unwrap());
        std::fs::write(dir.path().join("zstd"), [0x28, 0xb5, 0x2f, 0xfd, 0]).unwrap();
        assert!(holds(&dir.path().join("zstd"), "artifact").is_err());
    }
}
