//! What a cache key was computed from, as buildkitd recorded it (`--save-cache-debug`, saved by
//! `host::keys`).
//!
//! A cache record's digest is `digest("<op key>@<output>")`; the op key is the digest of the op's
//! definition — for a RUN, `{"Type":"buildkit.exec.v0","Exec":{"meta":{"args":...,"env":...}}}`; for
//! COPY, the file op's actions; for a base, `buildkit.source.v0:<digest of {"Digest": manifest}>`.
//! A key with output `-1` is a content key: the checksums of the files a COPY selected. The record's
//! identity also includes its inputs (links to its parents' records), so one op run on two different
//! parents gives two records with the same digest.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::prelude::{Engine as _, BASE64_STANDARD};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum KeysReadError {
    #[error("{path}", path = .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not buildkitd's /debug/cache JSON", path = .path.display())]
    Json { path: PathBuf, source: serde_json::Error },
}

/// `FrameIDData` in BuildKit's `util/cachedigest`: the bytes that were hashed.
const FRAME_DATA: u32 = 2;

#[derive(Deserialize)]
struct DumpRecord {
    digest: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: Vec<Frame>,
    #[serde(default, rename = "subRecords")]
    sub_records: Vec<DumpRecord>,
}

#[derive(Deserialize)]
struct Frame {
    #[serde(rename = "type")]
    id: u32,
    #[serde(default)]
    data: String,
}

/// Every digest buildkitd recorded, with the text it hashed.
#[derive(Debug, Clone, Default)]
pub struct KeyTexts {
    texts: HashMap<String, (String, Vec<u8>)>,
}

/// What a cache key says about the op it keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum OpKey {
    /// A RUN: its command line, environment (build args a step uses are here), working directory
    /// and mounts beyond the root.
    Exec { args: Vec<String>, env: Vec<String>, cwd: String, mounts: Vec<String> },
    /// COPY, ADD, WORKDIR...: each action as BuildKit encoded it.
    File { actions: Vec<String> },
    /// A base image, by manifest digest.
    Image { manifest: String },
    /// The build context or the Dockerfile, sent by the client (keyed per session: random).
    Local { source: String },
    /// The checksums of the files a COPY selected from its source.
    Content,
    /// Another op type.
    Other { kind: String },
}

impl OpKey {
    /// The Dockerfile instruction keywords that produce this kind of op.
    pub fn keywords(&self) -> &'static [&'static str] {
        match self {
            OpKey::Exec { .. } => &["RUN"],
            OpKey::File { .. } => &["COPY", "ADD", "WORKDIR"],
            OpKey::Image { .. } => &["FROM"],
            _ => &[],
        }
    }

    /// The RUN command with the environment's `$NAME` / `${NAME}` substituted, as BuildKit names the
    /// step (`RUN echo "$BUST"` runs as `echo "2"` when BUST=2).
    pub fn expanded_command(&self) -> Option<String> {
        let OpKey::Exec { args, env, .. } = self else { return None };
        let command = match args.as_slice() {
            [shell, flag, command] if shell.ends_with("sh") && flag == "-c" => command.clone(),
            _ => args.join(" "),
        };
        let vars: HashMap<&str, &str> = env.iter().filter_map(|e| e.split_once('=')).collect();
        Some(shellexpand::env_with_context_no_errors(&command, |name| vars.get(name).copied()).into_owned())
    }
}

impl KeyTexts {
    pub fn read(path: &Path) -> Result<KeyTexts, KeysReadError> {
        let bytes = crate::safe_fs::read_regular(path, crate::safe_fs::DOCUMENT_LIMIT)
            .map_err(|source| KeysReadError::Io { path: path.to_owned(), source })?;
        Self::parse(&bytes).map_err(|source| KeysReadError::Json { path: path.to_owned(), source })
    }

    pub fn parse(bytes: &[u8]) -> Result<KeyTexts, serde_json::Error> {
        let records: Vec<DumpRecord> = serde_json::from_slice(bytes)?;
        let mut texts = HashMap::new();
        let mut pending = records;
        while let Some(r) = pending.pop() {
            let data: Vec<u8> = r
                .data
                .iter()
                .filter(|f| f.id == FRAME_DATA)
                .flat_map(|f| BASE64_STANDARD.decode(&f.data).unwrap_or_default())
                .collect();
            texts.entry(r.digest).or_insert((r.kind, data));
            pending.extend(r.sub_records);
        }
        Ok(KeyTexts { texts })
    }

    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    fn text(&self, digest: &str) -> Option<&[u8]> {
        self.texts.get(digest).map(|(_, data)| data.as_slice())
    }

    /// The op key a record digest (`digest("<op key>@<output>")`) stands for, and the output.
    pub fn op_key_of(&self, record_digest: &str) -> Option<(String, i64)> {
        let text = std::str::from_utf8(self.text(record_digest)?).ok()?;
        let (key, output) = text.rsplit_once('@')?;
        Some((key.to_owned(), output.parse().ok()?))
    }

    /// What the record with this digest keys, when buildkitd recorded it.
    pub fn op(&self, record_digest: &str) -> Option<OpKey> {
        let (key, output) = self.op_key_of(record_digest)?;
        if output == -1 {
            return Some(OpKey::Content);
        }
        if let Some(random) = key.strip_prefix("random:") {
            let source = std::str::from_utf8(self.text(&format!("sha256:{random}"))?).ok()?;
            let source = source.strip_prefix("buildkit.source.v0:").unwrap_or(source);
            let name = source.split(':').take(2).collect::<Vec<_>>().join(":");
            return Some(OpKey::Local { source: name });
        }
        let text = self.text(&key)?;
        if let Some(source) = std::str::from_utf8(text).ok().and_then(|t| t.strip_prefix("buildkit.source.v0:")) {
            let identifier: serde_json::Value =
                serde_json::from_slice(self.text(source).unwrap_or_default()).unwrap_or_default();
            return Some(match identifier["Digest"].as_str() {
                Some(manifest) => OpKey::Image { manifest: manifest.to_owned() },
                None => OpKey::Other { kind: format!("source {source}") },
            });
        }
        let op: serde_json::Value = serde_json::from_slice(text).ok()?;
        let strings = |v: &serde_json::Value| -> Vec<String> {
            v.as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_owned)).collect()
        };
        Some(match op["Type"].as_str().unwrap_or_default() {
            "buildkit.exec.v0" => {
                let meta = &op["Exec"]["meta"];
                OpKey::Exec {
                    args: strings(&meta["args"]),
                    env: strings(&meta["env"]),
                    cwd: meta["cwd"].as_str().unwrap_or_default().to_owned(),
                    mounts: op["Exec"]["mounts"].as_array().into_iter().flatten().map(|m| m.to_string()).collect(),
                }
            }
            "buildkit.file.v0" => OpKey::File {
                actions: strings(&op["Actions"])
                    .iter()
                    .map(|a| {
                        BASE64_STANDARD
                            .decode(a)
                            .map(|b| String::from_utf8_lossy(&b).into_owned())
                            .unwrap_or_else(|_| a.clone())
                    })
                    .collect(),
            },
            other => OpKey::Other { kind: other.to_owned() },
        })
    }
}

/// Differences between two op keys of one step, in words ("env `BUST`: `1` → `2`").
pub fn differences(before: &OpKey, after: &OpKey) -> Vec<String> {
    match (before, after) {
        (
            OpKey::Exec { args: a1, env: e1, cwd: c1, mounts: m1 },
            OpKey::Exec { args: a2, env: e2, cwd: c2, mounts: m2 },
        ) => {
            let mut out = Vec::new();
            if a1 != a2 {
                out.push(format!("command: `{}` → `{}`", a1.join(" "), a2.join(" ")));
            }
            let map = |e: &[String]| -> std::collections::BTreeMap<String, String> {
                e.iter()
                    .map(|v| v.split_once('=').map_or((v.clone(), String::new()), |(k, v)| (k.into(), v.into())))
                    .collect()
            };
            let (m_before, m_after) = (map(e1), map(e2));
            for key in m_before.keys().chain(m_after.keys()).collect::<std::collections::BTreeSet<_>>() {
                match (m_before.get(key), m_after.get(key)) {
                    (Some(x), Some(y)) if x == y => {}
                    (x, y) => out.push(format!(
                        "env `{key}` (a build arg or ENV): {} → {}",
                        x.map_or("unset".into(), |v| format!("`{v}`")),
                        y.map_or("unset".into(), |v| format!("`{v}`"))
                    )),
                }
            }
            if c1 != c2 {
                out.push(format!("working directory: `{c1}` → `{c2}`"));
            }
            if m1 != m2 {
                out.push("mounts differ".into());
            }
            out
        }
        (OpKey::File { actions: x }, OpKey::File { actions: y }) if x != y => {
            vec![format!("file actions: {} → {}", x.join("; "), y.join("; "))]
        }
        (OpKey::Image { manifest: x }, OpKey::Image { manifest: y }) if x != y => {
            vec![format!("base image manifest: {x} → {y}")]
        }
        (x, y) if x == y => Vec::new(),
        (x, y) => vec![format!("op: {x:?} → {y:?}")],
    }
}
