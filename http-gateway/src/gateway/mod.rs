//! The IPFS path gateway and trustless gateway: `GET`/`HEAD /ipfs/<cid>[/path]`.
//!
//! Deserialized responses (file bytes, `index.html`, HTML directory listings) follow the path
//! gateway spec; `?format=raw` / `?format=car` (or the matching `Accept` types) the trustless
//! gateway spec. Everything reads through [`AppState::blocks`], so the same code serves from the
//! store now and from peers later: waiting for content is bounded by `options().timeout` (504),
//! a transfer that keeps making progress is never cut off.

mod accept;
mod error;
mod file;
mod format;
mod headers;
mod listing;
mod range;
mod request;
mod request_id;
mod respond;
mod sniff;
mod stream;
mod trustless;

pub(crate) use listing::human_size;

#[cfg(test)]
mod tests;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};

use crate::AppState;
use error::GatewayError;

/// The gateway router over `state`: `/ipfs/...` for GET and HEAD; `/ipns/...` answers that
/// IPNS is not served; every other path is 404.
pub fn gateway_router(state: AppState) -> Router {
    let ipfs = get(respond::ipfs).fallback(method_not_allowed);
    Router::new()
        .route("/ipfs/{*path}", ipfs.clone())
        .route("/ipfs", ipfs.clone())
        .route("/ipfs/", ipfs)
        .route("/ipns/{*path}", any(ipns))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(request_id::assign))
        .with_state(state)
}

async fn method_not_allowed(method: Method) -> Response {
    let mut res = GatewayError::MethodNotAllowed(method.to_string()).into_response();
    res.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
    res
}

async fn ipns() -> Response {
    GatewayError::Ipns.into_response()
}

async fn not_found(State(_): State<AppState>, req: Request) -> Response {
    GatewayError::NoRoute(req.uri().path().chars().take(200).collect()).into_response()
}
