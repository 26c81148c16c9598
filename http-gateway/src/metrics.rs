//! Request metrics (`http_request_duration_seconds`, the guide's name) and the `/metrics` route.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Router, routing::get};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
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
/// `stargate_block_cache_misses_total`), read from the store at each scrape.
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

/// Routes for `/metrics` in the Prometheus text format.
fn metrics_routes<S: Clone + Send + Sync + 'static>(registry: Arc<Registry>) -> Router<S> {
    Router::new().route(
        "/metrics",
        get(move || {
            let registry = Arc::clone(&registry);
            async move {
                let mut out = String::new();
                match prometheus_client::encoding::text::encode(&mut out, &registry) {
                    Ok(()) => (
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        out,
                    )
                        .into_response(),
                    Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                }
            }
        }),
    )
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
    }
}
