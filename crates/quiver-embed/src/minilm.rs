//! A BERT-style sentence embedder in pure Rust: loads a sentence-transformers model folder
//! (`config.json`, `tokenizer.json`, `model.safetensors`), tokenizes with the model's own
//! WordPiece tokenizer (Hugging Face `tokenizers`), runs the encoder, mean-pools over the tokens
//! and L2-normalises. Built for all-MiniLM-L6-v2 (6 layers, 384 dimensions, 12 heads); any BERT
//! encoder with absolute positions and GELU loads the same way.
//!
//! A batch is packed without padding: every linear layer is one matrix product over all tokens
//! of the batch, and attention runs per sequence, so no attention mask is needed and mean pooling
//! over the mask is the mean over each sequence's tokens.

use crate::{EmbedError, Embedder};
use quiver_kernels::matmul::{gemm, MatMut, MatRef, Onto, Threads};
use quiver_kernels::nn::NnKernels;
use quiver_kernels::panels::{Bf16DotPanels, Bf16Panels, F32Panels};
use quiver_kernels::qmm::Int8Weights;
pub use quiver_kernels::Precision;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// Texts are cut to this many tokens, [CLS] and [SEP] included (sentence-transformers'
/// `max_seq_length` for all-MiniLM-L6-v2).
pub const MAX_TOKENS: usize = 256;

/// The folder name of the model in Quiver's cache.
pub const MODEL_NAME: &str = "all-minilm-l6-v2";

/// A linear layer's weight. At [`Precision::Float`]: on CPUs with AVX-512 BF16, bfloat16 pairs
/// for `vdpbf16ps` ([`Bf16DotPanels`], every product; see [`bf16_products`]); elsewhere f32,
/// packed once in panels for this CPU's micro-kernel ([`F32Panels`]; plain for the `gemm` crate
/// on CPUs without one), and on the same CPUs (AVX2+FMA or AVX-512) a bfloat16 copy for products
/// over a few tokens (see [`SMALL_TOKENS`]). At [`Precision::Int8`]: the int8 codes only.
enum Weight {
    Float { f32: FloatWeight, bf16: Option<Bf16Panels> },
    Bf16Dot(Bf16DotPanels),
    Int8(Int8Weights),
}

/// The f32 weights as the CPU's product wants them.
enum FloatWeight {
    Panels(F32Panels),
    /// `out_dim x in_dim` row-major, for the `gemm` crate.
    Plain(Vec<f32>),
}

impl Weight {
    fn new(w: Vec<f32>, out_dim: usize, in_dim: usize, precision: Precision) -> Weight {
        match precision {
            Precision::Int8 => Weight::Int8(Int8Weights::pack(&w, out_dim, in_dim)),
            Precision::Float => match bf16_products().then(|| Bf16DotPanels::pack(&w, out_dim, in_dim)).flatten() {
                Some(panels) => Weight::Bf16Dot(panels),
                None => Weight::float(w, out_dim, in_dim),
            },
        }
    }

    fn float(w: Vec<f32>, out_dim: usize, in_dim: usize) -> Weight {
        Weight::Float {
            bf16: Bf16Panels::fast().then(|| Bf16Panels::pack(&w, out_dim, in_dim)).flatten(),
            f32: match F32Panels::fast().then(|| F32Panels::pack(&w, out_dim, in_dim)).flatten() {
                Some(panels) => FloatWeight::Panels(panels),
                None => FloatWeight::Plain(w),
            },
        }
    }
}

/// Whether [`Precision::Float`] computes its linear layers in bfloat16 with `vdpbf16ps`: on CPUs
/// with AVX-512 BF16 whose instruction agrees with its scalar twin, unless `QUIVER_BF16=0`
/// (for comparing with the f32 products on the same machine).
///
/// Weights and activations are rounded to bfloat16 and summed in f32, so the output moves away
/// from the reference by about as much as the bfloat16 weights of [`SMALL_TOKENS`] do: worst
/// cosine 0.99996 over the fixtures in a scalar emulation (the bar is 0.9999; the fixture test
/// checks it on such CPUs). Products run from half the bytes, with twice the multiply-adds per
/// instruction of f32 FMA.
pub fn bf16_products() -> bool {
    std::env::var("QUIVER_BF16").map_or(true, |v| v.trim() != "0") && Bf16DotPanels::fast()
}

/// Batches of at most this many tokens (a few search queries) run their linear layers on the
/// bfloat16 weights where available: such products are bound by reading the weights (42 MB in
/// f32 per pass, more than many L3 caches; 21 MB in bfloat16), and half the bytes took a 14-token
/// query from 132 to 283 per second on 2 Zen 4 cores (AVX-512), and from about 158 to 190-210 on
/// 2 Zen 3 cores (AVX2). Around 100 tokens the two paths are even, so the cut is at 64. Only the
/// weights are rounded (activations and sums stay f32): worst cosine with the reference
/// embeddings 0.99998.
pub const SMALL_TOKENS: usize = 64;

struct Layer {
    /// The query, key and value weights stacked (`3h x h`), so that one product makes all three.
    qkv_w: Weight,
    qkv_b: Vec<f32>,
    o_w: Weight,
    o_b: Vec<f32>,
    ln1_g: Vec<f32>,
    ln1_b: Vec<f32>,
    i_w: Weight,
    i_b: Vec<f32>,
    out_w: Weight,
    out_b: Vec<f32>,
    ln2_g: Vec<f32>,
    ln2_b: Vec<f32>,
}

/// The transformer embedder.
pub struct MiniLm {
    tokenizer: tokenizers::Tokenizer,
    hidden: usize,
    heads: usize,
    intermediate: usize,
    eps: f32,
    max_positions: usize,
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    ln_g: Vec<f32>,
    ln_b: Vec<f32>,
    layers: Vec<Layer>,
    dir: PathBuf,
    precision: Precision,
    /// Working buffers of the last call small enough to keep ([`Scratch`]).
    scratch: std::sync::Mutex<Option<Scratch>>,
}

/// The working matrices of one call of [`MiniLm::encode_packed`] (Q/K/V, attention context,
/// the attention block's output, the feed-forward intermediate and output). A call takes them
/// from the model and gives them back, so that embedding batch after batch writes into pages
/// already mapped instead of faulting in fresh zeroed ones (about 54,000 page faults for 1,024
/// short sentences in batches of 64). Every element a call reads it has written first.
#[derive(Default)]
struct Scratch {
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    attn: Vec<f32>,
    inter: Vec<f32>,
    ffn: Vec<f32>,
}

impl Scratch {
    /// Buffers larger than this (in floats, 64 MB) go back to the allocator after the call: a
    /// batch of passages needs about 130 MB, which a long-lived server should not keep.
    const KEEP_MAX: usize = 16 << 20;

    fn floats(&self) -> usize {
        self.qkv.capacity() + self.ctx.capacity() + self.attn.capacity() + self.inter.capacity() + self.ffn.capacity()
    }
}

fn bad_model(dir: &Path, what: impl std::fmt::Display) -> EmbedError {
    EmbedError::Model(format!("{}: {what}", dir.display()))
}

/// Where to look for the model, in order: an explicit folder, `QUIVER_MODEL_DIR`, Quiver's cache
/// (`$QUIVER_CACHE_DIR`, else `$XDG_CACHE_HOME/quiver`, else `~/.cache/quiver`, then
/// `models/all-minilm-l6-v2`), and a Hugging Face cache
/// (`~/.cache/huggingface/hub/models--sentence-transformers--all-MiniLM-L6-v2/snapshots/*`).
pub fn find_model(explicit: Option<&Path>) -> Result<PathBuf, EmbedError> {
    let mut tried = Vec::new();
    let usable = |p: &Path| p.join("model.safetensors").is_file() && p.join("tokenizer.json").is_file() && p.join("config.json").is_file();
    if let Some(p) = explicit {
        if usable(p) {
            return Ok(p.to_path_buf());
        }
        return Err(EmbedError::ModelNotFound(format!(
            "--model-dir {} does not hold config.json, tokenizer.json and model.safetensors",
            p.display()
        )));
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("QUIVER_MODEL_DIR") {
        candidates.push(PathBuf::from(p));
    }
    candidates.push(cache_dir().join("models").join(MODEL_NAME));
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let hf_home = std::env::var_os("HF_HOME")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".cache/huggingface")));
    if let Some(hf) = hf_home {
        let snapshots = hf.join("hub/models--sentence-transformers--all-MiniLM-L6-v2/snapshots");
        if let Ok(entries) = std::fs::read_dir(&snapshots) {
            let mut snaps: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            snaps.sort();
            candidates.extend(snaps);
        } else {
            candidates.push(snapshots);
        }
    }
    for c in candidates {
        if usable(&c) {
            return Ok(c);
        }
        tried.push(c.display().to_string());
    }
    Err(EmbedError::ModelNotFound(format!(
        "all-MiniLM-L6-v2 not found (looked in: {}). Fetch it with `quiver model pull` (into Quiver's cache), \
         or pass --model-dir DIR / set QUIVER_MODEL_DIR to a sentence-transformers folder",
        tried.join(", ")
    )))
}

/// Quiver's cache folder.
pub fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("QUIVER_CACHE_DIR") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(p).join("quiver");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache/quiver")
}

fn tensor(st: &safetensors::SafeTensors<'_>, dir: &Path, name: &str, shape: &[usize]) -> Result<Vec<f32>, EmbedError> {
    let t = st
        .tensor(name)
        .or_else(|_| st.tensor(&format!("bert.{name}")))
        .map_err(|_| bad_model(dir, format!("missing tensor {name}")))?;
    if t.dtype() != safetensors::Dtype::F32 {
        return Err(bad_model(dir, format!("tensor {name} is {:?}, expected F32", t.dtype())));
    }
    if t.shape() != shape {
        return Err(bad_model(
            dir,
            format!("tensor {name} has shape {:?}, expected {shape:?}", t.shape()),
        ));
    }
    Ok(t.data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn config_usize(cfg: &serde_json::Value, dir: &Path, key: &str) -> Result<usize, EmbedError> {
    cfg.get(key)
        .and_then(|v| v.as_u64())
        .map(|v| v as usize)
        .ok_or_else(|| bad_model(dir, format!("config.json lacks {key}")))
}

impl MiniLm {
    /// Loads a sentence-transformers folder at the default precision.
    pub fn load(dir: &Path) -> Result<MiniLm, EmbedError> {
        MiniLm::load_with(dir, Precision::Float)
    }

    /// Loads a sentence-transformers folder; `precision` chooses how its linear layers compute
    /// (the weights are quantized here, once).
    pub fn load_with(dir: &Path, precision: Precision) -> Result<MiniLm, EmbedError> {
        let cfg_text = std::fs::read_to_string(dir.join("config.json")).map_err(|e| bad_model(dir, format!("config.json: {e}")))?;
        let cfg: serde_json::Value = serde_json::from_str(&cfg_text).map_err(|e| bad_model(dir, format!("config.json: {e}")))?;
        let hidden = config_usize(&cfg, dir, "hidden_size")?;
        let heads = config_usize(&cfg, dir, "num_attention_heads")?;
        let n_layers = config_usize(&cfg, dir, "num_hidden_layers")?;
        let intermediate = config_usize(&cfg, dir, "intermediate_size")?;
        let vocab = config_usize(&cfg, dir, "vocab_size")?;
        let max_positions = config_usize(&cfg, dir, "max_position_embeddings")?;
        let type_vocab = config_usize(&cfg, dir, "type_vocab_size")?;
        let eps = cfg.get("layer_norm_eps").and_then(|v| v.as_f64()).unwrap_or(1e-12) as f32;
        if cfg.get("hidden_act").and_then(|v| v.as_str()).is_some_and(|a| a != "gelu") {
            return Err(bad_model(dir, "only hidden_act = gelu is supported"));
        }
        if heads == 0 || hidden % heads != 0 {
            return Err(bad_model(dir, "hidden_size must be a multiple of num_attention_heads"));
        }
        let mut tokenizer =
            tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| bad_model(dir, format!("tokenizer.json: {e}")))?;
        let max_tokens = MAX_TOKENS.min(max_positions);
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: max_tokens,
                ..Default::default()
            }))
            .map_err(|e| bad_model(dir, format!("tokenizer truncation: {e}")))?;
        tokenizer.with_padding(None);
        let bytes = std::fs::read(dir.join("model.safetensors")).map_err(|e| bad_model(dir, format!("model.safetensors: {e}")))?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad_model(dir, format!("model.safetensors: {e}")))?;
        let h = hidden;
        let mut layers = Vec::with_capacity(n_layers);
        for i in 0..n_layers {
            let p = |s: &str| format!("encoder.layer.{i}.{s}");
            let mut qkv_w = tensor(&st, dir, &p("attention.self.query.weight"), &[h, h])?;
            qkv_w.extend(tensor(&st, dir, &p("attention.self.key.weight"), &[h, h])?);
            qkv_w.extend(tensor(&st, dir, &p("attention.self.value.weight"), &[h, h])?);
            let mut qkv_b = tensor(&st, dir, &p("attention.self.query.bias"), &[h])?;
            qkv_b.extend(tensor(&st, dir, &p("attention.self.key.bias"), &[h])?);
            qkv_b.extend(tensor(&st, dir, &p("attention.self.value.bias"), &[h])?);
            layers.push(Layer {
                qkv_w: Weight::new(qkv_w, 3 * h, h, precision),
                qkv_b,
                o_w: Weight::new(tensor(&st, dir, &p("attention.output.dense.weight"), &[h, h])?, h, h, precision),
                o_b: tensor(&st, dir, &p("attention.output.dense.bias"), &[h])?,
                ln1_g: tensor(&st, dir, &p("attention.output.LayerNorm.weight"), &[h])?,
                ln1_b: tensor(&st, dir, &p("attention.output.LayerNorm.bias"), &[h])?,
                i_w: Weight::new(
                    tensor(&st, dir, &p("intermediate.dense.weight"), &[intermediate, h])?,
                    intermediate,
                    h,
                    precision,
                ),
                i_b: tensor(&st, dir, &p("intermediate.dense.bias"), &[intermediate])?,
                out_w: Weight::new(
                    tensor(&st, dir, &p("output.dense.weight"), &[h, intermediate])?,
                    h,
                    intermediate,
                    precision,
                ),
                out_b: tensor(&st, dir, &p("output.dense.bias"), &[h])?,
                ln2_g: tensor(&st, dir, &p("output.LayerNorm.weight"), &[h])?,
                ln2_b: tensor(&st, dir, &p("output.LayerNorm.bias"), &[h])?,
            });
        }
        Ok(MiniLm {
            word: tensor(&st, dir, "embeddings.word_embeddings.weight", &[vocab, h])?,
            position: tensor(&st, dir, "embeddings.position_embeddings.weight", &[max_positions, h])?,
            token_type: tensor(&st, dir, "embeddings.token_type_embeddings.weight", &[type_vocab, h])?,
            ln_g: tensor(&st, dir, "embeddings.LayerNorm.weight", &[h])?,
            ln_b: tensor(&st, dir, "embeddings.LayerNorm.bias", &[h])?,
            tokenizer,
            hidden,
            heads,
            intermediate,
            eps,
            max_positions,
            layers,
            dir: dir.to_path_buf(),
            precision,
            scratch: std::sync::Mutex::new(None),
        })
    }

    /// Encoder layers.
    pub fn layers(&self) -> usize {
        self.layers.len()
    }

    /// How the linear layers compute.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The linear layers' products on this CPU, for reports: `bf16-dot` (AVX-512 BF16),
    /// `f32-panels` (AVX2 or AVX-512, bfloat16 weights for a few tokens), `f32-gemm`, or
    /// `int8-vnni` / `int8-avx2` / `int8-scalar`.
    pub fn products(&self) -> &'static str {
        match self.layers.first().map(|l| &l.qkv_w) {
            Some(Weight::Bf16Dot(_)) => "bf16-dot",
            Some(Weight::Float {
                f32: FloatWeight::Panels(_),
                ..
            }) => "f32-panels",
            Some(Weight::Float {
                f32: FloatWeight::Plain(_),
                ..
            })
            | None => "f32-gemm",
            Some(Weight::Int8(_)) => match quiver_kernels::qmm::QmmPath::best() {
                quiver_kernels::qmm::QmmPath::Avx512Vnni => "int8-vnni",
                quiver_kernels::qmm::QmmPath::Avx2 => "int8-avx2",
                quiver_kernels::qmm::QmmPath::Scalar => "int8-scalar",
            },
        }
    }

    /// The folder the model was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Token strings and ids of one text, [CLS] and [SEP] included, after truncation.
    pub fn tokenize(&self, text: &str) -> Result<(Vec<String>, Vec<u32>), EmbedError> {
        let enc = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| EmbedError::Model(format!("tokenizer: {e}")))?;
        Ok((enc.get_tokens().to_vec(), enc.get_ids().to_vec()))
    }

    /// The token embeddings after the last layer for a batch of token-id sequences, packed:
    /// `sum(len) x hidden` row-major, sequences one after the other.
    ///
    /// Packing without padding keeps the attention exact (no mask needed) and lets every linear
    /// layer run as one large matrix product over all tokens of the batch, split across threads;
    /// attention runs per (sequence, head) in parallel.
    pub fn encode_packed(&self, seqs: &[Vec<u32>]) -> Result<Vec<f32>, EmbedError> {
        let h = self.hidden;
        let vocab = self.word.len() / h;
        let mut starts = Vec::with_capacity(seqs.len() + 1);
        let mut total = 0usize;
        for ids in seqs {
            if ids.is_empty() || ids.len() > self.max_positions {
                return Err(EmbedError::Model(format!(
                    "{} tokens: must be 1..={}",
                    ids.len(),
                    self.max_positions
                )));
            }
            starts.push(total);
            total += ids.len();
        }
        starts.push(total);
        let mut x = vec![0.0f32; total * h];
        for (s, ids) in seqs.iter().enumerate() {
            for (t, &id) in ids.iter().enumerate() {
                let id = id as usize;
                if id >= vocab {
                    return Err(EmbedError::Model(format!("token id {id} outside the vocabulary of {vocab}")));
                }
                let row = &mut x[(starts[s] + t) * h..(starts[s] + t + 1) * h];
                for (j, v) in row.iter_mut().enumerate() {
                    *v = self.word[id * h + j] + self.position[t * h + j] + self.token_type[j];
                }
            }
        }
        let nn = NnKernels::best();
        layer_norm(nn, &mut x, h, &self.ln_g, &self.ln_b, self.eps);
        let hd = h / self.heads;
        let scale = 1.0 / (hd as f32).sqrt();
        // A poisoned lock only means another call panicked; the buffers hold no state.
        let mut scratch = self.scratch.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_default();
        let Scratch {
            qkv,
            ctx,
            attn,
            inter,
            ffn,
        } = &mut scratch;
        qkv.resize(total * 3 * h, 0.0);
        ctx.resize(total * h, 0.0);
        attn.resize(total * h, 0.0);
        inter.resize(total * self.intermediate, 0.0);
        ffn.resize(total * h, 0.0);
        for l in &self.layers {
            // Q, K and V of every token in one product: row t is [q_t | k_t | v_t].
            linear(&x, None, total, h, &l.qkv_w, &l.qkv_b, 3 * h, &mut qkv[..]);
            // One task per sequence; each writes only its own rows of `ctx`. Heads are strided
            // views into `qkv` and `ctx`, so nothing is copied.
            let mut ctx_parts: Vec<&mut [f32]> = Vec::with_capacity(seqs.len());
            let mut rest: &mut [f32] = &mut ctx[..];
            for s in 0..seqs.len() {
                let (part, tail) = rest.split_at_mut((starts[s + 1] - starts[s]) * h);
                ctx_parts.push(part);
                rest = tail;
            }
            let qkv = &qkv[..];
            ctx_parts.into_par_iter().enumerate().for_each(|(s, out)| {
                let (lo, n) = (starts[s], starts[s + 1] - starts[s]);
                let rows = &qkv[lo * 3 * h..(lo + n) * 3 * h];
                let mut scores = vec![0.0; n * n];
                for head in 0..self.heads {
                    let q = MatRef::strided(&rows[head * hd..], n, hd, 3 * h, 1);
                    let k = MatRef::strided(&rows[h + head * hd..], n, hd, 3 * h, 1);
                    let v = MatRef::strided(&rows[2 * h + head * hd..], n, hd, 3 * h, 1);
                    gemm(Threads::One, MatMut::row_major(&mut scores, n, n), false, q, k.t());
                    for row in scores.chunks_exact_mut(n) {
                        nn.softmax(row, scale);
                    }
                    let dst = MatMut::strided(&mut out[head * hd..], n, hd, h);
                    gemm(Threads::One, dst, false, MatRef::row_major(&scores, n, n), v);
                }
            });
            // attn = LayerNorm(x + ctx Wo^T + bo)
            linear(ctx, Some(&x), total, h, &l.o_w, &l.o_b, h, &mut attn[..]);
            layer_norm(nn, &mut attn[..], h, &l.ln1_g, &l.ln1_b, self.eps);
            linear(attn, None, total, h, &l.i_w, &l.i_b, self.intermediate, &mut inter[..]);
            inter.par_chunks_mut(16 * 1024).for_each(|c| nn.gelu(c));
            // x = LayerNorm(attn + GELU(...) Wout^T + bout)
            linear(inter, Some(attn), total, self.intermediate, &l.out_w, &l.out_b, h, &mut ffn[..]);
            layer_norm(nn, ffn, h, &l.ln2_g, &l.ln2_b, self.eps);
            std::mem::swap(&mut x, ffn);
        }
        if scratch.floats() <= Scratch::KEEP_MAX {
            *self.scratch.lock().unwrap_or_else(|e| e.into_inner()) = Some(scratch);
        }
        Ok(x)
    }

    /// The token embeddings after the last layer, `n x hidden` row-major, for one sequence.
    pub fn encode_ids(&self, ids: &[u32]) -> Result<Vec<f32>, EmbedError> {
        self.encode_packed(&[ids.to_vec()])
    }

    /// One normalised sentence embedding: mean over the tokens, then L2 normalisation.
    pub fn embed_one(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let (_, ids) = self.tokenize(text)?;
        let tokens = self.encode_ids(&ids)?;
        Ok(pool(&tokens, self.hidden))
    }
}

/// Mean over the rows of an `n x hidden` matrix (mean pooling, before normalisation).
pub fn mean_rows(tokens: &[f32], hidden: usize) -> Vec<f32> {
    let n = (tokens.len() / hidden).max(1);
    let mut out = vec![0.0f32; hidden];
    for row in tokens.chunks(hidden) {
        for (o, v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
    out.iter_mut().for_each(|o| *o /= n as f32);
    out
}

/// Mean over the rows of an `n x hidden` matrix, L2-normalised: the sentence embedding.
pub fn pool(tokens: &[f32], hidden: usize) -> Vec<f32> {
    let mut out = mean_rows(tokens, hidden);
    quiver_kernels::normalize(&mut out);
    out
}

/// `out = (b + residual) + x W^T` for `n` rows, as one product on every core. The packed
/// products add the bias and the residual as they store each tile of outputs; the `gemm` crate
/// accumulates onto them written into `out` first (the same sums in the same order).
#[allow(clippy::too_many_arguments)]
fn linear(x: &[f32], residual: Option<&[f32]>, n: usize, in_dim: usize, w: &Weight, b: &[f32], out_dim: usize, out: &mut [f32]) {
    let out = &mut out[..n * out_dim];
    let (x, residual) = (&x[..n * in_dim], residual.map(|r| &r[..n * out_dim]));
    let onto = Onto::Bias { bias: b, residual };
    let (f32, bf16) = match w {
        Weight::Int8(q) => return q.matmul(x, n, out, onto),
        Weight::Bf16Dot(panels) => return panels.matmul(x, n, out, onto),
        Weight::Float { f32, bf16 } => (f32, bf16),
    };
    if let (true, Some(panels)) = (n <= SMALL_TOKENS, bf16) {
        return panels.matmul(x, n, out, onto);
    }
    let w = match f32 {
        FloatWeight::Panels(panels) => return panels.matmul(x, n, out, onto),
        FloatWeight::Plain(w) => MatRef::row_major(w, out_dim, in_dim),
    };
    const BLOCK: usize = 64;
    match residual {
        Some(r) => out
            .par_chunks_mut(out_dim * BLOCK)
            .zip(r.par_chunks(out_dim * BLOCK))
            .for_each(|(block, rblock)| {
                for (row, rrow) in block.chunks_exact_mut(out_dim).zip(rblock.chunks_exact(out_dim)) {
                    for ((o, &bias), &rv) in row.iter_mut().zip(b).zip(rrow) {
                        *o = bias + rv;
                    }
                }
            }),
        None => out.par_chunks_mut(out_dim * BLOCK).for_each(|block| {
            for row in block.chunks_exact_mut(out_dim) {
                row.copy_from_slice(b);
            }
        }),
    }
    gemm(
        Threads::All,
        MatMut::row_major(out, n, out_dim),
        true,
        MatRef::row_major(x, n, in_dim),
        w.t(),
    );
}

/// Layer normalisation of each `h`-wide row, blocks of rows on every core.
fn layer_norm(nn: NnKernels, x: &mut [f32], h: usize, g: &[f32], b: &[f32], eps: f32) {
    x.par_chunks_mut(h * 64).for_each(|block| nn.layer_norm(block, h, g, b, eps));
}

impl Embedder for MiniLm {
    fn dim(&self) -> usize {
        self.hidden
    }

    /// Embeds a batch as one packed forward pass (see [`MiniLm::encode_packed`]), in input order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let seqs: Vec<Vec<u32>> = texts
            .par_iter()
            .map(|t| self.tokenize(t).map(|(_, ids)| ids))
            .collect::<Result<_, _>>()?;
        let packed = self.encode_packed(&seqs)?;
        let mut out = Vec::with_capacity(seqs.len());
        let mut row = 0;
        for ids in &seqs {
            out.push(pool(&packed[row * self.hidden..(row + ids.len()) * self.hidden], self.hidden));
            row += ids.len();
        }
        Ok(out)
    }
}
