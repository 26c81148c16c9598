//! The stego routes over the node's [`Stego`] and the store's ingestion records:
//!
//! - `POST /api/v1/stego/callback`: the platform's approval callback, signed with the callback
//!   secret as docs/stego-callback.md says. 401 for a missing, malformed, wrong, stale or
//!   replayed signature, 400 for a malformed body, 413 over 64 KiB, 503 without a secret or
//!   stego; then nothing changes. 202 for an approval (recorded; pinned and announced in the
//!   background), 200 for a rejection (recorded). Every refusal is counted by reason.
//! - `GET /api/v1/ingestions?after=<id>&limit=<n>&pending=<bool>`: ingestion records in id
//!   order after the cursor, `{"records": [...], "next": <id>}`; limit 100 by default, at most
//!   1000. `POST /api/v1/ingestions/<id>/ack` marks one consumed. Both need
//!   `Authorization: Bearer <ingest token>` (401 when missing or wrong, 503 when the node has
//!   none: never open).
//! - `POST /api/v0/ingest/ls?after=&limit=&pending=`: the same records for `stargate ingest ls`,
//!   on the operator's RPC like every other `/api/v0` command.
//!
//! Errors are `{"error": "..."}`.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use stargate_protocol::limits::MAX_STEGO_CALLBACK_SIZE;
use stargate_protocol::stego::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER};
use stargate_protocol::stego::{Callback, Verdict};
use stargate_storage::{Acked, IngestRecord, Store, StoreError};

use crate::AppState;
use crate::stego::{NO_SECRET, STEGO_OFF, StegoAuth, error, failure};

/// Records per page when the request names no limit.
const DEFAULT_PAGE: usize = 100;
/// Most records per page.
pub const MAX_INGEST_PAGE: usize = 1000;

#[derive(Clone)]
struct Api {
    state: AppState,
    auth: StegoAuth,
}

/// The stego callback, the ingestion pull API and `ingest ls` over `state`: the API
/// listener's.
pub fn stego_router(state: AppState, auth: StegoAuth) -> Router {
    Router::new()
        .route("/api/v1/stego/callback", post(callback))
        .route("/api/v1/ingestions", get(ingestions))
        .route("/api/v1/ingestions/{id}/ack", post(ack))
        .route("/api/v0/ingest/ls", post(ingest_ls))
        .with_state(Api { state, auth })
}

/// The stego callback alone, for the gateway listener when it is configured to take it.
pub fn stego_callback_router(state: AppState, auth: StegoAuth) -> Router {
    Router::new()
        .route("/api/v1/stego/callback", post(callback))
        .with_state(Api { state, auth })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs a store call off the async threads; a failure is answered 500.
async fn blocking<T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, String> {
    let store = store.clone();
    let result = tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| e.to_string())?;
    result.map_err(|e| {
        tracing::warn!(error = %e, "stego store request failed");
        e.to_string()
    })
}

fn internal(message: &str) -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, message)
}

async fn callback(State(api): State<Api>, headers: HeaderMap, body: Body) -> Response {
    let auth = &api.auth;
    let Some(secret) = auth.secret() else {
        return auth.refuse_callback("no_secret", StatusCode::SERVICE_UNAVAILABLE, NO_SECRET);
    };
    let Some(stego) = api.state.stego() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, STEGO_OFF);
    };
    let Ok(body) = axum::body::to_bytes(body, MAX_STEGO_CALLBACK_SIZE).await else {
        return auth.refuse_callback(
            "too_large",
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the body is larger than {MAX_STEGO_CALLBACK_SIZE} bytes or was cut short"),
        );
    };
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let now = unix_now();
    let signature = match secret.verify(
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        &body,
        now,
    ) {
        Ok(signature) => signature,
        Err(e) => {
            return auth.refuse_callback(e.reason(), StatusCode::UNAUTHORIZED, &e.to_string());
        }
    };
    let fresh = blocking(api.state.store(), move |store| {
        store.stego_signature_fresh(signature.timestamp, &signature.tag, now)
    })
    .await;
    match fresh {
        Ok(true) => {}
        Ok(false) => {
            return auth.refuse_callback(
                "replayed",
                StatusCode::UNAUTHORIZED,
                "this signature was used before: sign each callback anew",
            );
        }
        Err(message) => return internal(&message),
    }
    let callback = match Callback::decode(&body) {
        Ok(callback) => callback,
        Err(e) => {
            return auth.refuse_callback(e.reason(), StatusCode::BAD_REQUEST, &e.to_string());
        }
    };
    let id: String = callback
        .announcement()
        .id()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let verdict = callback.verdict;
    let done = match verdict {
        Verdict::Approved => stego.approve(callback).await,
        Verdict::Rejected => stego.reject(callback).await,
    };
    match (done, verdict) {
        (Ok(()), Verdict::Approved) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({ "status": "approved", "id": id })),
        )
            .into_response(),
        (Ok(()), Verdict::Rejected) => {
            axum::Json(json!({ "status": "rejected", "id": id })).into_response()
        }
        (Err(e), _) => failure(&e),
    }
}

/// Which records a page holds.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    /// Records with ids above this (0: from the first).
    #[serde(default)]
    after: u64,
    /// At most this many.
    #[serde(default)]
    limit: Option<usize>,
    /// Only those not consumed.
    #[serde(default)]
    pending: bool,
}

fn record_json(record: &IngestRecord) -> Value {
    let metadata: Map<String, Value> = serde_json::from_str(&record.metadata).unwrap_or_default();
    json!({
        "id": record.id,
        "image_cid": record.image.to_string(),
        "payload_cid": record.payload.to_string(),
        "publisher": record.publisher.to_base58(),
        "metadata": metadata,
        "created_ms": record.created,
        "consumed": record.consumed,
    })
}

async fn page(store: &Store, query: Result<Query<PageQuery>, QueryRejection>) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "{} (the arguments are after, limit and pending)",
                    e.body_text()
                ),
            );
        }
    };
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_INGEST_PAGE {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("limit is 1 to {MAX_INGEST_PAGE}"),
        );
    }
    let (after, pending) = (query.after, query.pending);
    let records = match blocking(store, move |store| store.ingest_page(after, limit, pending)).await
    {
        Ok(records) => records,
        Err(message) => return internal(&message),
    };
    let next = records.last().map_or(after, |r| r.id);
    let records: Vec<Value> = records.iter().map(record_json).collect();
    axum::Json(json!({ "records": records, "next": next })).into_response()
}

async fn ingestions(
    State(api): State<Api>,
    headers: HeaderMap,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    if let Some(refusal) = api.auth.token_refusal(&headers) {
        return refusal;
    }
    page(api.state.store(), query).await
}

async fn ingest_ls(
    State(api): State<Api>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    page(api.state.store(), query).await
}

async fn ack(State(api): State<Api>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(refusal) = api.auth.token_refusal(&headers) {
        return refusal;
    }
    let Ok(id) = id.parse::<u64>() else {
        return error(StatusCode::BAD_REQUEST, "the record id is a whole number");
    };
    match blocking(api.state.store(), move |store| store.ingest_ack(id)).await {
        Ok(Acked::Unknown) => error(StatusCode::NOT_FOUND, &format!("no ingestion record {id}")),
        Ok(Acked::Consumed | Acked::AlreadyConsumed) => {
            axum::Json(json!({ "id": id, "consumed": true })).into_response()
        }
        Err(message) => internal(&message),
    }
}

#[cfg(test)]
#[path = "stego_api_tests.rs"]
mod tests;
