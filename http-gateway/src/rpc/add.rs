//! `add`: files, directories and symlinks arrive as multipart parts (Kubo's encoding: one part
//! per entry, in depth-first order, file names percent-encoded paths, directories typed
//! `application/x-directory`, symlinks `application/symlink`; a file without a name, as clients
//! send a string or bytes, is named by its CID); each entry's CID is streamed back as soon as it
//! is known, the answer's head once the whole request is read.
//!
//! The async side only reads the request and forwards entries; one blocking worker owns the
//! import, the store writer and the directory builders, so hashing never runs on an executor
//! thread and the whole add is one writer whose pins are written after all of its blocks.
//!
//! A caller in this process (the CLI when no daemon runs, marked by the [`InProcess`] request
//! extension) may name a file by its path in the part's `Abspath` header (Kubo's header for the
//! file on disk) and send no bytes: the worker then reads the file by position on every hashing
//! thread instead of through the request. Over TCP the header is ignored and the bytes are read.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Extension;
use axum::extract::{Multipart, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;
use stargate_protocol::limits::DEFAULT_MAX_LINKS;
use stargate_protocol::unixfs::{
    BlockSink, DirectoryBuilder, DiscardBlocks, ImportOptions, ImportedFile, import_file,
    import_file_at, import_symlink,
};
use stargate_protocol::{Cid, Version};
use stargate_storage::{PinMode, Store};
use tokio::sync::{mpsc, oneshot};

use super::drain::drain;
use super::response::JsonLines;
use super::{Params, RpcError, RpcResult};
use crate::AppState;

/// Chunks of one file in flight between the request reader and the importer.
const CHUNKS_IN_FLIGHT: usize = 16;
/// Entries queued for the worker.
const ENTRIES_IN_FLIGHT: usize = 4;
/// Longest symlink target we accept (Kubo's is the block limit; a path is far shorter).
const MAX_SYMLINK_TARGET: usize = 64 * 1024;
/// Progress is reported at most once per this many bytes (Kubo's step), and at each file's end.
const PROGRESS_STEP: u64 = 256 << 10;

/// Marks a request made from inside this process (set by the CLI's in-process client, never by
/// anything read from a connection): its `add` parts may name files by path instead of carrying
/// their bytes.
#[derive(Debug, Clone, Copy)]
pub struct InProcess;

/// The part header that names a file on this machine (Kubo's CLI sends it too).
const ABSPATH: &str = "abspath";

pub(crate) async fn add(
    State(state): State<AppState>,
    in_process: Option<Extension<InProcess>>,
    params: Params,
    mut multipart: Multipart,
) -> Response {
    let in_process = in_process.is_some();
    let (lines, answer) = JsonLines::new(&params);
    let opts = match AddOptions::from_params(params) {
        Ok(opts) => opts,
        Err(e) => {
            drain(&mut multipart).await;
            return e.into_response();
        }
    };
    let (entries, queue) = mpsc::channel(ENTRIES_IN_FLIGHT);
    let (body_read, read) = oneshot::channel::<()>();
    let aborted = Arc::new(AtomicBool::new(false));
    let store = state.store().clone();
    let worker_lines = lines.clone();
    let pinned = opts.pin;
    let announce = opts.announce.clone();
    if announce.is_some() && state.mirror().is_none() {
        drain(&mut multipart).await;
        return RpcError::client(crate::mirror::MIRROR_OFF).into_response();
    }
    let worker_aborted = Arc::clone(&aborted);
    let worker = tokio::task::spawn_blocking(move || {
        run_worker(&store, &opts, queue, &worker_lines, &worker_aborted)
    });
    tokio::spawn(async move {
        let read = forward_entries(&mut multipart, &entries, in_process).await;
        let unread = match read {
            Ok(()) => {
                let _ = body_read.send(());
                None
            }
            Err(_) => {
                // Nothing of a request cut short is kept; the worker checks this once its queue
                // closes (below), and the client reads our answer once its body is read.
                aborted.store(true, Ordering::SeqCst);
                drain(&mut multipart).await;
                Some(body_read)
            }
        };
        drop(entries);
        let outcome = match (read, worker.await) {
            (Err(Stop::Refused(e)), _) => Err(e),
            (_, Err(join)) => Err(RpcError::from(join)),
            (_, Ok(done)) => done,
        };
        match outcome {
            Ok(roots) => {
                roots
                    .iter()
                    .for_each(|root| state.content_added(*root, pinned));
                if let Some(announce) = announce
                    && let Err(e) = announce_roots(&state, &roots, announce).await
                {
                    lines.fail(e).await;
                }
            }
            Err(e) => lines.fail(e).await,
        }
        // A failed read signals the body's end only now, after its error: the answer is then
        // that error's status, not a stream it cuts short.
        drop(unread);
    });
    answer
        .respond_after(async {
            let _ = read.await;
        })
        .await
}

/// Announces each root of an add through the node's mirror.
async fn announce_roots(
    state: &AppState,
    roots: &[stargate_protocol::Cid],
    announce: Announcing,
) -> RpcResult<()> {
    let mirror = state
        .mirror()
        .ok_or_else(|| RpcError::client(crate::mirror::MIRROR_OFF))?;
    for root in roots {
        mirror
            .announce(*root, announce.kind.clone(), announce.metadata.clone())
            .await
            .map_err(|e| RpcError::failed(format!("announcing {root}: {e}")))?;
    }
    Ok(())
}

/// The options of one add (Kubo's `add` options: those that change the result are acted on or,
/// where this node cannot honour them, refused).
#[derive(Debug)]
struct AddOptions {
    import: ImportOptions,
    only_hash: bool,
    pin: bool,
    progress: bool,
    wrap: bool,
    /// `silent`: no line per file (Kubo still reports directories).
    silent: bool,
    empty_dirs: bool,
    /// `announce` (and `meta`): announce each root on the mirror topic.
    announce: Option<Announcing>,
    /// How CIDs are written in the answer (`cid-base`).
    params: Params,
}

impl AddOptions {
    fn from_params(p: Params) -> RpcResult<Self> {
        p.only(&[
            // Read by Kubo's CLI to build the request; the request is what we get.
            "recursive",
            "dereference-args",
            "dereference-symlinks",
            "stdin-name",
            "hidden",
            "ignore",
            "ignore-rules-path",
            // Change only Kubo's text output.
            "quiet",
            "quieter",
            // Providing, not the result.
            "fast-provide-root",
            "fast-provide-dag",
            "fast-provide-wait",
            // No use without the filestore or inlining (both refused below).
            "fscache",
            "inline-limit",
            // kubo-rpc-client's own add options, which Kubo ignores.
            "preload",
            "block-write-concurrency",
            "enable-sharding-experiment",
            "shard-split-threshold",
            "file-import-concurrency",
            // Acted on.
            "silent",
            "progress",
            "only-hash",
            "wrap-with-directory",
            "chunker",
            "raw-leaves",
            "cid-version",
            "hash",
            "pin",
            "empty-dirs",
            // Refused unless they ask for what we do anyway.
            "pin-name",
            "to-files",
            "trickle",
            "max-file-links",
            "max-directory-links",
            "max-hamt-fanout",
            "inline",
            "nocopy",
            "preserve-mode",
            "preserve-mtime",
            "mode",
            "mtime",
            "mtime-nsecs",
            // Stargate's own: announce the roots on the mirror topic.
            "announce",
            "meta",
        ])?;
        for unsupported in [
            "trickle",
            "nocopy",
            "inline",
            "preserve-mode",
            "preserve-mtime",
        ] {
            if p.flag(unsupported, false)? {
                return Err(RpcError::client(format!(
                    "--{unsupported} is not supported"
                )));
            }
        }
        for (option, why) in [
            ("to-files", "there is no MFS here"),
            ("pin-name", "pins have no names here"),
            ("mode", "UnixFS metadata is not supported"),
            ("mtime", "UnixFS metadata is not supported"),
            ("mtime-nsecs", "UnixFS metadata is not supported"),
        ] {
            if p.get(option).is_some_and(|v| !v.is_empty() && v != "0") {
                return Err(RpcError::client(format!(
                    "--{option} is not supported: {why}"
                )));
            }
        }
        // Kubo's layout limits: only their defaults are built here.
        for (option, default) in [
            ("max-file-links", DEFAULT_MAX_LINKS),
            ("max-directory-links", 0),
            ("max-hamt-fanout", 256),
        ] {
            if let Some(n) = p.number::<usize>(option)?.filter(|&n| n != default) {
                return Err(RpcError::client(format!(
                    "--{option}={n} is not supported; only Kubo's default ({default}) is"
                )));
            }
        }
        if let Some(hash) = p.get("hash").filter(|h| *h != "sha2-256") {
            return Err(RpcError::client(format!(
                "hash function {hash:?} is not supported for add; use sha2-256"
            )));
        }
        let mut import = ImportOptions::default();
        match p.number::<u8>("cid-version")? {
            None | Some(0) => {}
            Some(1) => import = import.with_cid_version(Version::V1),
            Some(v) => return Err(RpcError::client(format!("unknown CID version {v}"))),
        }
        if let Some(raw) = p.get("raw-leaves") {
            import = import.with_raw_leaves(p.flag("raw-leaves", raw.is_empty())?);
        }
        if let Some(chunker) = p.get("chunker") {
            import = import.with_chunker(chunker).map_err(RpcError::client)?;
        }
        let announce = Announcing::from_params(&p)?;
        if announce.is_some() && (p.flag("only-hash", false)? || !p.flag("pin", true)?) {
            return Err(RpcError::client(
                "--announce needs the content stored and pinned: not with --only-hash or --pin=false",
            ));
        }
        Ok(Self {
            import,
            announce,
            only_hash: p.flag("only-hash", false)?,
            pin: p.flag("pin", true)?,
            progress: p.flag("progress", false)?,
            wrap: p.flag("wrap-with-directory", false)?,
            silent: p.flag("silent", false)?,
            empty_dirs: p.flag("empty-dirs", true)?,
            params: p,
        })
    }
}

/// `announce=TYPE` and `meta=KEY=VALUE` (repeatable): the announcement of an add's roots.
#[derive(Debug, Clone)]
struct Announcing {
    kind: String,
    metadata: serde_json::Map<String, serde_json::Value>,
}

impl Announcing {
    /// The options, checked as an announcement on the topic would be (type, metadata size).
    fn from_params(p: &Params) -> RpcResult<Option<Self>> {
        let metas: Vec<&str> = p.values("meta").collect();
        let Some(kind) = p.get("announce") else {
            if metas.is_empty() {
                return Ok(None);
            }
            return Err(RpcError::client("--meta needs --announce TYPE"));
        };
        let mut metadata = serde_json::Map::new();
        for meta in metas {
            let Some((key, value)) = meta.split_once('=') else {
                return Err(RpcError::client(format!(
                    "--meta {meta:?} is not KEY=VALUE"
                )));
            };
            metadata.insert(key.to_owned(), serde_json::Value::String(value.to_owned()));
        }
        // The checks of a received announcement, on one naming a placeholder CID (the empty
        // identity CID): the same limits hold for what this node announces.
        let probe = json!({"cid": "bafkqaaa", "type": kind, "metadata": metadata});
        stargate_protocol::mirror::Announcement::decode(probe.to_string().as_bytes())
            .map_err(|e| RpcError::client(format!("cannot announce: {e}")))?;
        Ok(Some(Self {
            kind: kind.to_owned(),
            metadata,
        }))
    }
}

/// One entry of the multipart body, as the worker gets it. A file or symlink without a name
/// (`path` empty) is named by its CID once imported, as Kubo names it.
#[derive(Debug)]
enum Entry {
    File { path: String, content: FileContent },
    Directory { path: String },
    Symlink { path: String, target: Bytes },
}

/// Where a file's bytes come from.
#[derive(Debug)]
enum FileContent {
    /// The request's part, chunk by chunk.
    Streamed(mpsc::Receiver<Bytes>),
    /// A file on this machine, opened for an in-process caller.
    Local(std::fs::File),
}

/// Why reading the request stopped early.
#[derive(Debug)]
enum Stop {
    /// The request is wrong (a bad part or name, a malformed body).
    Refused(RpcError),
    /// The worker stopped taking entries; its own error says why.
    WorkerGone,
}

/// Reads the multipart body, handing entries (and file bytes as they arrive) to the worker.
async fn forward_entries(
    multipart: &mut Multipart,
    entries: &mpsc::Sender<Entry>,
    in_process: bool,
) -> Result<(), Stop> {
    let bad = |e: axum::extract::multipart::MultipartError| {
        Stop::Refused(RpcError::client(format!("reading the request: {e}")))
    };
    let mut any = false;
    while let Some(mut field) = multipart.next_field().await.map_err(bad)? {
        any = true;
        let content_type = field.content_type().unwrap_or("").to_owned();
        let path = match field.file_name().filter(|n| !n.is_empty()) {
            Some(name) => entry_path(name).map_err(Stop::Refused)?,
            None if content_type == "application/x-directory" => {
                return Err(Stop::Refused(RpcError::client(
                    "a directory part has no file name",
                )));
            }
            None => String::new(),
        };
        let entry = match content_type.as_str() {
            "application/x-directory" => Entry::Directory { path },
            "application/symlink" => {
                let mut target = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(bad)? {
                    if target.len() + chunk.len() > MAX_SYMLINK_TARGET {
                        return Err(Stop::Refused(RpcError::client(format!(
                            "symlink {path:?}: target too long"
                        ))));
                    }
                    target.extend_from_slice(&chunk);
                }
                Entry::Symlink {
                    path,
                    target: target.into(),
                }
            }
            _ if in_process && field.headers().contains_key(ABSPATH) => Entry::File {
                path,
                content: FileContent::Local(
                    open_local(field.headers().get(ABSPATH))
                        .await
                        .map_err(Stop::Refused)?,
                ),
            },
            _ => {
                let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
                entries
                    .send(Entry::File {
                        path,
                        content: FileContent::Streamed(rx),
                    })
                    .await
                    .map_err(|_| Stop::WorkerGone)?;
                while let Some(chunk) = field.chunk().await.map_err(bad)? {
                    tx.send(chunk).await.map_err(|_| Stop::WorkerGone)?;
                }
                continue;
            }
        };
        entries.send(entry).await.map_err(|_| Stop::WorkerGone)?;
    }
    if !any {
        return Err(Stop::Refused(RpcError::client("no files in the request")));
    }
    Ok(())
}

/// Opens the file an in-process caller named in a part's `Abspath` header (percent-encoded).
async fn open_local(header: Option<&axum::http::HeaderValue>) -> RpcResult<std::fs::File> {
    let encoded = header
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| RpcError::client("the Abspath header is not percent-encoded ASCII"))?;
    let path: String = form_urlencoded::parse(format!("p={encoded}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| RpcError::client(format!("cannot add {path}: {e}")))?;
    Ok(file.into_std().await)
}

/// A part's file name as an entry path: percent-decoded (`+` is a space, as in Kubo's
/// `url.QueryUnescape`), relative, without empty, `.` or `..` segments.
fn entry_path(name: &str) -> RpcResult<String> {
    let decoded: String = form_urlencoded::parse(format!("p={name}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let trimmed = decoded.trim_matches('/');
    if trimmed.is_empty()
        || trimmed
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == ".." || s.contains('\0'))
    {
        return Err(RpcError::client(format!("invalid file name {decoded:?}")));
    }
    Ok(trimmed.to_owned())
}

/// Runs the import on a blocking thread: into the store, or nowhere for `--only-hash`.
/// Returns the top-level roots it stored.
fn run_worker(
    store: &Store,
    opts: &AddOptions,
    queue: mpsc::Receiver<Entry>,
    lines: &JsonLines,
    aborted: &AtomicBool,
) -> RpcResult<Vec<Cid>> {
    let cut_short = || RpcError::client("the request was cut short; nothing was added");
    if opts.only_hash {
        import_entries(opts, queue, lines, &mut DiscardBlocks).map(|_| Vec::new())
    } else {
        let mut writer = store.writer();
        let roots = import_entries(opts, queue, lines, &mut writer)?;
        // The queue closed because reading failed (a file may have ended early), or nobody
        // waits for the answer any more (the client went away, or its `timeout` passed): as in
        // Kubo, whose add stops with its request, nothing is pinned.
        if aborted.load(Ordering::SeqCst) || lines.is_closed() {
            return Err(cut_short());
        }
        // Every pin goes in with the last blocks, in one transaction.
        let pins = roots.iter().filter(|_| opts.pin);
        writer.finish(pins.map(|cid| (*cid, PinMode::Recursive)))?;
        Ok(roots)
    }
}

/// Imports every entry, reporting each, and returns the top-level roots to pin.
fn import_entries<S>(
    opts: &AddOptions,
    mut queue: mpsc::Receiver<Entry>,
    lines: &JsonLines,
    sink: &mut S,
) -> RpcResult<Vec<Cid>>
where
    S: BlockSink + Send,
{
    let import_err = |e: stargate_protocol::unixfs::ImportError| RpcError::failed(e);
    // Top-level name -> the builder of that directory (or of the wrapping directory, keyed "").
    let mut dirs: BTreeMap<String, DirectoryBuilder> = BTreeMap::new();
    let mut top_files: Vec<Cid> = Vec::new();
    while let Some(entry) = queue.blocking_recv() {
        let (path, imported) = match entry {
            Entry::Directory { .. } if !opts.empty_dirs => continue,
            Entry::Directory { path } => {
                let (top, rest) = place(&path, opts.wrap);
                dirs.entry(top)
                    .or_insert_with(|| DirectoryBuilder::new(&opts.import))
                    .add_directory(&rest)
                    .map_err(import_err)?;
                continue;
            }
            Entry::Symlink { path, target } => {
                let file = import_symlink(&target, &opts.import, sink).map_err(import_err)?;
                (path, file)
            }
            Entry::File { path, content } => {
                let mut reported = 0;
                let report_progress = |done: u64| {
                    lines.blocking_send(&json!({ "Name": path, "Bytes": done }));
                };
                let progress = |done| {
                    if opts.progress && done >= reported + PROGRESS_STEP {
                        reported = done;
                        report_progress(done);
                    }
                };
                let file = match content {
                    FileContent::Streamed(chunks) => {
                        import_file(ChannelReader::new(chunks), &opts.import, sink, progress)
                    }
                    FileContent::Local(file) => {
                        let len = file
                            .metadata()
                            .map_err(|e| RpcError::failed(format!("{path}: {e}")))?
                            .len();
                        import_file_at(&file, len, &opts.import, sink, progress)
                    }
                }
                .map_err(import_err)?;
                // Kubo reports the end of every file too.
                if opts.progress && file.size > reported {
                    report_progress(file.size);
                }
                (path, file)
            }
        };
        let path = if path.is_empty() {
            imported.cid.to_string()
        } else {
            path
        };
        if !opts.silent {
            report(lines, &opts.params, &path, &imported);
        }
        let (top, rest) = place(&path, opts.wrap);
        if rest.is_empty() {
            top_files.push(imported.cid);
        } else {
            dirs.entry(top)
                .or_insert_with(|| DirectoryBuilder::new(&opts.import))
                .add_file(&rest, &imported)
                .map_err(import_err)?;
        }
    }
    let mut roots = top_files;
    for (top, builder) in dirs {
        for dir in builder.finish(sink).map_err(import_err)? {
            let path = match (top.as_str(), dir.path.as_str()) {
                (top, "") => top.to_owned(),
                ("", rest) => rest.to_owned(),
                (top, rest) => format!("{top}/{rest}"),
            };
            report(
                lines,
                &opts.params,
                &path,
                &ImportedFile {
                    cid: dir.cid,
                    size: dir.tsize,
                    tsize: dir.tsize,
                },
            );
            if dir.path.is_empty() {
                roots.push(dir.cid);
            }
        }
    }
    Ok(roots)
}

/// Splits an entry path into the directory builder it belongs to and its path inside it.
/// Without wrapping, each top-level directory is its own root; with it, all share the root "".
fn place(path: &str, wrap: bool) -> (String, String) {
    if wrap {
        return (String::new(), path.to_owned());
    }
    match path.split_once('/') {
        Some((top, rest)) => (top.to_owned(), rest.to_owned()),
        None => (path.to_owned(), String::new()),
    }
}

/// Kubo's line for an added entry. `Size` is a string there, the encoded DAG size.
fn report(lines: &JsonLines, params: &Params, path: &str, file: &ImportedFile) {
    lines.blocking_send(&json!({
        "Name": path,
        "Hash": params.cid(&file.cid),
        "Size": file.tsize.to_string(),
    }));
}

/// A `Read` over file chunks arriving from the request.
struct ChannelReader {
    chunks: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl ChannelReader {
    fn new(chunks: mpsc::Receiver<Bytes>) -> Self {
        Self {
            chunks,
            current: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths() {
        assert_eq!(entry_path("dir%2Fa%20b.txt").unwrap(), "dir/a b.txt");
        assert_eq!(entry_path("a+b").unwrap(), "a b");
        assert_eq!(entry_path("/abs/x").unwrap(), "abs/x");
        for bad in ["", "..", "a/../b", "a//b", "./a", "%2E%2E", "a%00b"] {
            assert!(entry_path(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn placement() {
        assert_eq!(place("a.txt", false), ("a.txt".into(), String::new()));
        assert_eq!(place("d/sub/x", false), ("d".into(), "sub/x".into()));
        assert_eq!(place("d/sub/x", true), (String::new(), "d/sub/x".into()));
    }
}
