//! Stego results between daemons: the platform's side of the signed approval callback, and its
//! pull of ingestion records with the ingest token.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde_json::{Value, json};
use stargate_protocol::stego::signature::{CallbackSecret, SIGNATURE_HEADER, TIMESTAMP_HEADER};

use crate::daemon::{DaemonOptions, StargateDaemon};
use crate::mirror::mirror_config;

/// The callback secret every test daemon gets.
pub const STEGO_SECRET: &str = "test-stego-callback-secret-7f3a";
/// The ingest token every test daemon gets.
pub const INGEST_TOKEN: &str = "test-ingest-token-c91d";

/// Mirroring daemon options with short stego intervals, the secret and the token in the
/// environment, then `extra` `[ipfs]` keys.
pub fn stego_options(extra: &str) -> DaemonOptions {
    DaemonOptions {
        extra_config: mirror_config(&format!(
            "stego_sync_interval_sec = 1\ningest_sync_interval_sec = 1\n{extra}"
        )),
        env: vec![
            (
                "STARGATE_STEGO_CALLBACK_SECRET".to_owned(),
                STEGO_SECRET.to_owned(),
            ),
            ("STARGATE_INGEST_TOKEN".to_owned(), INGEST_TOKEN.to_owned()),
        ],
        ..DaemonOptions::default()
    }
}

/// A callback body.
pub fn callback_body(image: &str, payload: &str, verdict: &str, metadata: &Value) -> String {
    json!({
        "image_cid": image,
        "payload_cid": payload,
        "verdict": verdict,
        "metadata": metadata,
    })
    .to_string()
}

/// The current Unix time in seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `(X-Stargate-Timestamp, X-Stargate-Signature)` for `body` at `timestamp` under `secret`.
pub fn sign_callback(secret: &str, timestamp: u64, body: &str) -> Result<(String, String)> {
    let secret = CallbackSecret::new(secret.as_bytes()).context("an empty secret")?;
    let ts = timestamp.to_string();
    let signature = secret.sign(&ts, body.as_bytes());
    Ok((ts, signature))
}

fn http() -> Result<reqwest::blocking::Client> {
    Ok(reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()?)
}

fn answer(res: reqwest::blocking::Response) -> Result<(u16, Value)> {
    let status = res.status().as_u16();
    let text = res.text()?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

impl StargateDaemon {
    /// Posts `body` to the stego callback with the given headers (either may be left out);
    /// the status and the JSON answer.
    pub fn post_callback(&self, headers: &[(&str, &str)], body: &str) -> Result<(u16, Value)> {
        let url = format!("http://{}/api/v1/stego/callback", self.api_addr()?);
        let mut req = http()?.post(&url).body(body.to_owned());
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        answer(req.send().with_context(|| format!("POST {url}"))?)
    }

    /// Posts `body` signed now with the test secret.
    pub fn post_signed_callback(&self, body: &str) -> Result<(u16, Value)> {
        let (ts, sig) = sign_callback(STEGO_SECRET, unix_now(), body)?;
        self.post_callback(&[(TIMESTAMP_HEADER, &ts), (SIGNATURE_HEADER, &sig)], body)
    }

    /// `GET /api/v1/ingestions?<query>` with `token` (none: no header).
    pub fn ingestions(&self, query: &str, token: Option<&str>) -> Result<(u16, Value)> {
        let url = format!("http://{}/api/v1/ingestions?{query}", self.api_addr()?);
        let mut req = http()?.get(&url);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        answer(req.send().with_context(|| format!("GET {url}"))?)
    }

    /// The records of `GET /api/v1/ingestions?<query>` with the test token.
    pub fn ingestion_records(&self, query: &str) -> Result<Vec<Value>> {
        let (status, page) = self.ingestions(query, Some(INGEST_TOKEN))?;
        anyhow::ensure!(status == 200, "ingestions: {status} {page}");
        page["records"]
            .as_array()
            .cloned()
            .context("no records in the answer")
    }

    /// `POST /api/v1/ingestions/<id>/ack` with `token`.
    pub fn ack_ingestion(&self, id: u64, token: &str) -> Result<(u16, Value)> {
        let url = format!("http://{}/api/v1/ingestions/{id}/ack", self.api_addr()?);
        answer(
            http()?
                .post(&url)
                .bearer_auth(token)
                .send()
                .with_context(|| format!("POST {url}"))?,
        )
    }
}
