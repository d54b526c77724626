//! Errors in Qdrant's shape (`{"status": {"error": ..}}`), and the one place where a library
//! error becomes an HTTP status.

use super::*;

/// An error in Qdrant's shape.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds a rate-limited client should wait (the `Retry-After` header).
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// A well-formed body with a value out of range, in Qdrant's words and status (422).
    pub(crate) fn validation(field: &str, problem: &str) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Validation error in JSON body: [{field}: {problem}]"),
        )
    }

    pub(crate) fn unsupported(what: &str) -> ApiError {
        ApiError::bad(format!("Unsupported: {what} is not supported by Quiver yet"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            axum::Json(json!({"status": {"error": self.message}, "time": 0.0, "result": null})),
        )
            .into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, s.into());
        }
        r
    }
}

pub(super) type ApiResult = Result<Value, ApiError>;

/// The one place where library errors become HTTP statuses.
impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let status = match e.kind() {
            ErrorKind::BadInput => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Locked => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::ReadOnly => StatusCode::FORBIDDEN,
            ErrorKind::Storage => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        };
        let prefix = match e.kind() {
            ErrorKind::BadInput => "Wrong input: ",
            ErrorKind::NotFound => "Not found: ",
            _ => "",
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "storage error");
        }
        match &e {
            Error::Validation { .. } => return ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
            // A name no collection can have (Qdrant checks it as a path parameter).
            Error::InvalidName { .. } => {
                return ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("Validation error in path parameters: [name: {e}]"),
                )
            }
            _ => {}
        }
        let retry_after = match &e {
            Error::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        };
        ApiError {
            retry_after,
            ..ApiError::new(status, format!("{prefix}{e}"))
        }
    }
}
