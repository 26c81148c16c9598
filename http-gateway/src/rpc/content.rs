//! `cat`, `ls` and `get`: reading UnixFS content by path.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::TryStreamExt;
use serde_json::{Value, json};
use stargate_protocol::Cid;
use stargate_protocol::ContentPath;
use stargate_protocol::unixfs::export::{
    BlockSource, DEFAULT_WINDOW, EntryKind, ExportError, GetEvent, RelPath, Resolved,
    list_directory, read_file, resolve_path, stat,
};
use tokio::sync::mpsc;

use super::tar;
use super::{Params, RpcError, RpcResult};
use crate::AppState;

impl From<ExportError> for RpcError {
    fn from(e: ExportError) -> Self {
        match e {
            ExportError::Source(s) => s.into(),
            ExportError::RangeNotSatisfiable { .. } => Self::client(e),
            other => Self::failed(other),
        }
    }
}

impl From<stargate_protocol::PathError> for RpcError {
    fn from(e: stargate_protocol::PathError) -> Self {
        Self::client(e)
    }
}

/// Resolves a CLI argument (`<cid>[/path]` or `/ipfs/<cid>[/path]`).
pub(crate) async fn resolve_arg(state: &AppState, arg: &str) -> RpcResult<Cid> {
    Ok(*resolve_text(state, arg).await?.cid())
}

async fn resolve_text(state: &AppState, arg: &str) -> RpcResult<Resolved> {
    let path = ContentPath::parse(arg)?;
    Ok(resolve_path(state.blocks(), &path).await?)
}

pub(crate) async fn cat(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    params.only(&["offset", "length", "progress"])?;
    let resolved = resolve_text(&state, params.one_arg()?).await?;
    if resolved.kind.is_directory() {
        return Err(RpcError::failed("this dag node is a directory"));
    }
    let offset = params.number::<u64>("offset")?.unwrap_or(0);
    let end = match params.number::<u64>("length")? {
        Some(len) => offset.saturating_add(len),
        None => u64::MAX,
    };
    let stream = read_file(
        state.blocks_arc(),
        resolved.block,
        offset..end,
        DEFAULT_WINDOW,
    )?;
    let len = stream.len();
    let body = Body::from_stream(stream.map_err(std::io::Error::other));
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain".to_owned()),
            (
                "x-content-length".parse().expect("valid header name"),
                len.to_string(),
            ),
        ],
        body,
    )
        .into_response())
}

pub(crate) async fn ls(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    params.only(&["headers", "resolve-type", "size", "stream"])?;
    let resolve_type = params.flag("resolve-type", true)?;
    let mut objects = Vec::new();
    for arg in params.required_args()? {
        let resolved = resolve_text(&state, arg).await?;
        let mut links = Vec::new();
        if resolved.kind.is_directory() {
            let mut listing =
                list_directory(state.blocks_arc(), resolved.block.clone(), DEFAULT_WINDOW)?;
            while let Some(entry) = listing.try_next().await? {
                let kind = if resolve_type {
                    Some(stat(state.blocks(), entry.cid).await?)
                } else {
                    None
                };
                links.push(link_json(
                    &entry.name,
                    entry.cid,
                    entry.tsize,
                    kind.as_ref(),
                ));
            }
        }
        objects.push(json!({ "Hash": arg, "Links": links }));
    }
    Ok(Json(json!({ "Objects": objects })).into_response())
}

/// One `ls` link: Kubo's `Type` is the UnixFS type number (1 directory, 2 file, 4 symlink).
fn link_json(name: &str, cid: Cid, tsize: Option<u64>, kind: Option<&EntryKind>) -> Value {
    let (type_num, size, target) = match kind {
        Some(EntryKind::File { size } | EntryKind::Raw { size }) => (2, *size, String::new()),
        Some(EntryKind::Directory | EntryKind::ShardedDirectory) => (1, 0, String::new()),
        Some(EntryKind::Symlink { target }) => (4, 0, String::from_utf8_lossy(target).into_owned()),
        Some(_) | None => (0, tsize.unwrap_or(0), String::new()),
    };
    json!({ "Name": name, "Hash": cid.to_string(), "Size": size, "Type": type_num, "Target": target })
}

/// Tar chunks in flight to the client.
const TAR_BUFFER: usize = 16;

pub(crate) async fn get(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    params.only(&["output", "archive", "compress", "compression-level"])?;
    if params.flag("compress", false)? {
        return Err(RpcError::client("--compress is not supported"));
    }
    let arg = params.one_arg()?;
    let resolved = resolve_text(&state, arg).await?;
    let path = ContentPath::parse(arg)?;
    let name = path
        .segments()
        .last()
        .cloned()
        .unwrap_or_else(|| path.root().to_string());
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(TAR_BUFFER);
    let source = state.blocks_arc();
    tokio::spawn(async move {
        if let Err(e) = write_tar(source, &resolved, &name, &tx).await {
            tracing::debug!(error = %e, "get stopped");
            let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
        }
    });
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    Ok(([(header::CONTENT_TYPE, "application/x-tar")], body).into_response())
}

/// Streams a tar of the DAG at `resolved`, named `name`, from the exporter's `get` walk:
/// names are checked there, directories stream shard by shard, file bytes pass straight through.
async fn write_tar(
    source: Arc<dyn BlockSource>,
    resolved: &Resolved,
    name: &str,
    out: &mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> RpcResult<()> {
    let send = |b: Bytes| async move {
        out.send(Ok(b))
            .await
            .map_err(|_| RpcError::failed("client went away"))
    };
    let path_of = |rel: &RelPath| {
        std::iter::once(name)
            .chain(rel.components().iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join("/")
    };
    // Size of the file being streamed, owed its padding once its bytes are out.
    let mut open_file: Option<u64> = None;
    let mut walk = stargate_protocol::unixfs::export::get(source, resolved, DEFAULT_WINDOW);
    while let Some(event) = walk.try_next().await? {
        if let Some(size) = open_file.filter(|_| !matches!(event, GetEvent::Data(_))) {
            open_file = None;
            send(tar::padding(size)).await?;
        }
        match event {
            GetEvent::Directory { path } => {
                send(tar::header(&path_of(&path), tar::Entry::Directory)?).await?;
            }
            GetEvent::File { path, size } => {
                send(tar::header(&path_of(&path), tar::Entry::File(size))?).await?;
                open_file = Some(size);
            }
            GetEvent::Data(bytes) => send(bytes).await?,
            GetEvent::Symlink { path, target } => {
                send(tar::header(&path_of(&path), tar::Entry::Symlink(&target))?).await?;
            }
            _ => return Err(RpcError::failed("unexpected entry in the walk")),
        }
    }
    if let Some(size) = open_file {
        send(tar::padding(size)).await?;
    }
    send(tar::end()).await
}
