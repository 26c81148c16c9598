//! The gateway over a data dir, served on 127.0.0.1 from this process, and an HTTP client for
//! it: plain requests through reqwest, and raw request lines over TCP for what an HTTP client
//! would normalise away (`..`, `%2e%2e`) or refuse to send (overlong paths).
//!
//! The data dir is filled beforehand by the `stargate` binary (`stargate add` opens the store
//! directly when no daemon runs); the server then opens the same store.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use stargate_http_gateway::{AppState, HttpOptions, gateway_router};
use stargate_storage::{Store, StoreOptions};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

/// Longest a single request of a test may take (large files included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A gateway serving the store of one data dir on an ephemeral loopback port.
#[derive(Debug)]
pub struct GatewayServer {
    runtime: Runtime,
    addr: SocketAddr,
    store: Store,
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
}

/// One answer, its body read to the end (or the error that cut it short).
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: std::result::Result<Vec<u8>, String>,
}

impl HttpAnswer {
    /// A header's value, `""` when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The body, failing when it was cut short.
    pub fn bytes(&self) -> Result<&[u8]> {
        self.body
            .as_deref()
            .map_err(|e| anyhow::anyhow!("body cut short: {e}"))
    }
}

impl GatewayServer {
    /// Opens the store in `data_dir` and serves the gateway over it with default limits.
    pub fn start(data_dir: &Path) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting a runtime for the gateway")?;
        let store = Store::open(data_dir, StoreOptions::default())
            .with_context(|| format!("opening the store in {}", data_dir.display()))?;
        let state = AppState::new(
            store.clone(),
            Arc::new(store.clone()),
            HttpOptions::default(),
        );
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .context("binding 127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        runtime.spawn(stargate_http_gateway::serve(
            listener,
            gateway_router(state),
            async move {
                let _ = stopped.await;
            },
        ));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            runtime,
            addr,
            store,
            client,
            stop: Some(stop),
        })
    }

    /// The store being served (to compare with what the gateway answers).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The multihash of every block in the store, for comparing block sets.
    pub fn stored_multihashes(&self) -> Result<BTreeSet<Vec<u8>>> {
        self.store
            .blocks()?
            .map(|b| Ok(b?.cid().hash().to_bytes()))
            .collect()
    }

    /// `http://127.0.0.1:PORT` + `path_and_query`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// GET `path_and_query` with extra `headers`.
    pub fn get(&self, path_and_query: &str, headers: &[(&str, &str)]) -> Result<HttpAnswer> {
        self.request("GET", path_and_query, headers)
    }

    /// Any method; the body is read to its end.
    pub fn request(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> Result<HttpAnswer> {
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut req = self.client.request(method, self.url(path_and_query));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.runtime.block_on(async move {
            let res = req
                .send()
                .await
                .with_context(|| format!("requesting {path_and_query}"))?;
            let status = res.status().as_u16();
            let headers = res.headers().clone();
            let body = res.bytes().await.map(|b| b.to_vec()).map_err(|e| {
                // reqwest's outer error hides why; its source says it.
                let mut why = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    why.push_str(": ");
                    why.push_str(&s.to_string());
                    source = s.source();
                }
                why
            });
            Ok(HttpAnswer {
                status,
                headers,
                body,
            })
        })
    }

    /// Sends `METHOD target HTTP/1.1` exactly as given and returns the status code.
    pub fn raw_status(&self, method: &str, target: &str) -> Result<u16> {
        let mut stream = TcpStream::connect(self.addr).context("connecting to the gateway")?;
        stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
        let request = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        stream.write_all(request.as_bytes())?;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n") {
            if stream.read(&mut byte)? == 0 {
                bail!("the gateway closed the connection without a status line");
            }
            head.push(byte[0]);
        }
        let line = String::from_utf8_lossy(&head);
        line.split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("no status in {line:?}"))
    }
}

impl Drop for GatewayServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
