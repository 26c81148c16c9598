//! Request metrics (`http_request_duration_seconds`, the guide's name) and the `/metrics` route.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Router, routing::get};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use stargate_storage::Store;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

/// Histograms of request durations, labelled by method, matched route and status.
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    duration: Family<RequestLabels, Histogram>,
}

impl HttpMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let duration = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            // 0.5 ms .. ~16 s
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests",
            duration.clone(),
        );
        Self { duration }
    }
}

/// Exports the block cache's counters of `store` (`stargate_block_cache_hits_total`,
/// `stargate_block_cache_misses_total`) and what it holds (`stargate_store_blocks`,
/// `stargate_store_block_bytes`, `stargate_store_disk_bytes`), read from the store at each
/// scrape (the store keeps the totals, so no scrape scans it).
pub fn register_store_metrics(registry: &mut Registry, store: Store) {
    registry.register_collector(Box::new(StoreCollector(store)));
}

#[derive(Debug)]
struct StoreCollector(Store);

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = self.0.metrics();
        for (name, help, value) in [
            (
                "stargate_block_cache_hits",
                "Block reads answered from the in-memory block cache",
                m.cache_hits,
            ),
            (
                "stargate_block_cache_misses",
                "Block reads the block cache could not answer (read from the database, or absent)",
                m.cache_misses,
            ),
        ] {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let usage = match self.0.usage() {
            Ok(usage) => usage,
            Err(e) => {
                tracing::warn!(error = %e, "metrics: cannot read the store's size");
                return Ok(());
            }
        };
        for (name, help, value) in [
            ("stargate_store_blocks", "Blocks in the store", usage.blocks),
            (
                "stargate_store_block_bytes",
                "Bytes of the blocks in the store",
                usage.block_bytes,
            ),
            (
                "stargate_store_disk_bytes",
                "Disk space the store's database file takes",
                usage.file_bytes,
            ),
        ] {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

/// What every router of ours carries: the metrics registry to export and the request metrics.
#[derive(Debug, Clone)]
pub struct Observability {
    registry: Arc<Registry>,
    metrics: HttpMetrics,
}

impl Observability {
    /// Wraps a registry in which every subsystem has registered its metrics.
    pub fn new(registry: Arc<Registry>, metrics: HttpMetrics) -> Self {
        Self { registry, metrics }
    }

    /// Adds `/health`, `/metrics` and request tracking to `router`.
    pub fn wrap(&self, router: Router) -> Router {
        router
            .merge(crate::health::health_routes())
            .merge(metrics_routes(Arc::clone(&self.registry)))
            .layer(axum::middleware::from_fn_with_state(
                self.metrics.clone(),
                track_requests,
            ))
    }
}

/// Middleware recording every request's duration (to the response head; bodies stream on).
async fn track_requests(State(metrics): State<HttpMetrics>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    // The matched route pattern, never the raw path: CIDs would explode the label space.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let res = next.run(req).await;
    metrics
        .duration
        .get_or_create(&RequestLabels {
            method,
            route,
            status: res.status().as_u16(),
        })
        .observe(start.elapsed().as_secs_f64());
    res
}

/// The OpenMetrics text format, for scrapers that ask for it.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic Prometheus text format, for everyone else.
const TEXT_0_0_4: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Routes for `/metrics`, negotiated as the Prometheus client libraries do: OpenMetrics when
/// `Accept` asks for it, else the classic text format 0.0.4.
fn metrics_routes<S: Clone + Send + Sync + 'static>(registry: Arc<Registry>) -> Router<S> {
    Router::new().route(
        "/metrics",
        get(move |headers: HeaderMap| {
            let registry = Arc::clone(&registry);
            async move {
                let mut out = String::new();
                if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
                    return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                }
                if wants_openmetrics(&headers) {
                    ([(header::CONTENT_TYPE, OPENMETRICS)], out).into_response()
                } else {
                    ([(header::CONTENT_TYPE, TEXT_0_0_4)], to_text_0_0_4(&out)).into_response()
                }
            }
        }),
    )
}

/// Whether `Accept` names `application/openmetrics-text` (with a non-zero quality).
fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
        })
}

/// Rewrites the OpenMetrics text that prometheus-client writes into the classic format 0.0.4:
/// a counter's family is named with its `_total` samples' name, `info` and `stateset` families
/// are gauges and `unknown` ones untyped, and `# UNIT`, `# EOF` and exemplars go.
fn to_text_0_0_4(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // Family name -> the name its samples carry, for the HELP line that precedes TYPE.
    let mut renamed: Vec<(String, String)> = Vec::new();
    let mut lines = openmetrics.lines().peekable();
    while let Some(line) = lines.next() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            // The TYPE line follows the HELP line; it decides the family's name.
            let kind = lines
                .peek()
                .and_then(|next| next.strip_prefix("# TYPE "))
                .and_then(|t| t.split_once(' '))
                .filter(|(n, _)| *n == name)
                .map(|(_, kind)| kind);
            let shown = family_name(name, kind);
            out.push_str(&format!("# HELP {shown} {help}\n"));
            renamed.push((name.to_owned(), shown));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let shown = renamed
                .iter()
                .find(|(n, _)| n == name)
                .map_or_else(|| family_name(name, Some(kind)), |(_, s)| s.clone());
            let kind = match kind {
                "info" | "stateset" => "gauge",
                "gaugehistogram" => "histogram",
                "unknown" => "untyped",
                other => other,
            };
            out.push_str(&format!("# TYPE {shown} {kind}\n"));
            continue;
        }
        out.push_str(without_exemplar(line));
        out.push('\n');
    }
    out
}

/// The name a family's samples carry in the classic format.
fn family_name(name: &str, kind: Option<&str>) -> String {
    match kind {
        Some("counter") if !name.ends_with("_total") => format!("{name}_total"),
        Some("info") => format!("{name}_info"),
        _ => name.to_owned(),
    }
}

/// A sample line without its exemplar (` # {labels} value` after the sample's value).
fn without_exemplar(line: &str) -> &str {
    let labels_end = labels_end(line);
    match line[labels_end..].find(" # ") {
        Some(i) => &line[..labels_end + i],
        None => line,
    }
}

/// Where a sample's labels end (0 without labels): label values may hold anything, quoted.
fn labels_end(line: &str) -> usize {
    let Some(open) = line.find('{').filter(|&open| !line[..open].contains(' ')) else {
        return 0;
    };
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in line[open..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return open + i + 1,
            _ => {}
        }
    }
    line.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[tokio::test]
    async fn records_matched_route_and_exports() {
        let mut registry = Registry::default();
        let metrics = HttpMetrics::register(&mut registry);
        let registry = Arc::new(registry);
        let obs = Observability::new(registry, metrics);
        let app = obs.wrap(Router::new().route("/ipfs/{cid}", get(|| async { "x" })));
        let res = app
            .clone()
            .oneshot(Request::get("/ipfs/bafkqaaa").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let res = app
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let text = String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec())
            .unwrap();
        assert!(text.contains("http_request_duration_seconds"), "{text}");
        assert!(text.contains("route=\"/ipfs/{cid}\""), "{text}");
        assert!(!text.contains("bafkqaaa"), "{text}");
    }

    #[tokio::test]
    async fn negotiates_the_text_format() {
        let mut registry = Registry::default();
        let metrics = HttpMetrics::register(&mut registry);
        let counter: prometheus_client::metrics::counter::Counter = Default::default();
        registry.register("stargate_things", "Things", counter.clone());
        counter.inc();
        let app = Observability::new(Arc::new(registry), metrics).wrap(Router::new());
        let scrape = |accept: Option<&'static str>| {
            let app = app.clone();
            async move {
                let mut req = Request::get("/metrics");
                if let Some(accept) = accept {
                    req = req.header(header::ACCEPT, accept);
                }
                let res = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
                let kind = res.headers()[header::CONTENT_TYPE]
                    .to_str()
                    .unwrap()
                    .to_owned();
                let body = res.into_body().collect().await.unwrap().to_bytes();
                (kind, String::from_utf8(body.to_vec()).unwrap())
            }
        };
        // What Prometheus itself asks for.
        let (kind, text) = scrape(Some(
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        ))
        .await;
        assert_eq!(kind, OPENMETRICS);
        assert!(text.contains("# TYPE stargate_things counter\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        for accept in [
            None,
            Some("text/plain"),
            Some("application/openmetrics-text;q=0"),
        ] {
            let (kind, text) = scrape(accept).await;
            assert_eq!(kind, TEXT_0_0_4, "{accept:?}");
            assert!(
                text.contains("# HELP stargate_things_total Things.\n"),
                "{text}"
            );
            assert!(
                text.contains("# TYPE stargate_things_total counter\n"),
                "{text}"
            );
            assert!(text.contains("\nstargate_things_total 1\n"), "{text}");
            assert!(!text.contains("# EOF"), "{text}");
            assert!(
                text.contains("# TYPE http_request_duration_seconds histogram"),
                "{text}"
            );
        }
    }

    #[test]
    fn classic_text_from_openmetrics() {
        let om = "# HELP a Build.\n# TYPE a info\na_info{v=\"1\"} 1\n\
                  # HELP b Bytes.\n# TYPE b counter\n# UNIT b bytes\n\
                  b_total{x=\"}# {\"} 3 # {trace=\"t\"} 1.0\n# TYPE c unknown\nc 2\n# EOF\n";
        assert_eq!(
            to_text_0_0_4(om),
            "# HELP a_info Build.\n# TYPE a_info gauge\na_info{v=\"1\"} 1\n\
             # HELP b_total Bytes.\n# TYPE b_total counter\nb_total{x=\"}# {\"} 3\n\
             # TYPE c untyped\nc 2\n"
        );
    }

    #[tokio::test]
    async fn exports_the_block_cache_counters() {
        use stargate_protocol::{Block, Codec, HashCode, Version};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), stargate_storage::StoreOptions::default()).unwrap();
        let block = Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, &b"x"[..]).unwrap();
        store.put(block.clone()).unwrap();
        for _ in 0..3 {
            store.get(block.cid()).unwrap();
        }
        let mut registry = Registry::default();
        register_store_metrics(&mut registry, store);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("stargate_block_cache_hits_total 2"), "{text}");
        assert!(
            text.contains("stargate_block_cache_misses_total 1"),
            "{text}"
        );
        assert!(text.contains("\nstargate_store_blocks 1\n"), "{text}");
        assert!(text.contains("\nstargate_store_block_bytes 1\n"), "{text}");
        assert!(text.contains("\nstargate_store_disk_bytes "), "{text}");
    }
}
