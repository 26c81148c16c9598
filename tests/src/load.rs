//! Many users at once against one daemon's gateway and API (the guide's production checklist:
//! "simulate 100 concurrent users"). Each user loops over a mix of gateway reads (small files and
//! a large one) and API calls (`add` of fresh content, `cat` of stored files) until the time is
//! up, checking every answer's bytes. A 503 with `Retry-After` is the node shedding load and is
//! counted apart from errors (anything else that is not the right answer).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use rand::RngCore;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Deserialize;

use crate::StargateDaemon;

/// Size of each small stored file read through the gateway and `cat`.
const SMALL: usize = 16 << 10;
/// How many small files the users read, spread over them.
const SMALL_FILES: usize = 32;
/// Size of the large stored file read through the gateway (several chunks, a real DAG).
const LARGE: usize = 4 << 20;
/// Size of each file a user adds (an image of the platform's kind).
const ADDED: usize = 64 << 10;
/// Longest any one request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What a user asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `GET /ipfs/<cid>` of a small file.
    GatewaySmall,
    /// `GET /ipfs/<cid>` of the large file.
    GatewayLarge,
    /// `POST /api/v0/add` of fresh content.
    ApiAdd,
    /// `POST /api/v0/cat` of a small file.
    ApiCat,
}

impl Kind {
    const ALL: [Self; 4] = [
        Self::GatewaySmall,
        Self::GatewayLarge,
        Self::ApiAdd,
        Self::ApiCat,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::GatewaySmall => "gateway small (16 KiB)",
            Self::GatewayLarge => "gateway large (4 MiB)",
            Self::ApiAdd => "api add (64 KiB)",
            Self::ApiCat => "api cat (16 KiB)",
        }
    }

    fn on_gateway(self) -> bool {
        matches!(self, Self::GatewaySmall | Self::GatewayLarge)
    }
}

/// How each request ended.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Latencies of the requests answered right (whole body read and checked).
    pub served: Vec<Duration>,
    /// Requests answered 503 with `Retry-After`.
    pub shed: u64,
    /// Everything else, with the first few reasons kept.
    pub errors: u64,
    /// Up to five error descriptions, to say what went wrong.
    pub first_errors: Vec<String>,
    /// Content bytes moved by the requests served: the body read, or for `add` the upload.
    pub bytes: u64,
}

impl Tally {
    fn merge(&mut self, other: Self) {
        self.served.extend(other.served);
        self.shed += other.shed;
        self.errors += other.errors;
        self.bytes += other.bytes;
        for e in other.first_errors {
            if self.first_errors.len() < 5 {
                self.first_errors.push(e);
            }
        }
    }

    fn error(&mut self, what: String) {
        self.errors += 1;
        if self.first_errors.len() < 5 {
            self.first_errors.push(what);
        }
    }

    /// The `q` quantile of the served latencies (0 when none was served).
    pub fn quantile(&self, q: f64) -> Duration {
        let mut sorted = self.served.clone();
        sorted.sort_unstable();
        match sorted.len() {
            0 => Duration::ZERO,
            n => sorted[((n as f64 - 1.0) * q).round() as usize],
        }
    }
}

/// What a run measured.
#[derive(Debug)]
pub struct LoadReport {
    /// How long the users ran.
    pub elapsed: Duration,
    /// Users at once.
    pub users: usize,
    /// Outcomes by kind of request.
    pub by_kind: BTreeMap<Kind, Tally>,
    /// Largest resident memory of the daemon seen during the run (sampled every 100 ms), bytes.
    pub peak_rss: u64,
    /// Resident memory of the daemon before the users started, bytes.
    pub idle_rss: u64,
}

impl LoadReport {
    /// Every kind's tally merged, or only the gateway's or the API's.
    pub fn total(&self, gateway: Option<bool>) -> Tally {
        let mut all = Tally::default();
        for (kind, tally) in &self.by_kind {
            if gateway.is_none_or(|g| g == kind.on_gateway()) {
                all.merge(tally.clone());
            }
        }
        all
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        writeln!(
            f,
            "{} users for {secs:.1} s; daemon RSS {:.1} MiB idle, {:.1} MiB peak",
            self.users,
            self.idle_rss as f64 / 1048576.0,
            self.peak_rss as f64 / 1048576.0,
        )?;
        writeln!(
            f,
            "{:<24} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>6}",
            "requests",
            "served",
            "req/s",
            "MB/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "503",
            "errors"
        )?;
        let rows = self
            .by_kind
            .iter()
            .map(|(k, t)| (k.name(), t.clone()))
            .chain([
                ("all gateway", self.total(Some(true))),
                ("all api", self.total(Some(false))),
                ("all", self.total(None)),
            ]);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        for (name, t) in rows {
            writeln!(
                f,
                "{:<24} {:>9} {:>9.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>6} {:>6}",
                name,
                t.served.len(),
                t.served.len() as f64 / secs,
                t.bytes as f64 / secs / 1e6,
                ms(t.quantile(0.5)),
                ms(t.quantile(0.9)),
                ms(t.quantile(0.99)),
                ms(t.quantile(1.0)),
                t.shed,
                t.errors,
            )?;
        }
        for (kind, t) in &self.by_kind {
            for e in &t.first_errors {
                writeln!(f, "error ({}): {e}", kind.name())?;
            }
        }
        Ok(())
    }
}

/// The stored content the users read, with the bytes each answer must carry.
struct Content {
    gateway: String,
    api: String,
    small: Vec<(String, Vec<u8>)>,
    large: (String, Vec<u8>),
}

/// Stores the files the users read on `daemon`, then runs `users` users for `duration`.
///
/// # Errors
/// Setting up the content failed; a request's failure is counted in the report instead.
pub fn run_users(daemon: &StargateDaemon, users: usize, duration: Duration) -> Result<LoadReport> {
    let pid = daemon.pid().context("the daemon is not running")?;
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let mut stored = |len: usize| -> Result<(String, Vec<u8>)> {
        let mut bytes = vec![0u8; len];
        rng.fill_bytes(&mut bytes);
        let path = daemon.dir().join("load-input");
        std::fs::write(&path, &bytes).context("writing a file to add")?;
        let cid = daemon.cli_ok(&["add", "-Q", path.to_str().context("non-UTF-8 path")?])?;
        Ok((cid.trim().to_owned(), bytes))
    };
    let small = (0..SMALL_FILES)
        .map(|_| stored(SMALL))
        .collect::<Result<Vec<_>>>()?;
    let large = stored(LARGE)?;
    let content = Arc::new(Content {
        gateway: daemon.gateway_url()?,
        api: daemon.api_url()?,
        small,
        large,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the load runtime")?;
    runtime.block_on(drive(content, pid, users, duration))
}

async fn drive(
    content: Arc<Content>,
    pid: u32,
    users: usize,
    duration: Duration,
) -> Result<LoadReport> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(users)
        .build()
        .context("building the HTTP client")?;
    let idle_rss = rss(pid)?;
    let start = Instant::now();
    let until = start + duration;
    let tasks: Vec<_> = (0..users)
        .map(|user| {
            let client = client.clone();
            let content = Arc::clone(&content);
            tokio::spawn(async move { user_loop(&client, &content, user, until).await })
        })
        .collect();
    let mut peak_rss = idle_rss;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak_rss = peak_rss.max(rss(pid)?);
    }
    let mut by_kind: BTreeMap<Kind, Tally> = BTreeMap::new();
    for task in tasks {
        for (kind, tally) in task.await.context("a user task panicked")? {
            by_kind.entry(kind).or_default().merge(tally);
        }
    }
    Ok(LoadReport {
        elapsed: start.elapsed(),
        users,
        by_kind,
        peak_rss: peak_rss.max(rss(pid)?),
        idle_rss,
    })
}

/// One user: the kinds in turn, starting at its own offset so that all kinds run at once.
async fn user_loop(
    client: &reqwest::Client,
    content: &Content,
    user: usize,
    until: Instant,
) -> BTreeMap<Kind, Tally> {
    let mut tallies: BTreeMap<Kind, Tally> = BTreeMap::new();
    let mut rng = StdRng::seed_from_u64(user as u64);
    let mut turn = user;
    while Instant::now() < until {
        let kind = Kind::ALL[turn % Kind::ALL.len()];
        turn += 1;
        let tally = tallies.entry(kind).or_default();
        let started = Instant::now();
        match request(client, content, kind, &mut rng, turn).await {
            Ok(Answer::Served(bytes)) => {
                tally.served.push(started.elapsed());
                tally.bytes += bytes;
            }
            Ok(Answer::Shed(retry_after)) => {
                tally.shed += 1;
                // A well-behaved client backs off as told, a little: the test wants pressure.
                tokio::time::sleep(retry_after.min(Duration::from_millis(50))).await;
            }
            Err(e) => tally.error(format!("{e:#}")),
        }
    }
    tallies
}

enum Answer {
    Served(u64),
    Shed(Duration),
}

#[derive(Deserialize)]
struct Added {
    #[serde(rename = "Hash")]
    hash: String,
}

async fn request(
    client: &reqwest::Client,
    content: &Content,
    kind: Kind,
    rng: &mut StdRng,
    turn: usize,
) -> Result<Answer> {
    let (small_cid, small_bytes) = &content.small[turn % content.small.len()];
    let (builder, expected) = match kind {
        Kind::GatewaySmall => (
            client.get(format!("{}/ipfs/{small_cid}", content.gateway)),
            Some(small_bytes),
        ),
        Kind::GatewayLarge => (
            client.get(format!("{}/ipfs/{}", content.gateway, content.large.0)),
            Some(&content.large.1),
        ),
        Kind::ApiCat => (
            client.post(format!("{}/api/v0/cat?arg={small_cid}", content.api)),
            Some(small_bytes),
        ),
        Kind::ApiAdd => {
            let mut upload = vec![0u8; ADDED];
            rng.fill_bytes(&mut upload);
            let part = reqwest::multipart::Part::bytes(upload).file_name("upload");
            let form = reqwest::multipart::Form::new().part("file", part);
            let builder = client
                .post(format!("{}/api/v0/add?cid-version=1", content.api))
                .multipart(form);
            (builder, None)
        }
    };
    let answer = builder.send().await.context("sending")?;
    let status = answer.status();
    if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
        let retry_after = answer
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .context("a 503 without a Retry-After in seconds")?;
        return Ok(Answer::Shed(Duration::from_secs(retry_after)));
    }
    let body = answer.bytes().await.context("reading the body")?;
    ensure!(
        status.is_success(),
        "{status}: {}",
        String::from_utf8_lossy(&body[..body.len().min(200)])
    );
    match expected {
        Some(bytes) => {
            ensure!(
                body.as_ref() == bytes.as_slice(),
                "{} bytes that are not the file's",
                body.len()
            );
            Ok(Answer::Served(body.len() as u64))
        }
        None => {
            let answer: Added = serde_json::from_slice(&body).context("add's answer")?;
            stargate_protocol::parse_cid(&answer.hash)
                .with_context(|| format!("add answered {:?}, not a CID", answer.hash))?;
            Ok(Answer::Served(ADDED as u64))
        }
    }
}

/// Resident memory of process `pid` now, in bytes.
fn rss(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .context("no VmRSS in /proc/<pid>/status")?;
    Ok(kib * 1024)
}
