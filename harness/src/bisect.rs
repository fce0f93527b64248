//! `bkcache bisect`: the first BuildKit release (or commit) where a cell goes bad, by binary search
//! between a good and a bad one — or, when the good release is the newer, the first where it is good
//! again (the fix). Each probe is a whole `bkcache run` of one cell (its image built on
//! demand); a version whose image does not build, or whose cell cannot test, is skipped the way
//! `git bisect skip` does, and the answer then names every version it could be.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::buildkit_spec::Source;
use crate::errors::{ConfigError, InfraError};
use crate::events::{CellResult, RunReport};
use crate::images::buildkit::BuildkitImageError;
use crate::images::releases;
use crate::judge::compare::{behaviour, Behaviour};
use crate::judge::{ErrorCause, Reason, Verdict};
use crate::plan::Filter;
use crate::profiles::Snapshotter;
use crate::session::{self, Error, PlanOptions, Ran, RunOptions};

/// What makes a probe bad.
#[derive(Debug, Clone, PartialEq)]
pub enum BadWhen {
    /// An expectation broke (known issues aside) in some repetition.
    Broke,
    /// A step expectation naming this text (a step name or matcher) broke in some repetition.
    Step(String),
    /// BuildKit failed a build in some repetition.
    BuildFailure,
}

impl BadWhen {
    /// `broke`, `build-failure` or `step:<text>`.
    pub fn parse(text: &str) -> Result<BadWhen, String> {
        match text {
            "broke" => Ok(BadWhen::Broke),
            "build-failure" => Ok(BadWhen::BuildFailure),
            _ => match text.strip_prefix("step:") {
                Some(step) if !step.trim().is_empty() => Ok(BadWhen::Step(step.trim().to_owned())),
                _ => Err(format!("`{text}`: use `broke`, `build-failure` or `step:<step name>`")),
            },
        }
    }

    /// Whether a probe's cell is bad; `None` when it could not test.
    pub fn is_bad(&self, r: &CellResult) -> Option<bool> {
        if matches!(r.verdict.verdict, Verdict::Error | Verdict::Interrupted) {
            return None;
        }
        let reasons = || r.repetitions.iter().flat_map(|rep| rep.judgement.reasons.iter());
        Some(match self {
            BadWhen::Broke => behaviour(&r.verdict) != Behaviour::Held,
            BadWhen::BuildFailure => reasons().any(|x| matches!(x, Reason::BuildFailed { .. })),
            BadWhen::Step(text) => reasons().any(|x| match x {
                Reason::StepRan { step, expected, .. } | Reason::StepCached { step, expected, .. } => {
                    step.contains(text.as_str()) || expected.contains(text.as_str())
                }
                _ => false,
            }),
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    Good,
    Bad,
    /// Not testable at this version, and why.
    Skip(String),
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Probe::Good => f.write_str("good"),
            Probe::Bad => f.write_str("bad"),
            Probe::Skip(why) => write!(f, "skip ({why})"),
        }
    }
}

/// Which way the cell changed between the older end and the newer one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Good, then bad: the search finds the first bad version.
    Regression,
    /// Bad, then good: the search finds the first good version.
    Fix,
}

impl Direction {
    /// A probe in the search's terms, where the older end is "old" and the newer "new".
    fn term(self, probe: Probe) -> Term {
        match (self, probe) {
            (_, Probe::Skip(_)) => Term::Skip,
            (Direction::Regression, Probe::Good) | (Direction::Fix, Probe::Bad) => Term::Old,
            _ => Term::New,
        }
    }

    /// What the older end must be.
    fn old_probe(self) -> Probe {
        match self {
            Direction::Regression => Probe::Good,
            Direction::Fix => Probe::Bad,
        }
    }

    fn new_probe(self) -> Probe {
        match self {
            Direction::Regression => Probe::Bad,
            Direction::Fix => Probe::Good,
        }
    }
}

/// A probe as the search sees it, whatever the direction (git bisect's "old" and "new").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Term {
    Old,
    New,
    Skip,
}

/// The binary search over versions ordered oldest first: the first is old, the last new.
#[derive(Debug, Clone)]
pub struct Search {
    pub versions: Vec<String>,
    pub direction: Direction,
    probes: Vec<Option<Term>>,
}

/// Where the search ended: the last version like the older end and the first like the newer one
/// (last good and first bad for a regression, last bad and first good for a fix), and the skipped
/// versions between them (any of which may be the first).
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub direction: Direction,
    pub last_old: String,
    pub first_new: String,
    pub untestable: Vec<String>,
}

impl Search {
    pub fn new(versions: Vec<String>, direction: Direction) -> Search {
        let probes = vec![None; versions.len()];
        Search { versions, direction, probes }
    }

    pub fn record(&mut self, index: usize, probe: Probe) {
        self.probes[index] = Some(self.direction.term(probe));
    }

    /// The first new probe, and the last old one before it.
    fn bounds(&self) -> (usize, usize) {
        let last = self.versions.len() - 1;
        let hi = (0..=last).find(|&i| self.probes[i] == Some(Term::New)).unwrap_or(last);
        let lo = (0..hi).rev().find(|&i| self.probes[i] == Some(Term::Old)).unwrap_or(0);
        (lo, hi)
    }

    /// The next version to probe: the untried one nearest the middle of the bounds; `None` when done.
    pub fn next(&self) -> Option<usize> {
        let (lo, hi) = self.bounds();
        let middle = (lo + hi) / 2;
        (lo + 1..hi).filter(|&i| self.probes[i].is_none()).min_by_key(|&i| i.abs_diff(middle))
    }

    pub fn outcome(&self) -> Outcome {
        let (lo, hi) = self.bounds();
        Outcome {
            direction: self.direction,
            last_old: self.versions[lo].clone(),
            first_new: self.versions[hi].clone(),
            untestable: self.versions[lo + 1..hi].to_vec(),
        }
    }
}

/// One probe as it is printed.
#[derive(Debug, Clone)]
pub struct Step {
    pub version: String,
    pub probe: Probe,
    /// The cell's verdict in words (empty when skipped before running).
    pub verdict: String,
    pub duration: Duration,
}

pub struct BisectOptions {
    pub scenario: PathBuf,
    pub builders: Option<PathBuf>,
    pub snapshotter: Snapshotter,
    pub good: String,
    pub bad: String,
    /// Commit hashes as `git rev-list` prints them (newest first), instead of the releases between.
    pub commits: Vec<String>,
    /// Where the versions' source comes from; a clone also names the commits' versions.
    pub source: Source,
    pub repeat: Option<u32>,
    pub bad_when: BadWhen,
    pub run: RunOptions,
}

/// The versions to search, oldest first: `good`, the releases (or commits) between, `bad`; or, when
/// `good` is the newer release, from `bad` to `good` (a search for the fix).
pub async fn versions(options: &BisectOptions) -> Result<(Vec<String>, Direction), Error> {
    if !options.commits.is_empty() {
        // with --commits the ends may be commits too
        let (good, bad) = (version_of(options, &options.good).await?, version_of(options, &options.bad).await?);
        let mut out = vec![good];
        for hash in options.commits.iter().rev() {
            let version = commit_version(options, hash).await?;
            if !out.contains(&version) && version != bad {
                out.push(version);
            }
        }
        out.push(bad);
        return Ok((out, Direction::Regression));
    }
    let parse = |v: &str| semver::Version::parse(v.strip_prefix('v')?).ok();
    let (Some(good), Some(bad)) = (parse(&options.good), parse(&options.bad)) else {
        return Err(usage("--good and --bad must be releases (vX.Y.Z) unless --commits is given"));
    };
    let ((older, low), (newer, high), direction) = match good.cmp(&bad) {
        std::cmp::Ordering::Less => ((&options.good, good), (&options.bad, bad), Direction::Regression),
        std::cmp::Ordering::Greater => ((&options.bad, bad), (&options.good, good), Direction::Fix),
        std::cmp::Ordering::Equal => return Err(usage("--good and --bad are the same release")),
    };
    let listed = releases::listed().await?;
    let mut out = vec![older.clone()];
    out.extend(listed.iter().filter(|v| **v > low && **v < high).map(|v| format!("v{v}")));
    out.push(newer.clone());
    Ok((out, direction))
}

/// A release as given, or a commit's version.
async fn version_of(options: &BisectOptions, text: &str) -> Result<String, Error> {
    match crate::profiles::buildkit_version(text) {
        Ok(v) => Ok(v),
        Err(_) => commit_version(options, text).await,
    }
}

/// A commit's version: from the clone when building from one, else as the Go module proxy gives it.
async fn commit_version(options: &BisectOptions, commit: &str) -> Result<String, Error> {
    Ok(match &options.source {
        Source::Git(repo) => releases::git_version(repo, commit).await?,
        Source::ModuleProxy => releases::pseudo_version(commit).await?,
    })
}

fn usage(message: &str) -> Error {
    ConfigError::Usage { message: message.to_owned(), fix: "see `bkcache bisect --help`".into() }.into()
}

/// Runs the search, calling `on_step` after each probe. The good and bad ends are probed first: a
/// search whose ends do not hold is refused with what they gave.
pub async fn bisect<I, F>(options: &BisectOptions, interrupt: impl Fn() -> I, mut on_step: F) -> Result<Outcome, Error>
where
    I: Future<Output = &'static str>,
    F: FnMut(&Step),
{
    let (versions, direction) = versions(options).await?;
    let mut search = Search::new(versions, direction);
    let ends = [(0, direction.old_probe()), (search.versions.len() - 1, direction.new_probe())];
    for (i, want) in ends {
        let step = probe(options, &search.versions[i], i, interrupt()).await?;
        on_step(&step);
        if step.probe != want {
            let which = if want == Probe::Good { "--good" } else { "--bad" };
            let gave = match &step.probe {
                Probe::Skip(why) => format!("it cannot be tested: {why}"),
                probe => format!("it was {probe} (the cell gave {})", step.verdict),
            };
            return Err(usage(&format!("{which} {} is not {want}: {gave}", step.version)));
        }
        search.record(i, step.probe);
    }
    while let Some(i) = search.next() {
        let step = probe(options, &search.versions[i], i, interrupt()).await?;
        on_step(&step);
        search.record(i, step.probe);
    }
    Ok(search.outcome())
}

/// One probe: the scenario's cell on `version` with the chosen snapshotter, as `bkcache run` runs it.
async fn probe(
    options: &BisectOptions,
    version: &str,
    index: usize,
    interrupt: impl Future<Output = &'static str>,
) -> Result<Step, Error> {
    let started = Instant::now();
    let profile = format!("{version}-{}", options.snapshotter.as_str());
    let plan = session::plan(&PlanOptions {
        paths: vec![options.scenario.clone()],
        builders: options.builders.clone(),
        filter: Filter { builders: vec![profile], repeat: options.repeat, ..Filter::default() },
        buildkit: vec![version.to_owned()],
        buildkit_source: options.source.clone(),
    })?;
    if plan.cells.len() != 1 {
        return Err(usage(&format!(
            "{} has {} scenarios: bisect one (--scenario-file a single .toml)",
            options.scenario.display(),
            plan.cells.len()
        )));
    }
    let run = RunOptions { run_id: format!("{}-{index}", options.run.run_id), ..options.run.clone() };
    let completed = session::run_plan(plan, run, interrupt, |_| {}).await;
    for e in &completed.clean_up {
        errln!("warning: clean-up: {}", crate::errors::with_sources(e));
    }
    let judged = match completed.outcome {
        Err(Error::BuildkitImage(
            e @ (BuildkitImageError::ModuleUnavailable { .. }
            | BuildkitImageError::NotInClone { .. }
            | BuildkitImageError::GoBuild { .. }),
        )) => {
            let why = format!("does not build: {}", crate::errors::with_sources(&e).lines().next().unwrap_or_default());
            Ok((Probe::Skip(why), String::new()))
        }
        Err(e) => Err(e),
        Ok(Ran::Report(report)) => classify(&options.bad_when, version, &report),
        Ok(Ran::InterruptedPreparing(signal)) => Err(usage(&format!("interrupted by {signal}"))),
    };
    let (probe, verdict) = judged?;
    Ok(Step { version: version.to_owned(), probe, verdict, duration: started.elapsed() })
}

/// A probe's run as good, bad or skipped, with the cell's verdict in words. The machine failing is
/// not a verdict on the version: it stops the search, as it stops `run`.
fn classify(bad_when: &BadWhen, version: &str, report: &RunReport) -> Result<(Probe, String), Error> {
    if let Some(signal) = report.interrupted {
        return Err(usage(&format!("interrupted by {signal}")));
    }
    let Some(r) = report.cells.first() else { return Err(usage("the plan had no cell")) };
    let errors = r.judgement().map(|j| j.errors.as_slice()).unwrap_or_default();
    if let Some(failure) = errors.iter().find_map(|e| match e {
        ErrorCause::Infrastructure { failure } => Some(failure),
        _ => None,
    }) {
        return Err(InfraError::Probe { version: version.to_owned(), failure: failure.to_string() }.into());
    }
    let probe = match bad_when.is_bad(r) {
        Some(true) => Probe::Bad,
        Some(false) => Probe::Good,
        None => Probe::Skip(format!("cannot test: {}", errors.first().map(ToString::to_string).unwrap_or_default())),
    };
    Ok((probe, crate::report::verdict_words(r)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Searches `n` versions `v0.<i>.0` whose ends are as `direction` wants, probing each as `truth`
    /// says; the outcome and the indexes probed between the ends.
    fn run(n: usize, direction: Direction, truth: impl Fn(usize) -> Probe) -> (Outcome, Vec<usize>) {
        let versions: Vec<String> = (0..n).map(|i| format!("v0.{i}.0")).collect();
        let mut search = Search::new(versions, direction);
        search.record(0, direction.old_probe());
        search.record(n - 1, direction.new_probe());
        let mut probed = Vec::new();
        while let Some(i) = search.next() {
            probed.push(i);
            search.record(i, truth(i));
        }
        (search.outcome(), probed)
    }

    #[test]
    fn finds_the_first_bad_version_in_log2_probes() {
        for first_bad in 1..17 {
            let truth = |i| if i >= first_bad { Probe::Bad } else { Probe::Good };
            let (outcome, probed) = run(17, Direction::Regression, truth);
            assert_eq!(outcome.first_new, format!("v0.{first_bad}.0"));
            assert_eq!(outcome.last_old, format!("v0.{}.0", first_bad - 1));
            assert!(outcome.untestable.is_empty());
            assert!(probed.len() <= 4, "{first_bad}: {probed:?}");
        }
    }

    #[test]
    fn skipped_versions_widen_the_answer_like_git_bisect_skip() {
        // truth: v0.3.0 is the first bad; v0.2.0 and v0.3.0 do not build
        let (outcome, _) = run(6, Direction::Regression, |i| match i {
            2 | 3 => Probe::Skip("does not build".into()),
            1 => Probe::Good,
            _ => Probe::Bad,
        });
        assert_eq!((outcome.last_old.as_str(), outcome.first_new.as_str()), ("v0.1.0", "v0.4.0"));
        assert_eq!(outcome.untestable, vec!["v0.2.0".to_owned(), "v0.3.0".to_owned()]);
    }

    #[test]
    fn a_fix_search_finds_the_first_good_version() {
        // bad from v0.0.0, good again from v0.5.0 on
        let (outcome, _) = run(9, Direction::Fix, |i| if i >= 5 { Probe::Good } else { Probe::Bad });
        assert_eq!((outcome.last_old.as_str(), outcome.first_new.as_str()), ("v0.4.0", "v0.5.0"));
        assert_eq!(outcome.direction, Direction::Fix);
    }

    #[test]
    fn bad_when_parses() {
        assert_eq!(BadWhen::parse("broke").unwrap(), BadWhen::Broke);
        assert_eq!(BadWhen::parse("build-failure").unwrap(), BadWhen::BuildFailure);
        assert_eq!(BadWhen::parse("step:RUN echo stable").unwrap(), BadWhen::Step("RUN echo stable".into()));
        for bad in ["", "step:", "steps:x", "fail"] {
            assert!(BadWhen::parse(bad).is_err(), "{bad}");
        }
    }
}
