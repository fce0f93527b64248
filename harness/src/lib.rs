//! bkcache: reproduce BuildKit cache regressions on real BuildKit from declarative scenario files.
//!
//! The pipeline, one module per stage:
//! [`scenario`] (+ [`profiles`], [`pins`]) → [`plan`] (cells) → [`runner`], which drives [`builder`]s
//! through [`phase`]s and observes them ([`progress`], [`cache`], [`laziness`]) → [`verdict`] →
//! [`report`]. [`docker`], [`buildx`] and [`registry`] talk to the machine; [`errors`] holds every error.

pub mod builder;
pub mod buildkit_image;
pub mod buildx;
pub mod cache;
pub mod cli;
pub mod docker;
pub mod errors;
pub mod laziness;
pub mod phase;
pub mod pins;
pub mod plan;
pub mod profiles;
pub mod progress;
pub mod registry;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod toml_file;
pub mod verdict;
