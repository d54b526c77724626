//! `quiver embed`: texts in, vectors out (JSON lines or a .npy matrix).

use super::{text, ModelDirArg};
use crate::render::{Many, Output};
use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use quiver::npy;
use quiver_embed::Embedder;
use serde_json::json;
use std::io::Read;
use std::path::PathBuf;

/// Texts per call to the embedder: enough to keep every core busy, small enough for a smooth
/// progress bar.
const EMBED_BATCH: usize = 64;

#[derive(Args)]
pub struct EmbedArgs {
    /// The model, by name (as on `create --model`).
    #[arg(long, default_value = quiver_embed::minilm::MODEL_NAME)]
    model: String,
    #[command(flatten)]
    model_dir: ModelDirArg,
    /// Texts, one per line (default: standard input).
    #[arg(long)]
    file: Option<PathBuf>,
    /// Write a float32 .npy matrix here instead of JSON lines on standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// JSON lines on standard output (the default without --out).
    #[arg(long, conflicts_with = "out")]
    jsonl: bool,
}

/// Embeds every line. The vectors stream to standard output as JSON lines (the output is the
/// data, so it is written here, not through the renderer), or go to a .npy file.
pub fn embed(a: &EmbedArgs) -> Result<Box<dyn Output>> {
    let m = text::load_embedder(&a.model, &a.model_dir)?;
    let input = match &a.file {
        Some(f) => std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?,
        None => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).context("cannot read standard input")?;
            s
        }
    };
    let lines: Vec<&str> = input.lines().collect();
    let pb = if lines.len() >= 256 {
        let pb = ProgressBar::new(lines.len() as u64);
        pb.set_style(ProgressStyle::with_template("embedding {bar:40} {pos}/{len} texts {per_sec} eta {eta}").expect("valid template"));
        pb
    } else {
        ProgressBar::hidden()
    };
    let mut vectors: Vec<Vec<f32>> = Vec::with_capacity(lines.len());
    for chunk in lines.chunks(EMBED_BATCH) {
        vectors.extend(m.embed(chunk)?);
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    match &a.out {
        Some(path) => {
            let flat: Vec<f32> = vectors.concat();
            npy::write(path, &npy::encode_f32(vectors.len(), m.dim(), &flat))?;
            eprintln!("wrote {} x {} vectors to {}", vectors.len(), m.dim(), path.display());
        }
        None => {
            use std::io::Write;
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            for v in &vectors {
                writeln!(w, "{}", json!(v))?;
            }
        }
    }
    Ok(Box::new(Many(Vec::new())))
}
