//! bkcache: reproduce BuildKit cache regressions on real BuildKit from declarative scenario files.
//!
//! The pipeline, one module per stage (ARCHITECTURE.md has the layers each module sits in, which a test
//! enforces): [`scenario`] (files, model, BuildKit-semantics lint over the `dockerfile`) + [`profiles`]
//! ([`pins`]) → [`plan`] (cells) → [`session`] (the library API), which runs each repetition of a cell
//! through `execute` (builder, phases: raw `artifacts`) → [`observe`] (typed observations) →
//! [`judge`] (pure: verdict and reasons; flaky aggregation) and emits [`events`] that the [`report`]ers
//! consume. [`host`] holds the machine's pieces (docker, registry, locks, buildx, the builder pool),
//! [`images`] the BuildKit images made from the Go module, [`buildkit_spec`] what a profile asks of them.
//! Commands beside the pipeline: `capture`, [`inspect`] (`explain`, `cache`), `gc`, `bisect`,
//! [`evidence`], [`results`] (result files; shards merged by re-judging). [`errors`] holds the error
//! types; `names` the checked names every path, ref and option is built from; `buildkitd` what
//! profiles may pass to buildkitd; [`cli`] only parses arguments and maps outcomes to exit codes;
//! `output` prints what a closed stream cannot stop.
//!
//! The library surface is what the binary, the `cells` test target, the tests and the benchmarks use;
//! every other module (the un-linked names above) is crate-private.

#[macro_use]
mod output;

pub(crate) mod artifacts;
pub(crate) mod bisect;
pub mod buildkit_spec;
pub(crate) mod buildkitd;
pub(crate) mod capture;
pub mod cli;
pub mod digest;
pub(crate) mod dockerfile;
pub mod errors;
pub mod events;
pub mod evidence;
pub(crate) mod execute;
pub(crate) mod gc;
pub mod host;
pub mod images;
pub mod inspect;
pub mod judge;
pub(crate) mod names;
pub(crate) mod network;
pub mod observe;
pub mod pins;
pub mod plan;
pub mod profiles;
pub mod report;
pub mod results;
pub(crate) mod safe_fs;
pub mod scenario;
pub mod session;
pub(crate) mod toml_file;
