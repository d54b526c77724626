//! Full-text indexes (BM25) on payload keys, through tantivy.
//!
//! A text index is derived state, like the payload indexes: it lives in memory (tantivy's RAM
//! directory), is rebuilt from the payloads when a collection opens, and is changed only by
//! `State::apply` (one tantivy commit per applied operation), so text and vectors cannot drift
//! apart, also not after a crash: recovery rebuilds both from the same log and segments.
//!
//! Tokenisation is tantivy's default analyser (split on characters that are not alphanumeric,
//! drop tokens over 40 bytes, lowercase). [`tokens`] is the same rule written out, used to
//! evaluate text conditions on a single payload; a test checks it against tantivy's.

use crate::types::PointId;
use std::collections::HashMap;
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, PhraseQuery, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Schema, Value, STORED, STRING, TEXT};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

/// Tokens longer than this many bytes are dropped (tantivy's default `RemoveLongFilter`).
const TOKEN_BYTES_MAX: usize = 40;

/// The analyser of text fields: lowercase runs of alphanumeric characters, at most 40 bytes.
pub fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty() && t.len() < TOKEN_BYTES_MAX)
        // Character by character, as tantivy's `LowerCaser` (no context rules such as Greek
        // final sigma, which `str::to_lowercase` applies).
        .map(|t| t.chars().flat_map(char::to_lowercase).collect())
        .collect()
}

/// Whether `text` contains every token of `query` (Qdrant's `match: {text}`).
pub fn contains_all(text: &str, query: &str) -> bool {
    let have: std::collections::HashSet<String> = tokens(text).into_iter().collect();
    tokens(query).iter().all(|t| have.contains(t))
}

/// Whether the tokens of `phrase` occur consecutively in `text` (Qdrant's `match: {phrase}`).
pub fn contains_phrase(text: &str, phrase: &str) -> bool {
    let p = tokens(phrase);
    if p.is_empty() {
        return true;
    }
    tokens(text).windows(p.len()).any(|w| w == p.as_slice())
}

pub struct TextIndex {
    writer: IndexWriter,
    reader: IndexReader,
    text: Field,
    pid: Field,
    pending: bool,
}

impl std::fmt::Debug for TextIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextIndex").finish_non_exhaustive()
    }
}

fn pid_text(id: &PointId) -> String {
    id.to_string()
}

impl TextIndex {
    pub fn new() -> TextIndex {
        let mut sb = Schema::builder();
        let text = sb.add_text_field("text", TEXT);
        let pid = sb.add_text_field("pid", STRING | STORED);
        let index = Index::create_in_ram(sb.build());
        // One indexing thread: writes are serialised by the collection's writer anyway.
        let writer = index
            .writer_with_num_threads(1, 32 << 20)
            .expect("a RAM index always gets a writer");
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .expect("a RAM index always gets a reader");
        TextIndex {
            writer,
            reader,
            text,
            pid,
            pending: false,
        }
    }

    /// Replaces the text of point `id` (`None`: the point has no text or is gone).
    pub fn set(&mut self, id: &PointId, text: Option<&str>) {
        let p = pid_text(id);
        self.writer.delete_term(Term::from_field_text(self.pid, &p));
        if let Some(t) = text {
            let mut doc = TantivyDocument::default();
            doc.add_text(self.text, t);
            doc.add_text(self.pid, &p);
            // A RAM index with a live writer cannot refuse a document.
            self.writer.add_document(doc).expect("adding to a RAM index");
        }
        self.pending = true;
    }

    /// Makes the changes since the last commit searchable.
    pub fn commit(&mut self) {
        if !self.pending {
            return;
        }
        self.writer.commit().expect("committing a RAM index");
        self.reader.reload().expect("reloading a RAM index");
        self.pending = false;
    }

    fn terms(&self, query: &str) -> Vec<Term> {
        tokens(query).iter().map(|t| Term::from_field_text(self.text, t)).collect()
    }

    fn run(&self, query: &dyn Query, limit: usize) -> Vec<(PointId, f32)> {
        let searcher = self.reader.searcher();
        let Ok(top) = searcher.search(query, &TopDocs::with_limit(limit.max(1))) else {
            return Vec::new();
        };
        top.into_iter()
            .filter_map(|(score, addr)| {
                let doc: TantivyDocument = searcher.doc(addr).ok()?;
                let p = doc.get_first(self.pid)?.as_str()?.to_string();
                Some((p.parse::<PointId>().ok()?, score))
            })
            .collect()
    }

    /// The `limit` best points for `query` by BM25 (any query token may match), best first.
    pub fn bm25(&self, query: &str, limit: usize) -> Vec<(PointId, f32)> {
        let clauses: Vec<(Occur, Box<dyn Query>)> = self
            .terms(query)
            .into_iter()
            .map(|t| {
                (
                    Occur::Should,
                    Box::new(TermQuery::new(t, IndexRecordOption::WithFreqs)) as Box<dyn Query>,
                )
            })
            .collect();
        if clauses.is_empty() {
            return Vec::new();
        }
        self.run(&BooleanQuery::new(clauses), limit)
    }

    /// Every point whose text has all tokens of `query` (or, with `phrase`, the tokens in a
    /// row): the candidates of a text condition.
    pub fn matching(&self, query: &str, phrase: bool) -> Option<Vec<PointId>> {
        let terms = self.terms(query);
        let n = self.reader.searcher().num_docs() as usize;
        let q: Box<dyn Query> = match terms.len() {
            0 => return None,
            1 => Box::new(TermQuery::new(terms[0].clone(), IndexRecordOption::Basic)),
            _ if phrase => Box::new(PhraseQuery::new(terms)),
            _ => Box::new(BooleanQuery::new(
                terms
                    .into_iter()
                    .map(|t| (Occur::Must, Box::new(TermQuery::new(t, IndexRecordOption::Basic)) as Box<dyn Query>))
                    .collect(),
            )),
        };
        Some(self.run(q.as_ref(), n).into_iter().map(|(id, _)| id).collect())
    }

    /// Documents in the index.
    pub fn len(&self) -> usize {
        self.reader.searcher().num_docs() as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for TextIndex {
    fn default() -> Self {
        TextIndex::new()
    }
}

/// Reciprocal rank fusion: each ranking (best first) gives a point `weight / (k + rank)` (rank
/// from 1); points are returned by the sum, best first, ties by first appearance.
pub fn rrf(rankings: &[(f32, Vec<PointId>)], k: f32, limit: usize) -> Vec<(PointId, f32)> {
    let mut score: HashMap<PointId, (f32, usize)> = HashMap::new();
    let mut order = 0;
    for (weight, ranking) in rankings {
        for (i, id) in ranking.iter().enumerate() {
            let e = score.entry(*id).or_insert_with(|| {
                order += 1;
                (0.0, order)
            });
            e.0 += weight / (k + (i + 1) as f32);
        }
    }
    let mut out: Vec<(PointId, f32, usize)> = score.into_iter().map(|(id, (s, o))| (id, s, o)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    out.into_iter().take(limit).map(|(id, s, _)| (id, s)).collect()
}
