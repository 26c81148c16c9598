//! An RPC failure and the status and JSON it is answered with, as Kubo answers them.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use stargate_protocol::unixfs::export::SourceError;
use stargate_storage::StoreError;

/// An RPC failure, answered as Kubo does: 400 with `Code: 1` for bad requests, 404 with
/// `Code: 1` for commands it does not have, 500 with `Code: 0` for everything that went wrong
/// doing the work.
#[derive(Debug)]
pub(crate) struct RpcError {
    status: StatusCode,
    message: String,
}

pub(crate) type RpcResult<T> = Result<T, RpcError>;

impl RpcError {
    /// The request itself is wrong (bad argument, unknown option, malformed CID).
    pub(crate) fn client(message: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.to_string(),
        }
    }

    /// The command failed.
    pub(crate) fn failed(message: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.to_string(),
        }
    }

    /// There is no such command.
    pub(crate) fn not_found(message: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.to_string(),
        }
    }

    /// What went wrong, as the error JSON and the trailer say it.
    pub(super) fn message(&self) -> &str {
        &self.message
    }

    /// go-ipfs-cmds' `ErrorType`: `ErrClient` (1) for what the caller got wrong, `ErrNormal` (0)
    /// otherwise.
    fn code(&self) -> u8 {
        u8::from(self.status.is_client_error())
    }

    /// The error as Kubo's JSON.
    fn to_json(&self) -> serde_json::Value {
        json!({ "Message": self.message, "Code": self.code(), "Type": "error" })
    }

    pub(super) fn log(&self) {
        if self.status.is_server_error() {
            tracing::warn!(message = %self.message, "RPC command failed");
        }
    }
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl IntoResponse for RpcError {
    fn into_response(self) -> Response {
        self.log();
        (self.status, Json(self.to_json())).into_response()
    }
}

impl From<StoreError> for RpcError {
    fn from(e: StoreError) -> Self {
        Self::failed(e)
    }
}

impl From<SourceError> for RpcError {
    fn from(e: SourceError) -> Self {
        match e {
            SourceError::Invalid { .. } => Self::client(e),
            _ => Self::failed(e),
        }
    }
}

impl From<crate::NetworkError> for RpcError {
    fn from(e: crate::NetworkError) -> Self {
        match e {
            crate::NetworkError::Invalid { .. } => Self::client(e),
            _ => Self::failed(e),
        }
    }
}

impl From<stargate_protocol::CidError> for RpcError {
    fn from(e: stargate_protocol::CidError) -> Self {
        Self::client(e)
    }
}

impl From<tokio::task::JoinError> for RpcError {
    fn from(e: tokio::task::JoinError) -> Self {
        tracing::error!(error = %e, "RPC worker task failed");
        Self::failed("internal error")
    }
}
