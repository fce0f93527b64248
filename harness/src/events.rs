//! What happens during a run, as timestamped events. Reporters see only these (as nextest's reporters
//! see only its `reporter/events.rs`): the live terminal lines, and the final reports from
//! [`EventKind::RunFinished`] / [`EventKind::RunInterrupted`].

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::buildkit_spec::EnsuredImage;
use crate::judge::{CellVerdict, Judgement};
use crate::observe::{Observations, PhaseObservation};
use crate::plan::Cell;

#[derive(Clone, Copy)]
pub struct Event<'a> {
    pub at: SystemTime,
    pub kind: EventKind<'a>,
}

#[derive(Clone, Copy)]
pub enum EventKind<'a> {
    RunStarted {
        run_id: &'a str,
        cells: usize,
        repetitions: usize,
    },
    ImageReady {
        image: &'a EnsuredImage,
    },
    CellStarted {
        cell: &'a Cell,
        index: usize,
        total: usize,
    },
    RepetitionStarted {
        cell: &'a Cell,
        repetition: u32,
    },
    PhaseStarted {
        cell: &'a Cell,
        repetition: u32,
        phase: &'a str,
    },
    PhaseFinished {
        cell: &'a Cell,
        repetition: u32,
        phase: &'a PhaseObservation,
    },
    RepetitionFinished {
        cell: &'a Cell,
        repetition: &'a RepetitionResult,
    },
    CellFinished {
        result: &'a CellResult,
    },
    RunFinished {
        report: &'a RunReport,
    },
    /// Ctrl-C or SIGTERM: the report holds the cells that finished, the others `interrupted`.
    RunInterrupted {
        signal: &'static str,
        report: &'a RunReport,
    },
}

impl<'a> EventKind<'a> {
    pub fn now(self) -> Event<'a> {
        Event { at: SystemTime::now(), kind: self }
    }
}

/// One repetition of a cell.
#[derive(Debug, Clone)]
pub struct RepetitionResult {
    /// 0-based.
    pub index: u32,
    pub judgement: Judgement,
    pub observations: Observations,
    /// Where its rawjson logs, buildkitd log, caches and observations.json were kept.
    pub artifacts: Option<PathBuf>,
    pub duration: Duration,
}

#[derive(Debug, Clone)]
pub struct CellResult {
    pub cell: Cell,
    pub verdict: CellVerdict,
    /// The repetitions that finished, in order.
    pub repetitions: Vec<RepetitionResult>,
    pub duration: Duration,
}

impl CellResult {
    /// The repetition that speaks for the cell in one-line views: a broken one if any, else the first.
    pub fn representative(&self) -> Option<&RepetitionResult> {
        self.verdict.representative().and_then(|i| self.repetitions.get(i as usize))
    }

    /// The representative repetition's judgement (reasons and errors to show).
    pub fn judgement(&self) -> Option<&Judgement> {
        self.representative().map(|r| &r.judgement)
    }
}

/// Everything a run measured.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub run_id: String,
    pub docker_engine: String,
    /// The BuildKit images this run needed; `built` false = reused.
    pub images: Vec<EnsuredImage>,
    /// In plan order; a cell that did not finish is `interrupted`.
    pub cells: Vec<CellResult>,
    /// Set when a signal stopped the run.
    pub interrupted: Option<&'static str>,
    pub duration: Duration,
}
