//! Response headers every gateway answer shares, and the conditional request check.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use stargate_protocol::Cid;

use super::request::GatewayRequest;

/// What the path gateway spec requires for everything under `/ipfs/`.
pub(crate) const IMMUTABLE: &str = "public, max-age=29030400, immutable";

pub(crate) static X_IPFS_PATH: HeaderName = HeaderName::from_static("x-ipfs-path");
pub(crate) static X_IPFS_ROOTS: HeaderName = HeaderName::from_static("x-ipfs-roots");

/// Headers of every successful answer: caching, the requested path, and the CID of each path
/// element (`roots`).
pub(crate) fn common(req: &GatewayRequest, roots: &[Cid], etag: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    // The answer depends on Accept (format negotiation): shared caches must key on it.
    h.insert(header::VARY, HeaderValue::from_static("Accept"));
    if let Ok(v) = HeaderValue::from_str(&req.raw_path) {
        h.insert(X_IPFS_PATH.clone(), v);
    }
    let roots = roots
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    if let Ok(v) = HeaderValue::from_str(&roots) {
        h.insert(X_IPFS_ROOTS.clone(), v);
    }
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h
}

/// A strong entity tag for `value`.
pub(crate) fn etag(value: impl std::fmt::Display) -> String {
    format!("\"{value}\"")
}

/// Whether `If-None-Match` names `etag` (or `*`); weak comparison, as RFC 9110 §13.1.2 asks.
pub(crate) fn not_modified(req: &GatewayRequest, etag: &str) -> bool {
    let Some(list) = &req.if_none_match else {
        return false;
    };
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let ours = bare(etag);
    list.split(',').any(|t| t.trim() == "*" || bare(t) == ours)
}

/// The 304 answer: the headers a 200 would carry that describe the representation, no body.
pub(crate) fn not_modified_response(headers: HeaderMap) -> Response {
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::NOT_MODIFIED;
    *res.headers_mut() = headers;
    res
}

/// Characters kept as they are in the `filename*` parameter (RFC 8187 `attr-char`).
const ATTR_CHAR_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `Content-Disposition` naming `filename`: an ASCII fallback (non-ASCII, quotes and
/// backslashes replaced by `_`) and the exact UTF-8 name, as the path gateway spec shows.
pub(crate) fn content_disposition(attachment: bool, filename: &str) -> Option<HeaderValue> {
    let kind = if attachment { "attachment" } else { "inline" };
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let value = if ascii == filename {
        format!("{kind}; filename=\"{ascii}\"")
    } else {
        let exact = utf8_percent_encode(filename, ATTR_CHAR_ESCAPES);
        format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{exact}")
    };
    HeaderValue::from_str(&value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_has_an_ascii_fallback_and_the_exact_name() {
        let v = content_disposition(false, "testтест.pdf").unwrap();
        assert_eq!(
            v,
            "inline; filename=\"test____.pdf\"; filename*=UTF-8''test%D1%82%D0%B5%D1%81%D1%82.pdf"
        );
        let v = content_disposition(true, "a \"b\".car").unwrap();
        assert_eq!(
            v,
            "attachment; filename=\"a _b_.car\"; filename*=UTF-8''a%20%22b%22.car"
        );
        assert_eq!(
            content_disposition(true, "x.bin").unwrap(),
            "attachment; filename=\"x.bin\""
        );
    }
}
