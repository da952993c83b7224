//! Verdicts on the issues' targets, and when a verdict cannot be trusted (issue 29, item 8).
//!
//! A verdict is "met", "NOT met", or "inconclusive" when the measurement behind it cannot carry it:
//!
//! - a ratio judged as the median of rounds had fewer than [`MIN_ROUNDS`] rounds, or its rounds' ratios spread
//!   wider than [`MAX_ROUND_SPREAD`] (the largest over the smallest);
//! - some other process kept more than [`MAX_OTHER_LOAD_CORES`] cores busy, on average, during one of the
//!   measurements it compares (the harness's "other load", see `cpu.rs`);
//! - a purge ran out of expired rows before its measurement ended: its rate is then a lower bound (a lower bound
//!   above the target still meets it), and the claims it is compared with ran partly without it.
//!
//! Every verdict given is counted, so that `--strict` can end the process with [`STRICT_EXIT_CODE`] when one was
//! NOT met or inconclusive.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The fewest rounds whose median a ratio target is judged on (the issues' "median of 3 rounds").
pub(crate) const MIN_ROUNDS: usize = 3;
/// The widest spread of the rounds' values (largest / smallest) a verdict is given on: on a quiet machine the
/// rounds' ratios agree within a few percent; beyond 15 % one round says more about the machine than the code.
pub(crate) const MAX_ROUND_SPREAD: f64 = 1.15;
/// The most other load (cores busy with other processes, averaged over a measurement) a verdict is given on. The
/// quiet runs of BENCHMARKS.md read 0.00 to 0.15 cores; a compiler running beside the bench reads 1 to 1.8.
pub(crate) const MAX_OTHER_LOAD_CORES: f64 = 0.25;
/// The exit status of `--strict` when a verdict was NOT met or inconclusive (1 is an error, 2 a usage error).
pub(crate) const STRICT_EXIT_CODE: u8 = 3;

static MET: AtomicUsize = AtomicUsize::new(0);
static NOT_MET: AtomicUsize = AtomicUsize::new(0);
static INCONCLUSIVE: AtomicUsize = AtomicUsize::new(0);

/// A target's verdict.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    Met,
    NotMet,
    /// Why the measurement cannot carry a verdict, and what it would have been.
    Inconclusive {
        reasons: Vec<String>,
        as_measured: bool,
    },
}

impl Verdict {
    /// `met` as measured, unless `doubts` holds a reason not to trust it. Counted for `--strict`.
    pub(crate) fn judge(met: bool, doubts: Vec<String>) -> Self {
        let verdict = if doubts.is_empty() {
            if met { Self::Met } else { Self::NotMet }
        } else {
            Self::Inconclusive { reasons: doubts, as_measured: met }
        };
        verdict.count()
    }

    /// NOT met whatever the figures say (e.g. answers whose responses were not stored). Counted for `--strict`.
    pub(crate) fn failed() -> Self {
        Self::NotMet.count()
    }

    fn count(self) -> Self {
        let counter = match &self {
            Self::Met => &MET,
            Self::NotMet => &NOT_MET,
            Self::Inconclusive { .. } => &INCONCLUSIVE,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Met => f.write_str("met"),
            Self::NotMet => f.write_str("NOT met"),
            Self::Inconclusive { reasons, as_measured } => write!(
                f,
                "inconclusive ({}; {} as measured)",
                reasons.join("; "),
                if *as_measured { "met" } else { "NOT met" }
            ),
        }
    }
}

/// The doubts on a figure judged over rounds (`values`, one per round): too few rounds, or too wide a spread.
pub(crate) fn round_doubts(values: &[f64]) -> Vec<String> {
    let mut doubts = Vec::new();
    if values.len() < MIN_ROUNDS {
        doubts.push(format!("{} round(s), fewer than {MIN_ROUNDS}", values.len()));
    }
    let smallest = values.iter().copied().fold(f64::INFINITY, f64::min);
    let largest = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if values.len() > 1 {
        let spread = if smallest > 0.0 { largest / smallest } else { f64::INFINITY };
        if spread > MAX_ROUND_SPREAD {
            doubts.push(format!("rounds spread {spread:.2}x > {MAX_ROUND_SPREAD}x"));
        }
    }
    doubts
}

/// The doubt on measurements during which other processes kept up to `cores` cores busy (the largest average
/// over the measurements compared).
pub(crate) fn load_doubt(cores: f64) -> Option<String> {
    (cores > MAX_OTHER_LOAD_CORES).then(|| format!("other load {cores:.2} cores > {MAX_OTHER_LOAD_CORES}"))
}

/// The verdicts given so far: (met, NOT met, inconclusive).
pub(crate) fn tally() -> (usize, usize, usize) {
    (MET.load(Ordering::Relaxed), NOT_MET.load(Ordering::Relaxed), INCONCLUSIVE.load(Ordering::Relaxed))
}

/// The median of `values` (sorted copy); `NaN` when empty.
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[middle],
        _ => (sorted[middle - 1] + sorted[middle]) / 2.0,
    }
}
