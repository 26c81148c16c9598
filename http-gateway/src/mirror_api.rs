//! The operator's mirroring routes over the node's [`Mirror`]:
//!
//! - `GET /api/v1/mirror/status` (and `POST /api/v0/mirror/status`, which the CLI calls):
//!   topics and their peers, queue, in flight, stored, failed by reason, manifests, sync, and
//!   under `stego` the stego and ingestion figures when the node runs that part.
//! - `GET /api/v1/mirror/ls?type=T&from=PEER&limit=N` (and `POST /api/v0/mirror/ls` with the
//!   same arguments): mirror records, newest first.
//!
//! Both answer JSON the node builds; errors are `{"error": "..."}`.

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;

use crate::AppState;
use crate::mirror::{MAX_LS_LIMIT, MIRROR_OFF, MirrorError, MirrorQuery, error_response};

/// The mirror routes over `state`'s mirror (503 without one).
pub fn mirror_router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/mirror/status", get(status))
        .route("/api/v0/mirror/status", post(status))
        .route("/api/v1/mirror/ls", get(list))
        .route("/api/v0/mirror/ls", post(list))
        .with_state(state)
}

fn answer(result: Result<Value, MirrorError>) -> Response {
    match result {
        Ok(value) => axum::Json(value).into_response(),
        Err(e) => error_response(&e),
    }
}

async fn status(State(state): State<AppState>) -> Response {
    let Some(mirror) = state.mirror() else {
        return error_response(&MirrorError::Disabled(MIRROR_OFF.to_owned()));
    };
    let mut status = mirror.status().await;
    if let (Ok(Value::Object(fields)), Some(stego)) = (&mut status, state.stego()) {
        let figures = stego
            .status()
            .await
            .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }));
        fields.insert("stego".to_owned(), figures);
    }
    answer(status)
}

async fn list(
    State(state): State<AppState>,
    query: Result<Query<MirrorQuery>, QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(e) => {
            return error_response(&MirrorError::Invalid(format!(
                "{} (the arguments are type, from and limit)",
                e.body_text()
            )));
        }
    };
    if query.limit.is_some_and(|l| l > MAX_LS_LIMIT) {
        return error_response(&MirrorError::Invalid(format!(
            "limit is at most {MAX_LS_LIMIT}"
        )));
    }
    match state.mirror() {
        Some(mirror) => answer(mirror.list(query).await),
        None => error_response(&MirrorError::Disabled(MIRROR_OFF.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use axum::http::StatusCode;
    use futures::future::BoxFuture;
    use serde_json::{Map, json};
    use stargate_protocol::Cid;

    use super::*;
    use crate::mirror::Mirror;

    struct Fake;

    impl Mirror for Fake {
        fn announce(
            &self,
            _: Cid,
            _: String,
            _: Map<String, Value>,
        ) -> BoxFuture<'_, Result<(), MirrorError>> {
            Box::pin(async { Ok(()) })
        }
        fn status(&self) -> BoxFuture<'_, Result<Value, MirrorError>> {
            Box::pin(async { Ok(json!({"queue": 3})) })
        }
        fn list(&self, query: MirrorQuery) -> BoxFuture<'_, Result<Value, MirrorError>> {
            Box::pin(async move { Ok(json!({"type": query.kind, "from": query.from})) })
        }
    }

    async fn call(mirror: bool, method: &str, uri: &str) -> (StatusCode, Value) {
        let dir = tempfile::tempdir().unwrap();
        let store =
            stargate_storage::Store::open(dir.path(), stargate_storage::StoreOptions::default())
                .unwrap();
        let mut state = AppState::new(
            store.clone(),
            Arc::new(store),
            crate::HttpOptions::default(),
        );
        if mirror {
            state = state.with_mirror(Arc::new(Fake));
        }
        let res = mirror_router(state)
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(uri)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn status_and_ls_through_the_trait() {
        let (code, body) = call(true, "GET", "/api/v1/mirror/status").await;
        assert_eq!((code, body), (StatusCode::OK, json!({"queue": 3})));
        let (code, body) = call(true, "POST", "/api/v0/mirror/status").await;
        assert_eq!((code, body), (StatusCode::OK, json!({"queue": 3})));
        let (code, body) = call(true, "GET", "/api/v1/mirror/ls?type=contract&from=12D3Koo").await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(body, json!({"type": "contract", "from": "12D3Koo"}));
    }

    #[tokio::test]
    async fn bad_queries_and_no_mirror_are_errors() {
        let (code, body) = call(true, "GET", "/api/v1/mirror/ls?typo=x").await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
        let (code, _) = call(true, "GET", "/api/v1/mirror/ls?limit=100001").await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        let (code, body) = call(false, "GET", "/api/v1/mirror/status").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body["error"].as_str().unwrap().contains("mirroring is off"));
    }
}
