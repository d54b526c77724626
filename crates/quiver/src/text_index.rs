//! Full-text indexes (BM25) on payload keys, through tantivy.
//!
//! A text index is derived state, like the payload indexes: it lives in memory (tantivy's RAM
//! directory), is rebuilt from the payloads when a collection opens, and is changed only by
//! `State::apply` (one tantivy commit per applied operation), so text and vectors cannot drift
//! apart, also not after a crash: recovery rebuilds both from the same log and segments. A
//! tantivy failure marks the index broken (see [`TextIndex`]); it never panics.
//!
//! Tokenisation is tantivy's default analyser (split on characters that are not alphanumeric,
//! drop tokens over 40 bytes, lowercase). [`tokens`] is the same rule written out, used to
//! evaluate text conditions on a single payload; a test checks it against tantivy's.

use crate::types::PointId;
use quiver_storage::codec::{Decoder, Encoder};
use std::collections::HashMap;
use tantivy::collector::TopDocs;
use tantivy::directory::Directory;
use tantivy::query::{BooleanQuery, Occur, PhraseQuery, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Schema, Value, STORED, STRING, TEXT};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

/// An identifier in at most this many documents is rare (see [`TextIndex::rare_identifiers`]).
pub const RARE_DOCS_MAX: u64 = 5;

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

/// Refuses a text query with no words, on every interface (the CLI, the server, the library's
/// keyword, hybrid and context searches): an empty query has no answer worth ranking.
pub fn check_query_text(text: &str) -> crate::error::Result<()> {
    if text.trim().is_empty() {
        return Err(crate::error::Error::InvalidRequest(
            "the text query is empty: give the words to search for".into(),
        ));
    }
    Ok(())
}

/// Whether `text` contains every token of `query` (Qdrant's `match: {text}`).
pub fn contains_all(text: &str, query: &str) -> bool {
    let want = tokens(query);
    if want.is_empty() {
        // A query without words matches nothing, as in Qdrant (not everything).
        return false;
    }
    let have: std::collections::HashSet<String> = tokens(text).into_iter().collect();
    want.iter().all(|t| have.contains(t))
}

/// Whether `text` contains at least one token of `query` (Qdrant's `match: {text_any}`).
pub fn contains_any(text: &str, query: &str) -> bool {
    let want: std::collections::HashSet<String> = tokens(query).into_iter().collect();
    !want.is_empty() && tokens(text).iter().any(|t| want.contains(t))
}

/// Whether the tokens of `phrase` occur consecutively in `text` (Qdrant's `match: {phrase}`).
pub fn contains_phrase(text: &str, phrase: &str) -> bool {
    let p = tokens(phrase);
    if p.is_empty() {
        return false;
    }
    tokens(text).windows(p.len()).any(|w| w == p.as_slice())
}

/// A full-text index. If tantivy ever fails (its RAM directory can only fail by running out of
/// memory), the index is marked broken instead of panicking half-way through `State::apply`:
/// text filters then fall back to evaluating every candidate, BM25 searches return an error,
/// and `State::commit_text` rebuilds it from the payloads.
pub struct TextIndex {
    live: Result<Live, String>,
}

struct Live {
    index: Index,
    writer: IndexWriter,
    reader: IndexReader,
    text: Field,
    pid: Field,
    pending: bool,
}

impl std::fmt::Debug for TextIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextIndex").field("error", &self.error()).finish_non_exhaustive()
    }
}

fn pid_text(id: &PointId) -> String {
    id.to_string()
}

impl Live {
    fn new() -> Result<Live, String> {
        Live::over(Index::create_in_ram(Live::schema()))
    }

    fn schema() -> Schema {
        let mut sb = Schema::builder();
        sb.add_text_field("text", TEXT);
        sb.add_text_field("pid", STRING | STORED);
        sb.build()
    }

    fn over(index: Index) -> Result<Live, String> {
        let field = |name| index.schema().get_field(name).map_err(|e| format!("tantivy schema: {e}"));
        let (text, pid) = (field("text")?, field("pid")?);
        // One indexing thread: writes are serialised by the collection's writer anyway.
        let writer = index
            .writer_with_num_threads(1, 32 << 20)
            .map_err(|e| format!("tantivy writer: {e}"))?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| format!("tantivy reader: {e}"))?;
        Ok(Live {
            index,
            writer,
            reader,
            text,
            pid,
            pending: false,
        })
    }
}

impl TextIndex {
    pub fn new() -> TextIndex {
        TextIndex { live: Live::new() }
    }

    /// Why the index is unusable, if it is.
    pub fn error(&self) -> Option<&str> {
        self.live.as_ref().err().map(String::as_str)
    }

    /// Replaces the text of point `id` (`None`: the point has no text or is gone).
    pub fn set(&mut self, id: &PointId, text: Option<&str>) {
        let Ok(live) = &mut self.live else { return };
        let p = pid_text(id);
        live.writer.delete_term(Term::from_field_text(live.pid, &p));
        if let Some(t) = text {
            let mut doc = TantivyDocument::default();
            doc.add_text(live.text, t);
            doc.add_text(live.pid, &p);
            if let Err(e) = live.writer.add_document(doc) {
                self.live = Err(format!("tantivy add: {e}"));
                return;
            }
        }
        live.pending = true;
    }

    /// Makes the changes since the last commit searchable.
    pub fn commit(&mut self) {
        let Ok(live) = &mut self.live else { return };
        if !live.pending {
            return;
        }
        let done = live
            .writer
            .commit()
            .map_err(|e| format!("tantivy commit: {e}"))
            .and_then(|_| live.reader.reload().map_err(|e| format!("tantivy reload: {e}")));
        match done {
            Ok(()) => live.pending = false,
            Err(e) => self.live = Err(e),
        }
    }

    /// The committed index as bytes (its files, named), for the sidecar of a base segment;
    /// `None` when it is broken.
    pub fn encode(&mut self) -> Option<Vec<u8>> {
        self.commit();
        let live = self.live.as_ref().ok()?;
        let dir = live.index.directory();
        let mut files: Vec<std::path::PathBuf> = vec!["meta.json".into()];
        for meta in live.index.searchable_segment_metas().ok()? {
            let mut names: Vec<_> = meta.list_files().into_iter().filter(|f| dir.exists(f).unwrap_or(false)).collect();
            names.sort();
            files.extend(names);
        }
        let mut e = Encoder::new();
        e.u32(files.len() as u32);
        for f in files {
            let bytes = dir.atomic_read(&f).ok()?;
            e.bytes(f.to_str()?.as_bytes());
            e.bytes(&bytes);
        }
        Some(e.buf)
    }

    /// An index from [`TextIndex::encode`]'s bytes (held in memory, as a new one is), checked
    /// by tantivy's own per-file checksums: an error instead of an index that may be wrong.
    pub fn decode(bytes: &[u8]) -> Result<TextIndex, String> {
        let mut d = Decoder::new(bytes);
        let bad = |e: quiver_storage::codec::DecodeError| format!("text index bytes: {}", e.reason);
        let dir = tantivy::directory::RamDirectory::create();
        let n = d.u32().map_err(bad)?;
        for _ in 0..n {
            let name = std::str::from_utf8(d.bytes().map_err(bad)?).map_err(|e| e.to_string())?.to_string();
            let data = d.bytes().map_err(bad)?;
            dir.atomic_write(std::path::Path::new(&name), data).map_err(|e| e.to_string())?;
        }
        d.finish().map_err(bad)?;
        let index = Index::open(dir).map_err(|e| format!("tantivy open: {e}"))?;
        if index.schema() != Live::schema() {
            return Err("the text index has another schema".into());
        }
        let damaged = index.validate_checksum().map_err(|e| format!("tantivy check: {e}"))?;
        if !damaged.is_empty() {
            return Err(format!("damaged text index files: {damaged:?}"));
        }
        Ok(TextIndex { live: Live::over(index) })
    }

    /// Marks the index broken (for tests of the fallback paths).
    #[cfg(test)]
    pub(crate) fn break_for_test(&mut self) {
        self.live = Err("broken by a test".into());
    }

    fn terms(live: &Live, query: &str) -> Vec<Term> {
        tokens(query).iter().map(|t| Term::from_field_text(live.text, t)).collect()
    }

    fn run(live: &Live, query: &dyn Query, limit: usize) -> Vec<(PointId, f32)> {
        let searcher = live.reader.searcher();
        let Ok(top) = searcher.search(query, &TopDocs::with_limit(limit.max(1))) else {
            return Vec::new();
        };
        top.into_iter()
            .filter_map(|(score, addr)| {
                let doc: TantivyDocument = searcher.doc(addr).ok()?;
                let p = doc.get_first(live.pid)?.as_str()?.to_string();
                Some((p.parse::<PointId>().ok()?, score))
            })
            .collect()
    }

    /// The `limit` best points for `query` by BM25 (any query token may match), best first; an
    /// error when the index is broken.
    pub fn bm25(&self, query: &str, limit: usize) -> Result<Vec<(PointId, f32)>, String> {
        let live = self.live.as_ref().map_err(Clone::clone)?;
        let clauses: Vec<(Occur, Box<dyn Query>)> = Self::terms(live, query)
            .into_iter()
            .map(|t| {
                (
                    Occur::Should,
                    Box::new(TermQuery::new(t, IndexRecordOption::WithFreqs)) as Box<dyn Query>,
                )
            })
            .collect();
        if clauses.is_empty() {
            return Ok(Vec::new());
        }
        Ok(Self::run(live, &BooleanQuery::new(clauses), limit))
    }

    /// The tokens of `query` that name something specific: identifiers (a token with both a
    /// digit and a letter, such as `z3411b` of `ERR_Z3411B`) that occur in at least one and at
    /// most [`RARE_DOCS_MAX`] documents (or 1% of them, if more). Hybrid search puts the points
    /// holding them first: a question naming an error code is about the passages with that code.
    pub fn rare_identifiers(&self, query: &str) -> Vec<String> {
        let Ok(live) = self.live.as_ref() else { return Vec::new() };
        let searcher = live.reader.searcher();
        let max_df = RARE_DOCS_MAX.max(searcher.num_docs() / 100);
        let mut out: Vec<String> = tokens(query)
            .into_iter()
            .filter(|t| t.chars().any(|c| c.is_numeric()) && t.chars().any(char::is_alphabetic))
            .filter(|t| {
                let df = searcher.doc_freq(&Term::from_field_text(live.text, t)).unwrap_or(0);
                (1..=max_df).contains(&df)
            })
            .collect();
        out.dedup();
        out
    }

    /// Every point whose text has all tokens of `query` (or, with `phrase`, the tokens in a
    /// row): the candidates of a text condition. `None` when the index cannot help (no token,
    /// or the index is broken): the caller then evaluates the condition on every point.
    pub fn matching(&self, query: &str, phrase: bool) -> Option<Vec<PointId>> {
        let live = self.live.as_ref().ok()?;
        let terms = Self::terms(live, query);
        let n = live.reader.searcher().num_docs() as usize;
        let q: Box<dyn Query> = match terms.len() {
            // No words: nothing matches (the exact answer, as `contains_all` gives it).
            0 => return Some(Vec::new()),
            1 => Box::new(TermQuery::new(terms[0].clone(), IndexRecordOption::Basic)),
            _ if phrase => Box::new(PhraseQuery::new(terms)),
            _ => Box::new(BooleanQuery::new(
                terms
                    .into_iter()
                    .map(|t| (Occur::Must, Box::new(TermQuery::new(t, IndexRecordOption::Basic)) as Box<dyn Query>))
                    .collect(),
            )),
        };
        Some(Self::run(live, q.as_ref(), n).into_iter().map(|(id, _)| id).collect())
    }

    /// Documents in the index (0 when broken).
    pub fn len(&self) -> usize {
        self.live.as_ref().map_or(0, |l| l.reader.searcher().num_docs() as usize)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An index written as bytes and read back answers every query alike, after several
    /// commits (several tantivy segments) with replaced and removed texts; truncated bytes are
    /// refused. (Tantivy's checksums miss most flipped bytes: the sidecar's own checksum is
    /// what catches them, see `segment::read_index_sidecar` and its test.)
    #[test]
    fn an_encoded_index_reads_back_equal_and_damage_is_refused() {
        let words = ["apple", "banana", "cherry", "delta", "echo", "fox", "golf", "hotel"];
        let mut t = TextIndex::new();
        for round in 0..4u64 {
            for i in 0..200u64 {
                let id = PointId::Num(i * 3 + round);
                let text: Vec<&str> = (0..6).map(|k| words[((i * 7 + k * (round + 1)) % 8) as usize]).collect();
                t.set(&id, Some(&text.join(" ")));
            }
            for i in (0..600u64).step_by(11) {
                t.set(&PointId::Num(i), None);
            }
            t.commit();
        }
        let bytes = t.encode().unwrap();
        let back = TextIndex::decode(&bytes).unwrap();
        assert_eq!(back.len(), t.len());
        for q in ["apple", "banana cherry", "fox golf hotel", "zulu"] {
            assert_eq!(back.bm25(q, 20).unwrap(), t.bm25(q, 20).unwrap(), "{q}");
            assert_eq!(back.matching(q, false), t.matching(q, false), "{q}");
        }
        for cut in [0, 3, bytes.len() / 2, bytes.len() - 1] {
            assert!(TextIndex::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
