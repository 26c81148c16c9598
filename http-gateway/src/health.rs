//! `GET /health`: the liveness answer the guide specifies.

use axum::{Json, Router, routing::get};
use serde_json::{Value, json};

/// Routes for `/health`, mergeable into any router.
pub(crate) fn health_routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/health", get(health))
}

async fn health() -> Json<Value> {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    Json(json!({ "status": "ok", "timestamp": now.to_string() }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[tokio::test]
    async fn answers_ok_with_rfc3339_timestamp() {
        let res = health_routes::<()>()
            .oneshot(
                axum::http::Request::get("/health")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["status"], "ok");
        let ts = v["timestamp"].as_str().unwrap();
        assert!(humantime::parse_rfc3339(ts).is_ok(), "{ts}");
    }
}
