//! The approximate index's jobs: background builds, extensions and recodes (one at a time, on
//! the low-priority build pool), the recall monitor's thread, and their status.

use super::*;

impl Collection {
    /// Measures the index's recall@`k` on `queries` now, on this thread, as the recall monitor
    /// does in the background on sampled searches (each query answered exactly and at every
    /// `ef` of the monitor's ladder), and records the measurements: searches that name no `ef`
    /// use them at once. For operators who know their typical queries, and for tests.
    pub fn calibrate_recall(&self, queries: &[Vec<f32>], k: usize) -> Result<Vec<crate::RecallEstimate>> {
        for q in queries {
            let query = self.prepare_query(&SearchRequest::new(q.clone(), k))?;
            let recalls = self.inner.ann.check_recall(&self.inner.state, &crate::monitor::Sample { query, k });
            self.inner.ann.monitor.record(&recalls, Duration::ZERO);
        }
        Ok(self.inner.ann.monitor.estimates())
    }

    /// The approximate index: nodes, points not covered yet, whether a build runs.
    pub fn index_status(&self) -> IndexStatus {
        let st = self.inner.state.read();
        self.inner.ann.status(&st)
    }

    /// Builds or extends the index now, on this thread (and the current rayon pool, or the build
    /// pool of the collection's `build_threads` when it names some), until it covers every
    /// point, even below the full-scan threshold. Waits for a background build first.
    pub fn build_index(&self) -> Result<()> {
        if !self.inner.config.index.enabled {
            return Err(Error::InvalidRequest("the index of this collection is disabled".into()));
        }
        loop {
            self.inner.ann.wait_idle();
            if self.inner.ann.try_start() {
                break;
            }
        }
        let build = || {
            while self.index_step(true)? {}
            // Up to date, but the file may name nodes by id only: write it so that the next
            // open maps them by row.
            let stale = self.inner.ann.save_is_stale(&self.inner.state.read());
            if stale {
                self.inner.ann.save(&self.inner.state)?;
                self.publish_index();
            }
            Ok(())
        };
        let result = match self.inner.ann.config.build_threads {
            0 => build(),
            n => crate::ann::build_pool(n).install(build),
        };
        self.inner.ann.finish();
        result
    }

    /// Blocks until no background index build runs (for tests and tools; searches never need
    /// to wait, they are exact for points the index does not cover yet).
    pub fn wait_for_index(&self) {
        self.inner.ann.wait_idle();
    }

    /// Starts the recall monitor's thread when sampled queries wait and it does not run. The
    /// thread checks them one at a time (see `monitor.rs`) and ends when none is left.
    pub(super) fn kick_monitor(&self) {
        if self.inner.monitor_running.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        let inner = self.inner.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("quiver-recall-{}", self.inner.name))
            .spawn(move || loop {
                quiver_kernels::quant::lower_thread_priority();
                let ann = &inner.ann;
                while let Some(sample) = ann.monitor.take() {
                    if ann.is_retired() {
                        break;
                    }
                    if inner.state.read().base_filling() {
                        // Its exact search would fetch every vector of a cold replica at once,
                        // ahead of the searches' own pages: the sample is dropped.
                        continue;
                    }
                    let start = std::time::Instant::now();
                    let recalls = ann.check_recall(&inner.state, &sample);
                    ann.monitor.record(&recalls, start.elapsed());
                }
                inner.monitor_running.store(false, std::sync::atomic::Ordering::Release);
                // A sample offered after the last `take` but before the flag dropped would
                // wait for the next offer; look once more.
                if !ann.monitor.has_pending() || inner.monitor_running.swap(true, std::sync::atomic::Ordering::AcqRel) {
                    return;
                }
            });
        if spawned.is_err() {
            self.inner.monitor_running.store(false, std::sync::atomic::Ordering::Release);
        }
    }

    /// Starts a background build step when the index needs one and none runs.
    pub(super) fn kick_index(&self) {
        let work = {
            let st = self.inner.state.read();
            self.inner.ann.work(&st, false)
        };
        if work == Work::None || !self.inner.ann.try_start() {
            return;
        }
        let inner = self.inner.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("quiver-index-{}", self.inner.name))
            .spawn(move || {
                quiver_kernels::quant::lower_thread_priority();
                let c = Collection { inner };
                loop {
                    match crate::ann::build_pool(c.inner.ann.config.build_threads).install(|| c.index_step(false)) {
                        Ok(true) => continue,
                        Ok(false) => break,
                        Err(e) => {
                            *c.inner.ann.last_error.lock() = Some(e.to_string());
                            break;
                        }
                    }
                }
                c.inner.ann.finish();
            });
        if spawned.is_err() {
            self.inner.ann.finish();
        }
    }

    /// One build step: a full build or an extension by the uncovered points. False when there
    /// was nothing to do.
    pub(super) fn index_step(&self, eager: bool) -> Result<bool> {
        let ann = &self.inner.ann;
        if ann.is_retired() {
            return Ok(false);
        }
        let (work, snap, nodes) = {
            let st = self.inner.state.read();
            match ann.work(&st, eager) {
                Work::None => return Ok(false),
                Work::Recode => {
                    let Some(nodes) = ann.snapshot_nodes(&st) else { return Ok(false) };
                    drop(st);
                    let done = ann.recode(&nodes, &[]);
                    if done && ann.note_added(0, true) {
                        ann.save(&self.inner.state)?;
                        self.publish_index();
                    }
                    return Ok(done);
                }
                Work::Full => (Work::Full, Ann::snapshot_full(&st), None),
                Work::Extend => match ann.snapshot_tail(&st) {
                    Some(s) => {
                        // New points the codes cannot tell apart: retrain the codes first.
                        // Quantized codes link with every node's full vector (a copy).
                        let recode = ann.tail_drifts(&s);
                        let nodes = if recode || ann.links_exactly(&st, &s) {
                            ann.snapshot_nodes(&st)
                        } else {
                            None
                        };
                        (Work::Extend, s, nodes.map(|n| (recode, n)))
                    }
                    None => (Work::Full, Ann::snapshot_full(&st), None),
                },
            }
        };
        if let Some((true, nodes)) = &nodes {
            ann.recode(nodes, snap.vectors());
        }
        let added = snap.len();
        if work == Work::Full {
            let hnsw = ann.build(&snap);
            let st = self.inner.state.read();
            if !ann.install_full(&st, hnsw, snap) {
                return Ok(true);
            }
        } else {
            ann.extend(snap, nodes.as_ref().map(|(_, n)| n), |f| f(&self.inner.state.read()));
        }
        if ann.note_added(added, work == Work::Full || eager) {
            ann.save(&self.inner.state)?;
            self.publish_index();
        }
        Ok(true)
    }
}
