//! Answers with content bytes: UnixFS files and raw blocks streamed from the source, and bytes
//! already in hand (a raw block, a symlink target, a non-UnixFS block), with single-range
//! support for both.

use std::ops::Range;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use stargate_protocol::unixfs::export::{DEFAULT_WINDOW, file_len, read_file, read_head};
use stargate_protocol::{Block, Cid};

use super::error::GatewayError;
use super::headers;
use super::range::{self, Selected};
use super::request::GatewayRequest;
use super::sniff::{self, SNIFF_LEN};
use crate::AppState;

/// Streams the file (or raw block) `file`, reached through the path elements `roots`. `name` is
/// the file name that decides its type when `?filename=` does not (else its bytes do).
pub(crate) async fn serve(
    state: &AppState,
    req: &GatewayRequest,
    roots: &[Cid],
    file: Block,
    name: Option<&str>,
) -> Result<Response, GatewayError> {
    let size = file_len(&file)?;
    let etag = headers::etag(file.cid());
    let mut h = headers::common(req, roots, &etag);
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(v) = disposition(req) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if headers::not_modified(req, &etag) {
        return Ok(headers::not_modified_response(h));
    }
    let (bytes, partial) = selected_bytes(req, size)?;
    let by_name = req.filename.as_deref().or(name).and_then(sniff::from_name);
    let source = state.blocks_arc();
    if req.head {
        let content_type = match by_name {
            Some(t) => t,
            None => sniff::from_bytes(&read_head(source, file, SNIFF_LEN).await?),
        };
        return Ok(respond(
            h,
            &content_type,
            &bytes,
            size,
            partial,
            Body::empty(),
        ));
    }
    // The first chunks are fetched before the status is committed, so content that is missing
    // or slow to arrive is a 404 or 504 rather than a 200 cut short.
    let sniff_here = by_name.is_none() && bytes.start == 0 && bytes.end >= SNIFF_LEN.min(size);
    let mut chunks = read_file(
        Arc::clone(&source),
        file.clone(),
        bytes.clone(),
        DEFAULT_WINDOW,
    )?;
    let wanted = if sniff_here { SNIFF_LEN } else { 1 };
    let mut first = Vec::new();
    let mut have = 0u64;
    while have < wanted {
        let Some(chunk) = chunks.next().await else {
            break;
        };
        let chunk = chunk?;
        have += chunk.len() as u64;
        first.push(chunk);
    }
    let content_type = match by_name {
        Some(t) => t,
        None if sniff_here => sniff::from_bytes(&prefix(&first, SNIFF_LEN)),
        None => sniff::from_bytes(&read_head(source, file, SNIFF_LEN).await?),
    };
    let rest = futures::stream::iter(first.into_iter().map(Ok)).chain(chunks);
    let body = super::stream::body(rest, state.options().timeout);
    Ok(respond(h, &content_type, &bytes, size, partial, body))
}

/// Answers with `data`, whose headers (type, etag, disposition) the caller chose in `h`.
pub(crate) fn serve_bytes(
    req: &GatewayRequest,
    mut h: HeaderMap,
    etag: &str,
    content_type: &str,
    data: Bytes,
) -> Result<Response, GatewayError> {
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if headers::not_modified(req, etag) {
        return Ok(headers::not_modified_response(h));
    }
    let size = data.len() as u64;
    let (bytes, partial) = selected_bytes(req, size)?;
    let body = if req.head {
        Body::empty()
    } else {
        // Both bounds are within `data`, so they fit in usize.
        Body::from(data.slice(bytes.start as usize..bytes.end as usize))
    };
    Ok(respond(h, content_type, &bytes, size, partial, body))
}

/// The bytes a `Range` header selects, and whether that is a part (206).
fn selected_bytes(req: &GatewayRequest, size: u64) -> Result<(Range<u64>, bool), GatewayError> {
    match range::select(req.range.as_deref(), size) {
        Selected::Full => Ok((0..size, false)),
        Selected::Part(r) => Ok((r, true)),
        Selected::Unsatisfiable => Err(GatewayError::RangeNotSatisfiable { size }),
    }
}

fn respond(
    mut h: HeaderMap,
    content_type: &str,
    bytes: &Range<u64>,
    size: u64,
    partial: bool,
    body: Body,
) -> Response {
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(bytes.end - bytes.start),
    );
    let status = if partial {
        let range = format!("bytes {}-{}/{size}", bytes.start, bytes.end - 1);
        if let Ok(v) = HeaderValue::from_str(&range) {
            h.insert(header::CONTENT_RANGE, v);
        }
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let mut res = Response::new(body);
    *res.status_mut() = status;
    *res.headers_mut() = h;
    res
}

/// `Content-Disposition` for `?filename=` (inline) and `?download=true` (attachment).
fn disposition(req: &GatewayRequest) -> Option<HeaderValue> {
    match (&req.filename, req.download) {
        (Some(name), download) => headers::content_disposition(download, name),
        (None, true) => Some(HeaderValue::from_static("attachment")),
        (None, false) => None,
    }
}

/// The first `n` bytes of `chunks`.
fn prefix(chunks: &[Bytes], n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chunks {
        let room = usize::try_from(n).unwrap_or(usize::MAX) - out.len();
        out.extend_from_slice(&c[..c.len().min(room)]);
        if out.len() as u64 >= n {
            break;
        }
    }
    out
}
