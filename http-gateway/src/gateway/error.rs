//! Gateway failures and the status each one is answered with.
//!
//! Every error is a short `text/plain` body naming what was wrong. Client mistakes are 4xx; a
//! server-side status only ever comes from the content source (timeout, failure, a peer sending
//! bad blocks) or from our own bugs.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use stargate_protocol::PathError;
use stargate_protocol::unixfs::export::{ExportError, SourceError};
use thiserror::Error;

use super::request_id::RequestId;

/// Why a gateway request failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub(crate) enum GatewayError {
    /// The content path is malformed (bad CID, `..`, `%2F` in a name, too long, ...).
    #[error("invalid content path: {0}")]
    Path(#[from] PathError),
    /// The request URI (path and query) is longer than we read.
    #[error("request URI of {len} bytes exceeds the {max}-byte limit")]
    UriTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A query parameter or header has a value we cannot use.
    #[error("{0}")]
    BadRequest(String),
    /// Only response formats we do not produce were acceptable to the client.
    #[error("{0}")]
    NotAcceptable(String),
    /// A byte range that starts at or past the end of the content.
    #[error("range not satisfiable: the content has {size} bytes")]
    RangeNotSatisfiable {
        /// The content's size.
        size: u64,
    },
    /// Resolving or reading the content failed.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// The content did not arrive within the configured time.
    #[error("timed out after {0:?} waiting for the content; try again later")]
    TimedOut(Duration),
    /// `Cache-Control: only-if-cached` and the root block is not in the local store.
    #[error("{0} is not in this node's store (request was only-if-cached)")]
    NotCached(String),
    /// A method other than GET or HEAD.
    #[error("method {0} is not allowed: the gateway answers GET and HEAD")]
    MethodNotAllowed(String),
    /// `/ipns/...`.
    #[error("IPNS names are not resolved by this gateway: use /ipfs/<cid>[/path]")]
    Ipns,
    /// A path outside `/ipfs/`.
    #[error("no such endpoint {0:?}: content is served under /ipfs/<cid>[/path]")]
    NoRoute(String),
    /// A bug of ours (an invariant the dispatch relies on did not hold).
    #[error("internal error: {0}")]
    Internal(String),
}

impl GatewayError {
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }

    /// The status answered, and for transient failures how long to wait before retrying.
    fn status(&self) -> (StatusCode, Option<Duration>) {
        match self {
            Self::Path(PathError::TooLong { .. }) | Self::UriTooLong { .. } => {
                (StatusCode::URI_TOO_LONG, None)
            }
            Self::Path(_) | Self::BadRequest(_) => (StatusCode::BAD_REQUEST, None),
            Self::NotAcceptable(_) => (StatusCode::NOT_ACCEPTABLE, None),
            Self::RangeNotSatisfiable { .. } => (StatusCode::RANGE_NOT_SATISFIABLE, None),
            Self::Export(e) => export_status(e),
            Self::TimedOut(after) => (StatusCode::GATEWAY_TIMEOUT, Some(*after)),
            Self::NotCached(_) => (StatusCode::PRECONDITION_FAILED, None),
            Self::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, None),
            Self::Ipns => (StatusCode::NOT_IMPLEMENTED, None),
            Self::NoRoute(_) => (StatusCode::NOT_FOUND, None),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, None),
        }
    }
}

/// The path gateway spec: 404 when the DAG lacks the path or a node is invalid, 504 when the
/// content did not come in time, 502 when a source handed us bad blocks.
fn export_status(e: &ExportError) -> (StatusCode, Option<Duration>) {
    match e {
        ExportError::Source(SourceError::NotFound { .. })
        | ExportError::NoSuchEntry { .. }
        | ExportError::NotADirectory { .. }
        | ExportError::Malformed { .. } => (StatusCode::NOT_FOUND, None),
        ExportError::Source(SourceError::TimedOut { after, .. }) => {
            (StatusCode::GATEWAY_TIMEOUT, Some(*after))
        }
        ExportError::Source(SourceError::Invalid { .. }) => (StatusCode::BAD_GATEWAY, None),
        ExportError::Source(SourceError::Unavailable { .. }) => {
            (StatusCode::SERVICE_UNAVAILABLE, Some(RETRY_UNAVAILABLE))
        }
        ExportError::RangeNotSatisfiable { .. } => (StatusCode::RANGE_NOT_SATISFIABLE, None),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, None),
    }
}

/// What a server-side failure is called in a response body: the kind of failure, never its
/// detail.
fn public_message(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_GATEWAY => "bad gateway: a peer sent blocks that do not match their CIDs",
        StatusCode::SERVICE_UNAVAILABLE => "service unavailable; try again later",
        StatusCode::GATEWAY_TIMEOUT => {
            "gateway timeout: the content did not arrive in time; try again later"
        }
        _ => "internal server error",
    }
}

/// Retry hint when the source failed for a reason of its own (disk error, shutting down).
const RETRY_UNAVAILABLE: Duration = Duration::from_secs(10);

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let (status, retry) = self.status();
        let body = if status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED {
            // The detail stays in the log; the public answer says what kind of failure it was
            // and which log line tells the rest.
            let id = RequestId::current();
            let id_text = id.map(|id| id.to_string()).unwrap_or_default();
            tracing::warn!(%status, request_id = %id_text, error = %self, "gateway request failed");
            let mut body = public_message(status).to_owned();
            if id.is_some() {
                body.push_str(&format!(" (request id {id_text})"));
            }
            body
        } else {
            tracing::debug!(%status, error = %self, "gateway request refused");
            self.to_string()
        };
        let mut res = (status, format!("{body}\n")).into_response();
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if let Self::RangeNotSatisfiable { size } = self
            && let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}"))
        {
            headers.insert(header::CONTENT_RANGE, v);
        }
        if let Some(after) = retry {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(after.as_secs().max(1)),
            );
        }
        res
    }
}
