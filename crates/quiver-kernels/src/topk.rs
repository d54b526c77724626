//! Top-k selection without sorting everything: a bounded binary heap whose root is the worst of
//! the k best seen so far, so most candidates are rejected by one comparison with
//! [`TopK::threshold`].
//!
//! Order is total and deterministic: a higher score is better, and on equal scores the lower row
//! index wins. NaN never enters (the library rejects NaN vectors at the door).

/// A row index with its score ("higher is better").
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scored {
    pub row: u32,
    pub score: f32,
}

impl Scored {
    /// `true` when `self` ranks strictly before `other`.
    #[inline]
    pub fn better_than(&self, other: &Scored) -> bool {
        self.score > other.score || (self.score == other.score && self.row < other.row)
    }
}

/// The k best [`Scored`] items seen so far.
#[derive(Clone, Debug)]
pub struct TopK {
    k: usize,
    /// A binary heap with the *worst* kept item at index 0.
    heap: Vec<Scored>,
}

impl TopK {
    pub fn new(k: usize) -> TopK {
        TopK {
            k,
            heap: Vec::with_capacity(k.min(1 << 16)),
        }
    }

    /// Empties the selection, keeping its allocation (for reuse across queries).
    pub fn clear(&mut self) {
        self.heap.clear();
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The score a new item must beat to enter, once k items are kept; `-inf` before that.
    #[inline]
    pub fn threshold(&self) -> f32 {
        if self.heap.len() < self.k {
            f32::NEG_INFINITY
        } else {
            self.heap[0].score
        }
    }

    /// Offers one item; keeps it when it is among the k best so far.
    #[inline]
    pub fn push(&mut self, row: u32, score: f32) {
        if self.k == 0 {
            return;
        }
        let item = Scored { row, score };
        if self.heap.len() < self.k {
            self.heap.push(item);
            self.sift_up(self.heap.len() - 1);
        } else if item.better_than(&self.heap[0]) {
            self.heap[0] = item;
            self.sift_down(0);
        }
    }

    /// The kept items, best first.
    pub fn into_sorted(self) -> Vec<Scored> {
        let mut out = self.heap;
        out.sort_unstable_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
        out
    }

    /// Like [`TopK::into_sorted`] but leaves `self` empty and reusable.
    pub fn drain_sorted(&mut self) -> Vec<Scored> {
        let out = std::mem::replace(self, TopK::new(self.k));
        out.into_sorted()
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            // The worse item must sit nearer the root.
            if self.heap[parent].better_than(&self.heap[i]) {
                self.heap.swap(parent, i);
                i = parent;
            } else {
                break;
            }
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let left = 2 * i + 1;
            let right = left + 1;
            let mut worst = i;
            if left < n && self.heap[worst].better_than(&self.heap[left]) {
                worst = left;
            }
            if right < n && self.heap[worst].better_than(&self.heap[right]) {
                worst = right;
            }
            if worst == i {
                break;
            }
            self.heap.swap(i, worst);
            i = worst;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_k_best_with_ties_broken_by_row() {
        let scores = [0.5, 0.9, 0.1, 0.9, 0.7, -3.0, 0.7, 2.0];
        let mut top = TopK::new(4);
        for (row, &s) in scores.iter().enumerate() {
            top.push(row as u32, s);
        }
        let got: Vec<(u32, f32)> = top.into_sorted().into_iter().map(|s| (s.row, s.score)).collect();
        assert_eq!(got, vec![(7, 2.0), (1, 0.9), (3, 0.9), (4, 0.7)]);
    }

    #[test]
    fn k_larger_than_input_and_zero() {
        let mut top = TopK::new(10);
        top.push(3, 1.0);
        top.push(1, 2.0);
        assert_eq!(top.into_sorted().len(), 2);
        let mut zero = TopK::new(0);
        zero.push(0, 1.0);
        assert!(zero.into_sorted().is_empty());
    }
}
