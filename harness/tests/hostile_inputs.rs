//! Every class of malformed input found by the sweep of issue 9 is refused with exit 2, a location
//! (`file:line:column` where a file is involved) and a fix — by `bkcache run` with DOCKER_HOST pointing
//! nowhere, so each refusal provably comes before docker is contacted, let alone a builder created.

#[macro_use]
mod common;

use std::path::PathBuf;
use std::process::Command;

const DOCKERFILE: &str = "ARG BASE\nFROM ${BASE}\nRUN echo x\n";
const BUILD: &str = "[[phases]]\nkind = \"build\"\n";

/// A scratch directory: a Dockerfile, pins, a builders file and scenario files.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), DOCKERFILE).unwrap();
        std::fs::write(dir.path().join("versions.env"), "BUILDKIT_NEWEST=v0.33.1\nREGISTRY_ADDR=127.0.0.1:5000\n")
            .unwrap();
        let fixture = Fixture { dir };
        fixture.builders("[profiles.p]\nbuildkit = \"v0.33.1\"\nsnapshotter = \"overlayfs\"\n");
        fixture
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) -> &Self {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    fn builders(&self, profiles: &str) -> &Self {
        self.write("builders.toml", &format!("pins = \"versions.env\"\n{profiles}"))
    }

    /// A scenario `s.toml` with a local base and the given extra text.
    fn scenario(&self, body: &str) -> &Self {
        self.write(
            "s.toml",
            &format!("dockerfile = \"Dockerfile\"\nbases = {{ BASE = {{ local = \"base-a\" }} }}\n{body}"),
        )
    }

    /// Runs `bkcache run ARGS` (scenario `s.toml` unless ARGS name files) and returns stderr, asserting
    /// exit 2 and that docker was never needed.
    fn refused(&self, args: &[&str]) -> String {
        let mut all: Vec<&str> = vec!["run"];
        if !args.iter().any(|a| a.ends_with(".toml") && !a.starts_with("--")) {
            all.push("s.toml");
        }
        all.extend(args);
        if !args.contains(&"--builders") {
            all.extend(["--builders", "builders.toml"]);
        }
        let out = common::bkcache()
            .args(&all)
            .arg("--artifacts-dir")
            .arg(self.path("artifacts"))
            .current_dir(self.dir.path())
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{all:?}: {err}");
        assert!(!err.contains("docker engine not reachable"), "refused only after trying docker: {err}");
        assert!(err.contains("fix:") || err.contains("error: invalid value"), "no fix: {err}");
        err
    }
}

fn assert_has(err: &str, wanted: &[&str]) {
    for w in wanted {
        assert!(err.contains(w), "expected {w:?} in:\n{err}");
    }
}

#[test]
fn names_that_would_become_paths_or_option_strings() {
    for (phase_name, problem) in [
        ("../../x", "contains '/'"),
        ("/etc/x", "contains '/'"),
        ("out,name=docker.io/evil/x", "contains ','"),
        ("", "is empty"),
        ("Export", "names are lowercase"),
    ] {
        let f = Fixture::new();
        f.scenario(&format!("{BUILD}name = \"{phase_name}\"\n"));
        assert_has(&f.refused(&[]), &["s.toml:5:8", "phase name", problem]);
    }
    for (cache, problem) in [("x,dest=/tmp/other", "contains ','"), ("/abs", "contains '/'"), ("..", "must start")] {
        let f = Fixture::new();
        f.scenario(&format!("{BUILD}cache_to = [{{ type = \"local\", name = \"{cache}\" }}]\n"));
        assert_has(&f.refused(&[]), &["s.toml:5:", "cache name", problem]);
    }
    let f = Fixture::new();
    f.scenario(BUILD).write("Bad Name.toml", &std::fs::read_to_string(f.path("s.toml")).unwrap());
    assert_has(&f.refused(&["Bad Name.toml"]), &["Bad Name.toml", "scenario name", "rename the file"]);
    let f = Fixture::new();
    f.write("s.toml", &format!("dockerfile = \"Dockerfile\"\n[bases]\nBASE = {{ local = \"../x\" }}\n{BUILD}"));
    assert_has(&f.refused(&[]), &["s.toml:3:8", "local base name"]);
}

#[test]
fn cache_attributes_cannot_say_where_a_cache_goes() {
    for (attrs, problem) in [
        ("{ dest = \"/tmp/other\" }", "`dest` is not one a scenario may set"),
        ("{ ref = \"127.0.0.1:5000/other:cache\" }", "`ref` is not one"),
        ("{ type = \"registry\" }", "`type` is not one"),
        ("{ mode = \"max\" }", "`mode` is not one"),
        ("{ compression = \"zstd,dest=/x\" }", "cannot be `zstd,dest=/x`"),
    ] {
        let f = Fixture::new();
        f.scenario(&format!("{BUILD}cache_to = [{{ type = \"local\", name = \"c\", attrs = {attrs} }}]\n"));
        assert_has(&f.refused(&[]), &["s.toml:5:13", problem]);
    }
    let f = Fixture::new();
    f.scenario(&format!("{BUILD}cache_to = [{{ type = \"local\", attrs = {{ compression = \"zstd\" }} }}]\n"));
    let out = common::bkcache()
        .args(["lint", "s.toml", "--builders", "builders.toml"])
        .current_dir(f.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "a typed attribute is fine: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn build_arguments_and_bases_are_checked() {
    let f = Fixture::new();
    f.scenario(&format!("{BUILD}build_args = {{ \"A B\" = \"1\" }}\n"));
    assert_has(&f.refused(&[]), &["s.toml:3:1", "`A B` is not a build argument name"]);
    for image in ["", "not a ref", "a,b"] {
        let f = Fixture::new();
        f.write("s.toml", &format!("dockerfile = \"Dockerfile\"\n[bases]\nBASE = {{ image = \"{image}\" }}\n{BUILD}"));
        assert_has(&f.refused(&[]), &["s.toml:3:8", "is not an image reference"]);
    }
}

#[test]
fn the_build_context_stays_within_the_scenarios_files() {
    let f = Fixture::new();
    f.scenario(&format!("context = \"/\"\n{BUILD}"));
    assert_has(&f.refused(&[]), &["s.toml:3:11", "outside the scenario's files"]);
    let f = Fixture::new();
    f.scenario(&format!("context = \"Dockerfile\"\n{BUILD}"));
    assert_has(&f.refused(&[]), &["s.toml:3:11", "is a file, not a directory"]);
    let f = Fixture::new();
    std::fs::create_dir(f.path("df")).unwrap();
    f.write("s.toml", &format!("dockerfile = \"df\"\n{BUILD}"));
    assert_has(&f.refused(&[]), &["s.toml:1:14", "is a directory, not a file"]);
}

#[test]
fn profiles_are_validated() {
    for (profile, at, problem) in [
        ("[profiles.\"New.Stargz\"]\nbuildkit = \"v0.33.1\"\nsnapshotter = \"stargz\"\n", "builders.toml:2:11", "names are lowercase"),
        ("[profiles.p]\nbuildkit = \"latest\"\nsnapshotter = \"stargz\"\n", "builders.toml:3:12", "not a release"),
        ("[profiles.p]\nbuildkit = \"../../etc\"\nsnapshotter = \"stargz\"\n", "builders.toml:3:12", "not a release"),
        ("[profiles.p]\nbuildkit = \"v0.33\"\nsnapshotter = \"stargz\"\n", "builders.toml:3:12", "not a release"),
        ("[profiles.p]\nimage = \"\"\nsnapshotter = \"stargz\"\n", "builders.toml:3:9", "not an image reference"),
        (
            "[profiles.p]\nimage = \"moby/buildkit:v0.25.2,network=none\"\nsnapshotter = \"stargz\"\n",
            "builders.toml:3:9",
            "not an image reference",
        ),
        (
            "[profiles.p]\nbuildkit = \"v0.33.1\"\nsnapshotter = \"stargz\"\nbuildkitd_flags = [\"--addr tcp://0.0.0.0:1234\"]\n",
            "builders.toml:5:20",
            "is not one flag",
        ),
        (
            "[profiles.p]\nbuildkit = \"v0.33.1\"\nsnapshotter = \"stargz\"\nbuildkitd_flags = [\"--addr=tcp://0.0.0.0:1234\"]\n",
            "builders.toml:5:20",
            "listens beyond this machine",
        ),
        (
            "[profiles.p]\nbuildkit = \"v0.33.1\"\nsnapshotter = \"stargz\"\nbuildkitd_flags = [\"--oci-worker-snapshotter=overlayfs\"]\n",
            "builders.toml:5:20",
            "set the profile's `snapshotter` instead",
        ),
        (
            "[profiles.p]\nbuildkit = \"v0.33.1\"\nsnapshotter = \"stargz\"\nbuildkitd_config = \"[registry\"\n",
            "builders.toml:5:20",
            "not TOML",
        ),
        (
            "[profiles.p]\nbuildkit = \"v0.33.1\"\nsnapshotter = \"stargz\"\nbuildkitd_config = \"[registry.\\\"127.0.0.1:5000\\\"]\\nca = [\\\"/etc/shadow\\\"]\"\n",
            "builders.toml:5:20",
            "registry.\"127.0.0.1:5000\"` is set by bkcache",
        ),
        (
            "[profiles.p]\nbuildkit = \"v0.33.1\"\nsnapshotter = \"stargz\"\nbuildkitd_config = \"ca = [\\\"/etc/shadow\\\"]\"\n",
            "builders.toml:5:20",
            "`ca` is not a buildkitd.toml setting",
        ),
        (
            "[profiles.a-b]\nbuildkit = \"v0.33.1\"\nsnapshotter = \"stargz\"\n[profiles.\"a.b\"]\nbuildkit = \"v0.33.1\"\nsnapshotter = \"stargz\"\n",
            "builders.toml:5:11",
            "would share builders and registry refs",
        ),
    ] {
        let f = Fixture::new();
        f.builders(profile).scenario(BUILD);
        assert_has(&f.refused(&[]), &[at, problem]);
    }
}

#[test]
fn scenarios_that_would_share_refs_are_refused_and_a_file_named_twice_runs_once() {
    let f = Fixture::new();
    f.scenario(BUILD);
    let body = std::fs::read_to_string(f.path("s.toml")).unwrap();
    f.write("a.b.toml", &body).write("a-b.toml", &body);
    assert_has(&f.refused(&["a.b.toml", "a-b.toml"]), &["a.b.toml and", "a-b.toml would share registry refs"]);
    let f = Fixture::new();
    f.scenario(BUILD);
    let body = std::fs::read_to_string(f.path("s.toml")).unwrap();
    f.write("one/x.toml", &body.replace("Dockerfile", "../Dockerfile"))
        .write("two/x.toml", &body.replace("Dockerfile", "../Dockerfile"));
    assert_has(&f.refused(&["one/x.toml", "two/x.toml"]), &["would share registry refs"]);
    // a directory holds its subdirectories' scenarios too: `.` finds both x.toml
    assert_has(&f.refused(&["."]), &["would share registry refs"]);
    let f = Fixture::new();
    f.scenario(BUILD);
    let out = common::bkcache()
        .args(["list", "s.toml", "./s.toml", ".", "--builders", "builders.toml"])
        .current_dir(f.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).matches("s@p").count(),
        1,
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn files_that_are_not_text_files_are_refused_without_reading_them() {
    let f = Fixture::new();
    f.scenario(BUILD);
    // a FIFO would block a reader forever
    assert!(Command::new("mkfifo").arg(f.path("fifo.toml")).status().unwrap().success());
    assert_has(&f.refused(&["fifo.toml"]), &["fifo.toml is not a regular file"]);
    // a device as the pins file would be read without end
    f.write(
        "builders.toml",
        "pins = \"/dev/zero\"\n[profiles.p]\nbuildkit = \"v0.33.1\"\nsnapshotter = \"overlayfs\"\n",
    );
    assert_has(&f.refused(&[]), &["/dev/zero is not a regular file"]);
    let f = Fixture::new();
    std::fs::write(f.path("s.toml"), b"dockerfile = \"Dockerfile\"\n# caf\xe9\n").unwrap();
    assert_has(&f.refused(&[]), &["s.toml:2:6", "not UTF-8"]);
}

#[test]
fn pins_the_shell_would_read_differently_are_refused() {
    let f = Fixture::new();
    f.write("versions.env", "BUILDKIT_NEWEST=v0.33.1 # newest\n").scenario(BUILD);
    assert_has(&f.refused(&[]), &["versions.env:1:1", "not a plain KEY=VALUE"]);
}

#[test]
fn a_missing_scenario_is_named_before_the_builders_file() {
    let f = Fixture::new();
    assert_has(&f.refused(&["nope.toml"]), &["no such scenario file or directory: nope.toml"]);
}

#[test]
fn command_line_values_are_checked() {
    let f = Fixture::new();
    f.scenario(BUILD);
    for arg in ["--run-id=", "--run-id=a.1", "--run-id=-a", "--run-id=A", "--jobs=0", "--repeat=0"] {
        assert_has(&f.refused(&[arg]), &["invalid value"]);
    }
    assert_has(&f.refused(&["--buildkit", "latest"]), &["--buildkit latest", "not a release"]);
}

#[test]
fn a_phase_timeout_of_zero_is_refused() {
    let f = Fixture::new();
    f.scenario(&format!("phase_timeout_secs = 0\n{BUILD}"));
    assert_has(&f.refused(&[]), &["s.toml:3:22", "at least 1"]);
}

/// A registry double on loopback that serves `documents` (URL path → body) over HTTP/1.1, one
/// connection at a time, until the test ends; 404 for anything else.
fn hostile_registry(documents: Vec<(String, Vec<u8>)>) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = request.split_whitespace().nth(1).unwrap_or_default().to_owned();
            let mut stream = stream;
            let _ = match documents.iter().find(|(p, _)| *p == path) {
                Some((_, body)) => stream
                    .write_all(format!("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.index.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).as_bytes())
                    .and_then(|()| stream.write_all(body)),
                None => stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
            };
        }
    });
    addr
}

/// A registry whose documents name children by crafted digests (a path that climbs out, an absolute
/// path), or serve content that is not what its digest says, cannot make `cache inspect` write outside
/// its work directory: each is refused, exit 2, and nothing appears where the digests point.
#[test]
fn a_hostile_registry_cannot_make_bkcache_write_outside_its_work_directory() {
    let dir = tempfile::tempdir().unwrap();
    let escaped = dir.path().join("escaped");
    let good = "sha256:".to_owned() + &"a".repeat(64);
    for (child, why) in [
        (format!("sha256:../../../../../../..{}", escaped.display()), "digest"),
        (escaped.display().to_string(), "digest"),
        (good.clone(), "hashes to"),
    ] {
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{child}","size":2}}]}}"#
        );
        let addr = hostile_registry(vec![
            ("/v2/repo/manifests/tag".into(), index.into_bytes()),
            (format!("/v2/repo/manifests/{child}"), b"{}".to_vec()),
        ]);
        std::fs::write(dir.path().join("pins.env"), format!("REGISTRY_ADDR={addr}\n")).unwrap();
        let out = common::bkcache()
            .args(["cache", "inspect", &format!("{addr}/repo:tag"), "--pins"])
            .arg(dir.path().join("pins.env"))
            .current_dir(dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{child}: {err}");
        assert!(err.contains("refused") && err.contains(why), "{child}: {err}");
        assert!(!escaped.exists(), "{child}: bkcache wrote {}", escaped.display());
    }
}

/// A local cache whose descriptors name files by crafted digests is refused without reading them.
#[test]
fn a_crafted_cache_directory_names_no_file_outside_itself() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(cache.join("blobs/sha256")).unwrap();
    std::fs::write(dir.path().join("secret"), "{}").unwrap();
    let index = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:../../../secret","size":2}]}"#;
    std::fs::write(cache.join("index.json"), index).unwrap();
    let out = common::bkcache().args(["cache", "inspect", "cache"]).current_dir(dir.path()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("index.json") && !err.contains("secret:"), "{err}");
}

/// `capture` copies the caches a build imports before it runs: a crafted local cache is refused there,
/// exit 2, before any build, and nothing is written where its digests point.
#[test]
fn capture_refuses_a_crafted_local_cache_before_building() {
    let dir = tempfile::tempdir().unwrap();
    let escaped = dir.path().join("escaped");
    std::fs::write(dir.path().join("secret"), "{}").unwrap();
    let good = "sha256:".to_owned() + &"a".repeat(64);
    for (child, why) in [
        ("sha256:../../../../secret".to_owned(), "digest"),
        (format!("sha256:../../../../../{}", escaped.display()), "digest"),
        (good.clone(), "hashes to"),
    ] {
        let cache = dir.path().join("cache");
        let _ = std::fs::remove_dir_all(&cache);
        std::fs::create_dir_all(cache.join("blobs/sha256")).unwrap();
        std::fs::write(cache.join("blobs/sha256").join("a".repeat(64)), "{}").unwrap();
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{child}","size":2}}]}}"#
        );
        std::fs::write(cache.join("index.json"), index).unwrap();
        let out = common::bkcache()
            .args(["capture", "captured", "--", "--cache-from", "type=local,src=cache", "."])
            .current_dir(dir.path())
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{child}: {err}");
        assert!(err.contains("refused") && err.contains(why), "{child}: {err}");
        assert!(!err.contains("docker") && !dir.path().join("captured/build-1.rawjson").exists(), "no build: {err}");
        assert!(!escaped.exists(), "{child}: bkcache wrote {}", escaped.display());
        let copied = dir.path().join("captured/caches/build-1-from-0/blobs/sha256");
        let names: Vec<_> =
            std::fs::read_dir(&copied).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
        assert!(names.is_empty(), "{child}: copied {names:?}");
    }
}
