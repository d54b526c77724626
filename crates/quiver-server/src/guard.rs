//! What keeps a local server from being driven by any web page the user opens: JSON bodies must
//! say they are JSON, and cross-origin access is refused unless the operator allows an origin.
//!
//! A browser sends a cross-site "simple" request (a form post, `fetch` with `text/plain`)
//! without asking first; a request with `Content-Type: application/json` needs a CORS preflight,
//! which the server answers without permission unless `--cors-origin` names the page's origin.
//! So requiring `application/json` for every body is what makes cross-site writes impossible.

use crate::api::ApiError;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Whether `value` is a JSON media type (`application/json`, with parameters such as a
/// charset, or a `+json` suffix type).
fn is_json(value: &HeaderValue) -> bool {
    let Ok(v) = value.to_str() else { return false };
    let media = v.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

/// Whether the request carries a body: a non-zero length, a chunked one, or (HTTP/2, in
/// process) a body stream that is not known to be empty.
fn has_body(req: &Request) -> bool {
    use axum::body::HttpBody;
    let h = req.headers();
    if h.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    match h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        Some(n) => n > 0,
        None => !req.body().is_end_stream() && req.body().size_hint().exact() != Some(0),
    }
}

/// A snapshot upload (`multipart/form-data`, Qdrant's API) from a program rather than a web
/// page: browsers send `Origin` with every cross-site POST, so a form on another site cannot
/// pass for one.
fn is_program_upload(req: &Request) -> bool {
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("multipart/form-data"));
    multipart && req.uri().path().ends_with("/snapshots/upload") && !req.headers().contains_key(header::ORIGIN)
}

/// Refuses a request body that is not declared JSON with 415 (except a snapshot upload from
/// a program, see `is_program_upload`).
pub async fn json_bodies(req: Request, next: Next) -> Response {
    let carries = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) && has_body(&req);
    if carries && !req.headers().get(header::CONTENT_TYPE).is_some_and(is_json) && !is_program_upload(&req) {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "request bodies must be JSON sent with the header 'Content-Type: application/json'",
        )
        .into_response();
    }
    next.run(req).await
}

/// CORS: preflights are answered, and only the `origins` given get cross-origin access (none by
/// default; the dashboard is same-origin).
pub fn cors(origins: &[String]) -> Result<CorsLayer, String> {
    let list = origins
        .iter()
        .map(|o| {
            let o = o.trim_end_matches('/');
            if !(o.starts_with("http://") || o.starts_with("https://")) || o.contains(['*', ' ']) {
                return Err(format!(
                    "--cors-origin {o:?}: an origin is a scheme and a host, such as https://app.example.com"
                ));
            }
            HeaderValue::from_str(o).map_err(|_| format!("--cors-origin {o:?} is not a valid origin"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CorsLayer::new()
        .allow_origin(AllowOrigin::list(list))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            "api-key".parse().expect("a valid header name"),
        ])
        .max_age(std::time::Duration::from_secs(3600)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/vnd.api+json",
        ] {
            assert!(is_json(&HeaderValue::from_static(ok)), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "",
            "application/jsonx",
        ] {
            assert!(!is_json(&HeaderValue::from_static(bad)), "{bad}");
        }
    }

    #[test]
    fn origins_are_checked() {
        assert!(cors(&["https://app.example.com".into()]).is_ok());
        assert!(cors(&["*".into()]).is_err());
        assert!(cors(&["app.example.com".into()]).is_err());
    }
}
