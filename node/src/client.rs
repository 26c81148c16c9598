//! The CLI's side of the Kubo-compatible RPC API.
//!
//! Every command other than `daemon` is a client of that API. When a daemon holds the data dir,
//! requests go to it over TCP (its address is in `<data_dir>/api`); otherwise the CLI opens the
//! store itself and sends the very same requests to an in-process router. Each operation is thus
//! implemented once, on the server side.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use futures::{Stream, StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;
use tower::ServiceExt;

use crate::config::Secrets;

/// Name of the file in the data dir that holds a running daemon's API address.
pub(crate) const API_FILE: &str = "api";

/// Where requests go.
#[derive(Debug, Clone)]
enum Transport {
    /// A running daemon at this base URL (`http://127.0.0.1:5001`).
    Remote { base: String, http: reqwest::Client },
    /// No daemon: an in-process router over the store this process opened.
    Local(axum::Router),
}

/// A client of the RPC API.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    transport: Transport,
}

/// Query arguments of a call, in order (`arg` may repeat, as in Kubo).
pub(crate) type Args<'a> = &'a [(&'a str, String)];

impl Client {
    /// A client of the daemon whose address is in `data_dir/api`, if one answers there.
    pub(crate) async fn running_daemon(data_dir: &Path) -> Result<Option<Self>> {
        let path = data_dir.join(API_FILE);
        let addr = match tokio::fs::read_to_string(&path).await {
            Ok(a) => a.trim().to_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let base = format!("http://{addr}");
        let mut headers = reqwest::header::HeaderMap::new();
        // The daemon asks writes for its API key when it has one: the CLI presents the same.
        if let Some(key) = Secrets::from_env(std::env::vars())?.api_key {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", *key))
                .context("STARGATE_API_KEY is not a valid header value")?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .default_headers(headers)
            .build()
            .context("building the HTTP client")?;
        // A stale file (daemon killed) points at nothing; then we open the store ourselves.
        match http.get(format!("{base}/health")).send().await {
            Ok(r) if r.status().is_success() => Ok(Some(Self {
                transport: Transport::Remote { base, http },
            })),
            _ => Ok(None),
        }
    }

    /// A client of an in-process router.
    pub(crate) fn local(router: axum::Router) -> Self {
        Self {
            transport: Transport::Local(router),
        }
    }

    /// Whether requests are served in this process (no daemon), which shares our file system.
    pub(crate) fn is_in_process(&self) -> bool {
        matches!(self.transport, Transport::Local(_))
    }

    /// `POST /api/v0/<cmd>?<args>` with an optional body; non-2xx answers become errors carrying
    /// the server's message.
    pub(crate) async fn call(
        &self,
        cmd: &str,
        args: Args<'_>,
        body: Option<(String, Body)>,
    ) -> Result<Response<Body>> {
        let query = serde_urlencoded_args(args);
        let uri = format!("/api/v0/{cmd}?{query}");
        let res = match &self.transport {
            Transport::Local(router) => {
                let mut req = Request::post(&uri)
                    .header(header::TE, "trailers")
                    .extension(stargate_http_gateway::InProcess);
                let body = match body {
                    Some((content_type, body)) => {
                        req = req.header("content-type", content_type);
                        body
                    }
                    None => Body::empty(),
                };
                let req = req.body(body).context("building the request")?;
                router
                    .clone()
                    .oneshot(req)
                    .await
                    .map_err(|e| anyhow!("{e}"))?
            }
            Transport::Remote { base, http } => {
                let mut req = http
                    .post(format!("{base}{uri}"))
                    .header(header::TE, "trailers");
                if let Some((content_type, body)) = body {
                    req = req
                        .header("content-type", content_type)
                        .body(reqwest::Body::wrap_stream(body.into_data_stream()));
                }
                let res = req
                    .send()
                    .await
                    .with_context(|| format!("calling the daemon at {base}"))?;
                // Frames as they come, trailers included.
                Response::<reqwest::Body>::from(res).map(Body::new)
            }
        };
        if res.status().is_success() {
            return Ok(res);
        }
        Err(error_of(res).await)
    }

    /// A call whose answer is one JSON value.
    pub(crate) async fn json<T: DeserializeOwned>(&self, cmd: &str, args: Args<'_>) -> Result<T> {
        let res = self.call(cmd, args, None).await?;
        let bytes = axum::body::to_bytes(res.into_body(), MAX_JSON_ANSWER)
            .await
            .context("reading the answer")?;
        serde_json::from_slice(&bytes).with_context(|| format!("decoding the answer to {cmd}"))
    }

    /// The answer body as a stream of byte chunks. A failure the server reported after the
    /// answer started (Kubo's `X-Stream-Error` trailer, which we ask for with `TE: trailers`)
    /// or a body cut short ends it with an error.
    pub(crate) fn bytes(
        res: Response<Body>,
    ) -> impl Stream<Item = Result<bytes::Bytes>> + Send + Unpin {
        http_body_util::BodyStream::new(res.into_body()).filter_map(|frame| {
            std::future::ready(match frame {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => Some(Ok(data)),
                    Err(frame) => frame
                        .trailers_ref()
                        .and_then(|t| t.get(STREAM_ERROR))
                        .map(|e| Err(anyhow!("{}", String::from_utf8_lossy(e.as_bytes())))),
                },
                Err(e) => Some(Err(anyhow!("reading the answer: {e}"))),
            })
        })
    }
}

/// Kubo's trailer for a failure after the answer started.
const STREAM_ERROR: &str = "x-stream-error";

/// Largest single JSON answer we read into memory (listings stream as NDJSON instead).
const MAX_JSON_ANSWER: usize = 64 * 1024 * 1024;
/// Longest NDJSON line we accept.
const MAX_NDJSON_LINE: usize = 1024 * 1024;

/// Decodes a newline-delimited JSON answer (Kubo's streaming output) value by value.
pub(crate) fn ndjson<T: DeserializeOwned + Send + 'static>(
    res: Response<Body>,
) -> impl Stream<Item = Result<T>> + Send + Unpin {
    let reader = tokio_util::io::StreamReader::new(
        Client::bytes(res).map_err(|e| std::io::Error::other(format!("{e:#}"))),
    );
    let lines = tokio_util::codec::FramedRead::new(
        reader,
        tokio_util::codec::LinesCodec::new_with_max_length(MAX_NDJSON_LINE),
    );
    Box::pin(lines.filter_map(|line| async move {
        match line {
            Ok(l) if l.trim().is_empty() => None,
            Ok(l) => Some(serde_json::from_str::<T>(&l).with_context(|| format!("decoding {l:?}"))),
            Err(e) => Some(Err(anyhow!("{e}"))),
        }
    }))
}

/// Kubo's error body: `{"Message": "...", "Code": 0, "Type": "error"}`.
#[derive(serde::Deserialize)]
struct KuboError {
    #[serde(rename = "Message")]
    message: String,
}

async fn error_of(res: Response<Body>) -> anyhow::Error {
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    match serde_json::from_slice::<KuboError>(&bytes) {
        Ok(e) => anyhow!("{}", e.message),
        Err(_) if status == StatusCode::NOT_FOUND => anyhow!("the API has no such command"),
        Err(_) => anyhow!(
            "API answered {status}: {}",
            String::from_utf8_lossy(&bytes).trim()
        ),
    }
}

fn serde_urlencoded_args(args: Args<'_>) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in args {
        out.append_pair(k, v);
    }
    out.finish()
}
