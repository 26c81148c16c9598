//! The status page at `/webui` on the API listener (where Kubo serves its WebUI), behind the
//! API's authorization as a read: who this node is and where it listens, its peers, mirroring
//! per topic with the latest records, anchors with their confirmations, the ingestion backlog
//! and the store.
//!
//! One renderer: the page is the panels (`webui-panels.html`) inside a shell (`webui.html`), and
//! its script fetches `/webui/panels` every two seconds and puts the new panels in place, so
//! the first render needs no JavaScript and every value, first render or update, goes through
//! askama's HTML escaping. Nothing is loaded from elsewhere: the page works offline, and its
//! Content-Security-Policy allows only its own inline style, its one script (by hash) and
//! requests back to this node. Its icon is empty and inline, so the browser asks for no
//! `/favicon.ico` (which the API's authorization would refuse).
//!
//! Each part is gathered on its own with a time limit: a part that fails or is slow shows its
//! error and the rest of the page still renders.

use std::future::Future;
use std::sync::LazyLock;
use std::time::{Duration, UNIX_EPOCH};

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use base64::Engine as _;
use serde_json::Value;

use crate::gateway::human_size;
use crate::network::Direction;
use crate::{AppState, ListenAddrs, MirrorQuery};

/// Longest one part of the page may take before it shows as timed out.
const PART_TIMEOUT: Duration = Duration::from_secs(3);
/// Renders at once; more wait (each reads the store and asks the network).
const MAX_RENDERS: usize = 8;
/// Peers listed; the count says how many more there are.
const MAX_PEERS: usize = 50;
/// Mirror records listed.
const RECENT_RECORDS: usize = 15;
/// Anchor batches listed, and CIDs listed per batch.
const RECENT_BATCHES: usize = 10;
const BATCH_MEMBERS: usize = 20;

const SCRIPT: &str = include_str!("../templates/webui.js");

/// The page's headers: no caching, no framing, nothing loaded or sent anywhere but here.
static HEADERS: LazyLock<[(HeaderName, HeaderValue); 5]> = LazyLock::new(|| {
    let hash = base64::engine::general_purpose::STANDARD
        .encode(stargate_protocol::sha2_256(SCRIPT.as_bytes()));
    let policy = format!(
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{hash}'; \
         connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    );
    [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_str(&policy)
                .unwrap_or(HeaderValue::from_static("default-src 'none'")),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ]
});

#[derive(Clone)]
struct Ui {
    state: AppState,
    commit: &'static str,
}

/// `GET /webui` and `GET /webui/panels` over `state`; `commit` is the build's commit, shown
/// beside the version.
pub fn webui_router(state: AppState, commit: &'static str) -> Router {
    Router::new()
        .route("/webui", get(page))
        .route("/webui/", get(page))
        .route("/webui/panels", get(panels))
        .layer(tower::limit::ConcurrencyLimitLayer::new(MAX_RENDERS))
        .with_state(Ui { state, commit })
}

#[derive(Template)]
#[template(path = "webui.html")]
struct Page<'a> {
    panels: &'a str,
    script: &'static str,
}

async fn page(State(ui): State<Ui>, listen: Option<Extension<ListenAddrs>>) -> Response {
    let panels = gather(&ui, listen.map(|Extension(l)| l)).await;
    html(panels.render().and_then(|panels| {
        Page {
            panels: &panels,
            script: SCRIPT,
        }
        .render()
    }))
}

async fn panels(State(ui): State<Ui>, listen: Option<Extension<ListenAddrs>>) -> Response {
    html(gather(&ui, listen.map(|Extension(l)| l)).await.render())
}

fn html(rendered: askama::Result<String>) -> Response {
    match rendered {
        Ok(body) => (HEADERS.clone(), body).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "rendering the status page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "rendering the status page failed",
            )
                .into_response()
        }
    }
}

/// A part of the page, or why it is missing.
type Part<T> = Result<T, String>;

/// Runs `work` with the part time limit.
async fn part<T, E: std::fmt::Display>(work: impl Future<Output = Result<T, E>>) -> Part<T> {
    match tokio::time::timeout(PART_TIMEOUT, work).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {} s", PART_TIMEOUT.as_secs())),
    }
}

/// A store read off the async workers, with the part time limit.
async fn store_part<T: Send + 'static>(
    state: &AppState,
    read: impl FnOnce(&stargate_storage::Store) -> Result<T, stargate_storage::StoreError>
    + Send
    + 'static,
) -> Part<T> {
    let store = state.store().clone();
    part(async move {
        tokio::task::spawn_blocking(move || read(&store).map_err(|e| e.to_string()))
            .await
            .map_err(|e| e.to_string())?
    })
    .await
}

#[derive(Template)]
#[template(path = "webui-panels.html")]
struct Panels {
    generated: String,
    node: Part<NodeView>,
    peers: Part<PeersView>,
    /// `None`: the node does not mirror.
    mirror: Option<Part<MirrorView>>,
    /// `None`: the node has no stego side (no ingestion).
    ingestion: Option<Part<IngestionView>>,
    /// `None`: the node does not anchor.
    anchors: Option<Part<AnchorsView>>,
    store: Part<StoreView>,
}

struct NodeView {
    peer_id: String,
    version: &'static str,
    commit: &'static str,
    agent: String,
    api: Option<String>,
    gateway: Option<String>,
    addresses: Vec<String>,
}

struct PeersView {
    total: usize,
    shown: Vec<PeerRow>,
}

struct PeerRow {
    peer: String,
    addr: String,
    direction: &'static str,
    latency: String,
}

struct MirrorView {
    upload: bool,
    download: bool,
    queue: String,
    in_flight: String,
    stored: String,
    failed: String,
    topics: Vec<TopicView>,
}

struct TopicView {
    name: String,
    /// What this topic carries: `uploads` (the mirror topic) or `stego` results.
    carries: &'static str,
    peers: Vec<String>,
    /// The latest records on this topic (the mirror topic's).
    records: Vec<RecordRow>,
}

struct RecordRow {
    cid: String,
    kind: String,
    publisher: String,
    state: String,
    time: String,
}

struct IngestionView {
    enabled: bool,
    backlog: String,
    records: String,
    waiting: String,
    stored: String,
    failed: String,
}

struct AnchorsView {
    network: String,
    tip: String,
    synced: String,
    syncing: Option<String>,
    last_error: Option<String>,
    queued: u64,
    broadcast: u64,
    confirmed: u64,
    failed: u64,
    batches: Part<Vec<BatchRow>>,
}

struct BatchRow {
    txid: String,
    state: &'static str,
    height: String,
    confirmations: String,
    /// Why a failed batch failed.
    note: String,
    cids: Vec<String>,
    more: u64,
}

struct StoreView {
    blocks: u64,
    content: String,
    size: String,
}

async fn gather(ui: &Ui, listen: Option<ListenAddrs>) -> Panels {
    let state = &ui.state;
    let (node, peers, mirror, ingestion, anchors, store) = tokio::join!(
        node_view(state, ui.commit, listen),
        peers_view(state),
        mirror_view(state),
        ingestion_view(state),
        anchors_view(state),
        store_part(state, |s| s.usage()),
    );
    Panels {
        generated: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        node,
        peers,
        mirror,
        ingestion,
        anchors,
        store: store.map(|usage| StoreView {
            blocks: usage.blocks,
            content: human_size(usage.block_bytes),
            size: human_size(usage.file_bytes),
        }),
    }
}

async fn node_view(
    state: &AppState,
    commit: &'static str,
    listen: Option<ListenAddrs>,
) -> Part<NodeView> {
    let identity = part(async { state.network()?.identity(None).await }).await?;
    Ok(NodeView {
        peer_id: identity.id,
        version: env!("CARGO_PKG_VERSION"),
        commit,
        agent: identity.agent_version,
        api: listen.map(|l| l.api.to_string()),
        gateway: listen.map(|l| l.gateway.to_string()),
        addresses: identity.addresses,
    })
}

async fn peers_view(state: &AppState) -> Part<PeersView> {
    let peers = part(async { state.network()?.peers().await }).await?;
    Ok(PeersView {
        total: peers.len(),
        shown: peers
            .into_iter()
            .take(MAX_PEERS)
            .map(|p| PeerRow {
                peer: p.peer,
                addr: p.addr,
                direction: match p.direction {
                    Direction::Inbound => "inbound",
                    Direction::Outbound => "outbound",
                },
                latency: p
                    .latency
                    .map(|l| format!("{} ms", l.as_millis()))
                    .unwrap_or_default(),
            })
            .collect(),
    })
}

/// `value[key]` for people: a number or string as it is, anything else empty.
fn field(value: &Value, key: &str) -> String {
    match &value[key] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

/// Unix seconds as a UTC date and time.
fn when(value: &Value) -> String {
    value
        .as_u64()
        .map(|secs| {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
        })
        .unwrap_or_default()
}

async fn mirror_view(state: &AppState) -> Option<Part<MirrorView>> {
    let mirror = state.mirror()?;
    let query = MirrorQuery {
        limit: Some(RECENT_RECORDS),
        ..MirrorQuery::default()
    };
    let (status, list) = tokio::join!(part(mirror.status()), part(mirror.list(query)));
    Some(status.and_then(|status| {
        let own = field(&status, "peer_id");
        let records: Vec<RecordRow> = list?["records"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| RecordRow {
                cid: field(r, "cid"),
                kind: field(r, "type"),
                publisher: match field(r, "publisher") {
                    p if p == own => "this node".to_owned(),
                    p => p,
                },
                state: field(r, "state"),
                time: when(&r["time"]),
            })
            .collect();
        // The status lists the mirror topic first, then the stego topic.
        let mut records = Some(records);
        let topics = status["topics"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, t)| TopicView {
                name: field(t, "topic"),
                carries: if i == 0 { "uploads" } else { "stego results" },
                peers: t["peers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.as_str().map(str::to_owned))
                    .collect(),
                records: records.take().unwrap_or_default(),
            })
            .collect();
        Ok(MirrorView {
            upload: status["upload_enabled"].as_bool().unwrap_or(false),
            download: status["download_enabled"].as_bool().unwrap_or(false),
            queue: field(&status, "queue"),
            in_flight: field(&status, "in_flight"),
            stored: field(&status, "stored"),
            failed: field(&status, "failed"),
            topics,
        })
    }))
}

async fn ingestion_view(state: &AppState) -> Option<Part<IngestionView>> {
    let stego = state.stego()?;
    Some(part(stego.status()).await.map(|s| IngestionView {
        enabled: s["ingest_enabled"].as_bool().unwrap_or(false),
        backlog: field(&s, "records_pending"),
        records: field(&s, "records"),
        waiting: field(&s, "waiting"),
        stored: field(&s, "stored"),
        failed: field(&s, "failed"),
    }))
}

async fn anchors_view(state: &AppState) -> Option<Part<AnchorsView>> {
    let anchoring = state.anchoring()?;
    let (summary, batches) = tokio::join!(
        part(anchoring.summary()),
        store_part(state, |s| s
            .anchor_recent_batches(RECENT_BATCHES, BATCH_MEMBERS)),
    );
    let height = |h: Option<u32>| h.map(|h| h.to_string()).unwrap_or_else(|| "unknown".into());
    Some(summary.map(|s| AnchorsView {
        network: s.network,
        tip: height(s.tip_height),
        synced: height(s.synced_height),
        syncing: s.syncing.map(|p| p.text),
        last_error: s.last_error,
        queued: s.queued,
        broadcast: s.broadcast,
        confirmed: s.confirmed,
        failed: s.failed,
        batches: batches.map(|batches| {
            batches
                .into_iter()
                .map(|(record, cids)| batch_row(record, cids, s.tip_height))
                .collect()
        }),
    }))
}

fn batch_row(
    record: stargate_storage::BatchRecord,
    cids: Vec<stargate_protocol::Cid>,
    tip: Option<u32>,
) -> BatchRow {
    use stargate_storage::BatchState;
    let latest = record
        .txs
        .last()
        .map(|t| t.txid.clone())
        .unwrap_or_default();
    let (state, txid, height, confirmations, note) = match record.state {
        // Blocks on top of the transaction's, its own included, as `anchor status` counts.
        BatchState::Confirmed(c) => (
            "confirmed",
            c.txid,
            c.height.to_string(),
            tip.map(|t| (t + 1).saturating_sub(c.height).to_string())
                .unwrap_or_default(),
            String::new(),
        ),
        BatchState::Failed { reason } => ("failed", latest, String::new(), String::new(), reason),
        _ => (
            "broadcast",
            latest,
            String::new(),
            "0".to_owned(),
            String::new(),
        ),
    };
    BatchRow {
        txid,
        state,
        height,
        confirmations,
        note,
        more: u64::from(record.size).saturating_sub(cids.len() as u64),
        cids: cids.iter().map(ToString::to_string).collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::Request;
    use futures::future::BoxFuture;
    use serde_json::{Map, json};
    use stargate_protocol::Cid;
    use tower::ServiceExt;

    use super::*;
    use crate::{Mirror, MirrorError};

    /// A mirror whose records carry markup, as a hostile publisher would send.
    struct Hostile;

    impl Mirror for Hostile {
        fn announce(
            &self,
            _: Cid,
            _: String,
            _: Map<String, Value>,
        ) -> BoxFuture<'_, Result<(), MirrorError>> {
            Box::pin(async { Ok(()) })
        }
        fn status(&self) -> BoxFuture<'_, Result<Value, MirrorError>> {
            Box::pin(async {
                Ok(json!({
                    "peer_id": "12D3KooSelf",
                    "upload_enabled": true,
                    "download_enabled": true,
                    "topics": [
                        {"topic": "stargate-mirror", "peers": ["12D3KooPeer"]},
                        {"topic": "stargate-stego", "peers": []},
                    ],
                    "queue": 1, "in_flight": 0, "stored": 2, "failed": 0,
                }))
            })
        }
        fn list(&self, _: MirrorQuery) -> BoxFuture<'_, Result<Value, MirrorError>> {
            Box::pin(async {
                Ok(json!({"records": [
                    {"cid": "bafkqaaa", "type": "<script>alert(1)</script>",
                     "publisher": "12D3KooSelf", "state": "stored", "time": 0},
                    {"cid": "bafkqabc", "type": "photo\"><img src=x>",
                     "publisher": "12D3KooPeer", "state": "queued", "time": 60},
                ]}))
            })
        }
    }

    async fn get(path: &str) -> Response {
        let dir = tempfile::tempdir().unwrap();
        let store =
            stargate_storage::Store::open(dir.path(), stargate_storage::StoreOptions::default())
                .unwrap();
        let state = AppState::new(
            store.clone(),
            Arc::new(store),
            crate::HttpOptions::default(),
        )
        .with_mirror(Arc::new(Hostile));
        webui_router(state, "0123abcd")
            .oneshot(Request::builder().uri(path).body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    async fn text(res: Response) -> String {
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn the_page_escapes_what_comes_from_outside_and_runs_only_its_script() {
        let res = get("/webui").await;
        assert_eq!(res.status(), StatusCode::OK);
        let policy = res.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        let hash = base64::engine::general_purpose::STANDARD
            .encode(stargate_protocol::sha2_256(SCRIPT.as_bytes()));
        assert!(
            policy.contains(&format!("script-src 'sha256-{hash}'")),
            "{policy}"
        );
        assert!(policy.starts_with("default-src 'none'"), "{policy}");
        let page = text(res).await;
        // The script is in the page byte for byte, so its hash is the one allowed.
        assert!(page.contains(&format!("<script>{SCRIPT}</script>")));
        assert_eq!(page.matches("<script").count(), 1, "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(
            page.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{page}"
        );
        assert!(
            page.contains("photo&#34;&#62;&#60;img src=x&#62;"),
            "{page}"
        );
        // Records under the mirror topic, ours named as ours.
        let topic =
            &page[page.find("stargate-mirror").unwrap()..page.find("stargate-stego").unwrap()];
        assert!(
            topic.contains("bafkqaaa") && topic.contains("bafkqabc"),
            "{topic}"
        );
        assert!(topic.contains("this node"), "{topic}");
        assert!(topic.contains("1970-01-01T00:01:00Z"), "{topic}");
        // Parts this node does not have say so; the rest renders.
        assert!(page.contains("Anchoring is off"), "{page}");
        assert!(page.contains("needs a running daemon"), "{page}");
        assert!(page.contains("id=\"store-blocks\">0<"), "{page}");
    }

    #[tokio::test]
    async fn the_panels_alone_are_what_the_script_swaps_in() {
        let res = get("/webui/panels").await;
        assert_eq!(res.status(), StatusCode::OK);
        let panels = text(res).await;
        assert!(!panels.contains("<html"), "{panels}");
        assert!(!panels.contains("<script"), "{panels}");
        assert!(panels.contains("<section id=\"mirror\">"), "{panels}");
        assert!(panels.contains("bafkqabc"), "{panels}");
    }
}
