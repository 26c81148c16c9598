//! How RPC answers are shaped: Kubo's error JSON and newline-delimited JSON streams.

use axum::Json;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use serde_json::json;
use stargate_protocol::unixfs::export::SourceError;
use stargate_storage::StoreError;
use tokio::sync::mpsc;

/// An RPC failure, answered as Kubo does: 400 with `Code: 1` for bad requests, 500 with
/// `Code: 0` for everything that went wrong doing the work.
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

    fn code(&self) -> u8 {
        u8::from(self.status == StatusCode::BAD_REQUEST)
    }

    /// The error as one line of a JSON stream.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        json!({ "Message": self.message, "Code": self.code(), "Type": "error" })
    }
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl IntoResponse for RpcError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(message = %self.message, "RPC command failed");
        }
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

/// Lines waiting to be sent per streamed answer.
const STREAM_BUFFER: usize = 64;

/// The sending side of a newline-delimited JSON answer.
#[derive(Debug, Clone)]
pub(crate) struct JsonLines(mpsc::Sender<Bytes>);

impl JsonLines {
    /// A stream and the response that carries it.
    pub(crate) fn new() -> (Self, Response) {
        let (tx, rx) = mpsc::channel::<Bytes>(STREAM_BUFFER);
        let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|line| (Ok::<_, std::io::Error>(line), rx))
        }));
        let mut res = body.into_response();
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert("x-chunked-output", HeaderValue::from_static("1"));
        (Self(tx), res)
    }

    /// Sends one value; false when the client went away.
    pub(crate) async fn send(&self, value: &impl Serialize) -> bool {
        let Ok(mut line) = serde_json::to_vec(value) else {
            return false;
        };
        line.push(b'\n');
        self.0.send(Bytes::from(line)).await.is_ok()
    }

    /// Sends a value from a blocking thread; false when the client went away.
    pub(crate) fn blocking_send(&self, value: &impl Serialize) -> bool {
        let Ok(mut line) = serde_json::to_vec(value) else {
            return false;
        };
        line.push(b'\n');
        self.0.blocking_send(Bytes::from(line)).is_ok()
    }

    /// Ends the stream with an error line (Kubo puts it in a trailer; a line reaches every
    /// client, ours included).
    pub(crate) async fn fail(&self, e: &RpcError) {
        self.send(&e.to_json()).await;
    }
}
