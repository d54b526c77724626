//! The byte encodings of the `quiver` crate: write-ahead log operations, segment files and the
//! manifest (their layouts are drawn in `docs/format.md`). All explicit little-endian through
//! `quiver_storage::codec`; payloads are stored as compact JSON text inside those frames.
//!
//! Pair assertions (TigerBeetle's habit): dimensions and counts are checked when written and
//! again when read; a mismatch on read is a corruption error naming the file.

use crate::error::Result;
use crate::payload_index::PayloadIndexType;
use crate::types::{CollectionConfig, Durability, EmbedPrecision, IndexConfig, Metric, Payload, Point, PointId, Quantization};
use crate::vector_model::{DenseParams, NamedVectors, SparseParams, SparseVector, VectorData, VectorSchema};
use quiver_storage::codec::{DecodeError, Decoder, Encoder};
use quiver_storage::{blob, StorageError};
use std::path::Path;

pub const MANIFEST_MAGIC: &[u8; 8] = b"QVMANIF1";
pub const MANIFEST_FORMAT: u32 = 1;
/// Upserts are split into WAL records of about this size (one transaction, many records).
pub const WAL_RECORD_TARGET_BYTES: usize = 16 << 20;

const _: () = assert!(WAL_RECORD_TARGET_BYTES < quiver_storage::wal::WAL_RECORD_BYTES_MAX / 2);

/// One logged change. Filters are resolved to ids before logging, so replay is deterministic.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Vectors are stored as given here (already normalised for cosine).
    Upsert(Vec<Point>),
    Delete(Vec<PointId>),
    /// Merges the keys into each point's payload.
    SetPayload {
        ids: Vec<PointId>,
        payload: Payload,
    },
    /// Replaces each point's payload.
    OverwritePayload {
        ids: Vec<PointId>,
        payload: Payload,
    },
    DeletePayloadKeys {
        ids: Vec<PointId>,
        keys: Vec<String>,
    },
    ClearPayload {
        ids: Vec<PointId>,
    },
}

const OP_UPSERT: u8 = 1;
const OP_DELETE: u8 = 2;
const OP_SET_PAYLOAD: u8 = 3;
const OP_OVERWRITE_PAYLOAD: u8 = 4;
const OP_DELETE_PAYLOAD_KEYS: u8 = 5;
const OP_CLEAR_PAYLOAD: u8 = 6;
/// An upsert whose points may lack the main vector or carry named vectors (format 2).
const OP_UPSERT_NAMED: u8 = 7;

/// The vector schema's version in the manifest's sixth section.
pub const VECTOR_SCHEMA_FORMAT: u32 = 2;

const KIND_DENSE: u8 = 0;
const KIND_MULTI: u8 = 1;
const KIND_SPARSE: u8 = 2;

fn len_u32(n: usize) -> u32 {
    u32::try_from(n).expect("lengths are bounded by the vector limits")
}

/// Named vectors: a count, then per vector its name, kind and values.
pub(crate) fn put_named(e: &mut Encoder, named: Option<&NamedVectors>) {
    let Some(named) = named else {
        e.u32(0);
        return;
    };
    e.u32(len_u32(named.len()));
    for (name, v) in named {
        e.bytes(name.as_bytes());
        match v {
            VectorData::Dense(x) => {
                e.u8(KIND_DENSE);
                e.u32(len_u32(x.len()));
                e.f32s(x);
            }
            VectorData::Multi(rows) => {
                e.u8(KIND_MULTI);
                e.u32(len_u32(rows.len()));
                e.u32(len_u32(rows.first().map_or(0, Vec::len)));
                for r in rows {
                    e.f32s(r);
                }
            }
            VectorData::Sparse(sv) => {
                e.u8(KIND_SPARSE);
                e.u32(len_u32(sv.indices.len()));
                for i in &sv.indices {
                    e.u32(*i);
                }
                e.f32s(&sv.values);
            }
        }
    }
}

pub(crate) fn get_named(d: &mut Decoder<'_>) -> Result<Option<NamedVectors>, DecodeError> {
    let n = d.u32()? as usize;
    if n > d.remaining() / 9 {
        return Err(d.error(format!("{n} named vectors cannot fit in {} bytes", d.remaining())));
    }
    let mut out = NamedVectors::new();
    for _ in 0..n {
        let name = String::from_utf8(d.bytes()?.to_vec()).map_err(|_| d.error("vector name is not UTF-8"))?;
        let fits = |d: &Decoder<'_>, count: usize, each: usize| {
            if count.checked_mul(each).is_none_or(|b| b > d.remaining()) {
                Err(d.error(format!("{count} values cannot fit in {} bytes", d.remaining())))
            } else {
                Ok(())
            }
        };
        let v = match d.u8()? {
            KIND_DENSE => {
                let len = d.u32()? as usize;
                fits(d, len, 4)?;
                let mut x = Vec::with_capacity(len);
                d.f32s_into(len, &mut x)?;
                VectorData::Dense(x)
            }
            KIND_MULTI => {
                let (rows, dim) = (d.u32()? as usize, d.u32()? as usize);
                fits(d, rows.saturating_mul(dim), 4)?;
                let mut out = Vec::with_capacity(rows);
                for _ in 0..rows {
                    let mut r = Vec::with_capacity(dim);
                    d.f32s_into(dim, &mut r)?;
                    out.push(r);
                }
                VectorData::Multi(out)
            }
            KIND_SPARSE => {
                let nnz = d.u32()? as usize;
                fits(d, nnz, 8)?;
                let indices = (0..nnz).map(|_| d.u32()).collect::<Result<Vec<u32>, _>>()?;
                let mut values = Vec::with_capacity(nnz);
                d.f32s_into(nnz, &mut values)?;
                if !indices.windows(2).all(|w| w[0] < w[1]) {
                    return Err(d.error(format!("sparse vector {name:?} has unsorted indices")));
                }
                VectorData::Sparse(SparseVector { indices, values })
            }
            k => return Err(d.error(format!("unknown vector kind {k}"))),
        };
        out.insert(name, v);
    }
    Ok((!out.is_empty()).then_some(out))
}

/// True when an upsert needs the named form (a point without the main vector or with others).
fn needs_named(points: &[Point]) -> bool {
    points.iter().any(|p| p.vector.is_empty() || !p.vectors.is_empty())
}

const ID_NUM: u8 = 0;
const ID_UUID: u8 = 1;

pub fn put_id(e: &mut Encoder, id: &PointId) {
    match id {
        PointId::Num(n) => {
            e.u8(ID_NUM);
            e.u64(*n);
        }
        PointId::Uuid(u) => {
            e.u8(ID_UUID);
            e.raw(u.as_bytes());
        }
    }
}

pub fn get_id(d: &mut Decoder<'_>) -> Result<PointId, DecodeError> {
    match d.u8()? {
        ID_NUM => Ok(PointId::Num(d.u64()?)),
        ID_UUID => Ok(PointId::Uuid(uuid::Uuid::from_bytes(d.take(16)?.try_into().expect("16 bytes")))),
        tag => Err(d.error(format!("unknown id tag {tag}"))),
    }
}

fn put_ids(e: &mut Encoder, ids: &[PointId]) {
    e.u32(u32::try_from(ids.len()).expect("id lists are bounded by BATCH_POINTS_MAX"));
    for id in ids {
        put_id(e, id);
    }
}

fn get_ids(d: &mut Decoder<'_>) -> Result<Vec<PointId>, DecodeError> {
    let n = d.u32()? as usize;
    // Each id takes at least 9 bytes: refuse counts the data cannot hold before allocating.
    if n > d.remaining() / 9 {
        return Err(d.error(format!("{n} ids cannot fit in {} bytes", d.remaining())));
    }
    (0..n).map(|_| get_id(d)).collect()
}

pub fn payload_bytes(p: Option<&Payload>) -> Vec<u8> {
    match p {
        Some(map) => serde_json::to_vec(map).expect("a JSON map always serialises"),
        None => Vec::new(),
    }
}

pub(crate) fn get_payload(d: &mut Decoder<'_>) -> Result<Option<Payload>, DecodeError> {
    let bytes = d.bytes()?;
    if bytes.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice::<Payload>(bytes)
        .map(Some)
        .map_err(|e| d.error(format!("payload is not a JSON object: {e}")))
}

fn put_payload(e: &mut Encoder, p: &Payload) {
    e.bytes(&serde_json::to_vec(p).expect("a JSON map always serialises"));
}

/// Encodes an operation as one or more WAL records (only upserts are ever split).
pub fn encode_op(op: &Op, dim: usize) -> Vec<Vec<u8>> {
    let mut e = Encoder::new();
    match op {
        Op::Upsert(points) => {
            let mut records = Vec::new();
            let mut start = 0;
            while start < points.len() || records.is_empty() {
                let mut e = Encoder::with_capacity(WAL_RECORD_TARGET_BYTES.min(points.len() * (dim * 4 + 16) + 8));
                let named = needs_named(points);
                e.u8(if named { OP_UPSERT_NAMED } else { OP_UPSERT });
                let count_at = e.len();
                e.u32(0);
                let mut n = 0u32;
                while start < points.len() && (n == 0 || e.len() < WAL_RECORD_TARGET_BYTES) {
                    let p = &points[start];
                    debug_assert!(p.vector.is_empty() || p.vector.len() == dim);
                    put_id(&mut e, &p.id);
                    if named {
                        e.u8(!p.vector.is_empty() as u8);
                    }
                    e.f32s(&p.vector);
                    e.bytes(&payload_bytes(p.payload.as_ref()));
                    if named {
                        put_named(&mut e, (!p.vectors.is_empty()).then_some(&p.vectors));
                    }
                    n += 1;
                    start += 1;
                }
                e.buf[count_at..count_at + 4].copy_from_slice(&n.to_le_bytes());
                records.push(e.buf);
            }
            return records;
        }
        Op::Delete(ids) => {
            e.u8(OP_DELETE);
            put_ids(&mut e, ids);
        }
        Op::SetPayload { ids, payload } => {
            e.u8(OP_SET_PAYLOAD);
            put_ids(&mut e, ids);
            put_payload(&mut e, payload);
        }
        Op::OverwritePayload { ids, payload } => {
            e.u8(OP_OVERWRITE_PAYLOAD);
            put_ids(&mut e, ids);
            put_payload(&mut e, payload);
        }
        Op::DeletePayloadKeys { ids, keys } => {
            e.u8(OP_DELETE_PAYLOAD_KEYS);
            put_ids(&mut e, ids);
            e.u32(keys.len() as u32);
            for k in keys {
                e.bytes(k.as_bytes());
            }
        }
        Op::ClearPayload { ids } => {
            e.u8(OP_CLEAR_PAYLOAD);
            put_ids(&mut e, ids);
        }
    }
    vec![e.buf]
}

/// Decodes one WAL record back into an operation.
pub fn decode_op(record: &[u8], dim: usize) -> Result<Op, DecodeError> {
    let mut d = Decoder::new(record);
    let op = match d.u8()? {
        OP_UPSERT => {
            let n = d.u32()? as usize;
            if n > d.remaining() / (dim * 4 + 9) {
                return Err(d.error(format!("{n} points of dimension {dim} cannot fit in {} bytes", d.remaining())));
            }
            let mut points = Vec::with_capacity(n);
            for _ in 0..n {
                let id = get_id(&mut d)?;
                let mut vector = Vec::with_capacity(dim);
                d.f32s_into(dim, &mut vector)?;
                let payload = get_payload(&mut d)?;
                points.push(Point {
                    id,
                    vector,
                    vectors: NamedVectors::new(),
                    payload,
                });
            }
            Op::Upsert(points)
        }
        OP_UPSERT_NAMED => {
            let n = d.u32()? as usize;
            if n > d.remaining() / 14 {
                return Err(d.error(format!("{n} points cannot fit in {} bytes", d.remaining())));
            }
            let mut points = Vec::with_capacity(n);
            for _ in 0..n {
                let id = get_id(&mut d)?;
                let mut vector = Vec::new();
                match d.u8()? {
                    0 => {}
                    1 => d.f32s_into(dim, &mut vector)?,
                    t => return Err(d.error(format!("unknown main-vector flag {t}"))),
                }
                let payload = get_payload(&mut d)?;
                let vectors = get_named(&mut d)?.unwrap_or_default();
                points.push(Point {
                    id,
                    vector,
                    vectors,
                    payload,
                });
            }
            Op::Upsert(points)
        }
        OP_DELETE => Op::Delete(get_ids(&mut d)?),
        OP_SET_PAYLOAD => {
            let ids = get_ids(&mut d)?;
            let payload = get_payload(&mut d)?.unwrap_or_default();
            Op::SetPayload { ids, payload }
        }
        OP_OVERWRITE_PAYLOAD => {
            let ids = get_ids(&mut d)?;
            let payload = get_payload(&mut d)?.unwrap_or_default();
            Op::OverwritePayload { ids, payload }
        }
        OP_DELETE_PAYLOAD_KEYS => {
            let ids = get_ids(&mut d)?;
            let n = d.u32()? as usize;
            if n > d.remaining() / 4 {
                return Err(d.error("key count exceeds the record"));
            }
            let mut keys = Vec::with_capacity(n);
            for _ in 0..n {
                let b = d.bytes()?;
                keys.push(String::from_utf8(b.to_vec()).map_err(|_| d.error("key is not UTF-8"))?);
            }
            Op::DeletePayloadKeys { ids, keys }
        }
        OP_CLEAR_PAYLOAD => Op::ClearPayload { ids: get_ids(&mut d)? },
        tag => return Err(d.error(format!("unknown operation tag {tag}"))),
    };
    d.finish()?;
    Ok(op)
}

fn corrupt(path: &Path, e: DecodeError, section: &str) -> StorageError {
    StorageError::corrupt(path, e.offset as u64, format!("{section}: {}", e.reason))
}

/// What the manifest names: the configuration, the live segments in apply order, how far the
/// segments reach in the WAL, and the payload index schema.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    pub config: CollectionConfig,
    /// Every WAL transaction with a sequence number up to this one is inside the segments.
    pub flushed_seq: u64,
    /// The number the next segment file gets.
    pub next_segment_no: u64,
    pub segments: Vec<u64>,
    pub indexes: Vec<(String, PayloadIndexType)>,
}

pub fn encode_manifest(m: &Manifest) -> Vec<u8> {
    let mut c = Encoder::new();
    c.u32(MANIFEST_FORMAT);
    c.u32(m.config.dim as u32);
    c.u8(m.config.metric.code());
    match m.config.durability {
        Durability::Immediate => {
            c.u8(0);
            c.u32(0);
        }
        Durability::Periodic { interval_ms } => {
            c.u8(1);
            c.u32(interval_ms);
        }
    }
    let mut s = Encoder::new();
    s.u64(m.flushed_seq);
    s.u64(m.next_segment_no);
    s.u32(m.segments.len() as u32);
    for no in &m.segments {
        s.u64(*no);
    }
    let mut x = Encoder::new();
    x.u32(m.indexes.len() as u32);
    for (key, kind) in &m.indexes {
        x.u8(kind.code());
        x.bytes(key.as_bytes());
    }
    let mut e = Encoder::new();
    e.bytes(m.config.embedder.as_deref().unwrap_or("").as_bytes());
    // The precision follows the name only when it is not the default, so that a manifest of a
    // default text collection stays readable by versions from before precisions.
    if m.config.embed_precision != EmbedPrecision::Float {
        e.bytes(m.config.embed_precision.name().as_bytes());
    }
    let ix = &m.config.index;
    let mut i = Encoder::new();
    i.u8(ix.enabled as u8);
    i.u32(ix.m as u32);
    i.u32(ix.ef_construct as u32);
    i.u32(ix.ef as u32);
    i.u64(ix.full_scan_threshold as u64);
    i.bytes(ix.quantization.name().as_bytes());
    i.u32(ix.target_recall.to_bits());
    // Only when set, so that a default manifest stays readable by versions from before it.
    if ix.build_threads != 0 {
        i.u32(ix.build_threads as u32);
    }
    if m.config.vectors.is_plain() {
        return blob::encode(MANIFEST_MAGIC, &[&c.buf, &s.buf, &x.buf, &e.buf, &i.buf]);
    }
    let v = &m.config.vectors;
    let mut n = Encoder::new();
    n.u32(VECTOR_SCHEMA_FORMAT);
    n.bytes(v.main.as_bytes());
    n.u32(len_u32(v.dense.len()));
    for (name, p) in &v.dense {
        n.bytes(name.as_bytes());
        n.u32(len_u32(p.dim));
        n.u8(p.metric.code());
        n.u8(p.multivector as u8);
    }
    n.u32(len_u32(v.sparse.len()));
    for (name, p) in &v.sparse {
        n.bytes(name.as_bytes());
        n.u8(p.idf as u8);
    }
    blob::encode(MANIFEST_MAGIC, &[&c.buf, &s.buf, &x.buf, &e.buf, &i.buf, &n.buf])
}

fn decode_schema(section: &[u8]) -> Result<VectorSchema, DecodeError> {
    let mut d = Decoder::new(section);
    let format = d.u32()?;
    if format != VECTOR_SCHEMA_FORMAT {
        return Err(d.error(format!("unsupported vector schema format {format}")));
    }
    let text = |d: &mut Decoder<'_>| -> Result<String, DecodeError> {
        String::from_utf8(d.bytes()?.to_vec()).map_err(|_| d.error("vector name is not UTF-8"))
    };
    let mut schema = VectorSchema {
        main: text(&mut d)?,
        ..VectorSchema::default()
    };
    for _ in 0..d.u32()? {
        let name = text(&mut d)?;
        let dim = d.u32()? as usize;
        let code = d.u8()?;
        let metric = Metric::from_code(code).ok_or_else(|| d.error(format!("unknown metric code {code}")))?;
        let multivector = d.u8()? != 0;
        schema.dense.insert(name, DenseParams { dim, metric, multivector });
    }
    for _ in 0..d.u32()? {
        let name = text(&mut d)?;
        let idf = d.u8()? != 0;
        schema.sparse.insert(name, SparseParams { idf });
    }
    d.finish()?;
    Ok(schema)
}

pub fn decode_manifest(path: &Path, image: &[u8]) -> Result<Manifest, StorageError> {
    let sections = blob::decode(path, MANIFEST_MAGIC, image)?;
    // Three sections before the embedder name existed, four before the index config, five
    // since; a sixth holds the named vectors of a collection that has any.
    if !(3..=6).contains(&sections.len()) {
        return Err(StorageError::corrupt(
            path,
            0,
            format!("manifest has {} sections, expected 3 to 6", sections.len()),
        ));
    }
    let parse = || -> Result<Manifest, (DecodeError, &'static str)> {
        let mut c = Decoder::new(sections[0]);
        let format = c.u32().map_err(|e| (e, "config"))?;
        if format != MANIFEST_FORMAT {
            return Err((c.error(format!("unsupported manifest format {format}")), "config"));
        }
        let dim = c.u32().map_err(|e| (e, "config"))? as usize;
        let metric_code = c.u8().map_err(|e| (e, "config"))?;
        let metric = Metric::from_code(metric_code).ok_or_else(|| (c.error(format!("unknown metric code {metric_code}")), "config"))?;
        let durability = match (c.u8().map_err(|e| (e, "config"))?, c.u32().map_err(|e| (e, "config"))?) {
            (0, _) => Durability::Immediate,
            (1, interval_ms) => Durability::Periodic { interval_ms },
            (t, _) => return Err((c.error(format!("unknown durability tag {t}")), "config")),
        };
        c.finish().map_err(|e| (e, "config"))?;
        let mut s = Decoder::new(sections[1]);
        let flushed_seq = s.u64().map_err(|e| (e, "state"))?;
        let next_segment_no = s.u64().map_err(|e| (e, "state"))?;
        let n = s.u32().map_err(|e| (e, "state"))?;
        let mut segments = Vec::new();
        for _ in 0..n {
            segments.push(s.u64().map_err(|e| (e, "state"))?);
        }
        s.finish().map_err(|e| (e, "state"))?;
        let mut x = Decoder::new(sections[2]);
        let n = x.u32().map_err(|e| (e, "indexes"))?;
        let mut indexes = Vec::new();
        for _ in 0..n {
            let code = x.u8().map_err(|e| (e, "indexes"))?;
            let kind = PayloadIndexType::from_code(code).ok_or_else(|| (x.error(format!("unknown index type {code}")), "indexes"))?;
            let key = x.bytes().map_err(|e| (e, "indexes"))?;
            let key = String::from_utf8(key.to_vec()).map_err(|_| (x.error("index key is not UTF-8"), "indexes"))?;
            indexes.push((key, kind));
        }
        x.finish().map_err(|e| (e, "indexes"))?;
        let (embedder, embed_precision) = match sections.get(3) {
            None => (None, EmbedPrecision::Float),
            Some(section) => {
                let mut d = Decoder::new(section);
                let name = d.bytes().map_err(|e| (e, "embedder"))?;
                let name = String::from_utf8(name.to_vec()).map_err(|_| (d.error("embedder name is not UTF-8"), "embedder"))?;
                let precision = if d.remaining() > 0 {
                    let p = d.bytes().map_err(|e| (e, "embedder"))?;
                    std::str::from_utf8(p)
                        .ok()
                        .and_then(EmbedPrecision::parse)
                        .ok_or_else(|| (d.error("unknown embedder precision"), "embedder"))?
                } else {
                    EmbedPrecision::Float
                };
                d.finish().map_err(|e| (e, "embedder"))?;
                ((!name.is_empty()).then_some(name), precision)
            }
        };
        let index = match sections.get(4) {
            // Manifests from before index configs: the defaults of that time (float codes).
            None => IndexConfig {
                quantization: Quantization::None,
                ..IndexConfig::default()
            },
            Some(section) => {
                let mut d = Decoder::new(section);
                let err = |e| (e, "index config");
                let enabled = d.u8().map_err(err)? != 0;
                let m = d.u32().map_err(err)? as usize;
                let ef_construct = d.u32().map_err(err)? as usize;
                let ef = d.u32().map_err(err)? as usize;
                let full_scan_threshold = d.u64().map_err(err)? as usize;
                let q = d.bytes().map_err(err)?;
                let quantization = std::str::from_utf8(q)
                    .ok()
                    .and_then(Quantization::parse)
                    .ok_or_else(|| (d.error("unknown quantization"), "index config"))?;
                // Manifests from before the recall monitor end here.
                let target_recall = if d.remaining() > 0 {
                    f32::from_bits(d.u32().map_err(err)?)
                } else {
                    crate::types::TARGET_RECALL_DEFAULT
                };
                // Manifests that name no build threads use every core.
                let build_threads = if d.remaining() > 0 { d.u32().map_err(err)? as usize } else { 0 };
                d.finish().map_err(err)?;
                let config = IndexConfig {
                    enabled,
                    m,
                    ef_construct,
                    ef,
                    full_scan_threshold,
                    quantization,
                    target_recall,
                    build_threads,
                };
                config.validate().map_err(|e| (d.error(e.to_string()), "index config"))?;
                config
            }
        };
        let vectors = match sections.get(5) {
            None => VectorSchema::default(),
            Some(section) => decode_schema(section).map_err(|e| (e, "vector schema"))?,
        };
        Ok(Manifest {
            config: CollectionConfig {
                dim,
                metric,
                durability,
                embedder,
                embed_precision,
                index,
                vectors,
            },
            flushed_seq,
            next_segment_no,
            segments,
            indexes,
        })
    };
    let m = parse().map_err(|(e, section)| corrupt(path, e, section))?;
    m.config
        .validate()
        .map_err(|e| StorageError::corrupt(path, 0, format!("invalid configuration: {e}")))?;
    Ok(m)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ops_round_trip() {
        let payload = json!({"a": 1, "b": [true, "x"]}).as_object().unwrap().clone();
        let u = uuid::Uuid::from_u128(0x1234);
        let ops = vec![
            Op::Upsert(vec![
                Point::new(1u64, vec![1.0, 2.0]).with_payload(payload.clone()),
                Point::new(u, vec![-0.5, 0.0]),
            ]),
            Op::Delete(vec![PointId::Num(9), PointId::Uuid(u)]),
            Op::SetPayload {
                ids: vec![PointId::Num(1)],
                payload: payload.clone(),
            },
            Op::OverwritePayload { ids: vec![], payload },
            Op::DeletePayloadKeys {
                ids: vec![PointId::Num(3)],
                keys: vec!["a".into(), "b.c".into()],
            },
            Op::ClearPayload {
                ids: vec![PointId::Num(4)],
            },
        ];
        for op in ops {
            let records = encode_op(&op, 2);
            assert_eq!(records.len(), 1);
            assert_eq!(decode_op(&records[0], 2).unwrap(), op);
            for n in 0..records[0].len() {
                assert!(decode_op(&records[0][..n], 2).is_err(), "truncated at {n} of {op:?}");
            }
        }
    }

    #[test]
    fn large_upserts_split_into_records() {
        let dim = 1024;
        let points: Vec<Point> = (0..5000u64).map(|i| Point::new(i, vec![i as f32; dim])).collect();
        let records = encode_op(&Op::Upsert(points.clone()), dim);
        assert!(records.len() > 1);
        let mut back = Vec::new();
        for r in &records {
            assert!(r.len() <= WAL_RECORD_TARGET_BYTES + dim * 4 + 64);
            match decode_op(r, dim).unwrap() {
                Op::Upsert(p) => back.extend(p),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(back, points);
    }

    #[test]
    fn manifest_round_trip() {
        let m = Manifest {
            config: CollectionConfig {
                dim: 7,
                metric: Metric::Euclid,
                durability: Durability::Periodic { interval_ms: 50 },
                vectors: VectorSchema::default(),
                embedder: Some("all-minilm-l6-v2".into()),
                embed_precision: EmbedPrecision::Float,
                index: IndexConfig {
                    m: 8,
                    ef: 40,
                    full_scan_threshold: 99,
                    quantization: Quantization::Int8,
                    ..IndexConfig::default()
                },
            },
            flushed_seq: 42,
            next_segment_no: 3,
            segments: vec![1, 2],
            indexes: vec![("a.b".into(), PayloadIndexType::Keyword), ("n".into(), PayloadIndexType::Integer)],
        };
        let image = encode_manifest(&m);
        assert_eq!(decode_manifest(Path::new("MANIFEST"), &image).unwrap(), m);
        assert_eq!(
            blob::decode(Path::new("MANIFEST"), MANIFEST_MAGIC, &image).unwrap().len(),
            5,
            "plain: format 1"
        );
        // Named vectors add a sixth section.
        let mut named = m.clone();
        named.config.vectors = VectorSchema {
            main: "image".into(),
            dense: [(
                "colbert".to_string(),
                DenseParams {
                    dim: 3,
                    metric: Metric::Cosine,
                    multivector: true,
                },
            )]
            .into(),
            sparse: [
                ("bm25".to_string(), SparseParams { idf: true }),
                ("splade".to_string(), SparseParams { idf: false }),
            ]
            .into(),
        };
        let image = encode_manifest(&named);
        assert_eq!(decode_manifest(Path::new("MANIFEST"), &image).unwrap(), named);
        // An int8 embedder is recorded after the name; the default one writes nothing more.
        let mut int8 = m.clone();
        int8.config.embed_precision = EmbedPrecision::Int8;
        let image8 = encode_manifest(&int8);
        assert_eq!(decode_manifest(Path::new("MANIFEST"), &image8).unwrap(), int8);
        assert!(image8.len() > encode_manifest(&m).len());
        // Build threads are recorded after the target recall, only when set.
        let mut one = m.clone();
        one.config.index.build_threads = 1;
        let image1 = encode_manifest(&one);
        assert_eq!(decode_manifest(Path::new("MANIFEST"), &image1).unwrap(), one);
        assert_eq!(image1.len(), encode_manifest(&m).len() + 4);
    }

    /// Points of every kind: sparse, multi and dense named vectors, no main vector, a payload.
    pub(crate) fn named_points() -> Vec<Point> {
        vec![
            Point::new(1u64, vec![1.0, 2.0]).with_named(
                "s",
                VectorData::Sparse(SparseVector {
                    indices: vec![3, 70000],
                    values: vec![0.5, -1.0],
                }),
            ),
            Point::new(2u64, vec![]).with_named("m", VectorData::Multi(vec![vec![1.0, 0.0, 2.0], vec![0.0, 1.0, 0.5]])),
            Point::new(3u64, vec![]),
            Point::new(4u64, vec![3.0, 4.0])
                .with_named("d", VectorData::Dense(vec![0.25; 5]))
                .with_payload(json!({"k": "v"}).as_object().unwrap().clone()),
        ]
    }

    /// Points without the main vector or with named ones: the WAL's named upsert gives back
    /// exactly what was written, and every truncation fails (segments: `segment.rs`).
    #[test]
    fn named_vectors_round_trip() {
        let op = Op::Upsert(named_points());
        let records = encode_op(&op, 2);
        assert_eq!(records[0][0], OP_UPSERT_NAMED);
        assert_eq!(decode_op(&records[0], 2).unwrap(), op);
        for n in 0..records[0].len() {
            assert!(decode_op(&records[0][..n], 2).is_err(), "truncated at {n}");
        }
    }
}
