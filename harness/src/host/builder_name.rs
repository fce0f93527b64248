//! The grammar of the names bkcache gives builders, and of the container and volume buildx's
//! docker-container driver makes for each: one type that builds them and parses them back, for the
//! builder pool, gc and the tests (which look for what a run left).

use std::fmt;

/// The docker-container driver names a builder's container `<prefix><builder>0`, its volume `..0_state`.
const CONTAINER_PREFIX: &str = "buildx_buildkit_";
const VOLUME_SUFFIX: &str = "_state";

/// A builder bkcache makes: `bkcache-<run id>.<n>.<profile slug>`. Run ids have no `.`, so the prefix
/// `bkcache-<run id>.` names one run's builders only (`bkcache-a.` is no prefix of run `a-1`'s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuilderName {
    run: String,
    n: usize,
    profile: String,
}

impl BuilderName {
    pub fn new(run: &str, n: usize, profile: &str) -> Self {
        BuilderName { run: run.to_owned(), n, profile: profile.to_owned() }
    }

    /// What every builder name of run `run` starts with.
    pub fn run_prefix(run: &str) -> String {
        format!("bkcache-{run}.")
    }

    /// The same prefix, for the run's builder containers and volumes.
    pub fn container_prefix(run: &str) -> String {
        format!("{CONTAINER_PREFIX}{}", Self::run_prefix(run))
    }

    /// The prefix every container of a bkcache builder has.
    pub fn any_container_prefix() -> String {
        format!("{CONTAINER_PREFIX}bkcache-")
    }

    /// The builder a builder, container or volume name names, when it is a name bkcache gives.
    pub fn parse(text: &str) -> Option<Self> {
        let name = match text.strip_prefix(CONTAINER_PREFIX) {
            Some(rest) => rest.strip_suffix(VOLUME_SUFFIX).unwrap_or(rest).strip_suffix('0')?,
            None => text,
        };
        let (run, rest) = name.strip_prefix("bkcache-")?.split_once('.')?;
        let (n, profile) = rest.split_once('.')?;
        if run.is_empty() || profile.is_empty() || !n.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        Some(BuilderName { run: run.to_owned(), n: n.parse().ok()?, profile: profile.to_owned() })
    }

    /// The run it belongs to.
    pub fn run(&self) -> &str {
        &self.run
    }

    /// The container buildkitd runs in.
    pub fn container(&self) -> String {
        container_of(&self.to_string())
    }

    /// The container's state volume.
    pub fn volume(&self) -> String {
        format!("{}{VOLUME_SUFFIX}", self.container())
    }
}

/// The container the docker-container driver makes for builder `builder` (any name).
pub fn container_of(builder: &str) -> String {
    format!("{CONTAINER_PREFIX}{builder}0")
}

impl fmt::Display for BuilderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bkcache-{}.{}.{}", self.run, self.n, self.profile)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_from_the_builder_its_container_and_its_volume() {
        let name = BuilderName::new("a-1", 3, "v0-24-stargz");
        assert_eq!(name.to_string(), "bkcache-a-1.3.v0-24-stargz");
        for text in [name.to_string(), name.container(), name.volume()] {
            assert_eq!(BuilderName::parse(&text), Some(name.clone()), "{text}");
        }
        assert_eq!(name.container(), "buildx_buildkit_bkcache-a-1.3.v0-24-stargz0");
        assert_eq!(name.volume(), "buildx_buildkit_bkcache-a-1.3.v0-24-stargz0_state");
        for other in
            ["bkcache-a-0-p", "mybuilder", "bkcache-.0.p", "bkcache-a.x.p", "bkcache-a.0.", "buildx_buildkit_x0"]
        {
            assert_eq!(BuilderName::parse(other), None, "{other}: not a name bkcache gives");
        }
    }

    #[test]
    fn a_runs_prefix_names_none_of_another_runs_builders() {
        let prefix = BuilderName::run_prefix("a");
        assert!(BuilderName::new("a", 0, "p").to_string().starts_with(&prefix));
        for n in [0, 1, 10] {
            let other = BuilderName::new("a-1", n, "p");
            assert!(!other.to_string().starts_with(&prefix), "{other}");
            assert!(!other.container().starts_with(&BuilderName::container_prefix("a")), "{other}");
        }
    }
}
