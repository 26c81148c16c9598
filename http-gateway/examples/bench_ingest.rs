//! The ingestion pull API's cost per page against the number of records before it:
//! `cargo run -p stargate-http-gateway --example bench_ingest -- [RECORDS] [PAGE]` (100000 and
//! 1000 by default). Makes the records in a fresh store, then reads every page through the
//! real router (token check, range read, JSON) and prints pages per second and p50/p99 per page
//! for the first and the last tenth of the pages: flat means the same.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use prometheus_client::registry::Registry;
use stargate_http_gateway::{AppState, HttpOptions, StegoAuth, stego_router};
use stargate_protocol::mirror::Keypair;
use stargate_protocol::{Block, Codec, HashCode, Version};
use stargate_storage::{StegoAdmission, StegoUpload, Store, StoreOptions};
use tower::ServiceExt;

const TOKEN: &str = "bench-token";
const BATCH: u64 = 5000;

type Failure = Box<dyn std::error::Error>;

fn cid(n: u64, part: u8) -> Result<stargate_protocol::Cid, Failure> {
    let mut data = n.to_be_bytes().to_vec();
    data.push(part);
    Ok(*Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, data)?.cid())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(at).copied().unwrap_or_default()
}

fn describe(name: &str, mut pages: Vec<Duration>) {
    pages.sort();
    eprintln!(
        "{name}: {} pages, p50 {:?}, p99 {:?}",
        pages.len(),
        percentile(&pages, 0.5),
        percentile(&pages, 0.99)
    );
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let records: u64 = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let page: u64 = args.next().map_or(Ok(1000), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path(), StoreOptions::default())?;
    let publisher = Keypair::ed25519_from_bytes([9; 32])?.public().to_peer_id();

    let started = Instant::now();
    let mut first = 0;
    while first < records {
        let last = (first + BATCH).min(records);
        let uploads = (first..last)
            .map(|n| {
                Ok(StegoUpload::new(
                    cid(n, 0)?,
                    cid(n, 1)?,
                    publisher,
                    r#"{"wish_id":"bench"}"#.to_owned(),
                    0,
                ))
            })
            .collect::<Result<Vec<_>, Failure>>()?;
        let ids: Vec<_> = uploads.iter().map(StegoUpload::id).collect();
        store.stego_record_many(&uploads, StegoAdmission::Stored)?;
        store.ingest_make_many(&ids, 0)?;
        first = last;
    }
    eprintln!("{records} records made in {:?}", started.elapsed());

    let state = AppState::new(
        store.clone(),
        Arc::new(store.clone()),
        HttpOptions::default(),
    );
    let auth = StegoAuth::register(&mut Registry::default(), None, Some(TOKEN));
    let router = stego_router(state, auth);
    let mut times = Vec::new();
    let mut after = 0u64;
    let started = Instant::now();
    loop {
        let request = Request::get(format!("/api/v1/ingestions?after={after}&limit={page}"))
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::empty())?;
        let t = Instant::now();
        let answer = router.clone().oneshot(request).await?;
        let body = axum::body::to_bytes(answer.into_body(), 64 << 20).await?;
        times.push(t.elapsed());
        let page: serde_json::Value = serde_json::from_slice(&body)?;
        let next = page["next"].as_u64().ok_or("no next cursor")?;
        if next == after {
            times.pop();
            break;
        }
        after = next;
    }
    let total = started.elapsed();
    if after != records {
        return Err(format!("paged to {after}, not {records}").into());
    }
    eprintln!(
        "{} pages of {page} in {total:?}: {:.0} pages/s",
        times.len(),
        times.len() as f64 / total.as_secs_f64()
    );
    let tenth = (times.len() / 10).max(1);
    describe("all pages", times.clone());
    describe("first tenth", times[..tenth].to_vec());
    describe("last tenth", times[times.len() - tenth..].to_vec());
    Ok(())
}
