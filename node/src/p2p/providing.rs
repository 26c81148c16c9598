//! Provider records: announcing in the DHT which content this node has.
//!
//! Two paths, each with its own bounded concurrency:
//! - announcements: adds, pins and fetched blocks are queued (`announcements.rs`: a
//!   bounded queue; `push` never waits, and what does not fit is left to the next reprovide) and
//!   expanded by the provide strategy into the CIDs to announce. DAGs the mirror stored (and
//!   its manifests) wait in a lane of their own until the mirror has stored nothing for
//!   [`MIRRORED_QUIET`] (at most [`MIRRORED_LATEST`]), and go [`MIRRORED_CONCURRENCY`] at a
//!   time: every instance mirrors every upload, so announcing each at once would put the whole
//!   network's DHT traffic (a lookup of the closest peers per CID) in the same moments as the
//!   downloads of the next uploads, and a node catching up on thousands of uploads would
//!   announce them while it fetches them;
//! - the reprovider: once the node has DHT peers, then every `reprovide_interval`, it walks the
//!   store (pins or blocks, as the strategy says, streamed from a blocking thread) and announces
//!   everything again. Records expire after 48 h; the default interval is 22 h, as Kubo's.
//!
//! Nothing here holds the list of provided CIDs in memory: the store is the list.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use stargate_protocol::Cid;
use stargate_protocol::unixfs::export::{BlockSource, DEFAULT_WINDOW, walk_dag};
use stargate_storage::{PinFilter, Store};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::announcements::{Announced, Announcement};
use super::network::Network;
use super::records::dht_key;
use super::settings::Providing;
use crate::config::ProvideStrategy;

/// How often the reprovider checks whether the routing table has peers (before its first run,
/// and after a run that reached no one).
const PEER_POLL: Duration = Duration::from_secs(5);
/// Shortest time between two reprovides.
const MIN_GAP: Duration = Duration::from_secs(60);
/// CIDs read ahead of the announcements in flight.
const READ_AHEAD: usize = 1024;
/// How long the mirror must have stored nothing before its DAGs are announced.
const MIRRORED_QUIET: Duration = Duration::from_secs(2);
/// The longest a DAG the mirror stored waits to be announced while the mirror stays busy. Its
/// publisher announced it at once, so these records only add providers: minutes of delay cost
/// nothing against records that live 48 h, while announcing during a stream of uploads puts a
/// lookup of the closest peers per DAG on every instance in the moments of the next downloads.
const MIRRORED_LATEST: Duration = Duration::from_secs(300);
/// Announcements of mirrored DAGs in flight at once.
const MIRRORED_CONCURRENCY: usize = 8;

/// Starts the announcement and reprovide tasks.
pub(super) fn spawn(
    network: Network,
    store: Store,
    settings: Providing,
    announced: Announced,
    shutdown: CancellationToken,
) {
    let missed = Arc::clone(&announced.missed);
    tokio::spawn(stop_on(
        shutdown.clone(),
        announce(network.clone(), store.clone(), settings, announced),
    ));
    tokio::spawn(stop_on(
        shutdown,
        reprovide(network, store, settings, missed),
    ));
}

async fn stop_on(shutdown: CancellationToken, work: impl Future<Output = ()>) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = work => {}
    }
}

/// Expands queued announcements by the strategy and announces them.
async fn announce(network: Network, store: Store, settings: Providing, announced: Announced) {
    let Announced {
        queue: mut announced,
        mirrored,
        mirrored_last,
        missed,
    } = announced;
    let source: Arc<dyn BlockSource> = Arc::new(store);
    let mirrored_source = Arc::clone(&source);
    let mirrored = futures::stream::unfold(mirrored, |mut lane| async move {
        lane.recv().await.map(|v| (v, lane))
    })
    .then(move |(at, root)| {
        let last = mirrored_last.clone();
        async move {
            loop {
                let due = (last.get() + MIRRORED_QUIET).min(at + MIRRORED_LATEST);
                if Instant::now() >= due {
                    return root;
                }
                tokio::time::sleep_until(due.into()).await;
            }
        }
    })
    .flat_map(move |root| {
        let pinned = Announcement::Dag { root, pinned: true };
        expand(settings.strategy, Arc::clone(&mirrored_source), pinned)
    })
    .boxed();
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    let expand_all = async move {
        while let Some(a) = announced.recv().await {
            let mut cids = expand(settings.strategy, Arc::clone(&source), a);
            while let Some(cid) = cids.next().await {
                if tx.send(cid).await.is_err() {
                    return;
                }
            }
        }
    };
    tokio::join!(
        expand_all,
        provide_all(
            &network,
            receiver_stream(rx),
            settings.concurrency,
            Some(&missed)
        ),
        provide_all(&network, mirrored, MIRRORED_CONCURRENCY, Some(&missed)),
    );
}

/// The CIDs an announcement stands for under `strategy`.
fn expand(
    strategy: ProvideStrategy,
    source: Arc<dyn BlockSource>,
    a: Announcement,
) -> futures::stream::BoxStream<'static, Cid> {
    use futures::stream::{empty, once};
    match (strategy, a) {
        (ProvideStrategy::Roots, Announcement::Dag { root, pinned: true })
        | (ProvideStrategy::All, Announcement::Fetched { cid: root }) => {
            once(async move { root }).boxed()
        }
        (ProvideStrategy::Pinned, Announcement::Dag { root, pinned: true })
        | (ProvideStrategy::All, Announcement::Dag { root, .. }) => walk_dag(
            source,
            root,
            DEFAULT_WINDOW,
        )
        .filter_map(move |b| async move {
            match b {
                Ok(block) => Some(*block.cid()),
                Err(e) => {
                    tracing::debug!(%root, error = %e, "cannot walk an added DAG to provide it");
                    None
                }
            }
        })
        .boxed(),
        _ => empty().boxed(),
    }
}

/// What a run of announcements achieved.
#[derive(Debug, Default, Clone, Copy)]
struct Outcome {
    provided: u64,
    failed: u64,
}

/// Announces every CID of `cids`, `concurrency` at a time; a failure sets `missed`, if given.
async fn provide_all(
    network: &Network,
    cids: impl futures::Stream<Item = Cid>,
    concurrency: usize,
    missed: Option<&AtomicBool>,
) -> Outcome {
    let mut results = std::pin::pin!(
        cids.map(|cid| {
            let network = network.clone();
            async move {
                let in_flight = network.metrics().provides_in_flight();
                in_flight.inc();
                let result = network.start_providing(dht_key(&cid)).await;
                in_flight.dec();
                (cid, result)
            }
        })
        .buffer_unordered(concurrency)
    );
    let mut outcome = Outcome::default();
    while let Some((cid, result)) = results.next().await {
        match result {
            Ok(()) => {
                outcome.provided += 1;
                network.metrics().provided(true);
            }
            Err(e) => {
                outcome.failed += 1;
                network.metrics().provided(false);
                if let Some(m) = missed {
                    m.store(true, Ordering::Relaxed);
                }
                tracing::debug!(%cid, error = %e, "providing failed");
            }
        }
    }
    outcome
}

/// Runs a reprovide once the routing table has peers, then every interval; early (but at most
/// once per [`MIN_GAP`]) when an announcement was missed or the last run reached no one.
async fn reprovide(network: Network, store: Store, settings: Providing, missed: Arc<AtomicBool>) {
    loop {
        wait_for_peers(&network).await;
        missed.store(false, Ordering::Relaxed);
        let started = Instant::now();
        let cpu = cpu_time();
        let outcome = provide_all(
            &network,
            stored_cids(store.clone(), settings.strategy),
            settings.concurrency,
            None,
        )
        .await;
        tracing::info!(
            provided = outcome.provided,
            failed = outcome.failed,
            seconds = started.elapsed().as_secs_f64(),
            cpu_seconds = cpu_time().saturating_sub(cpu).as_secs_f64(),
            strategy = ?settings.strategy,
            "reprovide done"
        );
        let reached_no_one = outcome.provided == 0 && outcome.failed > 0;
        let next = started + settings.interval;
        loop {
            tokio::time::sleep(PEER_POLL).await;
            let now = Instant::now();
            let early =
                (reached_no_one || missed.load(Ordering::Relaxed)) && now >= started + MIN_GAP;
            if now >= next || early {
                break;
            }
        }
    }
}

async fn wait_for_peers(network: &Network) {
    while !matches!(network.routing_table_size().await, Ok(n) if n > 0) {
        tokio::time::sleep(PEER_POLL).await;
    }
}

/// The CIDs the strategy provides, read from the store on a blocking thread.
fn stored_cids(store: Store, strategy: ProvideStrategy) -> impl futures::Stream<Item = Cid> {
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        let sent = match strategy {
            ProvideStrategy::Roots => [PinFilter::Recursive, PinFilter::Direct]
                .into_iter()
                .try_for_each(|f| send_pins(&store, f, &tx)),
            ProvideStrategy::Pinned => send_pins(&store, PinFilter::All, &tx),
            ProvideStrategy::All => store
                .blocks()
                .map_err(|e| e.to_string())
                .and_then(|blocks| {
                    for info in blocks {
                        let info = info.map_err(|e| e.to_string())?;
                        if tx.blocking_send(info.cid()).is_err() {
                            break;
                        }
                    }
                    Ok(())
                }),
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, "reprovide: cannot list the store");
        }
    });
    receiver_stream(rx)
}

fn receiver_stream<T>(receiver: mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    futures::stream::unfold(
        receiver,
        |mut r| async move { r.recv().await.map(|v| (v, r)) },
    )
}

fn send_pins(store: &Store, filter: PinFilter, tx: &mpsc::Sender<Cid>) -> Result<(), String> {
    for (cid, _) in store.pins(filter).map_err(|e| e.to_string())? {
        if tx.blocking_send(cid).is_err() {
            break;
        }
    }
    Ok(())
}

/// CPU time this process has used so far (user + system), for the reprovide log line.
fn cpu_time() -> Duration {
    // /proc/self/stat fields 14 and 15 are utime and stime in clock ticks (100 per second on
    // Linux); the second field may contain spaces, so count from the closing parenthesis.
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ticks =
                fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
            Some(Duration::from_millis(ticks * 10))
        })
        .unwrap_or_default()
}
