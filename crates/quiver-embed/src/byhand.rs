//! The classroom model of "Vector Database by Hand", with small integer weights chosen so that
//! every number can be worked out on paper (and is, in the tests below).
//!
//! Shapes follow the exercise's drawings: word embeddings are columns (4 x n for n words), the
//! encoder computes `H = ReLU(W X + b)` (W is 4 x 4, b is 4 x 1), mean pooling averages the
//! columns of H into one 4-d sentence embedding, and the projection `P` (2 x 4) reduces it to
//! the 2-d vector that is stored and searched.

use crate::{EmbedError, Embedder};

/// The vocabulary: 22 words, in the order of the embedding table's columns.
pub const VOCABULARY: [&str; 22] = [
    "a", "an", "the", "how", "why", "who", "what", "are", "is", "am", "be", "was", "you", "we", "I", "they", "she", "he", "it", "me",
    "him", "her",
];

/// Word embeddings, one row per vocabulary word (drawn as columns). The four features read
/// roughly as: question word, being, second person, first person. Words the exercise does not
/// use have zero vectors.
const EMBEDDINGS: [[f32; 4]; 22] = {
    let mut e = [[0.0; 4]; 22];
    e[3] = [1.0, 0.0, 1.0, 0.0]; // how
    e[5] = [1.0, 1.0, 0.0, 0.0]; // who
    e[7] = [0.0, 1.0, 1.0, 0.0]; // are
    e[9] = [0.0, 0.0, 1.0, 1.0]; // am
    e[12] = [1.0, 0.0, 0.0, 1.0]; // you
    e[14] = [0.0, 1.0, 0.0, 1.0]; // I
    e
};

/// The encoder's linear layer (rows are output features).
const WEIGHTS: [[f32; 4]; 4] = [
    [1.0, 0.0, 1.0, 0.0],
    [0.0, 1.0, 0.0, 1.0],
    [1.0, 1.0, 0.0, 0.0],
    [0.0, 0.0, 1.0, 1.0],
];
const BIAS: [f32; 4] = [0.0, 0.0, -1.0, 0.0];
/// The indexing projection: 4-d sentence embedding to 2-d index vector (50%).
const PROJECTION: [[f32; 4]; 2] = [[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]];

/// Every intermediate of one text's trip through the model. Matrices are row-major with the
/// exercise's orientation: `x`, `z` and `h` are 4 rows x n columns (one column per word).
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    pub text: String,
    pub tokens: Vec<String>,
    pub token_ids: Vec<usize>,
    /// [2] word embeddings, 4 x n.
    pub x: Vec<Vec<f32>>,
    /// [3] before the ReLU: W X + b, 4 x n.
    pub z: Vec<Vec<f32>>,
    /// [3] after the ReLU: the feature vectors, 4 x n.
    pub h: Vec<Vec<f32>>,
    /// [4] mean pooling over the columns of `h`: the sentence embedding, 4 values.
    pub pooled: Vec<f32>,
    /// [5] the projection of `pooled`: the index vector, 2 values.
    pub index_vector: Vec<f32>,
}

/// The classroom model.
#[derive(Clone, Debug, Default)]
pub struct ByHandModel;

impl ByHandModel {
    pub fn classroom() -> ByHandModel {
        ByHandModel
    }

    pub fn vocabulary(&self) -> &'static [&'static str] {
        &VOCABULARY
    }

    /// The embedding table, 4 rows x 22 columns (one column per word).
    pub fn embedding_table(&self) -> Vec<Vec<f32>> {
        (0..4).map(|r| EMBEDDINGS.iter().map(|e| e[r]).collect()).collect()
    }

    pub fn weights(&self) -> Vec<Vec<f32>> {
        WEIGHTS.iter().map(|r| r.to_vec()).collect()
    }

    pub fn bias(&self) -> Vec<f32> {
        BIAS.to_vec()
    }

    pub fn projection(&self) -> Vec<Vec<f32>> {
        PROJECTION.iter().map(|r| r.to_vec()).collect()
    }

    /// [1] tokens: split on whitespace; a word matches the vocabulary exactly or, failing
    /// that, in lower case (so "How" is "how" and "I" stays "I").
    pub fn tokenize(&self, text: &str) -> Result<Vec<(String, usize)>, EmbedError> {
        let words: Vec<&str> = text.split_whitespace().collect();
        if words.is_empty() {
            return Err(EmbedError::EmptyText);
        }
        words
            .into_iter()
            .map(|w| {
                let id = VOCABULARY
                    .iter()
                    .position(|v| *v == w)
                    .or_else(|| VOCABULARY.iter().position(|v| *v == w.to_lowercase()));
                id.map(|id| (VOCABULARY[id].to_string(), id))
                    .ok_or_else(|| EmbedError::UnknownWord {
                        word: w.to_string(),
                        vocabulary: VOCABULARY.join(" "),
                    })
            })
            .collect()
    }

    /// Runs steps [1] to [5] on one text and keeps every intermediate.
    pub fn trace(&self, text: &str) -> Result<Trace, EmbedError> {
        let tokens = self.tokenize(text)?;
        let n = tokens.len();
        let x: Vec<Vec<f32>> = (0..4).map(|r| tokens.iter().map(|(_, id)| EMBEDDINGS[*id][r]).collect()).collect();
        let z: Vec<Vec<f32>> = (0..4)
            .map(|r| {
                (0..n)
                    .map(|c| (0..4).map(|k| WEIGHTS[r][k] * x[k][c]).sum::<f32>() + BIAS[r])
                    .collect()
            })
            .collect();
        let h: Vec<Vec<f32>> = z.iter().map(|row| row.iter().map(|v| v.max(0.0)).collect()).collect();
        let pooled: Vec<f32> = h.iter().map(|row| row.iter().sum::<f32>() / n as f32).collect();
        let index_vector: Vec<f32> = PROJECTION.iter().map(|p| p.iter().zip(&pooled).map(|(a, b)| a * b).sum()).collect();
        Ok(Trace {
            text: text.to_string(),
            tokens: tokens.iter().map(|(t, _)| t.clone()).collect(),
            token_ids: tokens.iter().map(|(_, id)| *id).collect(),
            x,
            z,
            h,
            pooled,
            index_vector,
        })
    }
}

impl Embedder for ByHandModel {
    fn dim(&self) -> usize {
        2
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        texts.iter().map(|t| self.trace(t).map(|tr| tr.index_vector)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
    }

    /// Every step of "who am I", worked out on paper.
    #[test]
    fn who_am_i_by_hand() {
        let t = ByHandModel::classroom().trace("who am I").unwrap();
        assert_eq!(t.tokens, ["who", "am", "I"]);
        assert_eq!(t.token_ids, [5, 9, 14]);
        // X: columns are who = (1,1,0,0), am = (0,0,1,1), I = (0,1,0,1).
        assert_eq!(
            t.x,
            vec![vec![1.0, 0.0, 0.0], vec![1.0, 0.0, 1.0], vec![0.0, 1.0, 0.0], vec![0.0, 1.0, 1.0]]
        );
        // W X + b: row 1 = x1 + x3, row 2 = x2 + x4, row 3 = x1 + x2 - 1, row 4 = x3 + x4.
        assert_eq!(
            t.z,
            vec![vec![1.0, 1.0, 0.0], vec![1.0, 1.0, 2.0], vec![1.0, -1.0, 0.0], vec![0.0, 2.0, 1.0]]
        );
        assert_eq!(
            t.h,
            vec![vec![1.0, 1.0, 0.0], vec![1.0, 1.0, 2.0], vec![1.0, 0.0, 0.0], vec![0.0, 2.0, 1.0]]
        );
        // Mean of each row: (2/3, 4/3, 1/3, 3/3).
        assert!(close(&t.pooled, &[2.0 / 3.0, 4.0 / 3.0, 1.0 / 3.0, 1.0]));
        // P: (f1 + f3, f2 + f4) = (3/3, 7/3).
        assert!(close(&t.index_vector, &[1.0, 7.0 / 3.0]));
    }

    #[test]
    fn the_other_sentences_and_the_query_by_hand() {
        let m = ByHandModel::classroom();
        let iv = |s: &str| m.trace(s).unwrap().index_vector;
        assert!(close(&iv("how are you"), &[4.0 / 3.0, 5.0 / 3.0]));
        assert!(close(&iv("who are you"), &[4.0 / 3.0, 5.0 / 3.0]));
        assert!(close(&iv("am I you"), &[2.0 / 3.0, 8.0 / 3.0]));
        let h = m.trace("how are you").unwrap().h;
        assert_eq!(
            h,
            vec![vec![2.0, 1.0, 1.0], vec![0.0, 1.0, 1.0], vec![0.0, 0.0, 0.0], vec![1.0, 1.0, 1.0]]
        );
    }

    #[test]
    fn unknown_and_empty_text_are_errors() {
        let m = ByHandModel::classroom();
        assert!(matches!(m.trace("who are vectors"), Err(EmbedError::UnknownWord { .. })));
        assert_eq!(m.trace("   "), Err(EmbedError::EmptyText));
        assert_eq!(
            m.tokenize("How ARE you")
                .unwrap()
                .iter()
                .map(|(t, _)| t.as_str())
                .collect::<Vec<_>>(),
            ["how", "are", "you"]
        );
        assert_eq!(m.embed(&["who am I", "am I you"]).unwrap().len(), 2);
        assert_eq!(m.embedding_table().len(), 4);
        assert_eq!(m.embedding_table()[0].len(), 22);
    }
}
