//! Routes on collections: list, info, exists, create (with index and quantization settings),
//! drop, and payload indexes.

use super::*;

pub(super) async fn list_collections(State(state): State<AppState>) -> Response {
    let start = Instant::now();
    respond(
        start,
        blocking(move || {
            let names = state.db.list_collections()?;
            Ok(json!({"collections": names.into_iter().map(|n| json!({"name": n})).collect::<Vec<_>>()}))
        })
        .await,
    )
}

pub(super) async fn collection_exists(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let start = Instant::now();
    respond(start, Ok(json!({"exists": state.db.has_collection(&name)})))
}

pub(super) fn collection_info_json(c: &Collection) -> Value {
    let info = c.info();
    let index = c.index_status();
    let ix = &info.config.index;
    // Qdrant gives the full-scan threshold in kilobytes of vectors; Quiver keeps points.
    let threshold_kb = ix.full_scan_threshold * info.config.dim * 4 / 1024;
    let quantization = match ix.quantization {
        quiver::Quantization::None => Value::Null,
        quiver::Quantization::Int8 => json!("int8"),
        quiver::Quantization::Binary => json!("binary"),
    };
    let settings = c.settings();
    let schema: Map<String, Value> = info
        .payload_indexes
        .iter()
        .map(|(k, t, n, _)| {
            let mut params = index_params(*t);
            if let (Some(p), Some(Value::Object(opts))) = (params.as_object_mut(), settings.index_options.get(k)) {
                for (ok, ov) in opts {
                    p.insert(ok.clone(), ov.clone());
                }
            }
            (k.clone(), json!({"data_type": t.name(), "params": params, "points": n}))
        })
        .collect();
    let (vectors, sparse) = vectors_info_json(&info.config);
    let mut params = json!({
        "vectors": vectors,
        "shard_number": 1, "replication_factor": 1, "write_consistency_factor": 1, "on_disk_payload": false
    });
    if let Some(sparse) = sparse {
        params["sparse_vectors"] = sparse;
    }
    let warnings = config_warnings(&info.config, &settings);
    let mut out = json!({
        // Qdrant's red: the collection has an error (here: damage found in its data).
        "status": if info.damage.is_some() { "red" } else if index.building { "yellow" } else { "green" },
        "optimizer_status": match &info.damage {
            Some(e) => json!({"error": e}),
            None => json!("ok"),
        },
        "indexed_vectors_count": index.nodes,
        "points_count": info.points,
        "segments_count": info.segments.max(1),
        "config": {
            "params": params,
            "hnsw_config": {"m": if ix.enabled { ix.m } else { 0 }, "ef_construct": ix.ef_construct, "full_scan_threshold": threshold_kb, "max_indexing_threads": ix.build_threads,
                            "on_disk": settings.graph_on_disk(&info.config.vectors.main)},
            "optimizer_config": {"deleted_threshold": 0.5, "vacuum_min_vector_number": 1000, "default_segment_number": 1,
                                 "max_segment_size": null, "memmap_threshold": null, "indexing_threshold": null,
                                 "flush_interval_sec": 5, "max_optimization_threads": null},
            "wal_config": {"wal_capacity_mb": 64, "wal_segments_ahead": 0},
            "quantization_config": null
        },
        "payload_schema": schema,
        // Quiver's own: what the recall monitor measured (see docs/api.md).
        "quiver_index": {
            "nodes": index.nodes,
            "unindexed_points": index.tail,
            "ef": index.ef,
            "quantization": quantization,
            "target_recall": ix.target_recall,
            "estimated_recall": index.recall.map(|r| r.recall),
            "recall_samples": index.recall.map_or(0, |r| r.samples),
        },
        // Quiver's own: the model that embeds its documents (a text collection), else null.
        "quiver_embedder": info.config.embedder,
        // Quiver's own: how that model computes ("float" or "int8"), else null.
        "quiver_embedder_precision": info.config.embedder.as_ref().map(|_| info.config.embed_precision.name()),
        // Quiver's own: bytes in memory and on disk by component (see docs/api.md).
        "quiver_storage": footprint_json(&c.footprint()),
    });
    settings_json(&settings, &info.config, &mut out["config"]);
    if !warnings.is_empty() {
        out["warnings"] = Value::Array(warnings);
    }
    out
}

/// A collection's footprint as JSON: totals, then each component's memory and disk bytes.
pub(super) fn footprint_json(f: &quiver::collection::Footprint) -> Value {
    let mut components = serde_json::Map::new();
    for c in &f.components {
        components.insert(c.name.to_string(), json!({"memory_bytes": c.memory, "disk_bytes": c.disk}));
    }
    json!({
        "vectors_on_disk": f.vectors_on_disk,
        "vectors_on_disk_fallback": f.vectors_fallback,
        "memory_bytes": f.memory(),
        "disk_bytes": f.disk(),
        "components": components,
    })
}

pub(super) async fn get_collection(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let start = Instant::now();
    respond(start, blocking(move || Ok(collection_info_json(&collection(&state, &name)?))).await)
}

pub(super) async fn create_collection(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let start = Instant::now();
    let result = (|| {
        let body = parse_body(&body)?;
        reject_present(&body, &["init_from", "sharding_method"])?;
        // Deployment knobs a single node has no use for are accepted, but only with values
        // Qdrant accepts (a typo must not pass silently).
        for knob in ["shard_number", "replication_factor", "write_consistency_factor"] {
            match body.get(knob) {
                None | Some(Value::Null) => {}
                Some(v) => match v.as_u64() {
                    Some(0) => return Err(ApiError::validation(knob, "value 0 invalid, must be 1 or larger")),
                    Some(n) if n <= u32::MAX as u64 => {}
                    _ => {
                        return Err(ApiError::bad(format!(
                            "Format error in JSON body: {knob} must be a positive integer, got {v}"
                        )))
                    }
                },
            }
        }
        let (dim, metric, schema, main_params) = parse_vector_schema(&body)?;
        let embedder = match body.get("embedder") {
            None | Some(Value::Null) => None,
            Some(Value::String(e)) => {
                let Some(m) = quiver_embed::registry::lookup(e) else {
                    return Err(ApiError::bad(format!(
                        "unknown embedder {e:?}; Quiver runs {}",
                        quiver_embed::registry::names()
                    )));
                };
                if dim != m.dim {
                    return Err(ApiError::bad(format!(
                        "embedder {} makes {}-d vectors; vectors.size is {dim}",
                        m.name, m.dim
                    )));
                }
                Some(m.name.to_string())
            }
            Some(other) => return Err(ApiError::bad(format!("embedder must be a model name, got {other}"))),
        };
        let embed_precision = match body.get("embedder_precision") {
            None | Some(Value::Null) => quiver::EmbedPrecision::Float,
            Some(Value::String(p)) if embedder.is_some() => quiver::EmbedPrecision::parse(p)
                .ok_or_else(|| ApiError::bad(format!("embedder_precision must be \"float\" or \"int8\", got {p:?}")))?,
            Some(Value::String(_)) => return Err(ApiError::bad("embedder_precision needs an embedder")),
            Some(other) => {
                return Err(ApiError::bad(format!(
                    "embedder_precision must be \"float\" or \"int8\", got {other}"
                )))
            }
        };
        let mut index = parse_index_config(&body, dim, metric)?;
        // hnsw_config / quantization_config given with the main vector override the
        // collection's.
        if let Some(p) = main_params.filter(|p| p.contains_key("hnsw_config") || p.contains_key("quantization_config")) {
            let mut merged = body.clone();
            for k in ["hnsw_config", "quantization_config"] {
                if let Some(v) = p.get(k).filter(|v| !v.is_null()) {
                    merged.insert(k.to_string(), v.clone());
                }
            }
            index = parse_index_config(&merged, dim, metric)?;
        }
        if let Some(t) = body.get("optimizers_config").and_then(|o| o.get("indexing_threshold")) {
            apply_indexing_threshold(&mut index, t, dim)?;
        }
        let settings = settings_of_create(&body)?;
        Ok::<_, ApiError>((dim, metric, (embedder, embed_precision), index, schema, settings))
    })();
    let (dim, metric, (embedder, embed_precision), index, schema, settings) = match result {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    respond(
        start,
        blocking(move || {
            let mut config = CollectionConfig::new(dim, metric);
            config.embedder = embedder;
            config.embed_precision = embed_precision;
            config.index = index;
            config.vectors = schema;
            state.db.create_collection_with(&name, config, &settings)?;
            Ok(Value::Bool(true))
        })
        .await,
    )
}

/// One vector space's parameters: `{size, distance, multivector_config, datatype, on_disk,
/// hnsw_config, quantization_config}` -> (size, metric, multivector).
fn parse_vector_params(p: &Value, at: &str) -> Result<(usize, Metric, bool), ApiError> {
    let p = p
        .as_object()
        .ok_or_else(|| ApiError::bad(format!("{at} must be an object {{size, distance}}")))?;
    only_fields(
        p,
        &[
            "size",
            "distance",
            "on_disk",
            "memory",
            "datatype",
            "multivector_config",
            "hnsw_config",
            "quantization_config",
        ],
        at,
    )?;
    if p.get("datatype").and_then(Value::as_str).is_some_and(|d| d != "float32") {
        return Err(ApiError::unsupported("vector datatypes other than float32"));
    }
    let dim = field_usize(p, "size", 0)?;
    if !(1..=quiver::DIMENSION_MAX).contains(&dim) {
        return Err(ApiError::validation(
            &format!("{at}.size"),
            &format!("value {dim} invalid, must be from 1 to {}", quiver::DIMENSION_MAX),
        ));
    }
    let distance = p
        .get("distance")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad(format!("{at}.distance is required")))?;
    let metric: Metric = distance.parse()?;
    let multivector = match p.get("multivector_config") {
        None | Some(Value::Null) => false,
        Some(m) if m.get("comparator").and_then(Value::as_str) == Some("max_sim") => true,
        Some(m) => return Err(ApiError::unsupported(&format!("multivector_config {m} (only comparator max_sim)"))),
    };
    Ok((dim, metric, multivector))
}

/// The vector spaces of a create request: `vectors` (one unnamed `{size, distance}` or a map
/// of named ones) and `sparse_vectors`. The main vector (the one the HNSW graph indexes) is
/// the unnamed one, else the first named dense one in name order. Returns its size and metric
/// (0 when every vector is sparse or multi), the schema, and its parameters object.
type VectorSpaces<'a> = (usize, Metric, quiver::VectorSchema, Option<&'a Map<String, Value>>);

pub(super) fn parse_vector_schema(body: &Map<String, Value>) -> Result<VectorSpaces<'_>, ApiError> {
    let mut schema = quiver::VectorSchema::default();
    match body.get("sparse_vectors") {
        None | Some(Value::Null) => {}
        Some(Value::Object(o)) => {
            for (name, p) in o {
                let p = match p {
                    Value::Null => Map::new(),
                    Value::Object(p) => p.clone(),
                    _ => return Err(ApiError::bad(format!("sparse_vectors.{name} must be an object"))),
                };
                only_fields(&p, &["index", "modifier"], &format!("sparse_vectors.{name}"))?;
                schema.sparse.insert(
                    name.clone(),
                    quiver::vector_model::SparseParams {
                        idf: parse_modifier(&p, name)?,
                    },
                );
            }
        }
        Some(_) => return Err(ApiError::bad("sparse_vectors must be a map of names to parameters")),
    }
    // (name, parameters, size, metric, multivector)
    type Space<'a> = (String, &'a Map<String, Value>, usize, Metric, bool);
    let mut spaces: Vec<Space<'_>> = Vec::new();
    match body.get("vectors") {
        None | Some(Value::Null) => {}
        Some(Value::Object(o)) if o.contains_key("size") || o.contains_key("distance") => {
            let (dim, metric, multi) = parse_vector_params(&body["vectors"], "vectors")?;
            spaces.push((String::new(), o, dim, metric, multi));
        }
        Some(Value::Object(o)) => {
            for (name, p) in o {
                let (dim, metric, multi) = parse_vector_params(p, &format!("vectors.{name}"))?;
                spaces.push((name.clone(), p.as_object().expect("checked"), dim, metric, multi));
            }
        }
        Some(_) => return Err(ApiError::bad("vectors must be {size, distance} or a map of named vectors")),
    }
    if spaces.is_empty() && schema.sparse.is_empty() {
        return Err(ApiError::bad("vectors: {size, distance} is required"));
    }
    let main_params = spaces
        .iter()
        .find(|s| s.0.is_empty() && !s.4)
        .or_else(|| spaces.iter().find(|s| !s.4))
        .map(|s| s.1);
    let dense = spaces
        .into_iter()
        .map(|(name, _, dim, metric, multivector)| (name, quiver::vector_model::DenseParams { dim, metric, multivector }))
        .collect();
    let (dim, metric, schema) = quiver::VectorSchema::from_spaces(dense, std::mem::take(&mut schema.sparse))?;
    Ok((dim, metric, schema, main_params))
}

/// A sparse space's `modifier`: `"idf"` or `"none"`.
pub(super) fn parse_modifier(p: &Map<String, Value>, name: &str) -> Result<bool, ApiError> {
    match p.get("modifier") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::String(m)) if m == "idf" => Ok(true),
        Some(Value::String(m)) if m == "none" => Ok(false),
        Some(other) => Err(ApiError::bad(format!(
            "sparse_vectors.{name}.modifier must be \"idf\" or \"none\", got {other}"
        ))),
    }
}

/// The `vectors` and `sparse_vectors` of a collection's info, in Qdrant's form.
fn vectors_info_json(config: &CollectionConfig) -> (Value, Option<Value>) {
    let v = &config.vectors;
    let params = |dim: usize, metric: Metric, multi: bool| {
        let mut p = json!({"size": dim, "distance": metric_name(metric), "on_disk": false});
        if multi {
            p["multivector_config"] = json!({"comparator": "max_sim"});
        }
        p
    };
    let dense = if v.main.is_empty() && v.dense.is_empty() && config.dim > 0 {
        params(config.dim, config.metric, false)
    } else if config.dim == 0 && v.dense.len() == 1 && v.dense.contains_key("") {
        let d = &v.dense[""];
        params(d.dim, d.metric, d.multivector)
    } else {
        let mut m = Map::new();
        if config.dim > 0 {
            m.insert(v.main.clone(), params(config.dim, config.metric, false));
        }
        for (name, d) in &v.dense {
            m.insert(name.clone(), params(d.dim, d.metric, d.multivector));
        }
        Value::Object(m)
    };
    let sparse = (!v.sparse.is_empty()).then(|| {
        Value::Object(
            v.sparse
                .iter()
                .map(|(name, p)| (name.clone(), if p.idf { json!({"modifier": "idf"}) } else { json!({}) }))
                .collect(),
        )
    });
    (dense, sparse)
}

/// `hnsw_config` and `quantization_config` of a create request, in Qdrant's form. `m: 0`
/// disables the index, as in Qdrant; `full_scan_threshold` is in kilobytes of vectors.
pub(super) fn parse_index_config(body: &Map<String, Value>, dim: usize, metric: quiver::Metric) -> Result<quiver::IndexConfig, ApiError> {
    let mut ix = quiver::IndexConfig::default_for(metric);
    if let Some(h) = body.get("hnsw_config").filter(|v| !v.is_null()) {
        let h = h.as_object().ok_or_else(|| ApiError::bad("hnsw_config must be an object"))?;
        for (k, v) in h {
            match k.as_str() {
                "m" | "ef_construct" | "full_scan_threshold" | "max_indexing_threads" | "payload_m" | "target_recall" => {}
                // Placement hints: kept in the settings and reported back (see docs/api.md).
                "on_disk" | "inline_storage" | "copy_vectors" if v.is_null() || v.is_boolean() => {}
                "memory" => {}
                other => return Err(ApiError::unsupported(&format!("hnsw_config.{other} = {v}"))),
            }
        }
        let m = field_usize(h, "m", ix.m)?;
        if m == 0 {
            ix.enabled = false;
        } else {
            ix.m = m;
        }
        ix.ef_construct = field_usize(h, "ef_construct", ix.ef_construct)?;
        if ix.ef_construct == 0 {
            return Err(ApiError::validation(
                "hnsw_config.ef_construct",
                "value 0 invalid, must be 4 or larger",
            ));
        }
        ix.ef = ix.ef.max(ix.ef_construct.min(4096));
        if let Some(t) = h.get("target_recall").filter(|v| !v.is_null()) {
            ix.target_recall = t
                .as_f64()
                .filter(|t| (0.0..=1.0).contains(t))
                .ok_or_else(|| ApiError::bad(format!("hnsw_config.target_recall must be a number between 0 (off) and 1, got {t}")))?
                as f32;
        }
        // More threads than cores means every core: a larger count is kept as the largest.
        ix.build_threads = field_usize(h, "max_indexing_threads", 0)?.min(quiver::BUILD_THREADS_MAX);
        if h.get("full_scan_threshold").is_some_and(|v| !v.is_null()) {
            let kb = field_usize(h, "full_scan_threshold", 0)?;
            ix.full_scan_threshold = kb.saturating_mul(1024) / (dim.max(1) * 4);
        }
    }
    if body.get("quantization_config").is_some_and(|q| q == "Disabled") {
        ix.quantization = quiver::Quantization::None;
    } else if let Some(q) = body.get("quantization_config").filter(|v| !v.is_null()) {
        let q = q
            .as_object()
            .ok_or_else(|| ApiError::bad("quantization_config must be an object"))?;
        ix.quantization = match (q.get("scalar"), q.get("binary")) {
            (Some(sc), None) => {
                let t = sc.get("type").and_then(Value::as_str).unwrap_or("int8");
                if t != "int8" {
                    return Err(ApiError::unsupported(&format!("scalar quantization type {t:?}")));
                }
                quiver::Quantization::Int8
            }
            (None, Some(_)) => quiver::Quantization::Binary,
            _ => return Err(ApiError::unsupported("quantization other than scalar int8 or binary")),
        };
    }
    ix.validate()?;
    Ok(ix)
}

pub(super) async fn delete_collection(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let start = Instant::now();
    respond(
        start,
        blocking(move || match state.db.drop_collection(&name) {
            Ok(()) => Ok(Value::Bool(true)),
            // Qdrant answers `false` for a collection that does not exist.
            Err(Error::CollectionNotFound(_)) => Ok(Value::Bool(false)),
            Err(e) => Err(e.into()),
        })
        .await,
    )
}

pub(super) async fn create_index(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let start = Instant::now();
    let parsed = (|| {
        let body = parse_body(&body)?;
        let field = body
            .get("field_name")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad("field_name is required"))?
            .to_string();
        let (kind, options) = parse_index_schema(body.get("field_schema"))?;
        Ok::<_, ApiError>((field, kind, options))
    })();
    let (field, kind, options) = match parsed {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    respond(
        start,
        blocking(move || {
            collection(&state, &name)?.create_payload_index_with(&field, kind, options)?;
            Ok(json!({"operation_id": 0, "status": "completed"}))
        })
        .await,
    )
}

/// A payload index's `field_schema`: a type name, or an object with the type and its options.
/// An option is accepted only where Quiver does what it says: switches that change what the
/// index answers (an integer index's `lookup` / `range`, a keyword index's `prefix`) are kept
/// and enforced by strict mode; placement hints (`on_disk`, `memory`, `enable_hnsw`,
/// `is_tenant`, `is_principal`) are kept and reported; the text index takes only Quiver's
/// analyser (`tokenizer: word`, lowercase, phrase matching). Anything else is a 400 that names
/// it. Returns the type and the options to keep.
fn parse_index_schema(v: Option<&Value>) -> Result<(PayloadIndexType, Map<String, Value>), ApiError> {
    let o = match v {
        Some(Value::String(s)) => return Ok((s.parse()?, Map::new())),
        Some(Value::Object(o)) => o,
        _ => return Err(ApiError::bad("field_schema is required")),
    };
    let kind: PayloadIndexType = o
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad("field_schema.type is required"))?
        .parse()?;
    let mut keep = Map::new();
    for (k, val) in o {
        if k == "type" || val.is_null() {
            continue;
        }
        use PayloadIndexType as T;
        let honoured = match (kind, k.as_str()) {
            (_, "on_disk" | "enable_hnsw") => val.is_boolean(),
            (_, "memory") => matches!(val.as_str(), Some("cached" | "cold" | "pinned")),
            (T::Keyword | T::Uuid, "is_tenant") => val.is_boolean(),
            (T::Keyword, "prefix") => val.is_boolean(),
            (T::Integer, "lookup" | "range") => val.is_boolean(),
            (T::Integer | T::Float | T::Datetime, "is_principal") => val.is_boolean(),
            (T::Text, "tokenizer") => val == "word",
            (T::Text, "lowercase" | "phrase_matching") => val == &Value::Bool(true),
            (T::Text, "ascii_folding") => val == &Value::Bool(false),
            _ => false,
        };
        if !honoured {
            return Err(ApiError::unsupported(&format!(
                "the {} index option {k} = {val} (Quiver's {} index: {})",
                kind.name(),
                kind.name(),
                index_params(kind)
            )));
        }
        keep.insert(k.clone(), val.clone());
    }
    Ok((kind, keep))
}

/// What an index of `kind` does, as `payload_schema[..].params` reports it.
pub(super) fn index_params(kind: PayloadIndexType) -> Value {
    match kind {
        PayloadIndexType::Text => {
            json!({"type": "text", "tokenizer": "word", "lowercase": true, "phrase_matching": true, "on_disk": false})
        }
        PayloadIndexType::Integer => json!({"type": "integer", "lookup": true, "range": true, "on_disk": false}),
        other => json!({"type": other.name(), "on_disk": false}),
    }
}

pub(super) async fn delete_index(State(state): State<AppState>, Path((name, field)): Path<(String, String)>) -> Response {
    let start = Instant::now();
    respond(
        start,
        blocking(move || {
            collection(&state, &name)?.drop_payload_index(&field)?;
            Ok(json!({"operation_id": 0, "status": "completed"}))
        })
        .await,
    )
}

/// `POST /collections/aliases`: `{"actions": [{"create_alias": {alias_name, collection_name}},
/// {"delete_alias": {alias_name}}, {"rename_alias": {old_alias_name, new_alias_name}}]}`,
/// applied in order, all or nothing.
pub(super) async fn update_aliases(State(state): State<AppState>, body: Bytes) -> Response {
    let start = Instant::now();
    let actions = match parse_body(&body).and_then(|b| parse_alias_actions(&b)) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    respond(
        start,
        blocking(move || {
            state.db.update_aliases(&actions)?;
            Ok(Value::Bool(true))
        })
        .await,
    )
}

fn parse_alias_actions(body: &Map<String, Value>) -> Result<Vec<quiver::AliasAction>, ApiError> {
    only_fields(body, &["actions"], "aliases")?;
    let list = body
        .get("actions")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad("actions must be a list"))?;
    list.iter()
        .enumerate()
        .map(|(i, a)| {
            let o = a
                .as_object()
                .filter(|o| o.len() == 1)
                .ok_or_else(|| ApiError::bad(format!("actions[{i}] must be one of create_alias, delete_alias, rename_alias")))?;
            let (kind, args) = o.iter().next().expect("one entry");
            let args = args
                .as_object()
                .ok_or_else(|| ApiError::bad(format!("actions[{i}].{kind} must be an object")))?;
            let field = |k: &str| -> Result<String, ApiError> {
                args.get(k)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::bad(format!("actions[{i}].{kind}.{k} must be a string")))
            };
            Ok(match kind.as_str() {
                "create_alias" => quiver::AliasAction::Create {
                    alias: field("alias_name")?,
                    collection: field("collection_name")?,
                },
                "delete_alias" => quiver::AliasAction::Delete {
                    alias: field("alias_name")?,
                },
                "rename_alias" => quiver::AliasAction::Rename {
                    old: field("old_alias_name")?,
                    new: field("new_alias_name")?,
                },
                other => return Err(ApiError::bad(format!("actions[{i}]: unknown action {other:?}"))),
            })
        })
        .collect()
}

fn aliases_json(list: impl Iterator<Item = (String, String)>) -> Value {
    json!({"aliases": list.map(|(a, c)| json!({"alias_name": a, "collection_name": c})).collect::<Vec<_>>()})
}

/// `GET /aliases`: every alias.
pub(super) async fn list_aliases(State(state): State<AppState>) -> Response {
    let start = Instant::now();
    respond(start, Ok(aliases_json(state.db.list_aliases().into_iter())))
}

/// `GET /collections/{name}/aliases`: the aliases of one collection.
pub(super) async fn collection_aliases(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let start = Instant::now();
    if !state.db.has_collection(&name) {
        return ApiError::from(quiver::Error::CollectionNotFound(name)).into_response();
    }
    let list = state.db.list_aliases().into_iter().filter(|(_, c)| *c == name);
    respond(start, Ok(aliases_json(list)))
}
