//! `stargate add`: walks the given paths, streams them to the API as Kubo's multipart encoding,
//! prints `added <cid> <name>` lines (or less with -q/-Q) and a progress bar on a terminal.
//!
//! With no daemon the API runs in this process: a file's part then carries its path (`Abspath`)
//! and no bytes, and the importer reads the file itself, by position on every hashing thread.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use axum::body::Body;
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;

use crate::cli::AddArgs;
use crate::client::{Client, ndjson};
use crate::output::outln;

/// An entry to send: its name as the API sees it and where it is on disk.
#[derive(Debug)]
struct Entry {
    name: String,
    path: PathBuf,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    File(u64),
    Directory,
    Symlink(String),
}

/// One line of the answer: an added entry or a progress report (a failure ends the stream).
#[derive(Debug, Deserialize)]
struct Event {
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Hash")]
    hash: Option<String>,
    #[serde(rename = "Bytes")]
    bytes: Option<u64>,
}

pub(crate) async fn run(client: &Client, args: AddArgs) -> Result<()> {
    let mut entries = Vec::new();
    for path in &args.paths {
        collect(path, args.recursive, args.hidden, &mut entries)?;
    }
    let total: u64 = entries
        .iter()
        .map(|e| match e.kind {
            Kind::File(n) => n,
            _ => 0,
        })
        .sum();
    let show_progress = args
        .progress
        .unwrap_or_else(|| std::io::stderr().is_terminal() && !args.quieter);
    let bar = show_progress.then(|| progress_bar(total));
    // A daemon answers once it has read the whole request, so its bar follows the upload; in
    // process the API reads the files itself and reports its progress.
    let upload_bar = bar.clone().filter(|_| !client.is_in_process());

    let mut query = vec![
        ("only-hash", args.only_hash.to_string()),
        ("pin", args.pin.to_string()),
        ("chunker", args.chunker.clone()),
        (
            "progress",
            (show_progress && upload_bar.is_none()).to_string(),
        ),
        ("wrap-with-directory", args.wrap_with_directory.to_string()),
    ];
    if let Some(v) = args.cid_version {
        query.push(("cid-version", v.to_string()));
    }
    if let Some(raw) = args.raw_leaves {
        query.push(("raw-leaves", raw.to_string()));
    }
    if let Some(kind) = &args.announce {
        query.push(("announce", kind.clone()));
        query.extend(args.meta.iter().map(|m| ("meta", m.clone())));
    }
    let boundary = format!("stargate-{:032x}", rand::random::<u128>());
    let body = Body::from_stream(multipart(
        entries,
        boundary.clone(),
        client.is_in_process(),
        upload_bar,
    ));
    let res = client
        .call(
            "add",
            &query,
            Some((format!("multipart/form-data; boundary={boundary}"), body)),
        )
        .await?;

    let mut events = ndjson::<Event>(res);
    let mut done_files: u64 = 0;
    let mut current: (String, u64) = (String::new(), 0);
    let mut last = None;
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                if let Some(bar) = &bar {
                    bar.abandon();
                }
                return Err(e);
            }
        };
        if let Some(bytes) = event.bytes {
            if current.0 != event.name {
                current = (event.name.clone(), 0);
            }
            current.1 = bytes;
            if let Some(bar) = &bar {
                bar.set_position(done_files + current.1);
            }
            continue;
        }
        let Some(hash) = event.hash else { continue };
        if let Some(size) = sizes_done(&event.name, &current) {
            done_files += size;
        }
        if let Some(bar) = &bar {
            bar.set_position(done_files.max(bar.position()));
        }
        let line = if args.quiet {
            Some(hash.clone())
        } else if args.quieter {
            None
        } else {
            Some(format!("added {hash} {}", event.name))
        };
        if let Some(line) = line {
            match &bar {
                Some(bar) => bar.println(line),
                None => outln!("{line}")?,
            }
        }
        last = Some(hash);
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    match last {
        Some(root) if args.quieter => outln!("{root}")?,
        Some(_) => {}
        None => bail!("the API reported nothing added"),
    }
    Ok(())
}

/// The bytes a finished file contributed to the progress bar.
fn sizes_done(name: &str, current: &(String, u64)) -> Option<u64> {
    (current.0 == name).then_some(current.1)
}

fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {bytes}/{total_bytes} [{wide_bar}] {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Lists what to send for `path`, depth-first with names sorted as Kubo's CLI sends them.
fn collect(path: &Path, recursive: bool, hidden: bool, out: &mut Vec<Entry>) -> Result<()> {
    let meta = std::fs::symlink_metadata(path)
        .with_context(|| format!("cannot add {}", path.display()))?;
    let base = match path.file_name() {
        Some(name) => utf8_name(name, path)?,
        None => {
            let full = std::fs::canonicalize(path)
                .with_context(|| format!("cannot add {}", path.display()))?;
            let name = full
                .file_name()
                .with_context(|| format!("{} has no file name", path.display()))?;
            utf8_name(name, path)?
        }
    };
    if meta.is_dir() && !recursive {
        bail!(
            "{} is a directory, use the '-r' flag to add it",
            path.display()
        );
    }
    // The top-level path is followed if it is a symlink, as Kubo does.
    let meta = if meta.file_type().is_symlink() {
        std::fs::metadata(path).with_context(|| format!("cannot follow {}", path.display()))?
    } else {
        meta
    };
    walk(path, base, &meta, hidden, out)
}

fn walk(
    path: &Path,
    name: String,
    meta: &std::fs::Metadata,
    hidden: bool,
    out: &mut Vec<Entry>,
) -> Result<()> {
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path)
            .with_context(|| format!("reading symlink {}", path.display()))?;
        let target = utf8_name(target.as_os_str(), path)?;
        out.push(Entry {
            name,
            path: path.to_owned(),
            kind: Kind::Symlink(target),
        });
    } else if meta.is_dir() {
        out.push(Entry {
            name: name.clone(),
            path: path.to_owned(),
            kind: Kind::Directory,
        });
        let mut children: Vec<_> = std::fs::read_dir(path)
            .with_context(|| format!("listing {}", path.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("listing {}", path.display()))?;
        children.sort_by_key(std::fs::DirEntry::file_name);
        for child in children {
            let child_name = utf8_name(&child.file_name(), &child.path())?;
            if !hidden && child_name.starts_with('.') {
                continue;
            }
            let child_meta = std::fs::symlink_metadata(child.path())
                .with_context(|| format!("reading {}", child.path().display()))?;
            walk(
                &child.path(),
                format!("{name}/{child_name}"),
                &child_meta,
                hidden,
                out,
            )?;
        }
    } else if meta.is_file() {
        out.push(Entry {
            name,
            path: path.to_owned(),
            kind: Kind::File(meta.len()),
        });
    } else {
        bail!("{} is not a file, directory or symlink", path.display());
    }
    Ok(())
}

/// UnixFS names are UTF-8; a name that is not cannot be added faithfully.
fn utf8_name(name: &std::ffi::OsStr, path: &Path) -> Result<String> {
    name.to_str().map(str::to_owned).with_context(|| {
        format!(
            "{}: the name is not valid UTF-8, which UnixFS cannot store",
            path.display()
        )
    })
}

/// The multipart body: one part per entry, file contents streamed from disk, or only named
/// when the API runs `in_process`.
fn multipart(
    entries: Vec<Entry>,
    boundary: String,
    in_process: bool,
    upload_bar: Option<ProgressBar>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let closing = Bytes::from(format!("--{boundary}--\r\n"));
    futures::stream::iter(entries)
        .then(move |entry| {
            let boundary = boundary.clone();
            let bar = upload_bar.clone();
            async move { part(entry, &boundary, in_process, bar).await }
        })
        .try_flatten()
        .chain(futures::stream::once(async move { Ok(closing) }))
}

/// One entry's part; `upload_bar` (if any) advances with the file bytes as they are sent.
async fn part(
    entry: Entry,
    boundary: &str,
    in_process: bool,
    upload_bar: Option<ProgressBar>,
) -> Result<impl Stream<Item = Result<Bytes, std::io::Error>> + Send + use<>, std::io::Error> {
    let name: String = form_urlencoded::byte_serialize(entry.name.as_bytes()).collect();
    let mut abspath = String::new();
    let (content_type, body): (&str, futures::stream::BoxStream<'static, _>) = match entry.kind {
        Kind::File(_) if in_process && let Some(path) = local_path(&entry.path) => {
            abspath = format!("Abspath: {path}\r\n");
            ("application/octet-stream", futures::stream::empty().boxed())
        }
        Kind::Directory => ("application/x-directory", futures::stream::empty().boxed()),
        Kind::Symlink(target) => (
            "application/symlink",
            futures::stream::once(async move { Ok(Bytes::from(target)) }).boxed(),
        ),
        Kind::File(_) => {
            let file = tokio::fs::File::open(&entry.path).await.map_err(|e| {
                std::io::Error::new(e.kind(), format!("{}: {e}", entry.path.display()))
            })?;
            (
                "application/octet-stream",
                tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024)
                    .inspect_ok(move |chunk| {
                        if let Some(bar) = &upload_bar {
                            bar.inc(chunk.len() as u64);
                        }
                    })
                    .boxed(),
            )
        }
    };
    let head = Bytes::from(format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: {content_type}\r\n{abspath}\r\n"
    ));
    Ok(futures::stream::once(async move { Ok(head) })
        .chain(body)
        .chain(futures::stream::once(async {
            Ok(Bytes::from_static(b"\r\n"))
        })))
}

/// `path` made absolute and percent-encoded for the `Abspath` header; `None` if it is not UTF-8
/// (the file's bytes are then sent instead).
fn local_path(path: &Path) -> Option<String> {
    let absolute = std::path::absolute(path).ok()?;
    let utf8 = absolute.to_str()?;
    Some(form_urlencoded::byte_serialize(utf8.as_bytes()).collect())
}
