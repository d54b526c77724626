//! Fault injection for tests: with the feature `fault-injection`, the file-system steps of
//! [`crate::fsio`] and the WAL's file restarts count themselves on the calling thread, and a
//! test can make the n-th one fail, so that every step of a flush, a compaction or an index save
//! is tested against a disk error without filling a disk. Without the feature, [`check`] is an
//! empty inline function.
//!
//! The plan is per thread: tests running side by side do not disturb each other, and background
//! threads (index builds, group commit) never fail by accident.

use std::path::Path;

/// A kind of file-system step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Creating or writing a file.
    Write,
    /// fsync of a file or a folder.
    Sync,
    /// An atomic rename.
    Rename,
    /// Removing a file or a folder.
    Remove,
}

#[cfg(feature = "fault-injection")]
mod plan {
    use std::cell::Cell;

    thread_local! {
        /// Steps left before the failing one, when armed.
        pub static LEFT: Cell<Option<u64>> = const { Cell::new(None) };
        /// Steps seen since the plan was armed.
        pub static SEEN: Cell<u64> = const { Cell::new(0) };
        /// The step that failed, if one did.
        pub static FAILED: Cell<Option<super::Step>> = const { Cell::new(None) };
        /// Every step fails until disarmed (a disk that stays full).
        pub static STICKY: Cell<bool> = const { Cell::new(false) };
    }
}

/// Arms the plan on this thread so that every step fails until [`disarm`].
#[cfg(feature = "fault-injection")]
pub fn fail_always() {
    fail_after(0);
    plan::STICKY.with(|s| s.set(true));
}

/// Arms the plan on this thread: `n` steps succeed, the next one fails (once).
#[cfg(feature = "fault-injection")]
pub fn fail_after(n: u64) {
    plan::STICKY.with(|s| s.set(false));
    plan::LEFT.with(|l| l.set(Some(n)));
    plan::SEEN.with(|s| s.set(0));
    plan::FAILED.with(|f| f.set(None));
}

/// Disarms the plan; returns the steps seen since it was armed and the step that failed.
#[cfg(feature = "fault-injection")]
pub fn disarm() -> (u64, Option<Step>) {
    plan::LEFT.with(|l| l.set(None));
    plan::STICKY.with(|s| s.set(false));
    (plan::SEEN.with(|s| s.get()), plan::FAILED.with(|f| f.take()))
}

/// Called before each step: an injected error when the plan says this one fails.
#[cfg(feature = "fault-injection")]
pub fn check(step: Step, path: &Path) -> std::io::Result<()> {
    let Some(left) = plan::LEFT.with(|l| l.get()) else { return Ok(()) };
    plan::SEEN.with(|s| s.set(s.get() + 1));
    if left == 0 {
        if !plan::STICKY.with(|s| s.get()) {
            plan::LEFT.with(|l| l.set(None));
        }
        plan::FAILED.with(|f| f.set(Some(step)));
        return Err(std::io::Error::other(format!("injected {step:?} failure on {}", path.display())));
    }
    plan::LEFT.with(|l| l.set(Some(left - 1)));
    Ok(())
}

/// Called before each step; never fails without the feature `fault-injection`.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn check(_step: Step, _path: &Path) -> std::io::Result<()> {
    Ok(())
}
