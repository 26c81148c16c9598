//! Mirroring between daemons: a configuration with short intervals, and what a test reads of
//! a daemon's mirror (status, records, metrics).

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::daemon::{DaemonOptions, StargateDaemon};
use crate::wait::wait_for;

/// `[ipfs]` with intervals short enough for tests (seconds), then `extra` keys.
pub fn mirror_config(extra: &str) -> String {
    format!(
        "[ipfs]\nmirror_poll_interval_sec = 1\nmirror_publish_interval_sec = 1\nhttp_timeout_sec = 20\nmirror_retry_base_sec = 1\n{extra}\n"
    )
}

/// Daemon options with [`mirror_config`].
pub fn mirror_options(extra: &str) -> DaemonOptions {
    DaemonOptions {
        extra_config: mirror_config(extra),
        ..DaemonOptions::default()
    }
}

impl StargateDaemon {
    /// `stargate mirror status`'s JSON (`GET /api/v1/mirror/status`).
    pub fn mirror_status(&self) -> Result<Value> {
        self.api_json("/api/v1/mirror/status")
    }

    /// The mirror records (`GET /api/v1/mirror/ls?...`), newest first.
    pub fn mirror_records(&self, query: &str) -> Result<Vec<Value>> {
        let answer = self.api_json(&format!("/api/v1/mirror/ls?limit=10000&{query}"))?;
        answer["records"]
            .as_array()
            .cloned()
            .context("no records in the ls answer")
    }

    /// The state of the record of `cid` (`stored`, `queued`, ...), if there is one.
    pub fn mirror_state(&self, cid: &str) -> Result<Option<String>> {
        Ok(self
            .mirror_records("")?
            .iter()
            .find(|r| r["cid"] == cid)
            .and_then(|r| r["state"].as_str().map(str::to_owned)))
    }

    /// Waits until every CID of `cids` is recorded stored here.
    pub fn wait_mirrored(&self, cids: &[String], timeout: Duration) -> Result<()> {
        wait_for(timeout, || {
            let records = self.mirror_records("").ok()?;
            let stored = cids.iter().all(|cid| {
                records
                    .iter()
                    .any(|r| r["cid"] == cid.as_str() && r["state"] == "stored")
            });
            stored.then_some(())
        })
        .with_context(|| {
            format!(
                "{} did not mirror all of {} CIDs; status {:?}",
                self.peer_id(),
                cids.len(),
                self.mirror_status().ok()
            )
        })
    }

    /// Waits until this daemon sees every peer of `peers` on the mirror topic.
    pub fn wait_topic_peers(&self, peers: &[&str], timeout: Duration) -> Result<()> {
        wait_for(timeout, || {
            let status = self.mirror_status().ok()?;
            let on_topic = status["topics"][0]["peers"].as_array()?.clone();
            peers
                .iter()
                .all(|p| on_topic.iter().any(|q| q == p))
                .then_some(())
        })
        .with_context(|| format!("{} never saw {peers:?} on the mirror topic", self.peer_id()))
    }

    /// The value of the metric series `series` (name and labels as exported), 0 when absent.
    pub fn metric(&self, series: &str) -> Result<f64> {
        let text = self.metrics()?;
        let prefix = format!("{series} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(Ok(0.0), |v| {
                v.trim()
                    .parse()
                    .with_context(|| format!("{series} {v}: not a number"))
            })
    }

    fn api_json(&self, path: &str) -> Result<Value> {
        let url = format!("http://{}{path}", self.api_addr()?);
        let answer = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .no_proxy()
            .build()?
            .get(&url)
            .send()
            .with_context(|| format!("GET {url}"))?;
        let status = answer.status();
        let body: Value = answer
            .json()
            .with_context(|| format!("GET {url}: not JSON"))?;
        anyhow::ensure!(status.is_success(), "GET {url}: {status} {body}");
        Ok(body)
    }

    /// The API's address, from the `api` file the daemon writes.
    pub fn api_addr(&self) -> Result<String> {
        let text =
            std::fs::read_to_string(self.dir().join("api")).context("reading the api file")?;
        Ok(text.trim().to_owned())
    }

    /// Adds `len` pseudo-random bytes (from `seed`) and announces them as `kind`; the CID.
    pub fn add_announced(&self, len: u64, seed: u64, kind: &str, meta: &[&str]) -> Result<String> {
        let path = self.dir().join(format!("upload-{seed}"));
        crate::data::write_pseudo_random_file(&path, len, seed)?;
        let path = path.to_str().context("non-UTF-8 path")?;
        let mut args = vec!["add", "-Q", "--announce", kind];
        for m in meta {
            args.extend(["--meta", m]);
        }
        args.push(path);
        Ok(self.cli_ok(&args)?.trim().to_owned())
    }
}

impl StargateDaemon {
    /// Adds `n` small pseudo-random files (seeds from `first_seed`) in one call, announcing
    /// each as `kind`; their CIDs.
    pub fn add_announced_many(
        &self,
        n: u64,
        first_seed: u64,
        len: u64,
        kind: &str,
    ) -> Result<Vec<String>> {
        let mut paths = Vec::new();
        for seed in first_seed..first_seed + n {
            let path = self.dir().join(format!("upload-{seed}"));
            crate::data::write_pseudo_random_file(&path, len, seed)?;
            paths.push(path.to_str().context("non-UTF-8 path")?.to_owned());
        }
        let mut args = vec!["add", "-q", "--announce", kind];
        args.extend(paths.iter().map(String::as_str));
        let out = self.cli_ok(&args)?;
        let cids: Vec<String> = out.lines().map(|l| l.trim().to_owned()).collect();
        anyhow::ensure!(
            cids.len() as u64 == n,
            "{} CIDs for {n} files: {out}",
            cids.len()
        );
        Ok(cids)
    }
}
