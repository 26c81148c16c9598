//! What a gateway request asks for: the content path, the response format and its parameters,
//! and the conditional and range headers, all checked before any content is fetched.

use axum::http::{HeaderMap, Method, Uri, header};
use stargate_protocol::unixfs::export::{DagScope, EntityBytes};
use stargate_protocol::{ContentPath, PathError};

use super::accept;
use super::error::GatewayError;
use super::format::Format;

/// Longest query string read; longer ones are answered 414.
const MAX_QUERY: usize = 8 * 1024;
/// Longest `filename` parameter (a file name, not a path).
const MAX_FILENAME: usize = 1024;

/// A checked gateway request.
#[derive(Debug)]
pub(crate) struct GatewayRequest {
    /// The content path, decoded.
    pub(crate) path: ContentPath,
    /// The request path as received (still percent-encoded): `X-Ipfs-Path`, redirects, links.
    pub(crate) raw_path: String,
    /// The query string as received.
    pub(crate) query: Option<String>,
    pub(crate) format: Format,
    /// The format came from `Accept`, not from `?format=` (the answer names its URL then).
    pub(crate) format_from_accept: bool,
    /// `dag-scope` of a CAR request.
    pub(crate) dag_scope: DagScope,
    /// `entity-bytes` of a CAR request.
    pub(crate) entity_bytes: Option<EntityBytes>,
    /// `?filename=`: names the download and decides the content type.
    pub(crate) filename: Option<String>,
    /// `?download=true`: `Content-Disposition: attachment`.
    pub(crate) download: bool,
    /// HEAD: headers only, no body work.
    pub(crate) head: bool,
    /// `Cache-Control: only-if-cached`.
    pub(crate) only_if_cached: bool,
    pub(crate) if_none_match: Option<String>,
    pub(crate) range: Option<String>,
}

impl GatewayRequest {
    /// Checks everything a request carries.
    ///
    /// # Errors
    /// 400 for a malformed path or parameter, 414 for an overlong one, 406 when only formats we
    /// do not produce are acceptable.
    pub(crate) fn parse(
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<Self, GatewayError> {
        let raw_path = uri.path();
        let query = uri.query();
        let uri_len = raw_path.len() + query.map_or(0, str::len);
        if query.is_some_and(|q| q.len() > MAX_QUERY) {
            return Err(GatewayError::UriTooLong {
                len: uri_len,
                max: MAX_QUERY,
            });
        }
        if raw_path == "/ipfs" {
            return Err(PathError::Empty.into());
        }
        let path = ContentPath::parse(raw_path)?;
        if header_str(headers, "service-worker") == Some("script")
            && path.segments().is_empty()
            && !path.has_trailing_slash()
        {
            return Err(GatewayError::bad_request(
                "navigator.serviceWorker: registration is not allowed for this scope; \
                 register under /ipfs/<cid>/ (with the trailing slash)",
            ));
        }
        let params = Query::parse(query.unwrap_or(""));
        let from_query = params.format()?;
        let from_accept = match headers.get(header::ACCEPT) {
            Some(value) if from_query.is_none() => accept::negotiate(value)?,
            _ => None,
        };
        let format = from_query.or(from_accept).unwrap_or(Format::Deserialized);
        let (dag_scope, entity_bytes) = if format == Format::Car {
            params.car()?
        } else {
            (DagScope::default(), None)
        };
        let filename = params.filename()?;
        Ok(Self {
            path,
            raw_path: raw_path.to_owned(),
            query: query.map(str::to_owned),
            format,
            format_from_accept: from_query.is_none() && from_accept.is_some(),
            dag_scope,
            entity_bytes,
            filename,
            download: params.get("download") == Some("true"),
            head: method == Method::HEAD,
            only_if_cached: header_str(headers, "cache-control")
                .is_some_and(|v| v.split(',').any(|d| d.trim() == "only-if-cached")),
            if_none_match: header_str(headers, "if-none-match").map(str::to_owned),
            range: header_str(headers, "range").map(str::to_owned),
        })
    }
}

/// A header's value, when present and visible ASCII.
fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The decoded query parameters (the first value of each name counts).
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: &str) -> Self {
        Self(
            form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn format(&self) -> Result<Option<Format>, GatewayError> {
        match self.get("format") {
            None | Some("") => Ok(None),
            Some("raw") => Ok(Some(Format::Raw)),
            Some("car") => Ok(Some(Format::Car)),
            Some(f @ ("tar" | "dag-json" | "dag-cbor" | "json" | "cbor" | "ipns-record")) => {
                Err(GatewayError::bad_request(format!(
                    "format={f} is not supported by this gateway: use format=raw, format=car, \
                     or no format for the content itself"
                )))
            }
            Some(other) => Err(GatewayError::bad_request(format!(
                "unknown format={:?}: use format=raw, format=car, or no format",
                truncate(other)
            ))),
        }
    }

    /// `dag-scope`, `entity-bytes` and the `car-*` parameters of a CAR request.
    fn car(&self) -> Result<(DagScope, Option<EntityBytes>), GatewayError> {
        let bad = |e: &dyn std::fmt::Display| GatewayError::bad_request(e.to_string());
        let scope = match self.get("dag-scope") {
            Some(s) => s.parse::<DagScope>().map_err(|e| bad(&e))?,
            None => DagScope::default(),
        };
        let entity_bytes = self
            .get("entity-bytes")
            .map(|s| s.parse::<EntityBytes>().map_err(|e| bad(&e)))
            .transpose()?;
        let check = |name: &str, allowed: &[&str], why: &str| match self.get(name) {
            Some(v) if !allowed.contains(&v) => Err(GatewayError::bad_request(format!(
                "{name}={:?} is not supported: {why}",
                truncate(v)
            ))),
            _ => Ok(()),
        };
        check("car-version", &["1"], "this gateway sends CARv1")?;
        check(
            "car-order",
            &["dfs", "unk"],
            "this gateway sends blocks depth-first (dfs)",
        )?;
        check(
            "car-dups",
            &["n"],
            "this gateway sends each block once (dups=n)",
        )?;
        Ok((scope, entity_bytes))
    }

    fn filename(&self) -> Result<Option<String>, GatewayError> {
        let Some(name) = self.get("filename") else {
            return Ok(None);
        };
        if name.is_empty() || name.len() > MAX_FILENAME || name.chars().any(char::is_control) {
            return Err(GatewayError::bad_request(format!(
                "filename={:?} must be 1 to {MAX_FILENAME} bytes without control characters",
                truncate(name)
            )));
        }
        Ok(Some(name.to_owned()))
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}
