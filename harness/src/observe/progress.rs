//! Step outcomes from `docker buildx build --progress=rawjson`.
//!
//! Each line is one JSON `SolveStatus`; a vertex shows up in several of them, so they are merged by
//! digest. Fields are omitempty: `cached` absent means false. A vertex skipped after an error can be
//! reported cached (moby/buildkit#5644), so a step only counts as CACHED when some event says cached,
//! none carries an error, and the build as a whole succeeded. Lines that are not JSON (buildx's own
//! `ERROR: ...` summary) are kept as messages.

use std::collections::HashMap;

use serde::Deserialize;

#[derive(Deserialize)]
struct SolveStatus {
    #[serde(default)]
    vertexes: Vec<VertexEvent>,
}

#[derive(Deserialize)]
struct VertexEvent {
    digest: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    inputs: Vec<String>,
    #[serde(default)]
    cached: bool,
    #[serde(default)]
    completed: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// One vertex of the build, merged over all its events.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Step {
    pub name: String,
    /// The vertex digest: the digest of the step's LLB op, which names a vertex of this build. Not a
    /// cache key: BuildKit keys a step by its op *and* the keys of its inputs (see `observe::records`).
    pub digest: String,
    /// The vertices this one takes as inputs, in the op's input order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<String>,
    /// CACHED: some event said cached, no event had an error, and the build succeeded.
    pub cached: bool,
    pub completed: bool,
    pub error: Option<String>,
}

impl Step {
    /// Dockerfile steps (`[stage 2/3] RUN ...`), as opposed to BuildKit's `[internal] ...` vertices and
    /// its own (`importing cache manifest from ...`, `exporting to image`).
    pub fn is_internal(&self) -> bool {
        self.name.starts_with("[internal]") || !self.name.starts_with('[')
    }

    /// A stage's `FROM` (a base image source).
    pub fn is_from(&self) -> bool {
        !self.is_internal() && self.instruction().starts_with("FROM ")
    }

    /// Where the step is in the Dockerfile, as BuildKit names it: `[build 2/3]` of `[build 2/3] RUN echo x`
    /// (the same in every build of one Dockerfile, whatever its build args).
    pub fn position(&self) -> Option<&str> {
        self.name.strip_prefix('[').and_then(|rest| rest.split_once("] ")).map(|(position, _)| position)
    }

    /// A `COPY` or `ADD`: BuildKit keys what it copies from by the files' checksums, not by the cache key
    /// of the step that made them (`solver/llbsolver/ops/file.go`, `CacheMap`: the copy's source input
    /// gets selectors and a content hash, its destination input is keyed as usual).
    pub fn is_content_keyed(&self) -> bool {
        let instruction = self.instruction();
        !self.is_internal() && (instruction.starts_with("COPY ") || instruction.starts_with("ADD "))
    }

    /// The instruction as BuildKit names it: `RUN echo x` of `[build 2/3] RUN echo x`.
    pub fn instruction(&self) -> &str {
        match self.name.strip_prefix('[').and_then(|rest| rest.split_once("] ")) {
            Some((_, instruction)) => instruction,
            None => &self.name,
        }
    }
}

impl Progress {
    /// BuildKit's error for a failed build: buildx's `ERROR: ...` lines, else the vertices' errors,
    /// else the stream's last lines.
    pub fn failure_summary(&self, stream: &str) -> String {
        let errors: Vec<&str> = self.messages.iter().map(String::as_str).filter(|m| m.starts_with("ERROR")).collect();
        if !errors.is_empty() {
            return errors.join("\n");
        }
        let vertex_errors: Vec<String> =
            self.steps.iter().filter_map(|s| s.error.as_ref().map(|e| format!("{}: {e}", s.name))).collect();
        if !vertex_errors.is_empty() {
            return vertex_errors.join("\n");
        }
        crate::artifacts::last_lines(stream, 6)
    }

    /// Whether the build reached BuildKit's solver (some vertex was reported): a build that failed
    /// before that never tested anything.
    pub fn reached_solver(&self) -> bool {
        !self.steps.is_empty()
    }
}

/// What one build's progress stream says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// In order of first appearance.
    pub steps: Vec<Step>,
    /// Lines that were not SolveStatus JSON.
    pub messages: Vec<String>,
}

#[derive(Default)]
struct Merged {
    name: String,
    digest: String,
    inputs: Vec<String>,
    any_cached: bool,
    completed: bool,
    error: Option<String>,
}

/// Parses a rawjson stream. `build_succeeded` comes from buildx's exit status.
pub fn parse(stream: &str, build_succeeded: bool) -> Progress {
    let mut merged: Vec<Merged> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut messages = Vec::new();
    for line in stream.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let status = match serde_json::from_str::<SolveStatus>(line) {
            Ok(status) if line.starts_with('{') => status,
            _ => {
                messages.push(line.to_owned());
                continue;
            }
        };
        for v in status.vertexes {
            let i = *index.entry(v.digest).or_insert_with_key(|digest| {
                merged.push(Merged { digest: digest.clone(), ..Merged::default() });
                merged.len() - 1
            });
            let m = &mut merged[i];
            if !v.name.is_empty() {
                m.name = v.name;
            }
            if !v.inputs.is_empty() {
                m.inputs = v.inputs;
            }
            m.any_cached |= v.cached;
            m.completed |= v.completed.is_some();
            if v.error.as_deref().is_some_and(|e| !e.is_empty()) {
                m.error = v.error;
            }
        }
    }
    let steps = merged
        .into_iter()
        .map(|m| Step {
            cached: m.any_cached && m.error.is_none() && build_succeeded,
            name: m.name,
            digest: m.digest,
            inputs: m.inputs,
            completed: m.completed,
            error: m.error,
        })
        .collect();
    Progress { steps, messages }
}
