//! The recall monitor: a collection checks its own approximate index on a trickle of the
//! searches it serves. A sampled query is answered again off the hot path, exactly and by the
//! graph at a ladder of list sizes (`ef`), and recall@k of each is kept over a sliding window.
//! From that the collection reports its estimated recall (`info`, REST, `/metrics`) and picks,
//! for searches that name no `ef`, the smallest `ef` whose measured recall reaches the
//! collection's target.
//!
//! Invariants:
//! * Searches only offer their query (a counter and, for one search in `SAMPLE_EVERY`, a copy
//!   of the vector); the checks run on the monitor's own thread, one at a time, and the monitor
//!   stays idle for at least `IDLE_FACTOR` times as long as its last check took, so it uses at
//!   most a tenth of one core however busy the collection is.
//! * An `ef` is chosen only from measurements (`SAMPLES_MIN` per ladder step); until then, and
//!   when the target is 0 (off), searches use the configured `ef`.

use parking_lot::{Mutex, RwLock};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// The list sizes each sampled query is measured at.
pub const LADDER: [usize; 7] = [16, 32, 64, 128, 256, 512, 1024];
/// One search in this many offers its query.
const SAMPLE_EVERY: u64 = 16;
/// Queries waiting for a check at most.
const PENDING_MAX: usize = 4;
/// The recall of the last this-many checks counts, per ladder step.
const WINDOW: usize = 200;
/// Measurements needed before a ladder step is trusted.
pub const SAMPLES_MIN: usize = 20;
/// The monitor rests this many times as long as its last check took.
const IDLE_FACTOR: u32 = 9;

/// A query to check: the vector as searched (normalised for cosine) and its `k`.
#[derive(Clone, Debug)]
pub(crate) struct Sample {
    pub query: Vec<f32>,
    pub k: usize,
}

/// What the monitor measured at one list size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecallEstimate {
    /// The list size the estimate was measured at.
    pub ef: usize,
    /// Mean recall@k over the window.
    pub recall: f64,
    /// Checks in the window.
    pub samples: usize,
}

#[derive(Default)]
struct Windows {
    /// Per ladder step, the recall of the latest checks.
    recalls: Vec<VecDeque<f32>>,
}

pub(crate) struct RecallMonitor {
    seen: AtomicU64,
    pending: Mutex<Vec<Sample>>,
    windows: Mutex<Windows>,
    /// The estimates of `windows`, recomputed when a check is recorded: every search without an
    /// `ef` reads them, so they are kept ready rather than summed per search.
    cache: RwLock<Vec<RecallEstimate>>,
    /// No sample is taken before this instant (the monitor rests).
    rest_until: Mutex<Option<Instant>>,
}

impl RecallMonitor {
    pub fn new() -> RecallMonitor {
        RecallMonitor {
            seen: AtomicU64::new(0),
            pending: Mutex::new(Vec::new()),
            windows: Mutex::new(Windows {
                recalls: vec![VecDeque::new(); LADDER.len()],
            }),
            cache: RwLock::new(Vec::new()),
            rest_until: Mutex::new(None),
        }
    }

    /// Called by every graph search; keeps a copy of one query in `SAMPLE_EVERY` while the
    /// monitor is not resting. True when a sample waits for a check.
    pub fn offer(&self, query: &[f32], k: usize) -> bool {
        if !self.seen.fetch_add(1, Relaxed).is_multiple_of(SAMPLE_EVERY) {
            return false;
        }
        if self.rest_until.lock().is_some_and(|t| Instant::now() < t) {
            return false;
        }
        let mut p = self.pending.lock();
        if p.len() >= PENDING_MAX {
            return false;
        }
        p.push(Sample { query: query.to_vec(), k });
        true
    }

    /// The next query to check.
    pub fn take(&self) -> Option<Sample> {
        self.pending.lock().pop()
    }

    /// Whether queries wait for a check.
    pub fn has_pending(&self) -> bool {
        !self.pending.lock().is_empty()
    }

    /// Records one check: `recalls[i]` is the recall at `LADDER[i]` (an empty check, abandoned
    /// because rows were renumbered, records nothing); `took` is how long the check ran (the
    /// monitor rests `IDLE_FACTOR` times as long).
    pub fn record(&self, recalls: &[f64], took: Duration) {
        *self.rest_until.lock() = Some(Instant::now() + took * IDLE_FACTOR);
        if recalls.len() != LADDER.len() {
            return;
        }
        let mut w = self.windows.lock();
        for (win, &r) in w.recalls.iter_mut().zip(recalls) {
            if win.len() == WINDOW {
                win.pop_front();
            }
            win.push_back(r as f32);
        }
        *self.cache.write() = w.estimates();
    }

    /// Forgets every measurement (the graph was rebuilt or its codes retrained).
    pub fn reset(&self) {
        let mut w = self.windows.lock();
        w.recalls.iter_mut().for_each(VecDeque::clear);
        self.cache.write().clear();
    }

    /// The measurements per ladder step, smallest `ef` first (steps never measured left out).
    pub fn estimates(&self) -> Vec<RecallEstimate> {
        self.cache.read().clone()
    }

    /// The list size for a search of `k` that names none: the smallest measured ladder step at
    /// or above `k` whose recall reaches `target`, the largest measured one if none does, and
    /// `default` while there are too few measurements or the target is 0 (off).
    pub fn choose_ef(&self, target: f32, default: usize, k: usize) -> usize {
        choose(&self.cache.read(), target, default, k)
    }

    /// The recall measured at the list size a search with no `ef` uses now (one snapshot of
    /// the measurements for both, so the two agree).
    pub fn current(&self, target: f32, default: usize, k: usize) -> Option<RecallEstimate> {
        let estimates = self.estimates();
        let ef = choose(&estimates, target, default, k);
        estimates.into_iter().find(|e| e.ef == ef)
    }
}

impl Windows {
    /// The mean recall per measured ladder step, smallest `ef` first.
    fn estimates(&self) -> Vec<RecallEstimate> {
        LADDER
            .iter()
            .zip(&self.recalls)
            .filter(|(_, win)| !win.is_empty())
            .map(|(&ef, win)| RecallEstimate {
                ef,
                recall: win.iter().map(|&r| r as f64).sum::<f64>() / win.len() as f64,
                samples: win.len(),
            })
            .collect()
    }
}

fn choose(estimates: &[RecallEstimate], target: f32, default: usize, k: usize) -> usize {
    if target <= 0.0 {
        return default;
    }
    let trusted = || estimates.iter().filter(|e| e.samples >= SAMPLES_MIN);
    trusted()
        .find(|e| e.ef >= k && e.recall >= target as f64)
        .or_else(|| trusted().next_back())
        .map_or(default, |e| e.ef)
}

/// Recall of `got` against the exact answer `want`: the share of `want`'s scores that `got`
/// matches or beats, so that ties (duplicates) do not count as misses. Scores are "higher is
/// better".
pub(crate) fn recall(want: &[f32], got: &[f32]) -> f64 {
    if want.is_empty() {
        return 1.0;
    }
    let kth = want[want.len() - 1];
    let tol = 1e-5 * kth.abs().max(1e-3);
    let found = got.iter().filter(|&&s| s >= kth - tol).count().min(want.len());
    found as f64 / want.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recall_counts_ties_and_misses() {
        assert_eq!(recall(&[3.0, 2.0, 1.0], &[3.0, 2.0, 1.0]), 1.0);
        assert_eq!(recall(&[3.0, 2.0, 1.0], &[3.0, 2.0, 0.5]), 2.0 / 3.0);
        assert_eq!(recall(&[3.0, 1.0, 1.0], &[3.0, 1.0, 1.0]), 1.0);
        assert_eq!(recall(&[], &[]), 1.0);
    }

    #[test]
    fn ef_is_chosen_from_enough_measurements_only() {
        let m = RecallMonitor::new();
        assert_eq!(m.choose_ef(0.95, 128, 10), 128);
        // Recall grows with ef: 0.5, 0.8, 0.9, 0.96, 0.99, ...
        let ladder = [0.5, 0.8, 0.9, 0.96, 0.99, 1.0, 1.0];
        for i in 0..SAMPLES_MIN {
            assert_eq!(m.choose_ef(0.95, 128, 10), 128, "after {i} samples");
            m.record(&ladder, Duration::ZERO);
        }
        assert_eq!(m.choose_ef(0.95, 128, 10), 128);
        assert_eq!(m.choose_ef(0.97, 128, 10), 256);
        assert_eq!(m.choose_ef(0.85, 128, 10), 64);
        // k above a step: never an ef below k.
        assert_eq!(m.choose_ef(0.85, 128, 100), 128);
        // Unreachable target: the largest measured ef.
        assert_eq!(m.choose_ef(1.5, 128, 10), 1024);
        // Off.
        assert_eq!(m.choose_ef(0.0, 128, 10), 128);
        assert!((m.current(0.95, 128, 10).unwrap().recall - 0.96).abs() < 1e-6);
        m.reset();
        assert_eq!(m.choose_ef(0.95, 128, 10), 128);
    }

    #[test]
    fn offers_are_sampled_and_bounded() {
        let m = RecallMonitor::new();
        let offered = (0..SAMPLE_EVERY * 10).filter(|_| m.offer(&[1.0], 1)).count();
        assert_eq!(offered, PENDING_MAX);
        assert!(m.take().is_some());
        // Resting after a check: no offers taken.
        m.record(&[1.0; 7], Duration::from_secs(3600));
        while m.take().is_some() {}
        assert_eq!((0..SAMPLE_EVERY * 4).filter(|_| m.offer(&[1.0], 1)).count(), 0);
    }
}
