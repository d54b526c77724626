//! The one renderer. Every command returns a value that knows two faces: JSON for scripts
//! (`--json`) and a table or a few lines for people. `emit` chooses; no command prints its
//! result itself. Tables put one line per hit or point, cut to the terminal's width.

use quiver::{PointId, Record, ScoredPoint};
use serde_json::{json, Value};
use std::io::IsTerminal;

/// A command's result.
pub trait Output {
    /// The JSON lines `--json` prints (most results are one line).
    fn json(&self) -> Vec<Value>;
    /// The text people read, for a terminal `width` columns wide.
    fn text(&self, width: usize) -> String;
}

/// Prints a result as JSON lines or as text.
pub fn emit(out: &dyn Output, json: bool) {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    // A closed pipe (`quiver search ... | head`) ends the output quietly.
    let _ = if json {
        out.json().iter().try_for_each(|v| writeln!(w, "{v}"))
    } else {
        let t = out.text(width());
        if t.is_empty() {
            Ok(())
        } else if t.ends_with('\n') {
            write!(w, "{t}")
        } else {
            writeln!(w, "{t}")
        }
    };
    let _ = w.flush();
}

/// The width tables are cut to: the terminal's, `COLUMNS` when set, else 120 (a pipe or file
/// keeps more of each line).
pub fn width() -> usize {
    if std::io::stdout().is_terminal() {
        if let Some((_, cols)) = console::Term::stdout().size_checked() {
            return (cols as usize).max(40);
        }
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
        .filter(|&c| c >= 40)
        .unwrap_or(120)
}

/// "1 point", "2 points".
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `s` cut to `max` characters, with an ellipsis when cut; newlines and runs of spaces become
/// one space so a hit stays on one line.
pub fn cut(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else if max == 0 {
        String::new()
    } else {
        format!("{}…", flat.chars().take(max - 1).collect::<String>())
    }
}

/// A result that is a sentence for people and an object for scripts.
pub struct Message {
    pub json: Value,
    pub text: String,
}

impl Message {
    pub fn new(json: Value, text: impl Into<String>) -> Message {
        Message { json, text: text.into() }
    }
}

impl Output for Message {
    fn json(&self) -> Vec<Value> {
        vec![self.json.clone()]
    }
    fn text(&self, _width: usize) -> String {
        self.text.clone()
    }
}

/// Several results printed one after another (a command that does nothing else, like `serve`,
/// returns an empty list).
pub struct Many(pub Vec<Box<dyn Output>>);

impl Output for Many {
    fn json(&self) -> Vec<Value> {
        self.0.iter().flat_map(|o| o.json()).collect()
    }
    fn text(&self, width: usize) -> String {
        self.0.iter().map(|o| o.text(width)).collect::<Vec<_>>().join("\n")
    }
}

/// A point as `--json` prints it: id, then score, payload and vector when present.
pub fn point_json(id: &PointId, score: Option<f32>, payload: Option<&quiver::Payload>, vector: Option<&[f32]>) -> Value {
    let mut o = serde_json::Map::new();
    o.insert("id".into(), id.to_json());
    if let Some(s) = score {
        o.insert("score".into(), json!(s));
    }
    if let Some(p) = payload {
        o.insert("payload".into(), Value::Object(p.clone()));
    }
    if let Some(v) = vector {
        o.insert("vector".into(), json!(v));
    }
    Value::Object(o)
}

/// What a line shows of a payload: the document text first, then `source#chunk`, then the
/// other fields as `key=value`.
pub fn payload_line(p: &quiver::Payload) -> String {
    use quiver::collection::DOCUMENT_KEY;
    use quiver::context::{CHUNK_KEY, SOURCE_KEY};
    let mut parts = Vec::new();
    if let Some(doc) = p.get(DOCUMENT_KEY).and_then(Value::as_str) {
        parts.push(doc.to_string());
    }
    if let Some(src) = p.get(SOURCE_KEY).and_then(Value::as_str) {
        let name = std::path::Path::new(src).file_name().map_or(src.into(), |n| n.to_string_lossy());
        match p.get(CHUNK_KEY) {
            Some(c) => parts.push(format!("({name}#{c})")),
            None => parts.push(format!("({name})")),
        }
    }
    for (k, v) in p {
        if [DOCUMENT_KEY, SOURCE_KEY, CHUNK_KEY].contains(&k.as_str()) || k.starts_with('_') || is_ingest_detail(k) {
            continue;
        }
        let v = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        parts.push(format!("{k}={v}"));
    }
    parts.join(" · ")
}

/// Fields ingestion stores for its own bookkeeping (offsets, hashes): left out of tables.
fn is_ingest_detail(key: &str) -> bool {
    matches!(key, "start" | "end" | "file_hash")
}

/// The first dimensions of a vector and its length.
pub fn vector_text(v: &[f32]) -> String {
    let head: Vec<String> = v.iter().take(6).map(|x| format!("{x:.4}")).collect();
    if v.len() > 6 {
        format!("[{}, … ({} dims)]", head.join(", "), v.len())
    } else {
        format!("[{}]", head.join(", "))
    }
}

/// Search results.
pub struct Hits(pub Vec<ScoredPoint>);

impl Output for Hits {
    fn json(&self) -> Vec<Value> {
        vec![Value::Array(
            self.0
                .iter()
                .map(|h| point_json(&h.id, Some(h.score), h.payload.as_ref(), h.vector.as_deref()))
                .collect(),
        )]
    }

    fn text(&self, width: usize) -> String {
        if self.0.is_empty() {
            return "(no results)".into();
        }
        let ids: Vec<String> = self.0.iter().map(|h| h.id.to_string()).collect();
        let id_w = ids.iter().map(|s| s.chars().count()).max().unwrap_or(2).max(2);
        let rank_w = self.0.len().to_string().len().max(4);
        let mut out = format!("{:>rank_w$}  {:>9}  {:<id_w$}  payload\n", "rank", "score", "id");
        for (i, (h, id)) in self.0.iter().zip(&ids).enumerate() {
            let head = format!("{:>rank_w$}  {:>9.4}  {:<id_w$}  ", i + 1, h.score, id);
            let room = width.saturating_sub(head.chars().count());
            let rest = h.payload.as_ref().map(payload_line).unwrap_or_default();
            out.push_str(&head);
            out.push_str(&cut(&rest, room));
            out.push('\n');
            if let Some(v) = &h.vector {
                out.push_str(&format!("{:>rank_w$}  {:>9}  vector {}\n", "", "", vector_text(v)));
            }
        }
        out
    }
}

/// Many queries' results (`search --file`), one JSON line per query.
pub struct HitLists(pub Vec<Vec<ScoredPoint>>);

impl Output for HitLists {
    fn json(&self) -> Vec<Value> {
        self.0.iter().flat_map(|hits| Hits(hits.clone()).json()).collect()
    }
    fn text(&self, width: usize) -> String {
        self.0
            .iter()
            .enumerate()
            .map(|(i, hits)| format!("query {i}:\n{}", Hits(hits.clone()).text(width)))
            .collect()
    }
}

/// Points by id or a page of a scroll.
pub struct Records {
    pub records: Vec<Record>,
    /// `Some` for a scroll page: where the next page starts, if anywhere.
    pub next: Option<Option<PointId>>,
}

impl Output for Records {
    fn json(&self) -> Vec<Value> {
        let list: Vec<Value> = self
            .records
            .iter()
            .map(|r| point_json(&r.id, None, r.payload.as_ref(), r.vector.as_deref()))
            .collect();
        match &self.next {
            None => vec![Value::Array(list)],
            Some(next) => vec![json!({"points": list, "next_offset": next.as_ref().map(PointId::to_json)})],
        }
    }

    fn text(&self, width: usize) -> String {
        let mut out = String::new();
        if self.records.is_empty() {
            out.push_str(if self.next.is_some() {
                "(no points)\n"
            } else {
                "(no such points)\n"
            });
        }
        let ids: Vec<String> = self.records.iter().map(|r| r.id.to_string()).collect();
        let id_w = ids.iter().map(|s| s.chars().count()).max().unwrap_or(2).max(2);
        for (r, id) in self.records.iter().zip(&ids) {
            let head = format!("{id:<id_w$}  ");
            let room = width.saturating_sub(head.chars().count());
            out.push_str(&head);
            out.push_str(&cut(&r.payload.as_ref().map(payload_line).unwrap_or_default(), room));
            out.push('\n');
            if let Some(v) = &r.vector {
                out.push_str(&format!("{:id_w$}  vector {}\n", "", vector_text(v)));
            }
        }
        match &self.next {
            Some(Some(o)) => out.push_str(&format!("next page: --offset {o}\n")),
            Some(None) => out.push_str("(end)\n"),
            None => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_one_line_within_width() {
        assert_eq!(cut("a\n  b   c", 10), "a b c");
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 0), "");
    }

    #[test]
    fn counts_read_naturally() {
        assert_eq!(count(1, "point"), "1 point");
        assert_eq!(count(0, "point"), "0 points");
        assert_eq!(count(2, "point"), "2 points");
    }

    #[test]
    fn hits_fit_the_width_one_line_each() {
        let mut p = quiver::Payload::new();
        p.insert("document".into(), json!("a long text ".repeat(30)));
        p.insert("source".into(), json!("/x/docs/notes.md"));
        p.insert("chunk".into(), json!(3));
        p.insert("lang".into(), json!("en"));
        let hits = Hits(vec![ScoredPoint {
            id: PointId::Num(7),
            score: 0.5,
            payload: Some(p.clone()),
            vector: None,
            vectors: Default::default(),
        }]);
        let text = hits.text(60);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[1].chars().count() <= 60, "{text}");
        assert!(lines[1].ends_with('…'));
        let wide = hits.text(1000);
        assert!(wide.contains("(notes.md#3)") && wide.contains("lang=en"), "{wide}");
    }
}
