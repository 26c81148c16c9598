//! `cat`, `ls` and `get`: reading UnixFS content by path.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::TryStreamExt;
use serde_json::{Value, json};
use stargate_protocol::unixfs::export::{
    BlockSource, DEFAULT_WINDOW, EntryKind, ExportError, GetEvent, RelPath, Resolved,
    list_directory, read_file, resolve_path, stat,
};
use stargate_protocol::{Cid, ContentPath};
use tokio::sync::mpsc;

use super::response::{JsonLines, byte_stream};
use super::{Params, RpcError, RpcResult, tar};
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

/// Resolves a CLI argument (`<cid>[/path]` or `/ipfs/<cid>[/path]`) through `source`.
pub(crate) async fn resolve_arg(source: &dyn BlockSource, arg: &str) -> RpcResult<Cid> {
    Ok(*resolve_text(source, arg).await?.cid())
}

async fn resolve_text(source: &dyn BlockSource, arg: &str) -> RpcResult<Resolved> {
    let path = ContentPath::parse(arg)?;
    Ok(resolve_path(source, &path).await?)
}

pub(crate) async fn cat(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    params.only(&["offset", "length", "progress"])?;
    let source = params.block_source(&state)?;
    let resolved = resolve_text(source.as_ref(), params.one_arg()?).await?;
    if resolved.kind.is_directory() {
        return Err(RpcError::failed("this dag node is a directory"));
    }
    let offset = params.number::<u64>("offset")?.unwrap_or(0);
    let end = match params.number::<u64>("length")? {
        Some(len) => offset.saturating_add(len),
        None => u64::MAX,
    };
    let stream = read_file(source, resolved.block, offset..end, DEFAULT_WINDOW)?;
    let len = stream.len();
    let mut res = byte_stream(stream.map_err(RpcError::from), &params, "text/plain");
    res.headers_mut()
        .insert("x-content-length", HeaderValue::from(len));
    Ok(res)
}

/// Kubo's answer: `{"Objects": [{"Hash": <arg>, "Links": [...]}]}`, links sorted by name; with
/// `stream`, one such document per link as it is found.
pub(crate) async fn ls(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    params.only(&["headers", "resolve-type", "size", "stream", "long"])?;
    // Kubo looks into the children when either is asked for.
    let resolve = params.flag("resolve-type", true)? || params.flag("size", true)?;
    let source = params.block_source(&state)?;
    let args: Vec<String> = params
        .required_args()?
        .into_iter()
        .map(str::to_owned)
        .collect();
    if params.flag("stream", false)? {
        let (lines, answer) = JsonLines::new(&params);
        tokio::spawn(async move {
            for arg in &args {
                let sent = list(&source, &params, arg, resolve, |link| {
                    let line = json!({ "Objects": [{ "Hash": arg, "Links": [link] }] });
                    let lines = lines.clone();
                    async move { lines.send(&line).await }
                })
                .await;
                if let Err(e) = sent {
                    return lines.fail(e).await;
                }
            }
        });
        return Ok(answer.respond().await);
    }
    let mut objects = Vec::new();
    for arg in &args {
        let mut links = Vec::new();
        list(&source, &params, arg, resolve, |link| {
            links.push(link);
            std::future::ready(true)
        })
        .await?;
        links.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
        objects.push(json!({ "Hash": arg, "Links": links }));
    }
    Ok(Json(json!({ "Objects": objects })).into_response())
}

/// Hands each link of the directory at `arg` (none for a file) to `found`, which says whether
/// to go on.
async fn list<F, Fut>(
    source: &Arc<dyn BlockSource>,
    params: &Params,
    arg: &str,
    resolve: bool,
    mut found: F,
) -> RpcResult<()>
where
    F: FnMut(Value) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let resolved = resolve_text(source.as_ref(), arg).await?;
    if !resolved.kind.is_directory() {
        return Ok(());
    }
    let mut listing = list_directory(Arc::clone(source), resolved.block, DEFAULT_WINDOW)?;
    while let Some(entry) = listing.try_next().await? {
        let kind = match (resolve, entry.cid.codec()) {
            (true, _) | (false, RAW) => Some(stat(source.as_ref(), entry.cid).await?),
            (false, _) => None,
        };
        if !found(link_json(params, &entry.name, entry.cid, kind.as_ref())).await {
            break;
        }
    }
    Ok(())
}

/// The multicodec of raw blocks, whose type and size need no lookup.
const RAW: u64 = 0x55;

/// One `ls` link as Kubo writes it: `Type` is the UnixFS type number (1 directory, 2 file,
/// 4 symlink; 0 when not looked up), `Size` the file size (0 when not looked up), and no mode
/// or modification time (UnixFS metadata is not kept here).
fn link_json(params: &Params, name: &str, cid: Cid, kind: Option<&EntryKind>) -> Value {
    let (type_num, size, target) = match kind {
        Some(EntryKind::File { size } | EntryKind::Raw { size }) => (2, *size, String::new()),
        Some(EntryKind::Directory | EntryKind::ShardedDirectory) => (1, 0, String::new()),
        Some(EntryKind::Symlink { target }) => (4, 0, String::from_utf8_lossy(target).into_owned()),
        Some(_) | None => (0, 0, String::new()),
    };
    json!({
        "Name": name,
        "Hash": params.cid(&cid),
        "Size": size,
        "Type": type_num,
        "Target": target,
        "Mode": 0,
        "ModTime": "0001-01-01T00:00:00Z",
    })
}

/// Tar chunks in flight to the client.
const TAR_BUFFER: usize = 16;

pub(crate) async fn get(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    // `output` and `archive` tell Kubo's CLI what to do with the tar it always gets.
    params.only(&[
        "output",
        "archive",
        "compress",
        "compression-level",
        // kubo-rpc-client sends its `compressionLevel` option under that name.
        "compressionLevel",
        "progress",
    ])?;
    let level = compression_level(&params)?;
    let archive = params.flag("archive", false)?;
    let source = params.block_source(&state)?;
    let arg = params.one_arg()?;
    let resolved = resolve_text(source.as_ref(), arg).await?;
    let path = ContentPath::parse(arg)?;
    let name = path
        .segments()
        .last()
        .cloned()
        .unwrap_or_else(|| path.root().to_string());
    let (tx, rx) = mpsc::channel::<RpcResult<Bytes>>(TAR_BUFFER);
    // As Kubo: a file asked for compressed and not as an archive is its bytes gzipped; anything
    // else is a tar, gzipped when asked.
    let bare_file = level.is_some() && !archive && !resolved.kind.is_directory();
    tokio::spawn(async move {
        let written = if bare_file {
            write_file(source, &resolved, &tx).await
        } else {
            write_tar(source, &resolved, &name, &tx).await
        };
        if let Err(e) = written {
            let _ = tx.send(Err(e)).await;
        }
    });
    let chunks = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(match level {
        Some(level) => byte_stream(gzipped(chunks, level), &params, "application/gzip"),
        None => byte_stream(chunks, &params, "application/x-tar"),
    })
}

/// Kubo's `--compress` and `--compression-level`: the gzip level, if any (1 to 9; the
/// default level when only `--compress` is given).
fn compression_level(params: &Params) -> RpcResult<Option<u32>> {
    if !params.flag("compress", false)? {
        return Ok(None);
    }
    let level = match params.number::<i64>("compression-level")? {
        Some(level) => Some(level),
        None => params.number::<i64>("compressionLevel")?,
    };
    match level {
        None | Some(-1) => Ok(Some(flate2::Compression::default().level())),
        Some(level @ 1..=9) => Ok(Some(level as u32)),
        Some(_) => Err(RpcError::client(
            "compression level must be between 1 and 9",
        )),
    }
}

/// `chunks` gzipped at `level`, compressed on blocking threads a chunk at a time.
fn gzipped(
    chunks: impl futures::Stream<Item = RpcResult<Bytes>> + Send + 'static,
    level: u32,
) -> impl futures::Stream<Item = RpcResult<Bytes>> + Send + 'static {
    use flate2::write::GzEncoder;
    use futures::StreamExt;
    use std::io::Write;

    // Compresses `input` (or, with `None`, finishes) and hands back what came out.
    async fn step(
        mut encoder: GzEncoder<Vec<u8>>,
        input: Option<Bytes>,
    ) -> RpcResult<(Option<GzEncoder<Vec<u8>>>, Bytes)> {
        tokio::task::spawn_blocking(move || match input {
            Some(input) => {
                encoder.write_all(&input)?;
                let out = Bytes::from(std::mem::take(encoder.get_mut()));
                Ok((Some(encoder), out))
            }
            None => Ok((None, Bytes::from(encoder.finish()?))),
        })
        .await?
        .map_err(|e: std::io::Error| RpcError::failed(format!("compressing: {e}")))
    }

    let encoder = GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    futures::stream::unfold(Some((Box::pin(chunks), encoder)), |state| async move {
        let (mut chunks, encoder) = state?;
        let input = match chunks.next().await {
            Some(Ok(chunk)) => Some(chunk),
            Some(Err(e)) => return Some((Err(e), None)),
            None => None,
        };
        match step(encoder, input).await {
            Ok((Some(encoder), out)) => Some((Ok(out), Some((chunks, encoder)))),
            Ok((None, out)) => Some((Ok(out), None)),
            Err(e) => Some((Err(e), None)),
        }
    })
    .filter(|chunk| std::future::ready(!matches!(chunk, Ok(b) if b.is_empty())))
}

/// Streams the bytes of the file at `resolved`.
async fn write_file(
    source: Arc<dyn BlockSource>,
    resolved: &Resolved,
    out: &mpsc::Sender<RpcResult<Bytes>>,
) -> RpcResult<()> {
    let mut bytes = read_file(source, resolved.block.clone(), 0..u64::MAX, DEFAULT_WINDOW)?;
    while let Some(chunk) = bytes.try_next().await? {
        out.send(Ok(chunk))
            .await
            .map_err(|_| RpcError::failed("client went away"))?;
    }
    Ok(())
}

/// Streams a tar of the DAG at `resolved`, named `name`, from the exporter's `get` walk:
/// names are checked there, directories stream shard by shard, file bytes pass straight through.
async fn write_tar(
    source: Arc<dyn BlockSource>,
    resolved: &Resolved,
    name: &str,
    out: &mpsc::Sender<RpcResult<Bytes>>,
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
