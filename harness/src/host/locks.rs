//! Coordination between bkcache processes on one machine (two CI jobs, a run and `bkcache gc`), by
//! advisory file locks in one directory every bkcache process of a user finds without being told
//! ([`dir`]: no environment variable can make a `gc` look elsewhere and take live runs for dead ones).
//! A lock dies with its process, so a crashed run never leaves one behind. The directory is checked
//! to be this user's and closed to others, and lock files are opened without following links.
//!
//! - `run-<id>.lock`, exclusive, for a run's lifetime: a run whose lock can be taken is not running, so
//!   `bkcache gc` may remove what it left; and two live runs cannot share an id.
//! - `registry.lock`: shared by every run while it may push; garbage collection of the registry takes it
//!   exclusively, so blobs are never collected under a push. The last run to finish collects.
//! - `image-<tag>.lock`, exclusive, around building a BuildKit image: one tag is built once, however many
//!   runs need it at the same time.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use crate::errors::InfraError;

/// A held lock; dropping it releases it.
#[derive(Debug)]
pub struct Held(#[allow(dead_code)] File);

/// The lock directory: `/run/bkcache/locks` for root (only root writes `/run`), else
/// `/tmp/bkcache-<uid>/locks`.
pub fn dir() -> PathBuf {
    match crate::safe_fs::effective_uid() {
        0 => PathBuf::from("/run/bkcache/locks"),
        uid => PathBuf::from(format!("/tmp/bkcache-{uid}/locks")),
    }
}

fn open(name: &str) -> Result<File, InfraError> {
    let dir = dir();
    let parent = dir.parent().expect("the lock directory has a parent");
    for d in [parent, &dir] {
        crate::safe_fs::private_dir(d).map_err(InfraError::io(format!("the lock directory {}", d.display())))?;
    }
    let path = dir.join(name);
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(InfraError::io(format!("opening the lock {}", path.display())))
}

fn try_exclusive(name: &str) -> Result<Option<Held>, InfraError> {
    let file = open(name)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(Held(file))),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(InfraError::io(format!("locking {name}"))(e)),
    }
}

fn run_lock_name(run_id: &str) -> String {
    format!("run-{run_id}.lock")
}

/// Marks run `run_id` as alive for as long as the returned lock is held.
pub fn hold_run(run_id: &str) -> Result<Held, InfraError> {
    try_exclusive(&run_lock_name(run_id))?.ok_or_else(|| InfraError::RunIdInUse { run_id: run_id.to_owned() })
}

/// Whether a run with this id is running on this machine now.
pub fn run_alive(run_id: &str) -> Result<bool, InfraError> {
    Ok(try_exclusive(&run_lock_name(run_id))?.is_none())
}

/// Held by a run while it may push to the registry (waits while the registry is being collected).
pub async fn share_registry() -> Result<Held, InfraError> {
    let file = open("registry.lock")?;
    tokio::task::spawn_blocking(move || file.lock_shared().map(|()| Held(file)))
        .await
        .map_err(|e| InfraError::io("locking the registry")(std::io::Error::other(e)))?
        .map_err(InfraError::io("locking the registry"))
}

/// The registry to collect, if no run may be pushing to it.
pub fn try_own_registry() -> Result<Option<Held>, InfraError> {
    try_exclusive("registry.lock")
}

/// Held while building (or checking for) image `tag`; waits for another process building it.
pub async fn own_image(tag: &str) -> Result<Held, InfraError> {
    let name: String =
        tag.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
    let file = open(&format!("image-{name}.lock"))?;
    tokio::task::spawn_blocking(move || file.lock().map(|()| Held(file)))
        .await
        .map_err(|e| InfraError::io("locking an image build")(std::io::Error::other(e)))?
        .map_err(InfraError::io(format!("locking the build of {tag}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_alive_while_its_lock_is_held_and_its_id_cannot_be_reused() {
        let id = format!("lock-test-{}", std::process::id());
        assert!(!run_alive(&id).unwrap());
        let held = hold_run(&id).unwrap();
        assert!(run_alive(&id).unwrap());
        assert!(matches!(hold_run(&id), Err(InfraError::RunIdInUse { .. })));
        drop(held);
        assert!(!run_alive(&id).unwrap());
    }
}
