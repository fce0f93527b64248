//! Cache records BuildKit found but failed to load. The solver drops such a record and runs the step
//! instead, silently: the build succeeds and the step is simply not CACHED (`solver/edge.go`,
//! `processExecReq`). The only trace is buildkitd's debug log (always on for bkcache's builders):
//!
//! ```text
//! time="..." level=debug msg="load cache for [build 2/3] RUN echo stable > /stable err: NotFound: rpc error: code = NotFound desc = content sha256:4267...: not found"
//! ```
//!
//! Captured from a real v0.33.1 builder after a layer blob was deleted from a local cache between its
//! export and its import.
//!
//! The log is also the only trace of an inline cache BuildKit left out of the image it pushed: the image
//! exporter found no cache record among the image's layers (`cache/remotecache/inline/inline.go`,
//! `ExportForLayers`), warned, and wrote the image without it:
//!
//! ```text
//! time="..." level=warning msg="failed to match any cache with layers" span="exporting to image" ...
//! ```
//!
//! (captured from v0.33.1 stargz builders pushing with `--cache-to type=inline`, 2026-12-06).

const PREFIX: &str = "load cache for ";
const INLINE_CACHE_UNMATCHED: &str = "failed to match any cache with layers";

/// The failed loads of a buildkitd log (each message without its `load cache for ` prefix), and whether
/// it dropped an inline cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheLoadFailures {
    messages: Vec<String>,
    /// BuildKit wrote an image without its inline cache, finding no record for its layers.
    pub inline_cache_unmatched: bool,
}

impl CacheLoadFailures {
    pub fn from_buildkitd_log(log: &str) -> Self {
        let messages: Vec<String> =
            log.lines().filter_map(|line| line.split_once("msg=\"").map(|(_, rest)| go_quoted(rest))).collect();
        let inline_cache_unmatched = messages.iter().any(|m| m == INLINE_CACHE_UNMATCHED);
        let messages = messages
            .into_iter()
            .filter_map(|msg| msg.strip_prefix(PREFIX).map(str::to_owned))
            .filter(|msg| msg.contains(" err: "))
            .collect();
        CacheLoadFailures { messages, inline_cache_unmatched }
    }

    /// BuildKit's error when it failed to load a record for the step named `step` (as rawjson names
    /// the vertex; the log names it the same way).
    pub fn of(&self, step: &str) -> Option<&str> {
        self.messages.iter().find_map(|m| m.strip_prefix(step).and_then(|rest| rest.strip_prefix(" err: ")))
    }
}

/// The value of a logrus `key="..."` field: `rest` starts after the opening quote; escapes undone.
fn go_quoted(rest: &str) -> String {
    let mut value = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => match chars.next() {
                Some('n') => value.push('\n'),
                Some('t') => value.push('\t'),
                Some(other) => value.push(other),
                None => break,
            },
            _ => value.push(c),
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inline_cache_buildkit_left_out_is_read_from_its_warning() {
        // captured from a v0.33.1 stargz builder (inline-edit-later, 2026-12-06)
        let log = "time=\"2026-12-06T06:45:46Z\" level=warning msg=\"failed to match any cache with layers\" span=\"exporting to image\" spanID=ed1f38b1bee15ba6 traceID=d35b907e0cf75a16cbbfda5d6f0b8107\n";
        assert!(CacheLoadFailures::from_buildkitd_log(log).inline_cache_unmatched);
        assert!(
            !CacheLoadFailures::from_buildkitd_log("time=\"x\" level=info msg=\"exporting to image\"\n")
                .inline_cache_unmatched
        );
    }

    const LOG: &str = r#"time="2026-11-21T22:54:12Z" level=debug msg="load cache for [build 2/3] RUN echo stable > /stable with sha256:0055a44b151d48160fdeafa295b93c8d1f11fea3332192e4800cf91df357a960"
time="2026-11-21T22:54:12Z" level=debug msg=fetch span="load cache: [build 2/3] RUN echo stable > /stable" spanID=d98ac4d60a4e7181
time="2026-11-21T22:54:12Z" level=debug msg="load cache for [build 2/3] RUN echo stable > /stable err: NotFound: rpc error: code = NotFound desc = content sha256:42679151ee34af88176efc80db9a7836e9f17e717acb66a8cc97b764944efec3: not found"
time="2026-11-21T22:54:13Z" level=debug msg="load cache for [build 3/3] RUN echo \"quoted\" > /q err: failed to fetch"
"#;

    #[test]
    fn names_the_error_of_each_step_whose_load_failed() {
        let failures = CacheLoadFailures::from_buildkitd_log(LOG);
        assert_eq!(
            failures.of("[build 2/3] RUN echo stable > /stable"),
            Some("NotFound: rpc error: code = NotFound desc = content sha256:42679151ee34af88176efc80db9a7836e9f17e717acb66a8cc97b764944efec3: not found")
        );
        assert_eq!(failures.of(r#"[build 3/3] RUN echo "quoted" > /q"#), Some("failed to fetch"));
    }

    #[test]
    fn a_load_that_started_or_a_step_never_loaded_is_no_failure() {
        let failures = CacheLoadFailures::from_buildkitd_log(LOG);
        assert_eq!(failures.of("[build 2/3] RUN echo stable"), None);
        assert_eq!(failures.of("[stage-1 2/2] COPY --from=build /stable /bust /"), None);
        assert_eq!(CacheLoadFailures::from_buildkitd_log("").of("[build 2/3] RUN echo stable > /stable"), None);
    }
}
