//! The node's mirroring as the HTTP surface sees it: a narrow trait the node implements
//! ([`Mirror`]), what it answers and how its errors map to HTTP. The routes over it are in
//! `mirror_api.rs`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use stargate_protocol::Cid;

/// What mirroring requests answer when this process does not mirror.
pub(crate) const MIRROR_OFF: &str = "mirroring is off: it needs a running daemon (`stargate daemon`) with [ipfs] mirror_enabled = true";

/// Records listed at most per `ls` call.
pub const MAX_LS_LIMIT: usize = 10_000;

/// Why a mirroring request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MirrorError {
    /// The request itself is wrong (a bad type, peer id or metadata); nothing was done.
    #[error("{0}")]
    Invalid(String),
    /// The node does not do what was asked (uploads not announced, mirroring off).
    #[error("{0}")]
    Disabled(String),
    /// Something failed on the node's side.
    #[error("{0}")]
    Failed(String),
}

/// Which records `ls` lists.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorQuery {
    /// Only this announcement type.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Only from this original publisher (a peer id).
    #[serde(default)]
    pub from: Option<String>,
    /// At most this many (default 100, at most [`MAX_LS_LIMIT`]).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// The node's mirror.
pub trait Mirror: Send + Sync {
    /// Records `cid` (already added and pinned here) as this node's upload of type `kind` and
    /// announces it on the mirror topic.
    fn announce(
        &self,
        cid: Cid,
        kind: String,
        metadata: Map<String, Value>,
    ) -> BoxFuture<'_, Result<(), MirrorError>>;

    /// The status document of `GET /api/v1/mirror/status`.
    fn status(&self) -> BoxFuture<'_, Result<Value, MirrorError>>;

    /// The records `query` asks for, as the `ls` answer.
    fn list(&self, query: MirrorQuery) -> BoxFuture<'_, Result<Value, MirrorError>>;
}

pub(crate) fn error_response(e: &MirrorError) -> Response {
    let status = match e {
        MirrorError::Invalid(_) => StatusCode::BAD_REQUEST,
        MirrorError::Disabled(_) => StatusCode::SERVICE_UNAVAILABLE,
        MirrorError::Failed(m) => {
            tracing::warn!(error = %m, "mirror request failed");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    (status, axum::Json(json!({ "error": e.to_string() }))).into_response()
}
