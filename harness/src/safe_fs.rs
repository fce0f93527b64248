//! File-system access for a program that runs as root and reads paths other people control (build
//! contexts, cache directories, a build's output, shared lock directories). Three rules, one place:
//! - **no symlink is followed**: a link is opened as nothing ([`read_regular`] refuses it), copied as a
//!   link ([`copy_tree`]) and compared as a link;
//! - **only regular files are read, and never without bound**: a FIFO or `/dev/zero` behind a name would
//!   block or never end;
//! - **directories shared between users are checked**: ours, not a link, writable by nobody else.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The most bytes bkcache reads from one document a cache, a registry or a build left (manifests,
/// cacheconfigs, key dumps): BuildKit's largest, a cache index of a thousand layers, is well under 1 MiB.
pub const DOCUMENT_LIMIT: u64 = 64 << 20;

/// Opens `path` for reading only if it is a regular file, without following a symlink at its last
/// component (`O_NOFOLLOW`) and without blocking on a FIFO (`O_NONBLOCK`, checked before any read).
pub fn open_regular(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).map_err(
        |e| match e.raw_os_error() {
            Some(libc::ELOOP) => {
                io::Error::new(io::ErrorKind::InvalidInput, "is a symlink: bkcache does not follow links")
            }
            _ => e,
        },
    )?;
    if !file.metadata()?.file_type().is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "is not a regular file"));
    }
    Ok(file)
}

/// The bytes of the regular file `path` (see [`open_regular`]), at most `limit` of them.
pub fn read_regular(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open_regular(path)?.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("is larger than {limit} bytes")));
    }
    Ok(bytes)
}

/// A file of a tree another party wrote (a build's output), as bkcache compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeEntry {
    /// A regular file's bytes (at most the limit given).
    File(Vec<u8>),
    /// A symlink, by its target: compared as a link, never followed.
    Link(PathBuf),
}

/// The entry at `relative` under `root`, walking component by component without following a link
/// anywhere: a link on the way is refused (a link at the end is the entry), and so is `..`.
pub fn read_under(root: &Path, relative: &str, limit: u64) -> io::Result<TreeEntry> {
    let refuse = |why: String| io::Error::new(io::ErrorKind::InvalidInput, why);
    let parts: Vec<&str> = relative.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if parts.is_empty() || parts.contains(&"..") {
        return Err(refuse(format!("`{relative}` is not a path inside the tree")));
    }
    let mut path = root.to_owned();
    for (i, part) in parts.iter().enumerate() {
        path.push(part);
        let kind = std::fs::symlink_metadata(&path)?.file_type();
        let last = i + 1 == parts.len();
        match (kind.is_symlink(), last) {
            (true, true) => return Ok(TreeEntry::Link(std::fs::read_link(&path)?)),
            (true, false) => {
                return Err(refuse(format!("{} is a symlink: bkcache does not follow links", path.display())))
            }
            (false, _) => {}
        }
    }
    read_regular(&path, limit).map(TreeEntry::File)
}

/// Copies the tree at `from` to `to` as it is: directories and regular files by content, symlinks as
/// symlinks with the same target (never what they point to); sockets, FIFOs and devices are refused.
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    let kind = std::fs::symlink_metadata(from)?.file_type();
    if kind.is_symlink() {
        return std::os::unix::fs::symlink(std::fs::read_link(from)?, to);
    }
    if kind.is_file() {
        let mut source = open_regular(from)?;
        let mut target = File::create(to)?;
        io::copy(&mut source, &mut target)?;
        return Ok(());
    }
    if !kind.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: is neither a file, a directory nor a symlink", from.display()),
        ));
    }
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        copy_tree(&entry.path(), &to.join(entry.file_name()))?;
    }
    Ok(())
}

/// Makes (or checks) a directory only this user may change: created mode 0700; an existing one must be
/// a real directory (not a link), owned by this user, and not writable by group or others — otherwise
/// another user could plant links in it that bkcache, as root, would open.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        }
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    let meta = std::fs::symlink_metadata(dir)?;
    let problem = if meta.file_type().is_symlink() {
        Some("is a symlink".to_owned())
    } else if !meta.is_dir() {
        Some("is not a directory".to_owned())
    } else if meta.uid() != effective_uid() {
        Some(format!("belongs to uid {}, not to this user ({})", meta.uid(), effective_uid()))
    } else if meta.permissions().mode() & 0o022 != 0 {
        Some(format!("is writable by others (mode {:o})", meta.permissions().mode() & 0o777))
    } else {
        None
    };
    match problem {
        Some(p) => Err(io::Error::new(io::ErrorKind::PermissionDenied, p)),
        None => Ok(()),
    }
}

pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_fifos_and_devices_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "key").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        assert!(read_regular(&link, 10).unwrap_err().to_string().contains("symlink"));
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        assert!(read_regular(&fifo, 10).unwrap_err().to_string().contains("not a regular file"));
        assert!(read_regular(Path::new("/dev/zero"), 10).unwrap_err().to_string().contains("not a regular file"));
        assert_eq!(read_regular(&secret, 3).unwrap(), b"key");
        assert!(read_regular(&secret, 2).unwrap_err().to_string().contains("larger than 2 bytes"));
    }

    #[test]
    fn a_tree_is_read_without_following_links_or_climbing_out() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("app")).unwrap();
        std::fs::write(dir.path().join("app/file"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero")).unwrap();
        assert_eq!(read_under(dir.path(), "/app/file", 10).unwrap(), TreeEntry::File(b"x".to_vec()));
        assert_eq!(read_under(dir.path(), "zero", 10).unwrap(), TreeEntry::Link("/dev/zero".into()));
        assert!(read_under(dir.path(), "etc/passwd", 10).unwrap_err().to_string().contains("symlink"));
        assert!(read_under(dir.path(), "app/../../x", 10).is_err());
        assert!(read_under(dir.path(), "/", 10).is_err());
    }

    #[test]
    fn a_tree_is_copied_with_its_links_as_links() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("from"), dir.path().join("to"));
        std::fs::create_dir_all(from.join("sub")).unwrap();
        std::fs::write(from.join("sub/file"), "content").unwrap();
        std::os::unix::fs::symlink("/etc/shadow", from.join("key")).unwrap();
        copy_tree(&from, &to).unwrap();
        assert_eq!(std::fs::read_to_string(to.join("sub/file")).unwrap(), "content");
        assert_eq!(std::fs::read_link(to.join("key")).unwrap(), Path::new("/etc/shadow"));
        assert!(std::fs::symlink_metadata(to.join("key")).unwrap().file_type().is_symlink());
    }

    #[test]
    fn a_shared_directory_must_be_ours_and_closed() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("locks");
        private_dir(&fresh).unwrap();
        assert_eq!(std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777, 0o700);
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(private_dir(&open).unwrap_err().to_string().contains("writable by others"));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&fresh, &link).unwrap();
        assert!(private_dir(&link).unwrap_err().to_string().contains("symlink"));
    }
}
