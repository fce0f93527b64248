//! Names from input files and the command line that bkcache turns into paths, registry references and
//! parts of buildx option strings. Each kind is parsed once, into a [`Name`], so no later code can build a
//! path, a ref or an option string from text nobody checked.
//!
//! The rule is the intersection of what every destination accepts: lowercase letters and digits, with
//! single `.`, `_`, `-` or `+` between them, at most 63 characters. Such a name cannot climb out of a
//! directory (`..`, `/`), end an option (`,`, `=`), or start a flag. Where a name must also be a builder
//! name or a registry path component, its [`Name::slug`] replaces the separators those do not accept;
//! two names of one kind with the same slug would share builders or registry refs, so they are refused.

use std::fmt;

/// What a name names: says where it ends up, for the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Scenario,
    Phase,
    Cache,
    Profile,
    LocalBase,
}

impl NameKind {
    fn describe(self) -> &'static str {
        match self {
            NameKind::Scenario => "scenario name (the file name without .toml)",
            NameKind::Phase => "phase name",
            NameKind::Cache => "cache name",
            NameKind::Profile => "builder profile name",
            NameKind::LocalBase => "local base name",
        }
    }

    fn example(self) -> &'static str {
        match self {
            NameKind::Scenario => "issue-6893",
            NameKind::Phase => "import",
            NameKind::Cache => "main",
            NameKind::Profile => "v0.24-stargz",
            NameKind::LocalBase => "base-a",
        }
    }
}

const MAX_NAME_LEN: usize = 63;

/// A checked name; see the module documentation for the rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} `{text}` {problem}", kind.describe())]
pub struct NameError {
    pub kind: NameKind,
    pub text: String,
    pub problem: String,
}

impl NameError {
    pub fn fix(&self) -> String {
        format!(
            "use 1-{MAX_NAME_LEN} lowercase letters and digits, with single '.', '_', '-' or '+' between them, e.g. `{}`",
            self.kind.example()
        )
    }
}

fn is_separator(c: char) -> bool {
    matches!(c, '.' | '_' | '-' | '+')
}

impl Name {
    pub fn parse(kind: NameKind, text: &str) -> Result<Name, NameError> {
        let problem = |p: &str| Err(NameError { kind, text: text.to_owned(), problem: p.to_owned() });
        if text.is_empty() {
            return problem("is empty");
        }
        if text.len() > MAX_NAME_LEN {
            return problem(&format!("is longer than {MAX_NAME_LEN} characters"));
        }
        if let Some(c) = text.chars().find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || is_separator(c))) {
            let hint = if c.is_ascii_uppercase() { " (names are lowercase)" } else { "" };
            return problem(&format!("contains {c:?}{hint}"));
        }
        if text.starts_with(is_separator) || text.ends_with(is_separator) {
            return problem("must start and end with a letter or digit");
        }
        if text.chars().zip(text.chars().skip(1)).any(|(a, b)| is_separator(a) && is_separator(b)) {
            return problem("has two separators in a row");
        }
        Ok(Name(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as a builder name or registry path component: separators become `-`.
    pub fn slug(&self) -> String {
        self.0.chars().map(|c| if is_separator(c) { '-' } else { c }).collect()
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// A run id: lowercase letters, digits and `-` (no `.`: builder names put a `.` right after the run id,
/// so one run's prefix can never match another run's builders).
pub fn parse_run_id(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 40
        && text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !text.starts_with('-')
        && !text.ends_with('-');
    if ok {
        Ok(text.to_owned())
    } else {
        Err("use 1-40 lowercase letters, digits and '-', starting and ending with a letter or digit".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_names_the_project_uses() {
        for ok in ["issue-6893", "v0.24-stargz", "reroot+main-remote-first-stargz", "a", "b_2"] {
            assert_eq!(Name::parse(NameKind::Profile, ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_what_becomes_a_path_escape_or_an_option() {
        for (bad, problem) in [
            ("", "is empty"),
            ("../../x", "contains '/'"),
            ("/abs", "contains '/'"),
            ("a,name=docker.io/x", "contains ','"),
            ("x=1", "contains '='"),
            ("A-B", "contains 'A' (names are lowercase)"),
            ("-flag", "must start and end"),
            ("a..b", "two separators"),
            ("a b", "contains ' '"),
            ("é", "contains 'é'"),
        ] {
            let err = Name::parse(NameKind::Phase, bad).unwrap_err();
            assert!(err.problem.contains(problem), "{bad:?}: {err}");
        }
        assert!(Name::parse(NameKind::Cache, &"a".repeat(64)).is_err());
    }

    #[test]
    fn slugs_are_builder_and_registry_safe() {
        assert_eq!(Name::parse(NameKind::Profile, "reroot+x.y_z").unwrap().slug(), "reroot-x-y-z");
    }

    #[test]
    fn run_ids_cannot_be_prefixes_of_other_runs_builders() {
        assert!(parse_run_id("a-1").is_ok());
        for bad in ["", "a.1", "A", "-a", "a-", &"a".repeat(41)] {
            assert!(parse_run_id(bad).is_err(), "{bad:?}");
        }
    }
}
