//! The node's stego results as the HTTP surface sees them: a narrow trait the node implements
//! ([`Stego`]) for the approval callback, and the two secrets that guard the stego routes
//! ([`StegoAuth`]: the callback secret and the ingest token) with the count of what they turned
//! away. The routes are in `stego_api.rs`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use stargate_protocol::stego::Callback;
use stargate_protocol::stego::signature::CallbackSecret;
use subtle::ConstantTimeEq as _;

/// What the callback answers when this process does not run stego.
pub(crate) const STEGO_OFF: &str = "stego is off: it needs a running daemon (`stargate daemon`) with [pubsub] enabled and [ipfs] mirror_enabled and stego_announce_enabled";

/// What the callback answers when the node has no callback secret.
pub(crate) const NO_SECRET: &str = "this node has no stego callback secret (set STARGATE_STEGO_CALLBACK_SECRET or STARGATE_STEGO_CALLBACK_SECRET_FILE), so it refuses callbacks";

/// What the pull API answers when the node has no ingest token.
pub(crate) const NO_TOKEN: &str = "this node has no ingest token (set STARGATE_INGEST_TOKEN or STARGATE_INGEST_TOKEN_FILE), so it refuses the ingestion API rather than serve it open";

/// Why a stego request failed on the node's side.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StegoError {
    /// The node does not do what was asked (stego announcing off).
    #[error("{0}")]
    Disabled(String),
    /// Something failed on the node's side.
    #[error("{0}")]
    Failed(String),
}

/// The node's stego side.
pub trait Stego: Send + Sync {
    /// Records an approved result (its signature checked, its body decoded), then pins both
    /// CIDs (fetching what is not here) and announces it. Returns once it is recorded: the
    /// fetching and announcing go on without the caller.
    fn approve(&self, callback: Callback) -> BoxFuture<'_, Result<(), StegoError>>;

    /// Records a rejected result; nothing is pinned or announced.
    fn reject(&self, callback: Callback) -> BoxFuture<'_, Result<(), StegoError>>;

    /// The stego and ingestion figures of the mirror status (`stego` in
    /// `GET /api/v1/mirror/status`).
    fn status(&self) -> BoxFuture<'_, Result<serde_json::Value, StegoError>>;
}

pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

pub(crate) fn failure(e: &StegoError) -> Response {
    let status = match e {
        StegoError::Disabled(_) => StatusCode::SERVICE_UNAVAILABLE,
        StegoError::Failed(m) => {
            tracing::warn!(error = %m, "stego request failed");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    error(status, &e.to_string())
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// The callback secret, the ingest token, and the count of requests they (or the content)
/// turned away. Neither secret is kept as given, and Debug shows only whether each is set.
#[derive(Clone)]
pub struct StegoAuth {
    secret: Option<CallbackSecret>,
    /// SHA-256 of the token: compared in constant time, and the token itself is not kept.
    token: Option<[u8; 32]>,
    callbacks_refused: Family<ReasonLabels, Counter>,
    /// The same counts, readable for the status document.
    refused_by_reason: Arc<Mutex<BTreeMap<&'static str, u64>>>,
    ingest_refused: Family<ReasonLabels, Counter>,
}

impl fmt::Debug for StegoAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StegoAuth")
            .field("secret", &self.secret.as_ref().map(|_| "<set>"))
            .field("token", &self.token.map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

impl StegoAuth {
    /// Registers `stego_callbacks_refused_total{reason}` and
    /// `ingest_requests_refused_total{reason="no_token"|"unauthorized"}` in `registry`. Without
    /// a secret (or with an empty one) every callback is refused; without a token every
    /// ingestion request.
    pub fn register(registry: &mut Registry, secret: Option<&str>, token: Option<&str>) -> Self {
        let callbacks_refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "stego_callbacks_refused",
            "Stego approval callbacks refused, by reason (signature, replay, body)",
            callbacks_refused.clone(),
        );
        let ingest_refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "ingest_requests_refused",
            "Ingestion API requests refused: no ingest token configured, or a missing or wrong one",
            ingest_refused.clone(),
        );
        Self {
            secret: secret.and_then(|s| CallbackSecret::new(s.as_bytes())),
            token: token.filter(|t| !t.is_empty()).map(digest),
            callbacks_refused,
            refused_by_reason: Arc::default(),
            ingest_refused,
        }
    }

    /// Callbacks refused so far, by reason.
    pub fn refused_callbacks(&self) -> BTreeMap<&'static str, u64> {
        self.refused_by_reason
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    pub(crate) fn secret(&self) -> Option<&CallbackSecret> {
        self.secret.as_ref()
    }

    /// Counts a refused callback and answers it.
    pub(crate) fn refuse_callback(
        &self,
        reason: &'static str,
        status: StatusCode,
        message: &str,
    ) -> Response {
        self.callbacks_refused
            .get_or_create(&ReasonLabels { reason })
            .inc();
        if let Ok(mut counts) = self.refused_by_reason.lock() {
            *counts.entry(reason).or_default() += 1;
        }
        error(status, message)
    }

    /// Checks `Authorization: Bearer <ingest token>`: the answer to give when it does not
    /// pass (counted), `None` when it does.
    pub(crate) fn token_refusal(&self, headers: &HeaderMap) -> Option<Response> {
        let (reason, status, message) = match self.token {
            None => ("no_token", StatusCode::SERVICE_UNAVAILABLE, NO_TOKEN),
            Some(expected) => {
                let presented = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .map(|t| digest(t.trim()));
                if presented.is_some_and(|p| bool::from(p.ct_eq(&expected))) {
                    return None;
                }
                (
                    "unauthorized",
                    StatusCode::UNAUTHORIZED,
                    "missing or invalid ingest token",
                )
            }
        };
        self.ingest_refused
            .get_or_create(&ReasonLabels { reason })
            .inc();
        Some(error(status, message))
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn the_token_is_checked_and_neither_secret_shown() {
        let mut registry = Registry::default();
        let auth = StegoAuth::register(&mut registry, Some("cb-s3cret"), Some("tok-s3cret"));
        let shown = format!("{auth:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(auth.token_refusal(&headers("Bearer tok-s3cret")).is_none());
        for wrong in ["Bearer tok-s3cre", "tok-s3cret", "Bearer cb-s3cret"] {
            let res = auth.token_refusal(&headers(wrong)).unwrap();
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        }
        assert!(auth.token_refusal(&HeaderMap::new()).is_some());
        let none = StegoAuth::register(&mut Registry::default(), Some(""), Some(""));
        assert!(none.secret().is_none());
        let res = none.token_refusal(&headers("Bearer ")).unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("ingest_requests_refused_total{reason=\"unauthorized\"} 4"),
            "{text}"
        );
    }
}
