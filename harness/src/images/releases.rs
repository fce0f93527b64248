//! BuildKit releases as the Go module proxy lists them, which of them build here, and the selections
//! `--buildkit` accepts: `v0.24.0,v0.25.0` (those releases) or `">=0.24.0, <0.27.0"` (every listed
//! release in the range).
//!
//! Whether a release builds is only known by trying: the proxy lists releases whose dependencies it
//! refuses (403). What was learnt — from building an image or from `--check`, which loads every package
//! the build needs without compiling — is kept in a small file, so a range skips the releases known not
//! to build and says why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::process::Command;

use crate::errors::{ConfigError, InfraError};

pub const MODULE: &str = "github.com/moby/buildkit";

/// What `--buildkit` names.
#[derive(Debug, Clone, PartialEq)]
pub enum Selection {
    /// These versions, in the order given.
    Versions(Vec<String>),
    /// Every listed release (no pre-releases) the requirement matches.
    Range(semver::VersionReq),
}

impl Selection {
    /// `v0.24.0`, `v0.24.0,v0.25.0`, or a semver requirement starting with an operator (`>=0.24.0`).
    pub fn parse(text: &str) -> Result<Selection, ConfigError> {
        let usage = |message: String| ConfigError::Usage {
            message: format!("--buildkit {text}: {message}"),
            fix: "give releases (`v0.24.0,v0.25.0`) or a range (`\">=0.24.0, <0.27.0\"`)".into(),
        };
        let trimmed = text.trim();
        if trimmed.starts_with(['<', '>', '=', '~', '^']) {
            return semver::VersionReq::parse(trimmed).map(Selection::Range).map_err(|e| usage(e.to_string()));
        }
        let mut versions: Vec<String> = Vec::new();
        for part in trimmed.split(',').map(str::trim) {
            let version = crate::profiles::buildkit_version(part).map_err(usage)?;
            if versions.contains(&version) {
                return Err(usage(format!("{version} is named twice")));
            }
            versions.push(version);
        }
        Ok(Selection::Versions(versions))
    }
}

/// The versions a selection stands for, and the listed ones it left out because they do not build here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resolved {
    pub versions: Vec<String>,
    pub skipped: Vec<(String, String)>,
}

/// Resolves a selection; a range asks the Go module proxy (an infrastructure failure when it cannot).
pub async fn resolve(selection: &Selection, known: &BuildStatuses) -> Result<Resolved, InfraError> {
    match selection {
        Selection::Versions(v) => Ok(Resolved { versions: v.clone(), skipped: Vec::new() }),
        Selection::Range(req) => Ok(select(&listed().await?, req, known)),
    }
}

/// The listed releases a requirement matches, ascending, minus those known not to build.
pub fn select(listed: &[semver::Version], req: &semver::VersionReq, known: &BuildStatuses) -> Resolved {
    let mut out = Resolved::default();
    for version in listed.iter().filter(|v| req.matches(v)) {
        let name = format!("v{version}");
        match known.get(&name) {
            Some(BuildStatus { builds: false, reason, .. }) => out.skipped.push((name, reason.clone())),
            _ => out.versions.push(name),
        }
    }
    out
}

/// The releases (no pre-releases) `go list -m -versions` gives for BuildKit, ascending.
pub async fn listed() -> Result<Vec<semver::Version>, InfraError> {
    let command = format!("go list -m -versions -json {MODULE}");
    let out = Command::new("go")
        .args(["list", "-m", "-versions", "-json", MODULE])
        .output()
        .await
        .map_err(InfraError::io(format!("running `{command}`")))?;
    if !out.status.success() {
        return Err(InfraError::Command {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    #[derive(Deserialize)]
    struct Listing {
        #[serde(rename = "Versions", default)]
        versions: Vec<String>,
    }
    let listing: Listing = serde_json::from_slice(&out.stdout).map_err(|e| InfraError::Command {
        command: command.clone(),
        status: "0".into(),
        stderr: format!("unreadable output: {e}"),
    })?;
    Ok(parse_listing(&listing.versions))
}

/// The version the Go module proxy gives a commit: its release when it is tagged, else a pseudo-version
/// (`v0.25.0-rc1.0.20250911200811-051818cf383e`) that builds like a release.
pub async fn pseudo_version(commit: &str) -> Result<String, InfraError> {
    let command = format!("go list -m -json {MODULE}@{commit}");
    let failed = |stderr: String| InfraError::Command { command: command.clone(), status: "failed".into(), stderr };
    if commit.is_empty() || !commit.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(failed(format!("`{commit}` is not a commit hash")));
    }
    let out = Command::new("go")
        .args(["list", "-m", "-json", &format!("{MODULE}@{commit}")])
        .output()
        .await
        .map_err(InfraError::io(format!("running `{command}`")))?;
    if !out.status.success() {
        return Err(failed(String::from_utf8_lossy(&out.stderr).trim().to_owned()));
    }
    #[derive(Deserialize)]
    struct Info {
        #[serde(rename = "Version")]
        version: String,
    }
    let info: Info = serde_json::from_slice(&out.stdout).map_err(|e| failed(e.to_string()))?;
    Ok(info.version)
}

/// The version the go command gives `commit` of a moby/buildkit clone, worked out from the clone the
/// way the go command does it from a repository: the highest v0/v1 release tag on the commit itself,
/// else a pseudo-version on the highest such tag among its ancestors, stamped with the commit time (UTC).
pub async fn git_version(repo: &Path, commit: &str) -> Result<String, InfraError> {
    let git = |args: &[&str]| {
        let mut cmd = Command::new("git");
        cmd.arg("-C").arg(repo).args(args).env("TZ", "UTC");
        (cmd, format!("git -C {} {}", repo.display(), args.join(" ")))
    };
    async fn output((mut cmd, command): (Command, String)) -> Result<String, InfraError> {
        let out = cmd.output().await.map_err(InfraError::io(format!("running `{command}`")))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            return Err(InfraError::Command { command, status: out.status.to_string(), stderr });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
    if commit.is_empty() || !commit.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(InfraError::Command {
            command: format!("git -C {} rev-parse", repo.display()),
            status: "refused".into(),
            stderr: format!("`{commit}` is not a commit hash"),
        });
    }
    let rev = format!("{commit}^{{commit}}");
    let stamp = output(git(&["log", "-1", "--date=format-local:%Y%m%d%H%M%S", "--format=%H %cd", &rev])).await?;
    let (hash, time) = stamp.trim().split_once(' ').unwrap_or_default();
    let releases = |tags: String| -> Vec<semver::Version> {
        tags.lines()
            .filter_map(|t| semver::Version::parse(t.trim().strip_prefix('v')?).ok())
            .filter(|v| v.major <= 1 && v.build.is_empty())
            .collect()
    };
    if let Some(tagged) = releases(output(git(&["tag", "--points-at", hash, "--list", "v*"])).await?).into_iter().max()
    {
        return Ok(format!("v{tagged}"));
    }
    let base = releases(output(git(&["tag", "--merged", hash, "--list", "v*"])).await?).into_iter().max();
    Ok(pseudo_version_on(base.as_ref(), time, hash))
}

/// Go's pseudo-version forms: `v0.0.0-<time>-<hash12>` with no tag below, `vX.Y.(Z+1)-0.<time>-<hash12>`
/// on a release, `vX.Y.Z-pre.0.<time>-<hash12>` on a pre-release.
pub fn pseudo_version_on(base: Option<&semver::Version>, time: &str, hash: &str) -> String {
    let hash = &hash[..hash.len().min(12)];
    match base {
        None => format!("v0.0.0-{time}-{hash}"),
        Some(v) if v.pre.is_empty() => format!("v{}.{}.{}-0.{time}-{hash}", v.major, v.minor, v.patch + 1),
        Some(v) => format!("v{}.{}.{}-{}.0.{time}-{hash}", v.major, v.minor, v.patch, v.pre),
    }
}

/// The commit (12 hex digits) a pseudo-version names; `None` for a release.
pub fn pseudo_version_commit(version: &str) -> Option<&str> {
    let (rest, hash) = version.rsplit_once('-')?;
    let time = rest.rsplit(['-', '.']).next()?;
    let is = |s: &str, len: usize, digit: fn(&char) -> bool| s.len() == len && s.chars().all(|c| digit(&c));
    (is(hash, 12, char::is_ascii_hexdigit) && is(time, 14, char::is_ascii_digit)).then_some(hash)
}

fn parse_listing(versions: &[String]) -> Vec<semver::Version> {
    let mut out: Vec<semver::Version> = versions
        .iter()
        .filter_map(|v| semver::Version::parse(v.strip_prefix('v')?).ok())
        .filter(|v| v.pre.is_empty())
        .collect();
    out.sort();
    out
}

/// Whether a release built here, and how that was learnt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildStatus {
    pub builds: bool,
    /// Why it does not build (the Go tool's words).
    #[serde(default)]
    pub reason: String,
    /// `image` (an image was built, or failed to) or `check` (`bkcache buildkit releases --check`).
    pub how: String,
    /// Seconds since the Unix epoch.
    pub when: u64,
}

impl BuildStatus {
    pub fn new(builds: bool, reason: impl Into<String>, how: &str) -> BuildStatus {
        let when = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        BuildStatus { builds, reason: reason.into(), how: how.to_owned(), when }
    }
}

/// What is known about releases on this machine: `$BKCACHE_STATE_DIR/buildkit-releases.json`
/// (default `~/.cache/bkcache`).
#[derive(Debug, Clone, Default)]
pub struct BuildStatuses {
    path: PathBuf,
    map: BTreeMap<String, BuildStatus>,
}

impl BuildStatuses {
    fn default_path() -> PathBuf {
        let dir = std::env::var_os("BKCACHE_STATE_DIR").map(PathBuf::from).unwrap_or_else(|| {
            let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
            home.join(".cache/bkcache")
        });
        dir.join("buildkit-releases.json")
    }

    /// Loads the machine's file; a missing or unreadable one is empty (it is a cache: it is relearnt).
    pub fn load() -> BuildStatuses {
        Self::load_from(&Self::default_path())
    }

    pub fn load_from(path: &Path) -> BuildStatuses {
        let map = std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        BuildStatuses { path: path.to_owned(), map }
    }

    pub fn get(&self, version: &str) -> Option<&BuildStatus> {
        self.map.get(version)
    }

    /// Records and saves at once (re-reading first, so concurrent runs do not drop each other's lines).
    pub fn record(&mut self, version: &str, status: BuildStatus) -> Result<(), InfraError> {
        let mut latest = Self::load_from(&self.path);
        latest.map.insert(version.to_owned(), status);
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(InfraError::io(format!("creating {}", dir.display())))?;
        let json = serde_json::to_vec_pretty(&latest.map).expect("statuses serialize");
        let tmp = tempfile::NamedTempFile::new_in(dir).map_err(InfraError::io("writing release statuses"))?;
        std::fs::write(tmp.path(), json).map_err(InfraError::io("writing release statuses"))?;
        tmp.persist(&self.path).map_err(|e| InfraError::io("writing release statuses")(e.error))?;
        self.map = latest.map;
        Ok(())
    }

    /// Records what building an image of an unpatched release taught.
    pub fn record_quietly(version: &str, status: BuildStatus) {
        if let Err(e) = Self::load().record(version, status) {
            tracing::warn!(%version, "could not record whether the release builds: {e}");
        }
    }
}

/// Whether the proxy serves every package the build needs: `go list -deps` of buildkitd and buildctl
/// in a copy of the module, which downloads them without compiling.
pub async fn check(version: &str) -> BuildStatus {
    match check_dependencies(version).await {
        Ok(()) => BuildStatus::new(true, "", "check"),
        Err(reason) => BuildStatus::new(false, reason, "check"),
    }
}

async fn check_dependencies(version: &str) -> Result<(), String> {
    let module = super::buildkit::module_dir(version).await.map_err(|e| crate::errors::with_sources(&e))?;
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let src = work.path().join("src");
    super::buildkit::writable_copy(&module, &src).await?;
    let out = super::buildkit::go_in(&src)
        .args(["list", "-deps", "-tags", super::buildkit::GO_TAGS, "./cmd/buildkitd", "./cmd/buildctl"])
        .output()
        .await
        .map_err(|e| format!("go list: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(crate::artifacts::last_lines(&String::from_utf8_lossy(&out.stderr), 3))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_versions_take_the_forms_go_gives_them() {
        let sv = |t: &str| semver::Version::parse(t).unwrap();
        let (time, hash) = ("20250911200811", "051818cf383e0123456789");
        for (base, want) in [
            (None, "v0.0.0-20250911200811-051818cf383e"),
            (Some(sv("0.24.0")), "v0.24.1-0.20250911200811-051818cf383e"),
            (Some(sv("0.25.0-rc1")), "v0.25.0-rc1.0.20250911200811-051818cf383e"),
        ] {
            let version = pseudo_version_on(base.as_ref(), time, hash);
            assert_eq!(version, want);
            assert_eq!(pseudo_version_commit(&version), Some("051818cf383e"));
            // a pseudo-version is a version bkcache accepts wherever a release is
            assert!(crate::profiles::buildkit_version(&version).is_ok());
        }
        for release in ["v0.25.0", "v0.25.0-rc1", "v1.0.0-0.2025-051818cf383e", "v0.1.0-0.20250911200811-xyz"] {
            assert_eq!(pseudo_version_commit(release), None, "{release}");
        }
    }

    /// A real repository: tags on ancestors, on other branches and on the commit itself.
    #[tokio::test]
    async fn git_version_follows_the_tags_an_ancestor_has() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str], date: &str| {
            let out = std::process::Command::new("git")
                .arg("-C")
                .arg(dir.path())
                .args(["-c", "user.name=t", "-c", "user.email=t@t"])
                .args(args)
                .env("GIT_COMMITTER_DATE", date)
                .env("GIT_AUTHOR_DATE", date)
                .output()
                .unwrap();
            assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        let commit = |date: &str| {
            git(&["commit", "-q", "--allow-empty", "-m", "c"], date);
            git(&["rev-parse", "HEAD"], date)
        };
        git(&["init", "-q", "-b", "main"], "");
        let first = commit("2025-09-01T10:00:00+02:00");
        assert_eq!(git_version(dir.path(), &first).await.unwrap(), format!("v0.0.0-20250901080000-{}", &first[..12]));
        git(&["tag", "v0.24.0"], "");
        git(&["tag", "dockerfile/1.19.0"], "");
        assert_eq!(git_version(dir.path(), &first[..9]).await.unwrap(), "v0.24.0");
        let second = commit("2025-09-11T13:08:11-07:00");
        git(&["branch", "side"], "");
        git(&["checkout", "-q", "side"], "");
        commit("2025-09-12T00:00:00Z");
        git(&["tag", "v0.25.0-rc1"], "");
        git(&["checkout", "-q", "main"], "");
        // v0.25.0-rc1 is on another branch, not below `second`
        let want = format!("v0.24.1-0.20250911200811-{}", &second[..12]);
        assert_eq!(git_version(dir.path(), &second).await.unwrap(), want);
        git(&["merge", "-q", "--no-ff", "side", "-m", "m"], "2025-09-13T00:00:00Z");
        let merged = git(&["rev-parse", "HEAD"], "");
        assert!(git_version(dir.path(), &merged).await.unwrap().starts_with("v0.25.0-rc1.0.20250913000000-"));
        assert!(git_version(dir.path(), "notahash").await.is_err());
        assert!(git_version(dir.path(), "abcdef").await.is_err());
    }

    fn v(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_selection_is_releases_or_a_range() {
        assert_eq!(Selection::parse("v0.24.0").unwrap(), Selection::Versions(v(&["v0.24.0"])));
        assert_eq!(Selection::parse("v0.24.0, v0.25.1").unwrap(), Selection::Versions(v(&["v0.24.0", "v0.25.1"])));
        assert!(matches!(Selection::parse(">=0.24.0, <0.27.0").unwrap(), Selection::Range(_)));
        for bad in ["0.24.0", "v0.24.0,v0.24.0", "latest", ">=banana", "v0.24.0,,v0.25.0"] {
            let e = Selection::parse(bad).unwrap_err().to_string();
            assert!(e.contains("--buildkit"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_range_takes_listed_releases_and_skips_those_known_not_to_build() {
        let listed = parse_listing(&v(&["v0.33.1", "v0.24.0", "v0.25.0-rc1", "v0.25.0", "v0.34.0", "v0.23.2", "vx"]));
        let dir = tempfile::tempdir().unwrap();
        let mut known = BuildStatuses::load_from(&dir.path().join("s.json"));
        known.record("v0.34.0", BuildStatus::new(false, "403 Forbidden", "check")).unwrap();
        known.record("v0.25.0", BuildStatus::new(true, "", "image")).unwrap();
        let req = semver::VersionReq::parse(">=0.24.0").unwrap();
        let got = select(&listed, &req, &BuildStatuses::load_from(&dir.path().join("s.json")));
        assert_eq!(got.versions, v(&["v0.24.0", "v0.25.0", "v0.33.1"]));
        assert_eq!(got.skipped, vec![("v0.34.0".to_owned(), "403 Forbidden".to_owned())]);
    }
}
