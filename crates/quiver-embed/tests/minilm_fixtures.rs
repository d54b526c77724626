//! all-MiniLM-L6-v2 in pure Rust against reference embeddings from an independent
//! implementation (`tests/fixtures/minilm` of the repository): the same token ids, and cosine >= 0.9999 on
//! every sentence and edge case (empty text, whitespace, zero-width characters, texts over 256
//! tokens, CJK, emoji). Needs the model (`scripts/fetch-model.sh`, run by `scripts/test.sh`);
//! without it the test fails and says how to get it.

use quiver_embed::{find_model, Embedder, MiniLm};
use serde_json::Value;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = here.join("../../tests/fixtures/minilm");
    assert!(dir.join("meta.json").exists(), "fixtures not found at {}", dir.display());
    dir
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

fn model() -> MiniLm {
    let dir = find_model(None).unwrap_or_else(|e| panic!("{e}"));
    MiniLm::load(&dir).unwrap_or_else(|e| panic!("{e}"))
}

/// The fixture sentences and their reference embeddings.
fn sentences() -> (Vec<String>, quiver::npy::Matrix) {
    let dir = fixtures();
    let texts: Vec<String> = std::fs::read_to_string(dir.join("sentences.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let reference = quiver::npy::read(&dir.join("embeddings.npy")).unwrap();
    assert_eq!((reference.rows, reference.cols), (texts.len(), 384));
    (texts, reference)
}

/// The edge cases: text, reference token ids, reference embedding.
fn edge_cases() -> Vec<(String, Vec<u32>, Vec<f32>)> {
    std::fs::read_to_string(fixtures().join("edge_cases.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            let ids = v["ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
            let embedding = v["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            (v["text"].as_str().unwrap().to_string(), ids, embedding)
        })
        .collect()
}

#[test]
fn matches_reference_embeddings_and_tokens() {
    let m = model();
    let dir = fixtures();
    let (texts, reference) = sentences();
    let tokens: Vec<Value> = std::fs::read_to_string(dir.join("tokens.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let got = m.embed(&refs).unwrap();
    let mut worst = 1.0f32;
    for (i, text) in texts.iter().enumerate() {
        let want_ids: Vec<u32> = tokens[i]["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let (_, ids) = m.tokenize(text).unwrap();
        assert_eq!(ids, want_ids, "token ids of row {i}: {text:?}");
        let c = cosine(&got[i], &reference.data[i * 384..(i + 1) * 384]);
        worst = worst.min(c);
        assert!(c >= 0.9999, "row {i} {text:?}: cosine {c}");
        let norm: f32 = got[i].iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "row {i} not normalised: {norm}");
    }
    eprintln!("{} sentences, worst cosine {worst:.7} ({} products)", texts.len(), m.products());
    // One at a time: short texts take the small-batch path (bfloat16 weights where the CPU has
    // AVX2+FMA or AVX-512), which must meet the same bar.
    let mut worst_alone = 1.0f32;
    for (i, text) in texts.iter().enumerate() {
        let c = cosine(&m.embed_one(text).unwrap(), &reference.data[i * 384..(i + 1) * 384]);
        worst_alone = worst_alone.min(c);
        assert!(c >= 0.9999, "row {i} {text:?} alone: cosine {c}");
    }
    eprintln!("one at a time, worst cosine {worst_alone:.7}");
}

#[test]
fn matches_reference_on_edge_cases() {
    let m = model();
    let mut worst = 1.0f32;
    for (text, want_ids, want) in edge_cases() {
        let text = text.as_str();
        assert_eq!(m.tokenize(text).unwrap().1, want_ids, "{text:?}");
        let c = cosine(&m.embed_one(text).unwrap(), &want);
        worst = worst.min(c);
        assert!(c >= 0.9999, "{text:?}: cosine {c}");
    }
    eprintln!("edge cases, worst cosine {worst:.7}");
}

#[test]
fn batches_keep_input_order_and_long_texts_are_truncated() {
    let m = model();
    let long = "vector databases store embeddings ".repeat(200);
    let texts = ["first", long.as_str(), "third text here"];
    let batch = m.embed(&texts).unwrap();
    for (t, b) in texts.iter().zip(&batch) {
        // The same text alone or packed with others: the same vector up to rounding (alone, a
        // short text may take the bfloat16 small-batch path: about 1e-5 apart, measured).
        let c = cosine(&m.embed_one(t).unwrap(), b);
        assert!(c > 0.9999, "{t:?}: cosine {c}");
    }
    assert_eq!(m.tokenize(&long).unwrap().1.len(), 256);
}

/// A model reuses its working buffers from call to call: a batch embedded after a larger one
/// and after a smaller one (buffers grown, shrunk, grown) gives exactly the vectors it gave
/// first, for both precisions.
#[test]
fn a_batch_does_not_depend_on_the_batches_before_it() {
    let dir = quiver_embed::minilm::find_model(None).unwrap();
    let long = "vector databases store embeddings ".repeat(40);
    let small = ["a short one", "and another sentence"];
    let big: Vec<&str> = (0..20)
        .map(|i| {
            if i % 3 == 0 {
                long.as_str()
            } else {
                "a middling sentence of a few words"
            }
        })
        .collect();
    for precision in [quiver_embed::minilm::Precision::Float, quiver_embed::minilm::Precision::Int8] {
        let m = MiniLm::load_with(&dir, precision).unwrap();
        let first = m.embed(&small).unwrap();
        let first_big = m.embed(&big).unwrap();
        assert_eq!(m.embed(&small).unwrap(), first, "{precision:?}: after a larger batch");
        assert_eq!(m.embed(&big).unwrap(), first_big, "{precision:?}: after a smaller batch");
    }
}

/// The opt-in int8 precision against the same reference, every sentence and edge case. Measured
/// (deterministic for a given path): 7-bit weights on AVX2, mean 0.9962 and worst 0.9851 (an
/// edge case); 8-bit weights (VNNI, scalar), mean 0.9983 and worst 0.9926.
#[test]
fn int8_precision_stays_close_to_the_reference() {
    let dir = find_model(None).unwrap_or_else(|e| panic!("{e}"));
    let m = MiniLm::load_with(&dir, quiver_embed::minilm::Precision::Int8).unwrap();
    assert_eq!(m.precision(), quiver_embed::minilm::Precision::Int8);
    let (texts, reference) = sentences();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let got = m.embed(&refs).unwrap();
    let (mut worst, mut sum) = (1.0f32, 0.0f32);
    for (i, g) in got.iter().enumerate() {
        let c = cosine(g, &reference.data[i * 384..(i + 1) * 384]);
        worst = worst.min(c);
        sum += c;
    }
    for (text, _, want) in edge_cases() {
        let c = cosine(&m.embed_one(&text).unwrap(), &want);
        worst = worst.min(c);
    }
    eprintln!(
        "int8: {} sentences, mean cosine {:.5}, worst (edge cases too) {worst:.5}",
        texts.len(),
        sum / texts.len() as f32
    );
    assert!(sum / texts.len() as f32 >= 0.995, "int8 mean cosine {}", sum / texts.len() as f32);
    assert!(worst >= 0.98, "int8 worst cosine {worst}");
}

/// `products()` names the path the linear layers take on this CPU: bfloat16 dot products where
/// the CPU has AVX-512 BF16 (unless `QUIVER_BF16=0`), else the f32 panels or the `gemm` crate;
/// int8 on its own kernels.
#[test]
fn reports_the_products_it_runs() {
    let float = if quiver_embed::minilm::bf16_products() {
        "bf16-dot"
    } else if quiver_kernels::panels::F32Panels::fast() {
        "f32-panels"
    } else {
        "f32-gemm"
    };
    assert_eq!(model().products(), float);
    let int8 = MiniLm::load_with(&find_model(None).unwrap(), quiver_kernels::Precision::Int8).unwrap();
    assert!(int8.products().starts_with("int8-"), "{}", int8.products());
}
