//! A local cache that lost some of its layer blobs, as a cache directory shared between CI jobs does
//! when something cleans it up behind BuildKit's back (moby/buildkit#6261): the layers that hold a path
//! are deleted, and the cache's documents, which still name them, stay.

use std::fs::File;
use std::io::{BufReader, Read};
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
    let mut magic = [0u8; 4];
    let read = file.get_mut().read(&mut magic)?;
    let file = BufReader::new(File::open(blob)?);
    let reader: Box<dyn Read> = match &magic[..read] {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(file)),
        [0x28, 0xb5, 0x2f, 0xfd] => {
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
