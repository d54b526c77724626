//! Filters to rows: the plan a search or a scan follows (index candidates, or the filter
//! evaluated on every live row), estimates of selectivity, and one row's check.

use super::State;
use crate::filter::{Condition, FieldCheck, Filter};
use crate::types::Payload;
use quiver_kernels::Allowed;
use roaring::RoaringBitmap;

/// Rows the scan may visit after a filter is planned.
pub enum Plan {
    /// Every live row (no filter).
    AllLive,
    /// Every live row holding a main vector (no filter, in a vector search).
    AllSearchable,
    /// A bitset of matching rows (the filter was evaluated on every live row).
    Mask(Vec<u64>),
    /// The matching rows, from index candidates.
    List(Vec<u32>),
}

impl Plan {
    pub fn allowed<'a>(&'a self, state: &'a State) -> Allowed<'a> {
        match self {
            Plan::AllLive => Allowed::Mask(&state.alive),
            Plan::AllSearchable => Allowed::Mask(&state.searchable),
            Plan::Mask(m) => Allowed::Mask(m),
            Plan::List(l) => Allowed::List(l),
        }
    }
}

impl State {
    /// Which rows a filter lets through: from index candidates when an index (or `has_id`)
    /// narrows the field, else by evaluating the filter on every live row.
    pub fn plan(&self, filter: Option<&Filter>) -> Plan {
        let Some(filter) = filter else { return Plan::AllLive };
        let (mut candidates, mut exact) = match self.indexes.candidates(filter) {
            Some((set, exact)) => (Some(set), exact),
            None => (None, false),
        };
        for c in &filter.must {
            let rows: Option<RoaringBitmap> = match c {
                Condition::HasId(ids) => Some(ids.iter().filter_map(|id| self.row_of(id)).collect()),
                // Text conditions on a key with a full-text index: the index's matches.
                Condition::Field(f) => f.checks.iter().find_map(|check| {
                    let (q, phrase) = match check {
                        FieldCheck::Text(q) => (q, false),
                        FieldCheck::Phrase(q) => (q, true),
                        _ => return None,
                    };
                    let (_, t) = self.text.iter().find(|(k, _)| k.text == f.key.text)?;
                    let ids = t.matching(q, phrase)?;
                    Some(ids.iter().filter_map(|id| self.row_of(id)).collect())
                }),
                _ => None,
            };
            if let Some(rows) = rows {
                // Text matches are re-checked by the filter's own tokeniser.
                exact &= matches!(c, Condition::HasId(_));
                candidates = Some(match candidates {
                    Some(set) => set & rows,
                    None => rows,
                });
            }
        }
        match candidates {
            // An exact candidate set is the answer (for live rows); otherwise each candidate is
            // checked against the whole filter.
            Some(set) if exact => Plan::List(set.iter().filter(|&r| self.is_alive(r)).collect()),
            Some(set) => Plan::List(set.iter().filter(|&r| self.is_alive(r) && self.row_matches(r, filter)).collect()),
            None => {
                let mut mask = vec![0u64; self.alive.len()];
                quiver_kernels::scan::for_each_allowed(Allowed::Mask(&self.alive), self.n_rows(), |r| {
                    if self.row_matches(r, filter) {
                        mask[r as usize / 64] |= 1 << (r % 64);
                    }
                });
                Plan::Mask(mask)
            }
        }
    }

    /// An estimate of how many live rows `filter` matches, from the filter evaluated on up to
    /// `ESTIMATE_SAMPLE` evenly spaced rows (about 20 us), capped by the size of the
    /// payload-index candidate set when an index covers the filter. Deterministic: the same
    /// state and filter give the same estimate. Used to choose between the graph and a scan.
    pub fn estimate(&self, filter: &Filter) -> usize {
        const ESTIMATE_SAMPLE: usize = 256;
        let n = self.n_rows();
        let step = n.div_ceil(ESTIMATE_SAMPLE).max(1);
        let (mut sampled, mut hits) = (0usize, 0usize);
        for r in (0..n as u32).step_by(step) {
            if self.is_alive(r) {
                sampled += 1;
                hits += self.row_matches(r, filter) as usize;
            }
        }
        if sampled == 0 {
            return 0;
        }
        (self.n_alive as f64 * hits as f64 / sampled as f64).ceil() as usize
    }

    pub fn row_matches(&self, row: u32, filter: &Filter) -> bool {
        static EMPTY: std::sync::OnceLock<Payload> = std::sync::OnceLock::new();
        let p = self
            .payload_at(row as usize)
            .unwrap_or_else(|| std::borrow::Cow::Borrowed(EMPTY.get_or_init(Payload::new)));
        filter.matches_point(self.id_at(row as usize), &p, &|name| self.has_vector(row, name))
    }

    /// [`State::plan`] for a search of the main vector: rows without one are left out.
    pub fn search_plan(&self, filter: Option<&Filter>) -> Plan {
        match self.plan(filter) {
            Plan::AllLive if self.n_no_main > 0 => Plan::AllSearchable,
            Plan::Mask(mut m) if self.n_no_main > 0 => {
                for (w, s) in m.iter_mut().zip(&self.searchable) {
                    *w &= s;
                }
                Plan::Mask(m)
            }
            Plan::List(mut l) if self.n_no_main > 0 => {
                l.retain(|&r| self.is_searchable(r));
                Plan::List(l)
            }
            plan => plan,
        }
    }

    /// Number of rows a plan lets through.
    pub fn plan_len(&self, plan: &Plan) -> usize {
        match plan {
            Plan::AllLive => self.n_alive,
            Plan::AllSearchable => self.n_searchable(),
            Plan::Mask(m) => m.iter().map(|w| w.count_ones() as usize).sum(),
            Plan::List(l) => l.len(),
        }
    }
}
