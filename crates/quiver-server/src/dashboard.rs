//! The web dashboard at `/dashboard`: a page of plain HTML, CSS and JavaScript modules, every
//! file inside the binary (no CDN, no build step, nothing fetched at run time), talking to the
//! same REST API as any client. The files carry no data, so they are served without an API key;
//! the page asks for the key once and sends it with every call (kept for the browser session).
//!
//! The page's own endpoints are here: `GET /dashboard/api/access` (what the key given may do:
//! the page hides write controls from a read-only key) and `GET /dashboard/api/metrics` (the
//! server's metrics as JSON: requests, latency percentiles by route, points over time). The
//! pictures' data come from the API: `GET /walkthrough`, `POST /collections/{name}/explain` and
//! `/map` (in `api`).
//!
//! Every response of the page carries a strict Content-Security-Policy (scripts, styles and
//! connections from this origin only, no inline script, no framing): payloads are shown as text,
//! never as markup, and even a mistake there could not run a script.

use crate::auth::{Access, Auth};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;

/// The page's files: (name, media type, contents).
const ASSETS: &[(&str, &str, &str)] = &[
    ("index.html", "text/html; charset=utf-8", include_str!("../dashboard/index.html")),
    ("style.css", "text/css; charset=utf-8", include_str!("../dashboard/style.css")),
    ("app.js", "text/javascript; charset=utf-8", include_str!("../dashboard/app.js")),
    ("api.js", "text/javascript; charset=utf-8", include_str!("../dashboard/api.js")),
    ("ui.js", "text/javascript; charset=utf-8", include_str!("../dashboard/ui.js")),
    (
        "collections.js",
        "text/javascript; charset=utf-8",
        include_str!("../dashboard/collections.js"),
    ),
    (
        "points.js",
        "text/javascript; charset=utf-8",
        include_str!("../dashboard/points.js"),
    ),
    (
        "search.js",
        "text/javascript; charset=utf-8",
        include_str!("../dashboard/search.js"),
    ),
    (
        "explain.js",
        "text/javascript; charset=utf-8",
        include_str!("../dashboard/explain.js"),
    ),
    (
        "byhand.js",
        "text/javascript; charset=utf-8",
        include_str!("../dashboard/byhand.js"),
    ),
    ("map.js", "text/javascript; charset=utf-8", include_str!("../dashboard/map.js")),
    (
        "metrics.js",
        "text/javascript; charset=utf-8",
        include_str!("../dashboard/metrics.js"),
    ),
    ("favicon.svg", "image/svg+xml", include_str!("../dashboard/favicon.svg")),
];

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(|| async { Redirect::permanent("/dashboard/") }))
        .route("/dashboard/", get(|| asset_response("index.html")))
        .route("/dashboard/api/access", get(access))
        .route("/dashboard/api/metrics", get(metrics))
        .route("/dashboard/{file}", get(|Path(file): Path<String>| asset_response_owned(file)))
}

/// Whether `path` is one of the page's files, or the question of what a key may do (both
/// served without a key).
pub fn is_asset_path(path: &str) -> bool {
    path == "/dashboard"
        || path == "/dashboard/api/access"
        || path == "/dashboard/"
        || path
            .strip_prefix("/dashboard/")
            .is_some_and(|f| ASSETS.iter().any(|(n, _, _)| *n == f))
}

async fn asset_response_owned(file: String) -> Response {
    asset_response(&file).await
}

async fn asset_response(file: &str) -> Response {
    let Some((_, media, body)) = ASSETS.iter().find(|(n, _, _)| *n == file) else {
        return crate::api::ApiError::new(StatusCode::NOT_FOUND, format!("Not found: no dashboard file {file:?}")).into_response();
    };
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // The files change only with the binary.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    (h, *body).into_response()
}

/// `{"auth": bool, "access": "full" | "read_only" | "none"}`: what the key the request carries
/// may do (`none`: no key or a wrong one, while the server wants one). Needs no key itself, so
/// that the page can ask for one without an error.
async fn access(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let access = match (state.auth.enabled(), state.auth.access(Auth::key_of(&headers))) {
        (false, _) | (true, Access::Full) => "full",
        (true, Access::ReadOnly) => "read_only",
        (true, Access::None) => "none",
    };
    axum::Json(json!({"result": {"auth": state.auth.enabled(), "access": access}, "status": "ok", "time": 0.0})).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let s = state.clone();
    let v = tokio::task::spawn_blocking(move || s.metrics.summary(&s)).await.unwrap_or_default();
    axum::Json(json!({"result": v, "status": "ok", "time": 0.0})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_page_loads_is_served() {
        let index = ASSETS[0].2;
        for (name, _, body) in ASSETS {
            assert!(!body.is_empty(), "{name}");
            assert!(is_asset_path(&format!("/dashboard/{name}")));
        }
        // Every module the scripts import is one of the files.
        for (_, _, body) in ASSETS {
            for line in body.lines() {
                if let Some(rest) = line.trim().strip_prefix("import ") {
                    let file = rest.split(['"', '\'']).nth(1).unwrap_or_default().trim_start_matches("./");
                    assert!(ASSETS.iter().any(|(n, _, _)| *n == file), "imported but not served: {file}");
                }
            }
        }
        assert!(index.contains("app.js") && index.contains("style.css"));
        assert!(!is_asset_path("/dashboard/api/metrics") && !is_asset_path("/dashboard/../collections"));
        assert!(!is_asset_path("/collections") && !is_asset_path("/dashboard/nothing.js"));
    }
}
