//! Who may call the API listener, as Kubo's `API.Authorizations` decides it, with the guide's
//! API key on top.
//!
//! - Named secrets (`bearer:<token>` or `basic:<user>:<password>`, Kubo's `AuthSecret`), each
//!   allowed a list of path prefixes (Kubo's `AllowedPaths`). When any is configured, every
//!   request needs credentials, as in Kubo.
//! - The API key (`STARGATE_API_KEY`, the guide's `stargate-api-key`) as `Bearer <key>` may call
//!   everything. When it is set, commands that change the node need it (or a named secret);
//!   commands that only read stay open while the API listens on loopback, as Kubo's do.
//! - With neither, the API is open: the daemon refuses to listen beyond loopback that way
//!   unless the operator says `allow_anonymous`.
//!
//! Missing credentials are 401, wrong ones or a path outside a secret's prefixes 403, both with
//! the guide's `{"error": ...}` body. Secrets are kept as SHA-256 digests and compared in
//! constant time. Routes with an authentication of their own (anchors, the ingestion pull API,
//! the signed stego callback) and `/health`, `/metrics` are left to themselves.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// A secret as kept in memory: its digest.
pub(crate) type SecretDigest = [u8; 32];

pub(crate) fn digest(secret: &str) -> SecretDigest {
    Sha256::digest(secret.as_bytes()).into()
}

fn same(a: &SecretDigest, b: &SecretDigest) -> bool {
    a.ct_eq(b).into()
}

/// Paths whose handlers check credentials of their own.
const OWN_AUTH: &[&str] = &[
    "/api/v1/anchors",
    "/api/v1/ingestions",
    "/api/v1/stego/callback",
];

/// Commands that only read: open without credentials on loopback when only the API key is set.
/// Everything else under `/api/v0/` counts as a change, so a new command is protected until
/// it is listed here.
const READS: &[&str] = &[
    "cat",
    "get",
    "ls",
    "block/get",
    "block/stat",
    "pin/ls",
    "dag/get",
    "dag/export",
    "dag/stat",
    "dag/resolve",
    "id",
    "version",
    "swarm/peers",
    "swarm/addrs",
    "routing/findprovs",
    "pubsub/sub",
    "pubsub/ls",
    "pubsub/peers",
    "repo/stat",
    "repo/verify",
    "stats/bw",
    "stats/repo",
    "config",
    "config/show",
    "key/list",
    "anchor/status",
    "anchor/proof",
    "wallet/address",
    "wallet/balance",
    "mirror/status",
    "mirror/ls",
    "ingest/ls",
];

/// Why a malformed `auth_secret` was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthSecretError {
    #[error("authorization {0:?}: the secret is empty")]
    Empty(String),
    #[error("authorization {0:?}: a basic secret is basic:<user>:<password>")]
    Basic(String),
    #[error("authorization {0:?}: allowed_paths is empty, so it could call nothing")]
    NoPaths(String),
    #[error("authorization {name:?}: allowed path {path:?} does not start with '/'")]
    Path { name: String, path: String },
}

/// One of Kubo's named authorizations.
#[derive(Clone)]
struct Named {
    /// `Bearer` token or `Basic` `user:password`, as presented in the header.
    scheme: Scheme,
    secret: SecretDigest,
    allowed_paths: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Bearer,
    Basic,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectionLabels {
    reason: &'static str,
}

/// The API listener's access rules. Cheap to clone.
#[derive(Clone)]
pub struct Authorizations {
    api_key: Option<SecretDigest>,
    named: std::sync::Arc<[Named]>,
    /// Reads need no credentials (loopback, or `allow_anonymous`) unless named secrets exist.
    reads_open: bool,
    rejections: Family<RejectionLabels, Counter>,
}

impl Authorizations {
    /// Rules from the API key and Kubo-style `(name, auth_secret, allowed_paths)` entries;
    /// `reads_open` when the API listens on loopback or anonymous access was allowed.
    /// Registers `api_auth_rejections_total{reason}` in `registry`.
    ///
    /// # Errors
    /// A malformed secret or path list, naming the entry.
    pub fn new<'a>(
        registry: &mut Registry,
        api_key: Option<&str>,
        named: impl IntoIterator<Item = (&'a str, &'a str, &'a [String])>,
        reads_open: bool,
    ) -> Result<Self, AuthSecretError> {
        let named = named
            .into_iter()
            .map(|(name, secret, paths)| parse_named(name, secret, paths))
            .collect::<Result<Vec<_>, _>>()?;
        let rejections = Family::<RejectionLabels, Counter>::default();
        registry.register(
            "api_auth_rejections",
            "API requests refused: missing credentials, wrong ones, or a path the secret may not call",
            rejections.clone(),
        );
        Ok(Self {
            api_key: api_key.filter(|k| !k.is_empty()).map(digest),
            named: named.into(),
            reads_open,
            rejections,
        })
    }

    /// Whether anyone may call everything (no key, no named secret): the daemon refuses that
    /// beyond loopback unless told `allow_anonymous`.
    pub fn is_open(&self) -> bool {
        self.api_key.is_none() && self.named.is_empty()
    }

    /// `router` behind these rules.
    pub fn protect(&self, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(self.clone(), check))
    }

    fn decide(&self, path: &str, headers: &HeaderMap) -> Result<(), Refusal> {
        if OWN_AUTH.iter().any(|p| under(path, p)) {
            return Ok(());
        }
        match presented(headers) {
            Presented::Credentials(scheme, secret) => self.allowed(path, scheme, secret),
            Presented::Unusable => Err(Refusal::Invalid),
            Presented::Nothing if self.is_open() => Ok(()),
            Presented::Nothing if self.named.is_empty() && self.reads_open && is_read(path) => {
                Ok(())
            }
            Presented::Nothing => Err(Refusal::Missing),
        }
    }

    fn allowed(&self, path: &str, scheme: Scheme, secret: SecretDigest) -> Result<(), Refusal> {
        if scheme == Scheme::Bearer && self.api_key.is_some_and(|k| same(&k, &secret)) {
            return Ok(());
        }
        let mut known = false;
        for n in self.named.iter() {
            if n.scheme == scheme && same(&n.secret, &secret) {
                known = true;
                if n.allowed_paths.iter().any(|p| under(path, p)) {
                    return Ok(());
                }
            }
        }
        Err(if known {
            Refusal::PathNotAllowed
        } else {
            Refusal::Invalid
        })
    }

    fn refuse(&self, refusal: Refusal) -> Response {
        let (reason, status, message) = match refusal {
            Refusal::Missing => (
                "missing",
                StatusCode::UNAUTHORIZED,
                "Missing API key: send Authorization: Bearer <key>",
            ),
            Refusal::Invalid => ("invalid", StatusCode::FORBIDDEN, "Invalid API key"),
            Refusal::PathNotAllowed => (
                "path_not_allowed",
                StatusCode::FORBIDDEN,
                "This API key may not call this path",
            ),
        };
        self.rejections
            .get_or_create(&RejectionLabels { reason })
            .inc();
        (status, axum::Json(json!({ "error": message }))).into_response()
    }
}

impl std::fmt::Debug for Authorizations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizations")
            .field("api_key", &self.api_key.map(|_| "<set>"))
            .field("named", &self.named.len())
            .field("reads_open", &self.reads_open)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Missing,
    Invalid,
    PathNotAllowed,
}

async fn check(State(auth): State<Authorizations>, req: Request, next: Next) -> Response {
    match auth.decide(req.uri().path(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(refusal) => auth.refuse(refusal),
    }
}

/// Kubo's `AuthSecret`: `bearer:<token>`, `basic:<user>:<password>`, or a bare token.
fn parse_named(name: &str, secret: &str, paths: &[String]) -> Result<Named, AuthSecretError> {
    let (scheme, value) = if let Some(token) = secret.strip_prefix("bearer:") {
        (Scheme::Bearer, token)
    } else if let Some(user_password) = secret.strip_prefix("basic:") {
        if !user_password.contains(':') {
            return Err(AuthSecretError::Basic(name.to_owned()));
        }
        (Scheme::Basic, user_password)
    } else {
        (Scheme::Bearer, secret)
    };
    if value.is_empty() {
        return Err(AuthSecretError::Empty(name.to_owned()));
    }
    if paths.is_empty() {
        return Err(AuthSecretError::NoPaths(name.to_owned()));
    }
    if let Some(path) = paths.iter().find(|p| !p.starts_with('/')) {
        return Err(AuthSecretError::Path {
            name: name.to_owned(),
            path: path.clone(),
        });
    }
    Ok(Named {
        scheme,
        secret: digest(value),
        allowed_paths: paths.to_vec(),
    })
}

/// What a request's `Authorization` header holds.
enum Presented {
    Nothing,
    /// A header that is there but unreadable or of another scheme: wrong credentials, not none.
    Unusable,
    Credentials(Scheme, SecretDigest),
}

fn presented(headers: &HeaderMap) -> Presented {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Presented::Nothing;
    };
    let Some((scheme, rest)) = value.to_str().ok().and_then(|t| t.trim().split_once(' ')) else {
        return Presented::Unusable;
    };
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        Presented::Credentials(Scheme::Bearer, digest(rest))
    } else if scheme.eq_ignore_ascii_case("basic") {
        base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .map_or(Presented::Unusable, |user_password| {
                Presented::Credentials(Scheme::Basic, digest(&user_password))
            })
    } else {
        Presented::Unusable
    }
}

/// Whether `path` is `prefix` or below it (`/api/v0` covers `/api/v0/add`, not `/api/v01`).
fn under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn is_read(path: &str) -> bool {
    if let Some(command) = path.strip_prefix("/api/v0/") {
        return READS.contains(&command.trim_end_matches('/'));
    }
    // The Stargate API's reads, and the status page.
    under(path, "/api/v1/mirror") || under(path, "/webui")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn rules(
        key: Option<&str>,
        named: &[(&str, &str, Vec<String>)],
        reads_open: bool,
    ) -> Authorizations {
        let mut registry = Registry::default();
        let entries: Vec<(&str, &str, &[String])> = named
            .iter()
            .map(|(n, s, p)| (*n, *s, p.as_slice()))
            .collect();
        Authorizations::new(&mut registry, key, entries, reads_open).unwrap()
    }

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    fn basic(user_password: &str) -> HeaderMap {
        with(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_password)
        ))
    }

    #[test]
    fn with_nothing_configured_everything_is_open() {
        let a = rules(None, &[], true);
        assert!(a.is_open());
        assert_eq!(a.decide("/api/v0/add", &HeaderMap::new()), Ok(()));
        assert_eq!(a.decide("/api/v0/cat", &HeaderMap::new()), Ok(()));
    }

    #[test]
    fn the_api_key_guards_writes_and_leaves_loopback_reads_open() {
        let a = rules(Some("k3y"), &[], true);
        let none = HeaderMap::new();
        assert_eq!(a.decide("/api/v0/add", &none), Err(Refusal::Missing));
        assert_eq!(a.decide("/api/v0/pin/add", &none), Err(Refusal::Missing));
        assert_eq!(
            a.decide("/api/v0/unknown/command", &none),
            Err(Refusal::Missing)
        );
        assert_eq!(a.decide("/api/v0/cat", &none), Ok(()));
        assert_eq!(a.decide("/api/v1/mirror/status", &none), Ok(()));
        assert_eq!(a.decide("/webui", &none), Ok(()));
        assert_eq!(a.decide("/webui/panels", &none), Ok(()));
        assert_eq!(a.decide("/webuix", &none), Err(Refusal::Missing));
        assert_eq!(a.decide("/api/v0/add", &with("Bearer k3y")), Ok(()));
        assert_eq!(
            a.decide("/api/v0/add", &with("Bearer nope")),
            Err(Refusal::Invalid)
        );
        assert_eq!(
            a.decide("/api/v0/cat", &with("Bearer nope")),
            Err(Refusal::Invalid)
        );
        assert_eq!(a.decide("/api/v0/add", &with("k3y")), Err(Refusal::Invalid));
        // Routes with their own authentication are theirs to refuse.
        assert_eq!(
            a.decide("/api/v1/ingestions", &with("Bearer ingest")),
            Ok(())
        );
        assert_eq!(a.decide("/api/v1/anchors", &none), Ok(()));
    }

    #[test]
    fn beyond_loopback_reads_need_the_key_too() {
        let a = rules(Some("k3y"), &[], false);
        assert_eq!(
            a.decide("/api/v0/cat", &HeaderMap::new()),
            Err(Refusal::Missing)
        );
        assert_eq!(a.decide("/api/v0/cat", &with("Bearer k3y")), Ok(()));
        assert_eq!(a.decide("/webui", &HeaderMap::new()), Err(Refusal::Missing));
    }

    #[test]
    fn named_secrets_are_kubos_with_their_paths() {
        let a = rules(
            None,
            &[
                (
                    "reader",
                    "bearer:r3ad",
                    vec!["/api/v0/cat".into(), "/api/v0/id".into()],
                ),
                (
                    "alice",
                    "basic:alice:pw:with:colons",
                    vec!["/api/v0".into()],
                ),
            ],
            true,
        );
        // Named secrets make every request need credentials, as in Kubo.
        assert_eq!(
            a.decide("/api/v0/cat", &HeaderMap::new()),
            Err(Refusal::Missing)
        );
        assert_eq!(a.decide("/api/v0/cat", &with("Bearer r3ad")), Ok(()));
        assert_eq!(a.decide("/api/v0/id", &with("bearer r3ad")), Ok(()));
        assert_eq!(
            a.decide("/api/v0/add", &with("Bearer r3ad")),
            Err(Refusal::PathNotAllowed)
        );
        assert_eq!(
            a.decide("/api/v0/catx", &with("Bearer r3ad")),
            Err(Refusal::PathNotAllowed)
        );
        assert_eq!(
            a.decide("/api/v0/add", &basic("alice:pw:with:colons")),
            Ok(())
        );
        assert_eq!(
            a.decide("/api/v0/add", &basic("alice:wrong")),
            Err(Refusal::Invalid)
        );
        // A bearer token equal to a basic secret's text is not that secret.
        assert_eq!(
            a.decide("/api/v0/add", &with("Bearer alice:pw:with:colons")),
            Err(Refusal::Invalid)
        );
        assert_eq!(
            a.decide("/api/v0/add", &with("Digest x")),
            Err(Refusal::Invalid)
        );
    }

    #[test]
    fn malformed_secrets_are_refused_at_start() {
        let mut registry = Registry::default();
        let paths = vec!["/api/v0".to_owned()];
        for (secret, paths) in [
            ("bearer:", paths.as_slice()),
            ("basic:nocolon", paths.as_slice()),
            ("tok", &[][..]),
            ("tok", &["api/v0".to_owned()][..]),
        ] {
            assert!(
                Authorizations::new(&mut registry, None, [("x", secret, paths)], true).is_err(),
                "{secret}"
            );
        }
    }
}
