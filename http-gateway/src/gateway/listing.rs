//! Directories: the redirect to the slash form, `index.html` when there is one, otherwise an
//! HTML listing streamed entry by entry (a sharded directory of any size is listed in bounded
//! memory; sizes are the links' DAG sizes, so no entry is fetched).
//!
//! Every value in the page goes through askama's HTML escaping, and every link is built from
//! percent-encoded names, so a file name cannot inject markup or break out of an attribute.

use std::sync::LazyLock;

use askama::Template;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use stargate_protocol::unixfs::export::{
    DEFAULT_WINDOW, DirEntry, ExportError, Resolved, list_directory, resolve,
};

use super::error::GatewayError;
use super::headers;
use super::request::GatewayRequest;
use crate::AppState;

/// Served in place of a listing when a directory has it.
const INDEX: &str = "index.html";

#[derive(Template)]
#[template(path = "dir-head.html")]
struct Head<'a> {
    path: &'a str,
    cid: String,
    parent: Option<String>,
}

#[derive(Template)]
#[template(path = "dir-row.html")]
struct Row<'a> {
    name: &'a str,
    href: String,
    cid: String,
    size: String,
}

#[derive(Template)]
#[template(path = "dir-foot.html")]
struct Foot;

/// Changes whenever the listing's markup or this crate's version does, so that caches holding
/// a listing made by other code revalidate (the path gateway spec's `DirIndex-<hash>` etag).
static LISTING_VERSION: LazyLock<String> = LazyLock::new(|| {
    let digest = stargate_protocol::sha2_256(
        concat!(
            env!("CARGO_PKG_VERSION"),
            include_str!("../../templates/dir-head.html"),
            include_str!("../../templates/dir-row.html"),
            include_str!("../../templates/dir-foot.html"),
        )
        .as_bytes(),
    );
    digest[..4].iter().map(|b| format!("{b:02X}")).collect()
});

/// Answers for the directory `dir`.
pub(crate) async fn serve_directory(
    state: &AppState,
    req: &GatewayRequest,
    dir: &Resolved,
) -> Result<Response, GatewayError> {
    if !req.path.has_trailing_slash() {
        return Ok(redirect_to_slash(req));
    }
    match resolve(state.blocks(), *dir.cid(), &[INDEX.to_owned()]).await {
        Ok(index) if index.kind.file_size().is_some() => {
            return super::file::serve(state, req, &dir.path_cids, index.block, Some(INDEX)).await;
        }
        Ok(_) | Err(ExportError::NoSuchEntry { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    listing(state, req, dir)
}

/// 301 to the same path with a trailing slash, so relative links inside the directory work.
fn redirect_to_slash(req: &GatewayRequest) -> Response {
    let location = match &req.query {
        Some(q) if !q.is_empty() => format!("{}/?{q}", req.raw_path),
        _ => format!("{}/", req.raw_path),
    };
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

fn listing(
    state: &AppState,
    req: &GatewayRequest,
    dir: &Resolved,
) -> Result<Response, GatewayError> {
    let etag = format!("\"DirIndex-{}_CID-{}\"", *LISTING_VERSION, dir.cid());
    let mut h = headers::common(req, &dir.path_cids, &etag);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if headers::not_modified(req, &etag) {
        return Ok(headers::not_modified_response(h));
    }
    let body = if req.head {
        Body::empty()
    } else {
        let shown = shown_path(req);
        let head = Head {
            path: &shown,
            cid: dir.cid().to_string(),
            parent: parent_href(req),
        }
        .render()
        .map_err(|e| GatewayError::Internal(format!("rendering a listing: {e}")))?;
        let foot = Foot
            .render()
            .map_err(|e| GatewayError::Internal(format!("rendering a listing: {e}")))?;
        let base = req.raw_path.clone();
        let rows = list_directory(state.blocks_arc(), dir.block.clone(), DEFAULT_WINDOW)?
            .map_err(|e| e.to_string())
            .and_then(move |entry| futures::future::ready(row(&base, &entry)));
        let page = futures::stream::once(async move { Ok(Bytes::from(head)) })
            .chain(rows)
            .chain(futures::stream::once(async move { Ok(Bytes::from(foot)) }));
        super::stream::body(page, state.options().timeout)
    };
    let mut res = Response::new(body);
    *res.headers_mut() = h;
    Ok(res)
}

fn row(base: &str, entry: &DirEntry) -> Result<Bytes, String> {
    let segment = match entry.name.as_str() {
        // Dots are unreserved, but these two would be resolved by the browser.
        dots @ ("." | "..") => dots.replace('.', "%2E"),
        name => utf8_percent_encode(name, NAME_ESCAPES).to_string(),
    };
    Row {
        name: &entry.name,
        href: format!("{base}{segment}"),
        cid: entry.cid.to_string(),
        size: entry.tsize.map(human_size).unwrap_or_default(),
    }
    .render()
    .map(|mut html| {
        html.push('\n');
        Bytes::from(html)
    })
    .map_err(|e| format!("rendering a listing row: {e}"))
}

/// Everything but RFC 3986 unreserved characters is escaped in a link to an entry: a name is
/// then always one relative path segment (no `/`, `?`, `#`, `:` scheme, or `..` trick).
const NAME_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'~')
    .remove(b'.');

/// The path shown as the page title: `/ipfs/<cid>/<decoded names>/`.
fn shown_path(req: &GatewayRequest) -> String {
    let mut shown = format!("/ipfs/{}/", req.path.root());
    for s in req.path.segments() {
        shown.push_str(s);
        shown.push('/');
    }
    shown
}

/// The link to the parent directory, below the root only.
fn parent_href(req: &GatewayRequest) -> Option<String> {
    if req.path.segments().is_empty() {
        return None;
    }
    let trimmed = req.raw_path.trim_end_matches('/');
    trimmed
        .rsplit_once('/')
        .map(|(parent, _)| format!("{parent}/"))
}

/// A size for people: bytes below 1 KiB, then KiB, MiB, GiB, TiB with one decimal.
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    #[allow(clippy::cast_precision_loss)] // one decimal is all that is shown
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_for_people() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(1_572_864), "1.5 MiB");
        assert_eq!(human_size(u64::MAX), "16777216.0 TiB");
    }

    #[test]
    fn rows_escape_names_in_text_and_links() {
        let cid = stargate_protocol::parse_cid("bafkqaaa").unwrap();
        let entry = DirEntry {
            name: "<script>alert(1)</script>\" onclick=\"x&'/..".into(),
            cid,
            tsize: Some(3),
        };
        let html = String::from_utf8(row("/ipfs/bafkqaaa/", &entry).unwrap().to_vec()).unwrap();
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("\" onclick"), "{html}");
        assert!(
            html.contains(
                ">&#60;script&#62;alert(1)&#60;/script&#62;&#34; onclick=&#34;x&#38;&#39;/..</a>"
            ),
            "{html}"
        );
        assert!(
            html.contains(
                "href=\"/ipfs/bafkqaaa/%3Cscript%3Ealert%281%29%3C%2Fscript%3E%22%20onclick%3D%22x%26%27%2F..\""
            ),
            "{html}"
        );
    }
}
