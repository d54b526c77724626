//! API keys: `api-key: K` or `Authorization: Bearer K`. The full key allows everything; the
//! read-only key allows reads and searches only. Keys are compared in constant time. Health
//! checks and `/` need no key (load balancers call them), nor do the dashboard's files (they
//! hold no data; the page asks for the key and sends it with its calls).

use crate::api::ApiError;
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

#[derive(Debug)]
pub struct Auth {
    full: Option<String>,
    read_only: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Access {
    Full,
    ReadOnly,
    None,
}

fn same(a: &str, b: &str) -> bool {
    // Constant time in the contents; lengths differ only for wrong keys.
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Auth {
    pub fn new(full: Option<String>, read_only: Option<String>) -> Auth {
        Auth {
            full: full.filter(|k| !k.is_empty()),
            read_only: read_only.filter(|k| !k.is_empty()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.full.is_some() || self.read_only.is_some()
    }

    /// The key a request carries: `api-key: K` or `Authorization: Bearer K`.
    pub fn key_of(headers: &axum::http::HeaderMap) -> Option<&str> {
        headers.get("api-key").and_then(|v| v.to_str().ok()).or_else(|| {
            headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        })
    }

    pub fn access(&self, key: Option<&str>) -> Access {
        let Some(key) = key else { return Access::None };
        if self.full.as_deref().is_some_and(|k| same(k, key)) {
            return Access::Full;
        }
        if self.read_only.as_deref().is_some_and(|k| same(k, key)) {
            return Access::ReadOnly;
        }
        Access::None
    }
}

/// `true` for requests that change nothing.
pub fn is_read(method: &Method, path: &str) -> bool {
    if method == Method::GET || method == Method::HEAD {
        return true;
    }
    method == Method::POST
        && [
            "/points",
            "/points/scroll",
            "/points/count",
            "/points/query",
            "/points/query/batch",
            "/points/search",
            "/points/search/batch",
            "/context",
            "/explain",
            "/map",
        ]
        .iter()
        .any(|suffix| path.ends_with(suffix))
}

pub async fn check(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    // The dashboard's files hold no data: the page asks for the key itself.
    let page = req.method() == Method::GET && crate::dashboard::is_asset_path(&path);
    if !state.auth.enabled() || page || matches!(path.as_str(), "/" | "/healthz" | "/livez" | "/readyz") {
        return next.run(req).await;
    }
    let key = Auth::key_of(req.headers());
    match state.auth.access(key) {
        Access::Full => next.run(req).await,
        Access::ReadOnly if is_read(req.method(), &path) => next.run(req).await,
        Access::ReadOnly => ApiError::new(StatusCode::FORBIDDEN, "the read-only API key cannot change data").into_response(),
        Access::None if key.is_none() => {
            ApiError::new(StatusCode::UNAUTHORIZED, "Must provide an API key or an Authorization bearer token").into_response()
        }
        Access::None => ApiError::new(StatusCode::UNAUTHORIZED, "Invalid API key or bearer token").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_access() {
        let a = Auth::new(Some("full-key".into()), Some("ro".into()));
        assert_eq!(a.access(Some("full-key")), Access::Full);
        assert_eq!(a.access(Some("ro")), Access::ReadOnly);
        assert_eq!(a.access(Some("full-kex")), Access::None);
        assert_eq!(a.access(Some("")), Access::None);
        assert_eq!(a.access(None), Access::None);
        assert!(is_read(&Method::POST, "/collections/c/points/query"));
        assert!(!is_read(&Method::POST, "/collections/c/points/delete"));
        assert!(!is_read(&Method::PUT, "/collections/c/points"));
        assert!(is_read(&Method::POST, "/collections/c/context"));
        assert!(is_read(&Method::POST, "/collections/c/explain"));
        assert!(is_read(&Method::POST, "/collections/c/map"));
        assert!(!Auth::new(Some(String::new()), None).enabled());
    }
}
