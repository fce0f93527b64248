//! The machine's pieces a run uses: the docker engine, the local registry, the locks every bkcache
//! process shares, the buildx CLI, the pool of builders handed to repetitions, buildkitd's debug
//! endpoint (cache-key dumps) and the small HTTP client the registry and the debug endpoint share.

pub(crate) mod builder;
mod builder_name;
pub(crate) mod buildx;
pub mod docker;
pub(crate) mod http;
pub(crate) mod keys;
pub(crate) mod locks;
pub mod registry;

pub use builder_name::BuilderName;

use builder::Janitor;
use docker::Engine;
use registry::Registry;

/// What a run needs from the machine.
pub struct Machine {
    pub engine: Engine,
    pub registry: Registry,
    pub janitor: Janitor,
}
