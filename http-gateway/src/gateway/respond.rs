//! The `/ipfs/` handler: checks the request, resolves its path and prepares the answer within
//! the content timeout, then lets the body stream.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use stargate_protocol::unixfs::export::{EntryKind, Resolved, resolve_path};
use stargate_protocol::{Cid, Codec, HashCode};

use super::error::GatewayError;
use super::format::Format;
use super::request::GatewayRequest;
use super::{file, headers, listing, trustless};
use crate::AppState;

/// `GET`/`HEAD /ipfs/<cid>[/path]`.
pub(crate) async fn ipfs(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match answer(&state, &method, &uri, &headers).await {
        Ok(res) => res,
        Err(e) => e.into_response(),
    }
}

async fn answer(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Response, GatewayError> {
    let req = GatewayRequest::parse(method, uri, headers)?;
    // Waiting for content is bounded; streaming the body afterwards is not (see `stream`).
    let wait = state.options().timeout;
    tokio::time::timeout(wait, prepare(state, &req))
        .await
        .map_err(|_| GatewayError::TimedOut(wait))?
}

async fn prepare(state: &AppState, req: &GatewayRequest) -> Result<Response, GatewayError> {
    if req.only_if_cached {
        ensure_cached(state, *req.path.root()).await?;
    }
    let resolved = resolve_path(state.blocks(), &req.path).await?;
    match req.format {
        Format::Raw => trustless::raw(req, &resolved),
        Format::Car => trustless::car(state, req, &resolved),
        Format::Deserialized => deserialized(state, req, &resolved).await,
    }
}

/// What the path names, as content.
async fn deserialized(
    state: &AppState,
    req: &GatewayRequest,
    resolved: &Resolved,
) -> Result<Response, GatewayError> {
    let name = req.path.segments().last().map(String::as_str);
    match &resolved.kind {
        EntryKind::File { .. } | EntryKind::Raw { .. } => {
            file::serve(
                state,
                req,
                &resolved.path_cids,
                resolved.block.clone(),
                name,
            )
            .await
        }
        EntryKind::Directory | EntryKind::ShardedDirectory => {
            listing::serve_directory(state, req, resolved).await
        }
        // Served as a file holding the target, as Kubo does.
        EntryKind::Symlink { target } => {
            let etag = headers::etag(resolved.cid());
            let h = headers::common(req, &resolved.path_cids, &etag);
            file::serve_bytes(req, h, &etag, "text/plain; charset=utf-8", target.clone())
        }
        // Other codecs are sent as they are, typed by their codec (the path gateway spec).
        EntryKind::Other { codec } => {
            let etag = headers::etag(resolved.cid());
            let mut h = headers::common(req, &resolved.path_cids, &etag);
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            let block = resolved.block.data().clone();
            file::serve_bytes(req, h, &etag, codec_type(*codec), block)
        }
        other => Err(GatewayError::Internal(format!(
            "no answer for a {}",
            other.name()
        ))),
    }
}

fn codec_type(codec: Codec) -> &'static str {
    match codec {
        Codec::DagCbor => "application/vnd.ipld.dag-cbor",
        Codec::DagJson => "application/vnd.ipld.dag-json",
        _ => "application/octet-stream",
    }
}

/// `Cache-Control: only-if-cached`: the root block must be in the local store (identity CIDs
/// always are), without asking the network.
async fn ensure_cached(state: &AppState, root: Cid) -> Result<(), GatewayError> {
    if root.hash().code() == HashCode::Identity.code() {
        return Ok(());
    }
    let store = state.store().clone();
    let has = tokio::task::spawn_blocking(move || store.has(&root))
        .await
        .map_err(|e| GatewayError::Internal(format!("store task failed: {e}")))?;
    match has {
        Ok(true) => Ok(()),
        Ok(false) => Err(GatewayError::NotCached(root.to_string())),
        Err(e) => Err(GatewayError::Internal(format!("store: {e}"))),
    }
}
