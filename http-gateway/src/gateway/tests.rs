//! The gateway through `Router::oneshot`, over content built by the importer.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::BodyExt;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use stargate_protocol::car::read_car;
use stargate_protocol::unixfs::export::{BlockSource, MemoryBlocks, SourceError};
use stargate_protocol::unixfs::{DirectoryBuilder, ImportOptions, import_file, import_symlink};
use stargate_protocol::{Block, Cid, Codec, HashCode, Version, parse_cid};
use stargate_storage::{Store, StoreOptions};
use tower::ServiceExt;

use crate::{AppState, HttpOptions, gateway_router};

/// A gateway over a temp store holding every imported block.
struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    app: Router,
}

impl Fixture {
    fn new(blocks: &[Block]) -> Self {
        Self::with(blocks, None, HttpOptions::default())
    }

    /// `source` replaces the store as where reads go (the store still answers only-if-cached).
    fn with(blocks: &[Block], source: Option<Arc<dyn BlockSource>>, options: HttpOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        store.put_many(blocks.iter().cloned()).unwrap();
        let source = source.unwrap_or_else(|| Arc::new(store.clone()));
        let app = gateway_router(AppState::new(store.clone(), source, options));
        Self {
            _dir: dir,
            store,
            app,
        }
    }

    async fn send(&self, method: &str, uri: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = self
            .app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.map(|b| b.to_bytes());
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, uri: &str) -> Answer {
        self.send("GET", uri, &[]).await
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Result<Bytes, axum::Error>,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map_or("", |v| v.to_str().unwrap_or("<not ascii>"))
    }

    fn bytes(&self) -> &Bytes {
        self.body.as_ref().expect("body streamed to its end")
    }

    fn text(&self) -> String {
        String::from_utf8(self.bytes().to_vec()).unwrap()
    }
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    StdRng::seed_from_u64(seed).fill_bytes(&mut data);
    data
}

/// Imports `data` as one file with `chunk`-byte chunks; returns its root and every block.
fn file(data: &[u8], chunk: usize) -> (Cid, Vec<Block>) {
    let opts = ImportOptions::default()
        .with_chunker(&format!("size-{chunk}"))
        .unwrap();
    let mut blocks = Vec::new();
    let f = import_file(data, &opts, &mut blocks, |_| {}).unwrap();
    (f.cid, blocks)
}

/// Imports a tree of `(path, bytes)` files; returns the root directory and every block.
fn tree(files: &[(&str, &[u8])], opts: &ImportOptions) -> (Cid, Vec<Block>) {
    let mut blocks = Vec::new();
    let mut dir = DirectoryBuilder::new(opts);
    for (path, data) in files {
        let f = import_file(*data, opts, &mut blocks, |_| {}).unwrap();
        dir.add_file(path, &f).unwrap();
    }
    let dirs = dir.finish(&mut blocks).unwrap();
    (dirs.last().unwrap().cid, blocks)
}

const IMMUTABLE: &str = "public, max-age=29030400, immutable";

#[tokio::test]
async fn serves_files_with_the_path_gateway_headers() {
    let data = pseudo_random(10_000, 1);
    let (cid, blocks) = file(&data, 1024);
    let g = Fixture::new(&blocks);
    let uri = format!("/ipfs/{cid}");
    let a = g.get(&uri).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.bytes(), &data[..]);
    assert_eq!(a.header("content-length"), "10000");
    assert_eq!(a.header("content-type"), "application/octet-stream");
    assert_eq!(a.header("etag"), format!("\"{cid}\""));
    assert_eq!(a.header("cache-control"), IMMUTABLE);
    assert_eq!(a.header("x-ipfs-path"), uri);
    assert_eq!(a.header("x-ipfs-roots"), cid.to_string());
    assert_eq!(a.header("accept-ranges"), "bytes");

    let head = g.send("HEAD", &uri, &[]).await;
    assert_eq!(head.status, 200);
    assert!(head.bytes().is_empty());
    for h in [
        "content-length",
        "content-type",
        "etag",
        "cache-control",
        "x-ipfs-roots",
    ] {
        assert_eq!(head.header(h), a.header(h), "{h}");
    }
}

#[tokio::test]
async fn content_type_comes_from_the_name_then_from_the_bytes() {
    let html = b"<!DOCTYPE html><html><body>hi</body></html>".as_slice();
    let text = "plain text, ütf-8\n".as_bytes();
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".as_slice();
    let opts = ImportOptions::default();
    let (root, blocks) = tree(
        &[
            ("page", html),
            ("notes", text),
            ("img", png),
            ("styles.css", b"body{}"),
            ("not-html.txt", html),
        ],
        &opts,
    );
    let g = Fixture::new(&blocks);
    for (name, want) in [
        ("page", "text/html"),
        ("notes", "text/plain; charset=utf-8"),
        ("img", "image/png"),
        ("styles.css", "text/css; charset=utf-8"),
        ("not-html.txt", "text/plain; charset=utf-8"),
    ] {
        let a = g.get(&format!("/ipfs/{root}/{name}")).await;
        assert_eq!(a.status, 200, "{name}");
        assert_eq!(a.header("content-type"), want, "{name}");
        let head = g.send("HEAD", &format!("/ipfs/{root}/{name}"), &[]).await;
        assert_eq!(head.header("content-type"), want, "HEAD {name}");
    }
    // ?filename= names the download and decides the type.
    let a = g
        .get(&format!(
            "/ipfs/{root}/page?filename=report.txt&download=true"
        ))
        .await;
    assert_eq!(a.header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(
        a.header("content-disposition"),
        "attachment; filename=\"report.txt\""
    );
}

#[tokio::test]
async fn single_ranges_are_partial_content() {
    let data = pseudo_random(5_000, 2);
    let (cid, blocks) = file(&data, 700);
    let g = Fixture::new(&blocks);
    let uri = format!("/ipfs/{cid}");
    for (range, from, to) in [
        ("bytes=0-0", 0, 1),
        ("bytes=100-2999", 100, 3000),
        ("bytes=4000-", 4000, 5000),
        ("bytes=-10", 4990, 5000),
        ("bytes=4990-9999", 4990, 5000),
    ] {
        let a = g.send("GET", &uri, &[("range", range)]).await;
        assert_eq!(a.status, 206, "{range}");
        assert_eq!(a.bytes(), &data[from..to], "{range}");
        assert_eq!(
            a.header("content-range"),
            format!("bytes {from}-{}/5000", to - 1)
        );
        assert_eq!(a.header("content-length"), (to - from).to_string());
    }
    let a = g.send("GET", &uri, &[("range", "bytes=5000-")]).await;
    assert_eq!(a.status, 416);
    assert_eq!(a.header("content-range"), "bytes */5000");
    // Several ranges: the whole file (allowed by RFC 9110).
    let a = g.send("GET", &uri, &[("range", "bytes=0-1,5-6")]).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.bytes(), &data[..]);
    // Raw blocks take ranges too.
    let a = g
        .send(
            "GET",
            &format!("{uri}?format=raw"),
            &[("range", "bytes=2-5")],
        )
        .await;
    assert_eq!(a.status, 206);
    let root = blocks.iter().find(|b| b.cid() == &cid).unwrap();
    assert_eq!(a.bytes(), &root.data()[2..6]);
}

#[tokio::test]
async fn if_none_match_answers_not_modified() {
    let (cid, blocks) = file(b"cache me", 1024);
    let g = Fixture::new(&blocks);
    let uri = format!("/ipfs/{cid}");
    let etag = format!("\"{cid}\"");
    for inm in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
        "*".to_owned(),
    ] {
        let a = g.send("GET", &uri, &[("if-none-match", &inm)]).await;
        assert_eq!(a.status, 304, "{inm}");
        assert!(a.bytes().is_empty());
        assert_eq!(a.header("etag"), etag);
        assert_eq!(a.header("cache-control"), IMMUTABLE);
    }
    let a = g
        .send("GET", &uri, &[("if-none-match", "\"something-else\"")])
        .await;
    assert_eq!(a.status, 200);
    // The raw block has its own etag.
    let a = g
        .send(
            "GET",
            &format!("{uri}?format=raw"),
            &[("if-none-match", &etag)],
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("etag"), format!("\"{cid}.raw\""));
}

#[tokio::test]
async fn directories_redirect_serve_index_html_or_list_their_entries() {
    let opts = ImportOptions::default();
    let evil = "<img src=x onerror=alert(1)>\"'&.txt";
    let (root, blocks) = tree(
        &[
            ("site/index.html", b"<h1>home</h1>".as_slice()),
            ("site/about.txt", b"about"),
            ("docs/a b.txt", b"aaa"),
            (&format!("docs/{evil}"), b"x"),
            ("docs/sub/deep.bin", &[0u8, 1, 2]),
        ],
        &opts,
    );
    let g = Fixture::new(&blocks);

    let a = g.get(&format!("/ipfs/{root}/docs?x=1")).await;
    assert_eq!(a.status, 301);
    assert_eq!(a.header("location"), format!("/ipfs/{root}/docs/?x=1"));

    let a = g.get(&format!("/ipfs/{root}/site/")).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.text(), "<h1>home</h1>");
    assert_eq!(a.header("content-type"), "text/html");
    let roots: Vec<&str> = a.header("x-ipfs-roots").split(',').collect();
    assert_eq!(roots.len(), 2, "root and site/, not index.html");
    assert_eq!(roots[0], root.to_string());

    let a = g.get(&format!("/ipfs/{root}/docs/")).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-type"), "text/html; charset=utf-8");
    let docs_cid = a
        .header("x-ipfs-roots")
        .split(',')
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(
        a.header("etag").starts_with("\"DirIndex-"),
        "{}",
        a.header("etag")
    );
    assert!(
        a.header("etag").ends_with(&format!("_CID-{docs_cid}\"")),
        "{}",
        a.header("etag")
    );
    let html = a.text();
    assert!(html.contains(">a b.txt</a>"), "{html}");
    assert!(
        html.contains(&format!("href=\"/ipfs/{root}/docs/a%20b.txt\"")),
        "{html}"
    );
    assert!(html.contains(">sub</a>"), "{html}");
    assert!(
        html.contains(&format!("href=\"/ipfs/{root}/\">..</a>")),
        "{html}"
    );
    assert!(
        !html.contains("<img"),
        "the name must not become markup: {html}"
    );
    assert!(
        html.contains("&#60;img src=x onerror=alert(1)&#62;&#34;&#39;&#38;.txt</a>"),
        "{html}"
    );

    // Same etag, not modified; HEAD has no body.
    let etag = a.header("etag").to_owned();
    let again = g
        .send(
            "GET",
            &format!("/ipfs/{root}/docs/"),
            &[("if-none-match", &etag)],
        )
        .await;
    assert_eq!(again.status, 304);
    let head = g.send("HEAD", &format!("/ipfs/{root}/docs/"), &[]).await;
    assert_eq!(head.status, 200);
    assert!(head.bytes().is_empty());
}

#[tokio::test]
async fn sharded_directories_resolve_and_list_every_entry() {
    let opts = ImportOptions::default().with_shard_threshold(1000);
    let names: Vec<String> = (0..400).map(|i| format!("entry-{i:04}.txt")).collect();
    let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), n.as_bytes())).collect();
    let (root, blocks) = tree(&files, &opts);
    let g = Fixture::new(&blocks);
    let html = g.get(&format!("/ipfs/{root}/")).await.text();
    for n in &names {
        assert!(html.contains(&format!(">{n}</a>")), "{n} missing");
    }
    let a = g.get(&format!("/ipfs/{root}/entry-0123.txt")).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.text(), "entry-0123.txt");
    // One root per path element, even though shard nodes were crossed.
    assert_eq!(a.header("x-ipfs-roots").split(',').count(), 2);
}

#[tokio::test]
async fn raw_blocks_by_format_or_accept() {
    let (cid, blocks) = file(&pseudo_random(3000, 3), 1000);
    let g = Fixture::new(&blocks);
    let root = blocks.iter().find(|b| b.cid() == &cid).unwrap();
    for (uri, accept) in [
        (format!("/ipfs/{cid}?format=raw"), None),
        (format!("/ipfs/{cid}"), Some("application/vnd.ipld.raw")),
    ] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
        let a = g.send("GET", &uri, &headers).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.bytes(), root.data());
        assert_eq!(a.header("content-type"), "application/vnd.ipld.raw");
        assert_eq!(a.header("x-content-type-options"), "nosniff");
        assert_eq!(
            a.header("content-disposition"),
            format!("attachment; filename=\"{cid}.bin\"")
        );
        assert_eq!(a.header("etag"), format!("\"{cid}.raw\""));
        let location = if accept.is_some() {
            format!("/ipfs/{cid}?format=raw")
        } else {
            String::new()
        };
        assert_eq!(a.header("content-location"), location);
        assert_eq!(a.header("vary"), "Accept");
    }
}

#[tokio::test]
async fn cars_stream_the_path_then_the_scope() {
    let data = pseudo_random(20_000, 4);
    let opts = ImportOptions::default().with_chunker("size-1000").unwrap();
    let (root, blocks) = tree(&[("d/f.bin", &data), ("other.txt", b"other")], &opts);
    let g = Fixture::new(&blocks);
    let car = |a: &Answer| read_car(a.bytes()).unwrap();

    let a = g.get(&format!("/ipfs/{root}?format=car")).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.header("content-type"),
        "application/vnd.ipld.car; version=1; order=dfs; dups=n"
    );
    assert_eq!(a.header("x-content-type-options"), "nosniff");
    assert_eq!(a.header("content-length"), "");
    assert_eq!(a.header("accept-ranges"), "none");
    let (roots, all) = car(&a);
    assert_eq!(roots, [root]);
    let mut got: Vec<Cid> = all.iter().map(|b| *b.cid()).collect();
    let mut want: Vec<Cid> = blocks.iter().map(|b| *b.cid()).collect();
    got.sort();
    want.sort();
    want.dedup();
    assert_eq!(got, want, "the whole DAG, each block once");
    assert_eq!(all[0].cid(), &root, "depth-first from the root");

    // dag-scope=block: the path's blocks only; entity-bytes: the blocks of the range.
    let a = g
        .get(&format!("/ipfs/{root}/d/f.bin?format=car&dag-scope=block"))
        .await;
    let (roots, path_only) = car(&a);
    assert_eq!(roots, [root]);
    assert_eq!(path_only.len(), 3);
    let a = g
        .get(&format!(
            "/ipfs/{root}/d/f.bin?format=car&entity-bytes=2500:3499"
        ))
        .await;
    let (_, ranged) = car(&a);
    let leaves: Vec<&Block> = ranged
        .iter()
        .skip(3)
        .filter(|b| b.data().len() < 1100)
        .collect();
    assert!(leaves.len() == 2, "leaves 2 and 3 of 20: {}", ranged.len());
    let etag_ranged = a.header("etag").to_owned();
    let etag_all = g
        .get(&format!("/ipfs/{root}/d/f.bin?format=car"))
        .await
        .header("etag")
        .to_owned();
    assert_ne!(etag_ranged, etag_all);

    // Accept with parameters; unsupported variants and formats are refused clearly.
    let a = g
        .send(
            "GET",
            &format!("/ipfs/{root}"),
            &[(
                "accept",
                "application/vnd.ipld.car; version=1; order=dfs; dups=n",
            )],
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.header("content-location"),
        format!("/ipfs/{root}?format=car")
    );
    for (uri, accept, status) in [
        (
            format!("/ipfs/{root}"),
            "application/vnd.ipld.car; dups=y",
            406,
        ),
        (
            format!("/ipfs/{root}"),
            "application/vnd.ipld.dag-json",
            406,
        ),
        (format!("/ipfs/{root}?format=car&car-dups=y"), "", 400),
        (format!("/ipfs/{root}?format=car&car-version=2"), "", 400),
        (format!("/ipfs/{root}?format=car&dag-scope=most"), "", 400),
        (format!("/ipfs/{root}?format=car&entity-bytes=x:1"), "", 400),
        (
            format!("/ipfs/{root}/d/f.bin?format=car&entity-bytes=20000:*"),
            "",
            400,
        ),
        (format!("/ipfs/{root}?format=tar"), "", 400),
        (format!("/ipfs/{root}?format=dag-json"), "", 400),
        (format!("/ipfs/{root}?format=ipns-record"), "", 400),
        (format!("/ipfs/{root}?format=zip"), "", 400),
    ] {
        let headers: Vec<(&str, &str)> = if accept.is_empty() {
            vec![]
        } else {
            vec![("accept", accept)]
        };
        let a = g.send("GET", &uri, &headers).await;
        assert_eq!(a.status.as_u16(), status, "{uri} {accept}: {}", a.text());
        assert!(!a.text().is_empty());
    }
}

#[tokio::test]
async fn the_trustless_probe_answers() {
    let g = Fixture::new(&[]);
    let a = g.get("/ipfs/bafkqaaa").await;
    assert_eq!(a.status, 200);
    assert!(a.bytes().is_empty());
    let a = g.get("/ipfs/bafkqaaa?format=raw").await;
    assert_eq!(a.status, 200);
    assert!(a.bytes().is_empty());
    let a = g.get("/ipfs/bafkqaaa?format=car").await;
    assert_eq!(a.status, 200);
    let (roots, blocks) = read_car(a.bytes()).unwrap();
    assert_eq!(roots, [parse_cid("bafkqaaa").unwrap()]);
    assert!(blocks.is_empty());
    for uri in ["/ipfs/bafkqaaa", "/ipfs/bafkqaaa?format=car"] {
        assert_eq!(g.send("HEAD", uri, &[]).await.status, 200, "{uri}");
    }
}

#[tokio::test]
async fn bad_input_gets_a_clear_client_error_and_changes_nothing() {
    let opts = ImportOptions::default();
    let (root, blocks) = tree(&[("dir/file.txt", b"content")], &opts);
    let g = Fixture::new(&blocks);
    let before = g.store.stat().unwrap();
    let unsupported_codec = Cid::new_v1(0x78, stargate_protocol::digest(HashCode::Sha2_256, b"x"));
    let unsupported_hash = Cid::new_v1(
        Codec::Raw.code(),
        stargate_protocol::Multihash::wrap(0xd5, &[0u8; 16]).unwrap(),
    );
    let missing =
        Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, &b"absent"[..]).unwrap();
    let long = format!("/ipfs/{root}/{}", "a".repeat(20_000));
    let cases: Vec<(String, &str, u16)> = vec![
        ("/ipfs/not-a-cid".into(), "GET", 400),
        ("/ipfs/QmTooShort".into(), "GET", 400),
        (format!("/ipfs/{unsupported_codec}"), "GET", 400),
        (format!("/ipfs/{unsupported_hash}"), "GET", 400),
        (format!("/ipfs/{root}/dir/../dir/file.txt"), "GET", 400),
        (format!("/ipfs/{root}/%2e%2E/x"), "GET", 400),
        (format!("/ipfs/{root}/dir%2Ffile.txt"), "GET", 400),
        (format!("/ipfs/{root}/dir//file.txt"), "GET", 400),
        (format!("/ipfs/{root}/%zz"), "GET", 400),
        ("/ipfs/".into(), "GET", 400),
        ("/ipfs".into(), "GET", 400),
        (long, "GET", 414),
        (format!("/ipfs/{root}?{}", "q=1&".repeat(3000)), "GET", 414),
        (format!("/ipfs/{root}?filename=%0Aevil"), "GET", 400),
        (format!("/ipfs/{root}/dir/file.txt"), "POST", 405),
        (format!("/ipfs/{root}"), "PUT", 405),
        (format!("/ipfs/{root}"), "DELETE", 405),
        (format!("/ipfs/{}", missing.cid()), "GET", 404),
        (format!("/ipfs/{root}/nope"), "GET", 404),
        (format!("/ipfs/{root}/dir/file.txt/below"), "GET", 404),
        ("/ipns/example.com".into(), "GET", 501),
        ("/elsewhere".into(), "GET", 404),
    ];
    for (uri, method, status) in &cases {
        let a = g.send(method, uri, &[]).await;
        let shown: String = uri.chars().take(80).collect();
        assert_eq!(a.status.as_u16(), *status, "{method} {shown}: {}", a.text());
        assert_eq!(
            a.header("content-type"),
            "text/plain; charset=utf-8",
            "{shown}"
        );
        assert!(a.text().len() > 10, "{shown}: a reason is given");
        if *status == 405 {
            assert_eq!(a.header("allow"), "GET, HEAD");
        }
    }
    let a = g
        .send(
            "GET",
            &format!("/ipfs/{root}"),
            &[("service-worker", "script")],
        )
        .await;
    assert_eq!(a.status, 400);
    assert_eq!(g.store.stat().unwrap(), before, "the store is unchanged");
}

/// A source whose blocks take `delay` to arrive.
struct Slow(MemoryBlocks, Duration);

impl BlockSource for Slow {
    fn get(&self, cid: Cid) -> BoxFuture<'_, Result<Block, SourceError>> {
        Box::pin(async move {
            tokio::time::sleep(self.1).await;
            self.0.get(cid).await
        })
    }
}

/// A source that gave up waiting for every block.
struct GivesUp;

impl BlockSource for GivesUp {
    fn get(&self, cid: Cid) -> BoxFuture<'_, Result<Block, SourceError>> {
        Box::pin(std::future::ready(Err(SourceError::TimedOut {
            cid: cid.to_string(),
            after: Duration::from_secs(7),
        })))
    }
}

fn memory(blocks: &[Block]) -> MemoryBlocks {
    let m = MemoryBlocks::new();
    for b in blocks {
        m.insert(b.clone());
    }
    m
}

// Paused time: every delay here is a timer, so a busy machine cannot stretch the 40 ms steps past
// the deadline.
#[tokio::test(start_paused = true)]
async fn waiting_for_content_times_out_with_504_but_slow_transfers_finish() {
    let data = pseudo_random(8_000, 5);
    let (cid, blocks) = file(&data, 1000);
    let options = HttpOptions {
        timeout: Duration::from_millis(150),
        ..HttpOptions::default()
    };

    let stuck = Fixture::with(
        &[],
        Some(Arc::new(Slow(memory(&blocks), Duration::from_secs(5)))),
        options.clone(),
    );
    let a = stuck.get(&format!("/ipfs/{cid}")).await;
    assert_eq!(a.status, 504);
    assert!(a.header("retry-after").parse::<u64>().is_ok());

    let gave_up = Fixture::with(&[], Some(Arc::new(GivesUp)), options.clone());
    let a = gave_up.get(&format!("/ipfs/{cid}")).await;
    assert_eq!(a.status, 504);
    assert_eq!(a.header("retry-after"), "7");

    // 9 blocks at 40 ms each take longer than the timeout in all, never between two chunks.
    let slow = Fixture::with(
        &[],
        Some(Arc::new(Slow(memory(&blocks), Duration::from_millis(40)))),
        options,
    );
    let a = slow.get(&format!("/ipfs/{cid}")).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.bytes(), &data[..]);
}

#[tokio::test]
async fn a_block_missing_mid_file_cuts_the_body_short() {
    let data = pseudo_random(5_000, 6);
    let (cid, blocks) = file(&data, 1000);
    let m = memory(&blocks);
    let last_leaf = blocks
        .iter()
        .find(|b| b.cid() != &cid && b.data().windows(8).any(|w| w == &data[4500..4508]))
        .unwrap();
    m.remove(last_leaf.cid());
    let g = Fixture::with(&[], Some(Arc::new(m)), HttpOptions::default());
    let a = g.get(&format!("/ipfs/{cid}")).await;
    assert_eq!(a.status, 200);
    assert!(a.body.is_err(), "the client must see an incomplete body");
}

#[tokio::test]
async fn only_if_cached_looks_at_the_local_store() {
    let (cid, blocks) = file(b"elsewhere", 1024);
    // Readable through the source, but not in the store.
    let g = Fixture::with(&[], Some(Arc::new(memory(&blocks))), HttpOptions::default());
    let uri = format!("/ipfs/{cid}");
    let a = g
        .send("GET", &uri, &[("cache-control", "only-if-cached")])
        .await;
    assert_eq!(a.status, 412);
    assert_eq!(g.get(&uri).await.status, 200);
    let local = Fixture::new(&blocks);
    let a = local
        .send("HEAD", &uri, &[("cache-control", "only-if-cached")])
        .await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn symlinks_and_other_codecs_are_served_as_bytes() {
    let opts = ImportOptions::default();
    let mut blocks = Vec::new();
    let link = import_symlink(b"../target", &opts, &mut blocks).unwrap();
    let cbor = Block::encode(
        Version::V1,
        Codec::DagCbor,
        HashCode::Sha2_256,
        &[0xa0u8][..],
    )
    .unwrap();
    blocks.push(cbor.clone());
    let g = Fixture::new(&blocks);
    let a = g.get(&format!("/ipfs/{}", link.cid)).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.text(), "../target");
    let a = g.get(&format!("/ipfs/{}", cbor.cid())).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-type"), "application/vnd.ipld.dag-cbor");
    assert_eq!(&a.bytes()[..], &[0xa0]);
}

/// A source whose failures carry what must stay private: a path on the server's disk.
struct Broken(fn(String) -> SourceError);

impl BlockSource for Broken {
    fn get(&self, cid: Cid) -> BoxFuture<'_, Result<Block, SourceError>> {
        Box::pin(std::future::ready(Err((self.0)(cid.to_string()))))
    }
}

#[tokio::test]
async fn server_errors_answer_a_generic_message_and_the_request_id() {
    let (cid, _) = file(b"private", 1000);
    let disk = |cid| SourceError::Unavailable {
        cid,
        reason: "/var/lib/stargate/blocks.redb: Input/output error (os error 5)".into(),
    };
    let forged = |cid| SourceError::Invalid {
        cid,
        reason: "peer 12D3KooWSecret sent bytes hashing to something else".into(),
    };
    for (source, status) in [(disk as fn(String) -> SourceError, 503), (forged, 502)] {
        let fixture = Fixture::with(&[], Some(Arc::new(Broken(source))), HttpOptions::default());
        let a = fixture.get(&format!("/ipfs/{cid}")).await;
        assert_eq!(a.status, status);
        let id = a.header("x-request-id").to_owned();
        assert_eq!(id.len(), 16, "{id:?}");
        let text = a.text();
        assert!(text.contains(&format!("(request id {id})")), "{text}");
        for private in ["/var/lib", "redb", "os error", "12D3KooW", &cid.to_string()] {
            assert!(!text.contains(private), "{private} leaked: {text}");
        }
    }

    // Client errors keep saying what was wrong, and carry an id too.
    let fixture = Fixture::new(&[]);
    let a = fixture.get("/ipfs/not-a-cid").await;
    assert_eq!(a.status, 400);
    assert!(a.text().contains("invalid content path"), "{}", a.text());
    assert_eq!(a.header("x-request-id").len(), 16);
}
