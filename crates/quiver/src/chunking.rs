//! Documents to chunks, for retrieval-augmented generation: HTML reduced to its text, text split
//! into sentences and into chunks of about `max_tokens` tokens (counted by the caller's model)
//! that end at sentence ends and prefer paragraph ends, with about `overlap` tokens repeated
//! between neighbours; stable chunk ids and content hashes, so that re-ingesting a file replaces
//! its chunks. The command line's `quiver ingest` uses it; a server can too.

use crate::types::PointId;
use std::path::Path;

/// A piece of a text: byte range `start..end` of the text it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Byte offset of the chunk's first character.
    pub start: usize,
    /// Byte offset just past the chunk's end.
    pub end: usize,
}

/// Sentence spans (byte ranges) of a text, each tagged with whether a paragraph ends after it.
fn sentences(text: &str) -> Vec<(usize, usize, bool)> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut start = None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if start.is_none() {
            if !c.is_ascii_whitespace() {
                start = Some(i);
            }
            i += 1;
            continue;
        }
        let s = start.expect("inside a sentence");
        let at_end = i + 1 >= bytes.len();
        // A sentence ends after . ! ? followed by whitespace, or at a line break that ends a
        // paragraph (blank line) or a line of a list or heading.
        let terminal = matches!(c, b'.' | b'!' | b'?') && bytes.get(i + 1).is_none_or(|n| n.is_ascii_whitespace());
        let newline = c == b'\n';
        if terminal || newline || at_end {
            let end = if newline { i } else { i + 1 };
            let rest = &text[end..];
            let blank = rest.trim_start_matches([' ', '\t', '\r']).starts_with('\n') && (newline || rest.starts_with('\n'));
            let paragraph = blank || at_end || rest.trim().is_empty();
            let line_break_ends =
                newline && (blank || text[s..end].trim_start().starts_with(['#', '-', '*', '|', '>']) || next_line_is_item(rest));
            if terminal || at_end || line_break_ends {
                let trimmed_end = s + text[s..end].trim_end().len();
                if trimmed_end > s {
                    out.push((s, trimmed_end, paragraph || (newline && blank)));
                }
                start = None;
            }
        }
        i += 1;
    }
    if let Some(s) = start {
        let e = s + text[s..].trim_end().len();
        if e > s {
            out.push((s, e, true));
        }
    }
    out
}

fn next_line_is_item(rest: &str) -> bool {
    let t = rest.trim_start_matches([' ', '\t']);
    t.starts_with(['#', '-', '*', '|', '>']) || t.chars().next().is_some_and(|c| c.is_ascii_digit())
}

/// Splits `text` into chunks of at most `max_tokens` (as `count` measures them; a single longer
/// sentence is cut at word boundaries), ending at sentence ends, closing early at a paragraph
/// end once a chunk is half full, and starting each chunk with the last sentences of the
/// previous one up to `overlap` tokens.
pub fn chunk(text: &str, max_tokens: usize, overlap: usize, count: &dyn Fn(&str) -> usize) -> Vec<Chunk> {
    let max_tokens = max_tokens.max(8);
    // Units: sentences, with over-long ones cut into word runs.
    let mut units: Vec<(usize, usize, usize, bool)> = Vec::new();
    for (s, e, para) in sentences(text) {
        let n = count(&text[s..e]);
        if n <= max_tokens {
            units.push((s, e, n, para));
            continue;
        }
        let mut piece_start = s;
        let mut last_end = s;
        for (off, w) in text[s..e].split_inclusive(char::is_whitespace).scan(s, |pos, w| {
            let at = *pos;
            *pos += w.len();
            Some((at, w))
        }) {
            let candidate_end = off + w.trim_end().len();
            if count(&text[piece_start..candidate_end]) > max_tokens && last_end > piece_start {
                units.push((piece_start, last_end, count(&text[piece_start..last_end]), false));
                piece_start = off;
            }
            last_end = candidate_end;
        }
        if last_end > piece_start {
            units.push((piece_start, last_end, count(&text[piece_start..last_end]), para));
        }
    }
    let mut chunks = Vec::new();
    let mut i = 0;
    while i < units.len() {
        let first = i;
        let mut tokens = 0;
        let mut j = i;
        while j < units.len() && (j == first || tokens + units[j].2 <= max_tokens) {
            tokens += units[j].2;
            j += 1;
            if units[j - 1].3 && tokens * 2 >= max_tokens {
                break;
            }
        }
        chunks.push(Chunk {
            start: units[first].0,
            end: units[j - 1].1,
        });
        if j >= units.len() {
            break;
        }
        // Overlap: step back over the last sentences of this chunk, up to `overlap` tokens,
        // but always move forward.
        let mut back = j;
        let mut carried = 0;
        while back > first + 1 && carried + units[back - 1].2 <= overlap {
            carried += units[back - 1].2;
            back -= 1;
        }
        i = back.max(first + 1);
    }
    chunks
}

/// The readable text of an HTML page: tags dropped, `script`/`style` removed, block elements
/// turned into line breaks, the common entities decoded.
pub fn html_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let lower = html.to_ascii_lowercase();
    let mut i = 0;
    while i < html.len() {
        if html.as_bytes()[i] == b'<' {
            let close = lower[i..].find('>').map(|p| i + p + 1).unwrap_or(html.len());
            let tag = lower[i + 1..close.saturating_sub(1).max(i + 1)].trim_start_matches('/');
            let name: String = tag.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
            if (name == "script" || name == "style") && !lower[i + 1..].starts_with('/') {
                let end_tag = format!("</{name}");
                i = lower[close..].find(&end_tag).map(|p| close + p).unwrap_or(html.len());
                i = lower[i..].find('>').map(|p| i + p + 1).unwrap_or(html.len());
                continue;
            }
            if matches!(
                name.as_str(),
                "p" | "br"
                    | "div"
                    | "li"
                    | "tr"
                    | "h1"
                    | "h2"
                    | "h3"
                    | "h4"
                    | "h5"
                    | "h6"
                    | "section"
                    | "article"
                    | "pre"
                    | "blockquote"
                    | "title"
            ) {
                out.push_str("\n\n");
            }
            i = close;
            continue;
        }
        let next = html[i..].find('<').map(|p| i + p).unwrap_or(html.len());
        out.push_str(&decode_entities(&html[i..next]));
        i = next;
    }
    // Collapse runs of blank lines and spaces.
    let mut clean = String::with_capacity(out.len());
    let mut blank = 0;
    for line in out.lines() {
        let l = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if l.is_empty() {
            blank += 1;
            continue;
        }
        if !clean.is_empty() {
            clean.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        clean.push_str(&l);
    }
    clean
}

fn decode_entities(s: &str) -> String {
    s.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// What kind of document a file is, by its extension: `text`, `markdown` or `html`.
pub fn kind_of(p: &Path) -> Option<&'static str> {
    match p.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "txt" | "text" => Some("text"),
        "md" | "markdown" => Some("markdown"),
        "html" | "htm" => Some("html"),
        _ => None,
    }
}

/// The id of chunk `n` of `source` (UUIDv5 of both): re-ingesting a file replaces its chunks.
pub fn chunk_id(source: &str, n: usize) -> PointId {
    PointId::Uuid(uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("quiver-chunk:{source}#{n}").as_bytes(),
    ))
}

/// The hash of a file's text (UUIDv5 of it): an unchanged file is skipped.
pub fn content_hash(text: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, text.as_bytes()).simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    #[test]
    fn sentences_end_at_terminators_and_lines_of_lists() {
        let t = "First one. Second one!\n\nNew paragraph? Yes.\n- item a\n- item b\n# Heading\nBody text";
        let got: Vec<&str> = sentences(t).iter().map(|&(s, e, _)| &t[s..e]).collect();
        assert_eq!(
            got,
            [
                "First one.",
                "Second one!",
                "New paragraph?",
                "Yes.",
                "- item a",
                "- item b",
                "# Heading",
                "Body text"
            ]
        );
        let paras: Vec<bool> = sentences(t).iter().map(|s| s.2).collect();
        assert!(paras[1] && !paras[0], "{paras:?}");
    }

    #[test]
    fn chunks_respect_the_budget_cover_the_text_and_overlap() {
        let sentence = |i: usize| format!("Sentence number {i} has exactly seven words.");
        let text: String = (0..40).map(|i| sentence(i) + if i % 5 == 4 { "\n\n" } else { " " }).collect();
        let chunks = chunk(&text, 30, 8, &words);
        assert!(chunks.len() > 5);
        for c in &chunks {
            assert!(words(&text[c.start..c.end]) <= 30, "{:?}", &text[c.start..c.end]);
            assert!(text[c.start..c.end].ends_with('.'), "chunks end at sentence ends");
        }
        // Every sentence is in some chunk, and neighbours share their boundary sentence.
        for i in 0..40 {
            assert!(
                chunks.iter().any(|c| text[c.start..c.end].contains(&sentence(i))),
                "sentence {i} lost"
            );
        }
        for w in chunks.windows(2) {
            assert!(w[1].start < w[0].end, "neighbours overlap");
            assert!(w[1].start > w[0].start, "chunks move forward");
        }
    }

    #[test]
    fn a_sentence_longer_than_the_budget_is_cut_at_words() {
        let text = (0..100).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
        let chunks = chunk(&text, 20, 0, &words);
        assert_eq!(chunks.len(), 5);
        assert!(chunks.iter().all(|c| words(&text[c.start..c.end]) == 20));
        assert!(chunk("", 20, 5, &words).is_empty());
    }

    #[test]
    fn html_becomes_its_text() {
        let html = "<html><head><title>T</title><style>p{color:red}</style><script>var x = '<p>';</script></head>\
                    <body><h1>Hello &amp; welcome</h1><p>First   para.</p><p>Second<br>line &lt;3</p></body></html>";
        assert_eq!(html_text(html), "T\n\nHello & welcome\n\nFirst para.\n\nSecond\n\nline <3");
    }
}
