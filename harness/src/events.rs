//! What happens during a run, as timestamped events. Reporters see only these (as nextest's reporters
//! see only its `reporter/events.rs`): the live terminal lines, and the final reports from
//! [`EventKind::RunFinished`] / [`EventKind::RunInterrupted`].

use std::time::SystemTime;

use crate::execute::buildkit_image::EnsuredImage;
use crate::observe::PhaseObservation;
use crate::plan::Cell;
use crate::session::{CellResult, RepetitionResult, RunReport};

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
