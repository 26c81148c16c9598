//! Verifiable answers (the trustless gateway spec): the raw block at the end of the path, or a
//! CARv1 streamed depth-first with the blocks that prove the path first, each block once.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use stargate_protocol::car::car_stream;
use stargate_protocol::unixfs::export::{
    DEFAULT_WINDOW, EntityBytes, Resolved, WalkOptions, walk_blocks,
};

use super::error::GatewayError;
use super::headers;
use super::request::GatewayRequest;
use crate::AppState;

const RAW_TYPE: &str = "application/vnd.ipld.raw";
/// Every parameter we know the value of, as the trustless gateway spec asks.
const CAR_TYPE: &str = "application/vnd.ipld.car; version=1; order=dfs; dups=n";

/// The block at the end of the path, as is (`Etag: "<cid>.raw"`).
pub(crate) fn raw(req: &GatewayRequest, resolved: &Resolved) -> Result<Response, GatewayError> {
    let cid = resolved.cid();
    let etag = headers::etag(format_args!("{cid}.raw"));
    let h = trustless_headers(req, resolved, &etag, &format!("{cid}.bin"));
    super::file::serve_bytes(req, h, &etag, RAW_TYPE, resolved.block.data().clone())
}

/// A CAR of the path's blocks and the DAG below its end, as `dag-scope` and `entity-bytes` say.
/// Its etag covers the path and those parameters, since each changes the blocks sent.
pub(crate) fn car(
    state: &AppState,
    req: &GatewayRequest,
    resolved: &Resolved,
) -> Result<Response, GatewayError> {
    if let (Some(eb), Some(size)) = (req.entity_bytes, resolved.kind.file_size()) {
        check_entity_bytes(eb, size)?;
    }
    let etag = headers::etag(format_args!("{}.car.{}", resolved.cid(), variant(req)));
    let mut h = trustless_headers(req, resolved, &etag, &format!("{}.car", resolved.cid()));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(CAR_TYPE));
    // No byte ranges of a CAR; `entity-bytes` is the verifiable way to ask for part of a file.
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("none"));
    if headers::not_modified(req, &etag) {
        return Ok(headers::not_modified_response(h));
    }
    let body = if req.head {
        Body::empty()
    } else {
        let options = WalkOptions {
            scope: req.dag_scope,
            entity_bytes: req.entity_bytes,
            window: DEFAULT_WINDOW,
        };
        let blocks = walk_blocks(state.blocks_arc(), resolved, options);
        super::stream::body(
            car_stream(vec![*req.path.root()], blocks),
            state.options().timeout,
        )
    };
    let mut res = Response::new(body);
    *res.headers_mut() = h;
    Ok(res)
}

/// Headers both trustless answers carry.
fn trustless_headers(
    req: &GatewayRequest,
    resolved: &Resolved,
    etag: &str,
    default_name: &str,
) -> HeaderMap {
    let mut h = headers::common(req, &resolved.path_cids, etag);
    // Never rendered, never sniffed into something executable.
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let name = req.filename.as_deref().unwrap_or(default_name);
    if let Some(v) = headers::content_disposition(true, name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if req.format_from_accept
        && let Some(location) = content_location(req)
    {
        h.insert(header::CONTENT_LOCATION, location);
    }
    h
}

/// The URL of this answer with `format=` in it, so that caches keyed on URLs keep the
/// deserialized and verifiable answers apart.
fn content_location(req: &GatewayRequest) -> Option<HeaderValue> {
    let format = req.format.query_name()?;
    let url = match &req.query {
        Some(q) if !q.is_empty() => format!("{}?{q}&format={format}", req.raw_path),
        _ => format!("{}?format={format}", req.raw_path),
    };
    HeaderValue::from_str(&url).ok()
}

/// A range that starts past the end of the file can be refused up front (400, as the spec
/// suggests); any other range, empty ones included, is answered with the blocks it needs.
fn check_entity_bytes(eb: EntityBytes, size: u64) -> Result<(), GatewayError> {
    let from = if eb.from < 0 {
        0
    } else {
        u64::try_from(eb.from).unwrap_or(u64::MAX)
    };
    if size > 0 && from >= size {
        return Err(GatewayError::bad_request(format!(
            "entity-bytes starts at byte {from}, past the end of the {size}-byte file"
        )));
    }
    Ok(())
}

/// A short digest of what selects the blocks: the path as given and the walk parameters.
fn variant(req: &GatewayRequest) -> String {
    let key = format!(
        "{}|{CAR_TYPE}|{:?}|{:?}",
        req.path, req.dag_scope, req.entity_bytes
    );
    let digest = stargate_protocol::sha2_256(key.as_bytes());
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_bytes_past_the_end_are_refused() {
        let eb = |s: &str| s.parse::<EntityBytes>().unwrap();
        assert!(check_entity_bytes(eb("0:*"), 10).is_ok());
        assert!(check_entity_bytes(eb("9:*"), 10).is_ok());
        assert!(check_entity_bytes(eb("-100:*"), 10).is_ok());
        assert!(check_entity_bytes(eb("5:2"), 10).is_ok());
        assert!(check_entity_bytes(eb("0:*"), 0).is_ok());
        assert!(matches!(
            check_entity_bytes(eb("10:*"), 10),
            Err(GatewayError::BadRequest(_))
        ));
    }
}
