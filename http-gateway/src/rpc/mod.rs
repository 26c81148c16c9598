//! The Kubo-compatible RPC subset (`POST /api/v0/<command>`): arguments in the query string
//! (`arg` repeated, options by their long names: each command takes Kubo's options for it),
//! answers in Kubo's JSON shapes, streamed as newline-delimited JSON where Kubo streams, errors
//! as `{"Message", "Code", "Type": "error"}` (see [`response`] for when and how). A command this
//! node does not have is answered as Kubo answers one it does not have: 404.

mod add;
mod anchor;
mod blocks;
mod config;
mod content;
mod dag;
mod dag_car;
mod deadline;
mod drain;
mod error;
mod params;
mod pins;
mod pubsub;
mod repo;
mod response;
mod routing;
mod stats;
mod swarm;
mod tar;

use axum::Router;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::AppState;

pub use add::InProcess;
pub(crate) use anchor::MAX_CIDS_PER_CALL;
pub use config::ListenAddrs;
pub(crate) use error::{RpcError, RpcResult};
pub(crate) use params::Params;

/// The `/api/v0` router over `state`.
pub fn api_router(state: AppState) -> Router {
    Router::new()
        .route("/api/v0/add", post(add::add))
        .route("/api/v0/cat", post(content::cat))
        .route("/api/v0/get", post(content::get))
        .route("/api/v0/ls", post(content::ls))
        .route("/api/v0/block/get", post(blocks::get))
        .route("/api/v0/block/put", post(blocks::put))
        .route("/api/v0/block/stat", post(blocks::stat))
        .route("/api/v0/block/rm", post(blocks::rm))
        .route("/api/v0/pin/add", post(pins::add))
        .route("/api/v0/pin/rm", post(pins::rm))
        .route("/api/v0/pin/ls", post(pins::ls))
        .route("/api/v0/repo/gc", post(repo::gc))
        .route("/api/v0/repo/verify", post(repo::verify))
        .route("/api/v0/repo/stat", post(repo::stat))
        .route("/api/v0/stats/repo", post(repo::stat))
        .route("/api/v0/stats/bw", post(stats::bw))
        .route("/api/v0/version", post(repo::version))
        .route("/api/v0/config", post(config::get))
        .route("/api/v0/config/show", post(config::show))
        .route("/api/v0/key/list", post(config::key_list))
        .route("/api/v0/id", post(swarm::id))
        .route("/api/v0/swarm/connect", post(swarm::connect))
        .route("/api/v0/swarm/disconnect", post(swarm::disconnect))
        .route("/api/v0/swarm/peers", post(swarm::peers))
        .route("/api/v0/routing/findprovs", post(routing::findprovs))
        .route("/api/v0/routing/provide", post(routing::provide))
        .route("/api/v0/anchor/add", post(anchor::add))
        .route("/api/v0/anchor/status", post(anchor::status))
        .route("/api/v0/anchor/proof", post(anchor::proof))
        .route("/api/v0/wallet/address", post(anchor::wallet_address))
        .route("/api/v0/wallet/balance", post(anchor::wallet_balance))
        .route("/api/v0/dag/fetch", post(routing::fetch_dag))
        .route("/api/v0/dag/put", post(dag::put))
        .route("/api/v0/dag/get", post(dag::get))
        .route("/api/v0/dag/stat", post(dag::stat))
        .route("/api/v0/dag/resolve", post(dag::resolve))
        .route("/api/v0/dag/export", post(dag_car::export))
        .route("/api/v0/dag/import", post(dag_car::import))
        .route("/api/v0/pubsub/pub", post(pubsub::publish))
        .route("/api/v0/pubsub/sub", post(pubsub::subscribe))
        .route("/api/v0/pubsub/ls", post(pubsub::ls))
        .route("/api/v0/pubsub/peers", post(pubsub::peers))
        .fallback(unknown_command)
        .layer(axum::middleware::from_fn(deadline::deadline))
        // `add` streams bodies of any size through bounded channels; the others read small ones.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// Anything under `/api/v0/` that is not a command here: Kubo's 404 (its own client reads any
/// 404 as "command not found"), with its error JSON naming the command; other methods than
/// POST get 405 first, as in Kubo. Paths outside the API stay a bare 404.
async fn unknown_command(method: Method, uri: Uri) -> Response {
    match uri.path().strip_prefix("/api/v0/") {
        Some(_) if method != Method::POST => StatusCode::METHOD_NOT_ALLOWED.into_response(),
        Some(command) => RpcError::not_found(format!(
            "404 page not found: this node has no command {:?}",
            command.trim_end_matches('/')
        ))
        .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
