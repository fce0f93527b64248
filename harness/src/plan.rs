//! The plan: cells = scenario × builder profile, each named `scenario@builder`.

use std::sync::Arc;

use crate::errors::ConfigError;
use crate::names::Name;
use crate::profiles::{BuilderProfile, Profiles};
use crate::scenario::{KnownIssue, Scenario};

#[derive(Debug, Clone)]
pub struct Cell {
    pub scenario: Arc<Scenario>,
    pub profile: Arc<BuilderProfile>,
    /// The known issues of the scenario that apply on this builder.
    pub known_issues: Vec<KnownIssue>,
    /// How many times the cell runs, each from a fresh builder.
    pub repetitions: u32,
}

impl Cell {
    pub fn id(&self) -> CellId<'_> {
        CellId { scenario: &self.scenario.name, profile: &self.profile.name }
    }

    /// `scenario@builder`, as reports name the cell.
    pub fn name(&self) -> String {
        self.id().to_string()
    }
}

/// Which cell: a scenario on a builder profile. Shown as `scenario@builder`; its [`CellId::slug`] names
/// the cell's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellId<'a> {
    pub scenario: &'a Name,
    pub profile: &'a Name,
}

impl CellId<'_> {
    /// The cell in file names (artifact directories, result files): the two names' slugs joined by a
    /// `.`, which no slug holds, so no two cells share one (`a-b` on `c` and `a` on `b-c` do not).
    pub fn slug(&self) -> String {
        format!("{}.{}", self.scenario.slug(), self.profile.slug())
    }
}

impl std::fmt::Display for CellId<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.scenario, self.profile)
    }
}

/// Narrows the plan from the command line.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub builders: Vec<String>,
    pub scenarios: Vec<String>,
    /// Run every scenario on every profile, whatever builders it lists (release testing).
    pub ignore_scenario_builders: bool,
    /// `--repeat`: overrides every scenario's `repeat`.
    pub repeat: Option<u32>,
}

pub fn plan(scenarios: Vec<Scenario>, profiles: &Profiles, filter: &Filter) -> Result<Vec<Cell>, ConfigError> {
    let max = crate::scenario::MAX_REPEAT;
    if let Some(n) = filter.repeat.filter(|n| !(1..=max).contains(n)) {
        return Err(ConfigError::Usage {
            message: format!("{n} repetitions: a cell runs 1 to {max} times"),
            fix: format!("repeat between 1 and {max} times"),
        });
    }
    for b in &filter.builders {
        if profiles.get(b).is_none() {
            return Err(ConfigError::Usage {
                message: format!("unknown builder profile `{b}` (--builder)"),
                fix: format!("use one of: {}", profiles.names().join(", ")),
            });
        }
    }
    let names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
    for s in &filter.scenarios {
        if !names.contains(&s.as_str()) {
            return Err(ConfigError::Usage {
                message: format!("unknown scenario `{s}` (--scenario)"),
                fix: format!("use one of: {}", names.join(", ")),
            });
        }
    }
    let mut cells = Vec::new();
    for scenario in scenarios {
        if !filter.scenarios.is_empty() && !filter.scenarios.iter().any(|s| s == scenario.name.as_str()) {
            continue;
        }
        let scenario = Arc::new(scenario);
        for profile in &profiles.profiles {
            let wanted_by_scenario =
                filter.ignore_scenario_builders || scenario.builders.as_ref().is_none_or(|b| b.contains(&profile.name));
            let wanted_by_filter =
                filter.builders.is_empty() || filter.builders.iter().any(|b| b == profile.name.as_str());
            if wanted_by_scenario && wanted_by_filter {
                cells.push(Cell {
                    known_issues: scenario.known_issues.iter().filter(|k| k.applies_to(profile)).cloned().collect(),
                    repetitions: filter.repeat.unwrap_or(scenario.repeat),
                    scenario: scenario.clone(),
                    profile: profile.clone(),
                });
            }
        }
    }
    if cells.is_empty() {
        return Err(ConfigError::Usage {
            message: "the plan has no cells: no scenario runs on the selected builders".into(),
            fix: "check --builder/--scenario and the scenarios' `builders` lists".into(),
        });
    }
    Ok(cells)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::NameKind;

    #[test]
    fn no_two_cells_share_a_slug() {
        let name = |kind, text| Name::parse(kind, text).unwrap();
        let (a_b, c) = (name(NameKind::Scenario, "a-b"), name(NameKind::Profile, "c"));
        let (a, b_c) = (name(NameKind::Scenario, "a"), name(NameKind::Profile, "b-c"));
        let one = CellId { scenario: &a_b, profile: &c };
        let other = CellId { scenario: &a, profile: &b_c };
        assert_eq!((one.to_string(), other.to_string()), ("a-b@c".to_owned(), "a@b-c".to_owned()));
        assert_ne!(one.slug(), other.slug());
        let dotted = name(NameKind::Profile, "v0.24-stargz");
        assert_eq!(CellId { scenario: &a, profile: &dotted }.slug(), "a.v0-24-stargz");
    }
}
