//! Points: upsert from files, get, scroll, count, delete, set-payload.

use super::{parse_ids, parse_payload, selector, spinner, Ctx, FilterArg, WithArgs};
use crate::render::{count, Message, Output, Records};
use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use quiver::{npy, Point, PointId, ScrollRequest};
use serde_json::{json, Value};
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args)]
pub struct UpsertArgs {
    /// The collection's name.
    collection: String,
    /// `.npy` (ids start at --start-id) or JSON lines: {"id":1,"vector":[..],"payload":{..}}; `-` reads JSON lines from stdin.
    #[arg(long)]
    file: PathBuf,
    /// First id for rows of a .npy file.
    #[arg(long, default_value_t = 0)]
    start_id: u64,
}

pub fn upsert(ctx: &Ctx, a: &UpsertArgs) -> Result<Box<dyn Output>> {
    let db = ctx.db()?;
    let c = db.collection(&a.collection)?;
    let t0 = Instant::now();
    let points = read_points(&a.file, a.start_id)?;
    let n = points.len();
    let read_s = t0.elapsed().as_secs_f64();
    let pb = if n >= 50_000 {
        spinner(&format!("upserting {n} points (validate, log, fsync)"))
    } else {
        ProgressBar::hidden()
    };
    let t1 = Instant::now();
    let ack = c.upsert(points)?;
    pb.finish_and_clear();
    let write_s = t1.elapsed().as_secs_f64();
    let rate = n as f64 / (read_s + write_s);
    Ok(Box::new(Message::new(
        json!({"upserted": n, "seq": ack.seq, "read_s": read_s, "write_s": write_s, "points_per_s": rate}),
        format!(
            "upserted {} into {:?} in {:.2}s ({rate:.0} points/s, durable)",
            count(n, "point"),
            a.collection,
            read_s + write_s
        ),
    )))
}

/// Reads points from JSON lines (`-`: standard input), with a byte-based progress bar for large
/// files. Each line is parsed by the library's `Point::from_json`, the same reading the server's
/// point lists get.
fn read_jsonl(path: &Path) -> Result<Vec<Point>> {
    let (reader, total): (Box<dyn Read>, u64) = if path == Path::new("-") {
        (Box::new(std::io::stdin()), 0)
    } else {
        let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        (Box::new(f), len)
    };
    let pb = if total > 8 << 20 {
        let pb = ProgressBar::new(total);
        pb.set_style(
            ProgressStyle::with_template("reading {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}").expect("valid template"),
        );
        pb
    } else {
        ProgressBar::hidden()
    };
    let mut points = Vec::new();
    let reader = std::io::BufReader::with_capacity(1 << 20, pb.wrap_read(reader));
    for (n, line) in reader.lines().enumerate() {
        let at = || format!("{} line {}", path.display(), n + 1);
        let line = line.with_context(|| format!("{}: cannot read", at()))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line).with_context(|| format!("{}: malformed JSON", at()))?;
        points.push(Point::from_json(&v).with_context(at)?);
    }
    pb.finish_and_clear();
    Ok(points)
}

fn read_points(path: &Path, start_id: u64) -> Result<Vec<Point>> {
    if path.extension().is_some_and(|e| e == "npy") {
        let m = npy::read(path)?;
        start_id
            .checked_add(m.rows as u64)
            .context("--start-id plus the row count overflows u64")?;
        Ok(m.data
            .chunks(m.cols.max(1))
            .enumerate()
            .map(|(i, row)| Point::new(start_id + i as u64, row.to_vec()))
            .collect())
    } else {
        read_jsonl(path)
    }
}

#[derive(Args)]
pub struct CountArgs {
    /// The collection's name.
    collection: String,
    #[command(flatten)]
    filter: FilterArg,
}

pub fn count_points(ctx: &Ctx, a: &CountArgs) -> Result<Box<dyn Output>> {
    let n = ctx.db()?.collection(&a.collection)?.count(a.filter.parse()?.as_ref());
    Ok(Box::new(Message::new(json!({"count": n}), count(n, "point"))))
}

#[derive(Args)]
pub struct GetArgs {
    /// The collection's name.
    collection: String,
    /// Point ids (numbers or UUIDs).
    ids: Vec<String>,
    #[command(flatten)]
    with: WithArgs,
}

pub fn get(ctx: &Ctx, a: &GetArgs) -> Result<Box<dyn Output>> {
    let records = ctx.db()?.collection(&a.collection)?.get(&parse_ids(&a.ids)?, a.with.get())?;
    Ok(Box::new(Records { records, next: None }))
}

#[derive(Args)]
pub struct DeleteArgs {
    /// The collection's name.
    collection: String,
    /// Point ids (numbers or UUIDs); or select by --filter.
    ids: Vec<String>,
    #[command(flatten)]
    filter: FilterArg,
}

pub fn delete(ctx: &Ctx, a: &DeleteArgs) -> Result<Box<dyn Output>> {
    let ack = ctx.db()?.collection(&a.collection)?.delete(&selector(&a.ids, &a.filter)?)?;
    Ok(Box::new(Message::new(
        json!({"deleted": ack.affected}),
        format!("deleted {}", count(ack.affected, "point")),
    )))
}

#[derive(Args)]
pub struct ScrollArgs {
    /// The collection's name.
    collection: String,
    /// Points per page.
    #[arg(long, default_value_t = 10)]
    limit: usize,
    /// Start at this id (the `next` value printed by the previous page).
    #[arg(long)]
    offset: Option<String>,
    #[command(flatten)]
    filter: FilterArg,
    #[command(flatten)]
    with: WithArgs,
}

pub fn scroll(ctx: &Ctx, a: &ScrollArgs) -> Result<Box<dyn Output>> {
    let offset = a.offset.as_deref().map(str::parse::<PointId>).transpose()?;
    let page = ctx.db()?.collection(&a.collection)?.scroll(&ScrollRequest {
        offset,
        limit: a.limit,
        filter: a.filter.parse()?,
        with_payload: !a.with.no_payload,
        with_vector: a.with.with_vector,
    })?;
    Ok(Box::new(Records {
        records: page.points,
        next: Some(page.next_offset),
    }))
}

#[derive(Args)]
pub struct SetPayloadArgs {
    /// The collection's name.
    collection: String,
    /// Point ids (numbers or UUIDs); or select by --filter.
    ids: Vec<String>,
    /// A JSON object; its keys are merged into each payload.
    #[arg(long)]
    payload: String,
    #[command(flatten)]
    filter: FilterArg,
}

pub fn set_payload(ctx: &Ctx, a: &SetPayloadArgs) -> Result<Box<dyn Output>> {
    let p = parse_payload(&a.payload)?;
    let ack = ctx.db()?.collection(&a.collection)?.set_payload(&selector(&a.ids, &a.filter)?, p)?;
    Ok(Box::new(Message::new(
        json!({"updated": ack.affected}),
        format!("updated {}", count(ack.affected, "point")),
    )))
}
