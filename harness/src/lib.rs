//! bkcache: reproduce BuildKit cache regressions on real BuildKit from declarative scenario files.
//!
//! The pipeline, one module per stage:
//! [`scenario`] (files, model, BuildKit-semantics lint over the [`dockerfile`]) + [`profiles`] ([`pins`])
//! → [`plan`] (cells) → [`session`] (the library API), which runs each repetition of a cell through
//! [`execute`] (builder, phases: raw artifacts) → [`observe`] (typed observations) → [`judge`] (pure:
//! verdict and reasons; flaky aggregation) and emits [`events`] that the [`report`]ers consume.
//! [`results`] writes per-repetition result files and merges shards' files into one report.
//! [`inspect`] loads caches and repetitions from artifacts or the registry for `explain` and `cache`.
//! [`errors`] holds the errors; [`names`] the checked names every path, ref and option is built from;
//! [`buildkitd`] what profiles may pass to buildkitd; [`cli`] only parses arguments and maps outcomes to
//! exit codes; `output` prints what a closed stream cannot stop.

#[macro_use]
mod output;

pub mod bisect;
pub mod buildkitd;
pub mod cli;
pub mod digest;
pub mod dockerfile;
pub mod errors;
pub mod events;
pub mod evidence;
pub mod execute;
pub mod inspect;
pub mod judge;
pub mod names;
pub mod network;
pub mod observe;
pub mod pins;
pub mod plan;
pub mod profiles;
pub mod report;
pub mod results;
pub(crate) mod safe_fs;
pub mod scenario;
pub mod session;
pub mod toml_file;
