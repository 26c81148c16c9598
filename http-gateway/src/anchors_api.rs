//! The Stargate API's anchors:
//!
//! - `POST /api/v1/anchors` with `{"cids": ["<cid>", ...]}` (or `{"cid": "<cid>"}`) queues CIDs
//!   for anchoring and answers 202 with where each stands. It needs the API key (the guide's
//!   `stargate-api-key` secret, `STARGATE_API_KEY`) as `Authorization: Bearer <key>`; a missing
//!   or wrong key is answered 401 and counted, a malformed body or CID 400 (counted too), and
//!   then nothing is queued.
//! - `GET /api/v1/anchors/<cid>` answers the CID's self-contained proof (the JSON that
//!   `stargate verify` checks) once its transaction is confirmed, and 404 with its `status`
//!   before. Public: proofs are meant to be handed to anyone.
//!
//! Errors are `{"error": "..."}`, the guide's shape.

use std::fmt;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use serde_json::json;
use stargate_protocol::{Cid, parse_cid};

use crate::AppState;
use crate::anchoring::{ANCHORING_OFF, AnchoringError};
use crate::authorization::{SecretDigest, digest};
use crate::rpc::MAX_CIDS_PER_CALL;

/// Largest request body read (a thousand CIDs with room to spare).
const MAX_BODY: usize = 256 * 1024;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectionLabels {
    reason: &'static str,
}

/// The API key and the count of requests it (or their content) turned away.
#[derive(Clone)]
pub struct ApiAuth {
    /// SHA-256 of the key: comparing digests takes the same time wherever the presented key
    /// differs, and the key itself is not kept.
    key: Option<SecretDigest>,
    rejections: Family<RejectionLabels, Counter>,
}

impl fmt::Debug for ApiAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiAuth")
            .field("key", &self.key.map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

impl ApiAuth {
    /// Registers `anchor_rejections_total{reason="unauthorized"|"bad_request"}` in `registry`.
    /// `key` is the API key; without one (or with an empty one) every protected request is
    /// refused.
    pub fn register(registry: &mut Registry, key: Option<&str>) -> Self {
        let rejections = Family::<RejectionLabels, Counter>::default();
        registry.register(
            "anchor_rejections",
            "Anchor requests refused: wrong or missing API key, malformed body or CID",
            rejections.clone(),
        );
        Self {
            key: key.filter(|k| !k.is_empty()).map(digest),
            rejections,
        }
    }

    fn reject(&self, reason: &'static str, status: StatusCode, message: &str) -> Response {
        self.rejections
            .get_or_create(&RejectionLabels { reason })
            .inc();
        error(status, message)
    }

    /// Checks `Authorization: Bearer <key>`; the error is the message to answer.
    fn check(&self, headers: &HeaderMap) -> Result<(), &'static str> {
        let Some(expected) = self.key else {
            return Err(
                "this node has no API key (set STARGATE_API_KEY), so it refuses anchor requests",
            );
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|k| digest(k.trim()));
        if presented == Some(expected) {
            Ok(())
        } else {
            Err("Invalid API key")
        }
    }
}

#[derive(Clone)]
struct Api {
    state: AppState,
    auth: ApiAuth,
}

/// The `/api/v1/anchors` routes over `state`'s chain service (503 without one).
pub fn anchors_router(state: AppState, auth: ApiAuth) -> Router {
    Router::new()
        .route("/api/v1/anchors", post(post_anchors))
        .route("/api/v1/anchors/{cid}", get(get_proof))
        .with_state(Api { state, auth })
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

fn failure(e: &AnchoringError) -> Response {
    if !matches!(e, AnchoringError::Stopped) {
        tracing::warn!(error = %e, "anchor request failed");
    }
    let status = match e {
        AnchoringError::Stopped => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, &e.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnchorRequest {
    #[serde(default)]
    cid: Option<String>,
    #[serde(default)]
    cids: Vec<String>,
}

/// The CIDs of a request body, all parsed before anything is queued.
fn parse_request(body: &[u8]) -> Result<Vec<Cid>, String> {
    let request: AnchorRequest = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the body must be JSON {{\"cids\": [\"<cid>\", ...]}} or {{\"cid\": \"<cid>\"}}: {e}"
        )
    })?;
    let texts: Vec<String> = request.cid.into_iter().chain(request.cids).collect();
    if texts.is_empty() {
        return Err("no CID given: send {\"cids\": [\"<cid>\", ...]}".to_owned());
    }
    if texts.len() > MAX_CIDS_PER_CALL {
        return Err(format!(
            "at most {MAX_CIDS_PER_CALL} CIDs per request, not {}",
            texts.len()
        ));
    }
    texts
        .iter()
        .map(|t| parse_cid(t).map_err(|e| e.to_string()))
        .collect()
}

async fn post_anchors(State(api): State<Api>, headers: HeaderMap, body: Body) -> Response {
    if let Err(message) = api.auth.check(&headers) {
        return api
            .auth
            .reject("unauthorized", StatusCode::UNAUTHORIZED, message);
    }
    let bad = |message: &str| {
        api.auth
            .reject("bad_request", StatusCode::BAD_REQUEST, message)
    };
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return bad(&format!(
            "the body is larger than {MAX_BODY} bytes or was cut short"
        ));
    };
    let cids = match parse_request(&bytes) {
        Ok(cids) => cids,
        Err(message) => return bad(&message),
    };
    let Some(anchoring) = api.state.anchoring() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, ANCHORING_OFF);
    };
    match anchoring.anchor(cids).await {
        Ok(entries) => {
            let anchors: Vec<_> = entries.iter().map(|e| e.to_json()).collect();
            (
                StatusCode::ACCEPTED,
                axum::Json(json!({ "anchors": anchors })),
            )
                .into_response()
        }
        Err(e) => failure(&e),
    }
}

async fn get_proof(State(api): State<Api>, Path(text): Path<String>) -> Response {
    let cid = match parse_cid(&text) {
        Ok(cid) => cid,
        Err(e) => {
            return api
                .auth
                .reject("bad_request", StatusCode::BAD_REQUEST, &e.to_string());
        }
    };
    let Some(anchoring) = api.state.anchoring() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, ANCHORING_OFF);
    };
    match anchoring.proof(cid).await {
        Ok(proof) => (
            [(header::CONTENT_TYPE, "application/json")],
            proof.to_json(),
        )
            .into_response(),
        Err(e @ (AnchoringError::NotAnchored { .. } | AnchoringError::NotConfirmed { .. })) => {
            let mut body = match anchoring.status(cid).await {
                Ok(Some(entry)) => entry.to_json(),
                Ok(None) => json!({ "cid": cid.to_string(), "status": "none" }),
                Err(e) => return failure(&e),
            };
            body["error"] = e.to_string().into();
            (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
        }
        Err(e) => failure(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bodies() {
        let one = parse_request(br#"{"cid": "bafkqaaa"}"#).unwrap();
        assert_eq!(one.len(), 1);
        let two = parse_request(br#"{"cids": ["bafkqaaa", "bafkqaaa"]}"#).unwrap();
        assert_eq!(two.len(), 2);
        for bad in [
            &br#"{"cids": ["bafkqaaa", "nope"]}"#[..],
            br#"{"cids": []}"#,
            br#"{}"#,
            br#"{"cids": "bafkqaaa"}"#,
            br#"{"cidz": ["bafkqaaa"]}"#,
            b"bafkqaaa",
        ] {
            assert!(
                parse_request(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let many = json!({ "cids": vec!["bafkqaaa"; MAX_CIDS_PER_CALL + 1] }).to_string();
        assert!(parse_request(many.as_bytes()).is_err());
    }

    #[test]
    fn keys_are_checked_and_not_shown() {
        let mut registry = Registry::default();
        let auth = ApiAuth::register(&mut registry, Some("s3cret"));
        assert!(!format!("{auth:?}").contains("s3cret"));
        let headers = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, value.parse().unwrap());
            h
        };
        assert!(auth.check(&headers("Bearer s3cret")).is_ok());
        assert!(auth.check(&headers("Bearer s3cre")).is_err());
        assert!(auth.check(&headers("s3cret")).is_err());
        assert!(auth.check(&HeaderMap::new()).is_err());
        let none = ApiAuth::register(&mut Registry::default(), Some(""));
        assert!(none.check(&headers("Bearer ")).is_err());
        let res = auth.reject("unauthorized", StatusCode::UNAUTHORIZED, "Invalid API key");
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("anchor_rejections_total{reason=\"unauthorized\"} 1"),
            "{text}"
        );
    }
}
