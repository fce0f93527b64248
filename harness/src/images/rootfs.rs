//! Minimal root filesystems for the images bkcache makes itself, where no registry can be pulled from:
//! busybox-static (a shell and the utilities) with its applet links, the binaries an image runs with the
//! shared libraries they link, and the few files a container expects. One implementation for every
//! image: BuildKit's, the local registry's, the fault proxy's and the eStargz bases'.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use crate::errors::InfraError;

const BUSYBOX: &str = "/bin/busybox";

/// What goes into the root filesystem besides busybox and `/etc`'s basics.
#[derive(Debug, Default)]
pub struct Rootfs {
    dirs: Vec<String>,
    binaries: Vec<(PathBuf, String)>,
    files: Vec<(String, Vec<u8>)>,
}

impl Rootfs {
    pub fn new() -> Self {
        Rootfs::default()
    }

    /// An empty directory (`var/lib/buildkit`), mode 755.
    pub fn dir(mut self, path: &str) -> Self {
        self.dirs.push(path.trim_start_matches('/').to_owned());
        self
    }

    /// The host binary `src` at `dest` (`usr/bin/runc`), and every library `ldd` says it links.
    pub fn binary(mut self, src: &Path, dest: &str) -> Self {
        self.binaries.push((src.to_owned(), dest.trim_start_matches('/').to_owned()));
        self
    }

    /// A file of `content` at `dest`, mode 644.
    pub fn file(mut self, dest: &str, content: impl Into<Vec<u8>>) -> Self {
        self.files.push((dest.trim_start_matches('/').to_owned(), content.into()));
        self
    }

    /// The root filesystem as an uncompressed tar, in memory (for `docker import`, or unpacked as a
    /// build context).
    pub async fn tar(self) -> Result<bytes::Bytes, InfraError> {
        let applets = output(Command::new(BUSYBOX).arg("--list"))
            .await
            .map_err(|e| InfraError::io("busybox-static is needed (apt-get install busybox-static)")(e))?;
        let mut libs = Vec::new();
        for (src, _) in &self.binaries {
            // a static binary links nothing: ldd says so and fails
            let linked = output(Command::new("ldd").arg(src)).await.unwrap_or_default();
            libs.extend(linked.split_whitespace().filter(|w| w.starts_with('/')).map(str::to_owned));
        }
        libs.sort();
        libs.dedup();
        let tar = tokio::task::spawn_blocking(move || self.write(&applets, &libs))
            .await
            .map_err(|e| InfraError::io("assembling a root filesystem")(std::io::Error::other(e)))?
            .map_err(InfraError::io("assembling a root filesystem"))?;
        Ok(bytes::Bytes::from(tar))
    }

    fn write(&self, applets: &str, libs: &[String]) -> std::io::Result<Vec<u8>> {
        let mut t = tar::Builder::new(Vec::new());
        t.follow_symlinks(true);
        let basics = ["bin", "usr/bin", "etc", "tmp", "run", "root", "proc", "sys", "dev"];
        for dir in basics.iter().copied().chain(self.dirs.iter().map(String::as_str)) {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(if dir == "tmp" { 0o1777 } else { 0o755 });
            h.set_size(0);
            t.append_data(&mut h, dir, std::io::empty())?;
        }
        t.append_path_with_name(BUSYBOX, "bin/busybox")?;
        for applet in applets.split_whitespace().filter(|a| *a != "busybox") {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            h.set_mode(0o777);
            t.append_link(&mut h, format!("bin/{applet}"), "busybox")?;
        }
        for (src, dest) in &self.binaries {
            t.append_path_with_name(src, dest)?;
        }
        for lib in libs {
            t.append_path_with_name(lib, lib.trim_start_matches('/'))?;
        }
        let basics = [
            (
                "etc/passwd",
                &b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"[..],
            ),
            ("etc/group", b"root:x:0:\nnogroup:x:65534:\n"),
            ("etc/nsswitch.conf", b"hosts: files dns\n"),
        ];
        for (path, content) in basics.into_iter().chain(self.files.iter().map(|(p, c)| (p.as_str(), c.as_slice()))) {
            let mut h = tar::Header::new_gnu();
            h.set_size(content.len() as u64);
            h.set_mode(0o644);
            t.append_data(&mut h, path, content)?;
        }
        t.into_inner()
    }
}

/// A command's standard output; its standard error as the error when it fails.
async fn output(cmd: &mut Command) -> std::io::Result<String> {
    let out = cmd.stdin(Stdio::null()).output().await?;
    if !out.status.success() {
        return Err(std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_owned()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_rootfs_holds_busybox_its_applets_the_binaries_their_libraries_and_the_files() {
        let tar = Rootfs::new()
            .dir("var/lib/thing")
            .binary(Path::new("/bin/sh"), "usr/bin/sh")
            .file("etc/thing.conf", "x = 1\n")
            .tar()
            .await
            .unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let mut names = std::collections::BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let kind = entry.header().entry_type();
            names.insert(entry.path().unwrap().display().to_string(), kind);
        }
        assert_eq!(names["bin/busybox"], tar::EntryType::Regular);
        assert_eq!(names["bin/sh"], tar::EntryType::Symlink, "an applet link");
        assert_eq!(names["usr/bin/sh"], tar::EntryType::Regular);
        assert_eq!(names["var/lib/thing"], tar::EntryType::Directory);
        assert_eq!(names["etc/thing.conf"], tar::EntryType::Regular);
        assert!(names.contains_key("etc/passwd"));
        // /bin/sh (dash) links libc: it comes along under its own path
        assert!(names.keys().any(|n| n.contains("libc.so")), "{names:?}");
    }
}
