//! A collection's configuration beyond its vectors: what a create or `PATCH` request sets
//! (strict mode, metadata, index parameters, and the storage hints Qdrant clients declare) and
//! how the collection's info reports it. The settings themselves are the library's
//! (`quiver::CollectionSettings`); index changes go through `Database::reconfigure_index`.

use super::*;
use quiver::{CollectionSettings, StrictMode};

/// Where a memory placement may be given, and whether `pinned` is allowed there (Qdrant pins
/// only quantized codes and indexes in RAM, never the full vectors or the payloads).
fn check_memory(v: &Value, at: &str, pinned_ok: bool) -> Result<(), ApiError> {
    match v.as_str() {
        Some("cached" | "cold") => Ok(()),
        Some("pinned") if pinned_ok => Ok(()),
        Some("pinned") => Err(ApiError::validation(
            at,
            "memory placement \"pinned\" is only for quantized vectors and indexes",
        )),
        _ => Err(ApiError::validation(
            at,
            &format!("expected one of \"cached\", \"cold\", \"pinned\", got {v}"),
        )),
    }
}

/// The hints of one dense space's parameters: `on_disk`, `memory`, `hnsw_config`,
/// `quantization_config`, `datatype`, as given.
fn dense_hints(p: &Map<String, Value>, at: &str) -> Result<Map<String, Value>, ApiError> {
    let mut h = Map::new();
    for k in ["on_disk", "memory", "hnsw_config", "quantization_config"] {
        if let Some(v) = p.get(k) {
            h.insert(k.to_string(), v.clone());
        }
    }
    if let Some(m) = h.get("memory").filter(|m| !m.is_null()) {
        check_memory(m, &format!("{at}.memory"), false)?;
    }
    if let Some(m) = p.get("hnsw_config").and_then(|c| c.get("memory")).filter(|m| !m.is_null()) {
        check_memory(m, &format!("{at}.hnsw_config.memory"), true)?;
    }
    Ok(h)
}

/// The settings a create request declares: strict mode, metadata and hints.
pub(super) fn settings_of_create(body: &Map<String, Value>) -> Result<CollectionSettings, ApiError> {
    let mut s = CollectionSettings::default();
    if let Some(sm) = body.get("strict_mode_config").filter(|v| !v.is_null()) {
        s.strict_mode = Some(parse_strict_mode(sm)?);
    }
    if let Some(m) = body.get("metadata").filter(|v| !v.is_null()) {
        s.merge_metadata(m.as_object().ok_or_else(|| ApiError::bad("metadata must be an object"))?);
    }
    match body.get("vectors") {
        Some(Value::Object(o)) if o.contains_key("size") || o.contains_key("distance") => {
            s.merge_hint("vectors.", &dense_hints(o, "vectors")?);
        }
        Some(Value::Object(o)) => {
            for (name, p) in o {
                if let Some(p) = p.as_object() {
                    s.merge_hint(&format!("vectors.{name}"), &dense_hints(p, &format!("vectors.{name}"))?);
                }
            }
        }
        _ => {}
    }
    if let Some(Value::Object(o)) = body.get("sparse_vectors") {
        for (name, p) in o {
            if let Some(ix) = p.get("index").filter(|v| !v.is_null()) {
                s.merge_hint(&format!("sparse_vectors.{name}"), &sparse_index_hint(ix, name)?);
            }
        }
    }
    if let Some(Value::Object(o)) = body.get("optimizers_config") {
        s.merge_hint("optimizers_config", o);
    }
    // The collection-level index parameters as declared: reported as given when the main
    // vector overrides them with its own.
    let mut declared = Map::new();
    for (k, key) in [
        ("hnsw_config", "hnsw_config"),
        ("quantization_config", "quantization_config"),
        ("quantization", "quantization_config"),
    ] {
        if let Some(v) = body.get(k).filter(|v| !v.is_null()) {
            declared.insert(key.to_string(), v.clone());
        }
    }
    s.merge_hint("collection", &declared);
    let mut params = Map::new();
    if let Some(v) = body.get("on_disk_payload").filter(|v| !v.is_null()) {
        params.insert("on_disk_payload".into(), v.clone());
    }
    if let Some(p) = body.get("payload").filter(|v| !v.is_null()) {
        params.insert("payload".into(), payload_hint(p, "payload")?);
    }
    s.merge_hint("params", &params);
    Ok(s)
}

fn sparse_index_hint(ix: &Value, name: &str) -> Result<Map<String, Value>, ApiError> {
    let o = ix
        .as_object()
        .ok_or_else(|| ApiError::bad(format!("sparse_vectors.{name}.index must be an object")))?;
    only_fields(
        o,
        &["on_disk", "full_scan_threshold", "datatype", "memory"],
        &format!("sparse_vectors.{name}.index"),
    )?;
    if let Some(m) = o.get("memory").filter(|m| !m.is_null()) {
        check_memory(m, &format!("sparse_vectors.{name}.index.memory"), true)?;
    }
    let mut h = Map::new();
    h.insert("index".into(), ix.clone());
    Ok(h)
}

fn payload_hint(p: &Value, at: &str) -> Result<Value, ApiError> {
    let o = p.as_object().ok_or_else(|| ApiError::bad(format!("{at} must be an object")))?;
    only_fields(o, &["memory"], at)?;
    if let Some(m) = o.get("memory").filter(|m| !m.is_null()) {
        check_memory(m, &format!("{at}.memory"), false)?;
    }
    Ok(p.clone())
}

/// `strict_mode_config` in Qdrant's form; an unknown field is a 400 that names it.
fn parse_strict_mode(v: &Value) -> Result<StrictMode, ApiError> {
    let sm: StrictMode =
        serde_json::from_value(v.clone()).map_err(|e| ApiError::bad(format!("Format error in JSON body: strict_mode_config: {e}")))?;
    sm.validate()?;
    Ok(sm)
}

/// The main vector's section in the hints (`vectors.` for the unnamed one).
fn main_section(config: &CollectionConfig) -> String {
    format!("vectors.{}", config.vectors.main)
}

/// `PATCH /collections/{name}`: strict mode, metadata, a sparse space's `modifier` and index
/// options, the main vector's HNSW and quantization (the graph is rebuilt), the optimizer
/// thresholds, and the storage hints. Anything else is refused by name.
pub(super) async fn update_collection(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let start = Instant::now();
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    respond(start, blocking(move || patch(&state, &name, &body)).await)
}

fn patch(state: &AppState, name: &str, body: &Map<String, Value>) -> ApiResult {
    let c = collection(state, name)?;
    let config = c.config().clone();
    let main = main_section(&config);
    let mut sparse_modifiers = Vec::new();
    let mut index_patch = Map::new();
    let mut hints: Vec<(String, Map<String, Value>)> = Vec::new();
    let mut strict = None;
    let mut metadata = None;
    for (k, v) in body {
        match (k.as_str(), v) {
            (_, Value::Null) => {}
            ("strict_mode_config", v) => strict = Some(parse_strict_mode(v)?),
            ("metadata", Value::Object(m)) => metadata = Some(m.clone()),
            ("sparse_vectors", Value::Object(o)) => {
                for (sparse, p) in o {
                    if !config.vectors.sparse.contains_key(sparse) {
                        return Err(ApiError::bad(format!("Wrong input: Not existing vector name error: {sparse}")));
                    }
                    let p = p
                        .as_object()
                        .ok_or_else(|| ApiError::bad(format!("sparse_vectors.{sparse} must be an object")))?;
                    only_fields(p, &["index", "modifier"], &format!("sparse_vectors.{sparse}"))?;
                    if p.contains_key("modifier") {
                        sparse_modifiers.push((sparse.clone(), parse_modifier(p, sparse)?));
                    }
                    if let Some(ix) = p.get("index").filter(|v| !v.is_null()) {
                        hints.push((format!("sparse_vectors.{sparse}"), sparse_index_hint(ix, sparse)?));
                    }
                }
            }
            ("vectors", Value::Object(o)) => {
                for (vname, p) in o {
                    let section = format!("vectors.{vname}");
                    if vname != &config.vectors.main && !config.vectors.dense.contains_key(vname) {
                        return Err(ApiError::bad(format!("Wrong input: Not existing vector name error: {vname}")));
                    }
                    let p = p.as_object().ok_or_else(|| ApiError::bad(format!("{section} must be an object")))?;
                    only_fields(p, &["hnsw_config", "quantization_config", "on_disk", "memory"], &section)?;
                    if section == main {
                        for key in ["hnsw_config", "quantization_config"] {
                            if let Some(x) = p.get(key).filter(|x| !x.is_null()) {
                                index_patch.insert(key.to_string(), x.clone());
                            }
                        }
                    }
                    hints.push((section, dense_hints(p, &format!("vectors.{vname}"))?));
                }
            }
            ("hnsw_config" | "quantization_config", v) => {
                index_patch.insert(format!("collection.{k}"), v.clone());
                let mut h = Map::new();
                h.insert(k.clone(), v.clone());
                hints.push(("collection".into(), h));
            }
            ("optimizers_config", Value::Object(o)) => {
                if let Some(t) = o.get("indexing_threshold") {
                    index_patch.insert("indexing_threshold".into(), t.clone());
                }
                hints.push(("optimizers_config".into(), o.clone()));
            }
            ("params", Value::Object(o)) => {
                let mut h = Map::new();
                for (pk, pv) in o {
                    match pk.as_str() {
                        "on_disk_payload" => {
                            h.insert(pk.clone(), pv.clone());
                        }
                        "payload" => {
                            h.insert(pk.clone(), payload_hint(pv, "params.payload")?);
                        }
                        "replication_factor" | "write_consistency_factor" | "read_fan_out_factor" => {
                            if pv.as_u64() == Some(0) {
                                return Err(ApiError::validation(
                                    &format!("params.{pk}"),
                                    "value 0 invalid, must be 1 or larger",
                                ));
                            }
                        }
                        other => return Err(ApiError::unsupported(&format!("changing params.{other} after creation"))),
                    }
                }
                hints.push(("params".into(), h));
            }
            (other, _) => return Err(ApiError::unsupported(&format!("changing {other} after creation"))),
        }
    }
    // Everything is checked before anything changes.
    let index = (!index_patch.is_empty())
        .then(|| patched_index(&config, &c.settings(), &index_patch))
        .transpose()?;
    let main = config.vectors.main.clone();
    let was_on_disk = c.settings().main_vectors_on_disk(&main);
    c.update_settings(|s| {
        if let Some(sm) = strict {
            let mut cur = s.strict_mode.take().unwrap_or_default();
            cur.merge(sm);
            s.strict_mode = Some(cur);
        }
        if let Some(m) = &metadata {
            s.merge_metadata(m);
        }
        for (section, h) in &hints {
            s.merge_hint(section, h);
        }
        Ok(())
    })?;
    for (sparse, idf) in sparse_modifiers {
        c.set_sparse_params(&sparse, quiver::vector_model::SparseParams { idf })?;
    }
    if let Some(ix) = index {
        state.db.reconfigure_index(name, ix)?;
    }
    if c.settings().main_vectors_on_disk(&main) != was_on_disk {
        // Where the vectors live is chosen on open.
        state.db.reopen_collection(name)?;
    }
    Ok(Value::Bool(true))
}

/// The main index's configuration after a patch: the collection-level `hnsw_config` /
/// `quantization_config`, then the main vector's own (which take precedence, as in Qdrant),
/// then `optimizers_config.indexing_threshold`.
fn patched_index(
    config: &CollectionConfig,
    settings: &CollectionSettings,
    patch: &Map<String, Value>,
) -> Result<quiver::IndexConfig, ApiError> {
    let ix = &config.index;
    let kb = |points: usize| points * config.dim.max(1) * 4 / 1024;
    let mut hnsw = json!({"m": if ix.enabled { ix.m } else { 0 }, "ef_construct": ix.ef_construct, "full_scan_threshold": kb(ix.full_scan_threshold), "max_indexing_threads": ix.build_threads});
    let merge = |base: &mut Value, p: Option<&Value>| {
        if let (Some(b), Some(Value::Object(p))) = (base.as_object_mut(), p) {
            for (k, v) in p {
                b.insert(k.clone(), v.clone());
            }
        }
    };
    merge(&mut hnsw, patch.get("collection.hnsw_config"));
    merge(&mut hnsw, settings.hint(&main_section(config)).get("hnsw_config"));
    merge(&mut hnsw, patch.get("hnsw_config"));
    let own = settings
        .hint(&main_section(config))
        .get("quantization_config")
        .cloned()
        .filter(|v| !v.is_null());
    let current = match ix.quantization {
        quiver::Quantization::None => None,
        quiver::Quantization::Int8 => Some(json!({"scalar": {"type": "int8"}})),
        quiver::Quantization::Binary => Some(json!({"binary": {}})),
    };
    // The main vector's own quantization wins over the collection's, as in Qdrant.
    let quant = patch
        .get("quantization_config")
        .cloned()
        .or_else(|| own.filter(|_| patch.contains_key("collection.quantization_config")))
        .or_else(|| patch.get("collection.quantization_config").cloned())
        .or(current);
    let mut body = Map::new();
    body.insert("hnsw_config".into(), hnsw);
    if let Some(q) = quant {
        body.insert("quantization_config".into(), q);
    }
    let mut next = parse_index_config(&body, config.dim, config.metric)?;
    next.ef = ix.ef;
    next.target_recall = ix.target_recall;
    if let Some(t) = patch.get("indexing_threshold") {
        apply_indexing_threshold(&mut next, t, config.dim)?;
    }
    Ok(next)
}

/// Qdrant's `optimizers_config.indexing_threshold` (kilobytes of vectors; 0 disables the
/// index) as Quiver's point threshold.
pub(super) fn apply_indexing_threshold(ix: &mut quiver::IndexConfig, t: &Value, dim: usize) -> Result<(), ApiError> {
    if t.is_null() {
        return Ok(());
    }
    let kb = t.as_u64().ok_or_else(|| {
        ApiError::bad(format!(
            "optimizers_config.indexing_threshold must be a whole number of kilobytes, got {t}"
        ))
    })?;
    if kb == 0 {
        ix.enabled = false;
    } else {
        ix.full_scan_threshold = (kb as usize).saturating_mul(1024) / (dim.max(1) * 4);
    }
    Ok(())
}

/// The parts of `config` in a collection's info that come from its settings.
pub(super) fn settings_json(settings: &CollectionSettings, cc: &CollectionConfig, config: &mut Value) {
    if let Some(sm) = &settings.strict_mode {
        config["strict_mode_config"] = serde_json::to_value(sm).unwrap_or(Value::Null);
    }
    if !settings.metadata.is_empty() {
        config["metadata"] = Value::Object(settings.metadata.clone());
    }
    // The collection-level HNSW and quantization as declared, where the main vector's own
    // parameters (which the graph follows) differ from them.
    let main_hint = settings.hint(&main_section(cc));
    let declared = settings.hint("collection");
    if main_hint.contains_key("hnsw_config") {
        let mut h = json!({"m": 16, "ef_construct": 100, "full_scan_threshold": 10000, "max_indexing_threads": 0, "on_disk": false});
        if let Some(Value::Object(d)) = declared.get("hnsw_config") {
            for (k, v) in d {
                h[k] = v.clone();
            }
        }
        config["hnsw_config"] = h;
    }
    // Quantization as the client declared it for the collection (Quiver's own default, int8
    // codes for the graph, is reported under `quiver_index.quantization`).
    config["quantization_config"] = declared.get("quantization_config").cloned().unwrap_or(Value::Null);
    if let Some(Value::Object(o)) = config.get_mut("optimizer_config") {
        for (k, v) in settings.hint("optimizers_config") {
            o.insert(k, v);
        }
    }
    let params = &mut config["params"];
    for (k, v) in settings.hint("params") {
        params[k] = v;
    }
    // Each space's declared hints beside its size and distance.
    let main_unnamed = params["vectors"].get("size").is_some();
    if main_unnamed {
        for (k, v) in settings.hint("vectors.") {
            params["vectors"][k] = v;
        }
    } else if let Some(Value::Object(spaces)) = params.get_mut("vectors") {
        for (name, p) in spaces.iter_mut() {
            for (k, v) in settings.hint(&format!("vectors.{name}")) {
                p[k] = v;
            }
        }
    }
    if let Some(Value::Object(spaces)) = params.get_mut("sparse_vectors") {
        for (name, p) in spaces.iter_mut() {
            for (k, v) in settings.hint(&format!("sparse_vectors.{name}")) {
                p[k] = v;
            }
        }
    }
}

/// Warnings about a configuration that works but not as the client may think (Qdrant's
/// `warnings`): `inline_storage` needs quantized vectors and does nothing for multivectors.
pub(super) fn config_warnings(config: &CollectionConfig, settings: &CollectionSettings) -> Vec<Value> {
    let mut out = Vec::new();
    let mut names: Vec<String> = config.vectors.dense.keys().cloned().collect();
    if config.dim > 0 {
        names.push(config.vectors.main.clone());
    }
    for name in names {
        let h = settings.hint(&format!("vectors.{name}"));
        let inline = h.get("hnsw_config").and_then(|c| c.get("inline_storage")).and_then(Value::as_bool) == Some(true);
        if !inline {
            continue;
        }
        let multi = config.vectors.dense.get(&name).is_some_and(|d| d.multivector);
        let quantized = h.get("quantization_config").is_some_and(|q| !q.is_null())
            || settings.hint("collection").get("quantization_config").is_some_and(|q| !q.is_null());
        if multi {
            out.push(json!({"message": format!("vector {name:?}: hnsw_config.inline_storage has no effect on a multivector")}));
        } else if !quantized {
            out.push(json!({"message": format!("vector {name:?}: hnsw_config.inline_storage needs quantization_config to take effect")}));
        }
    }
    out
}
