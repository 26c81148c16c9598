//! Who may call the API: the guide's API key guards the commands that change the node while
//! loopback reads stay open; Kubo's named secrets (bearer and basic) with their path prefixes;
//! an unguarded API beyond loopback refuses to start. Through plain HTTP for the whole matrix
//! and through npm kubo-rpc-client passing its headers as its users do. Rejections are
//! counted; no secret reaches the log.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use base64::Engine as _;
use reqwest::blocking::Client;
use serde_json::Value;
use stargate_tests::{DaemonOptions, StargateDaemon, kubo_rpc_client_auth, stargate_bin};

const KEY: &str = "api-key-7f3a9c";

/// Commands that change the node, each as a client would call it on the stored file `cid`
/// (bodies are not needed: the credentials are checked before anything is read).
fn writes(cid: &str) -> Vec<String> {
    [
        "add".to_owned(),
        format!("pin/add?arg={cid}"),
        format!("pin/rm?arg={cid}"),
        "block/put".to_owned(),
        format!("block/rm?arg={cid}"),
        "pubsub/pub?arg=ustargate-uploads".to_owned(),
        "swarm/connect".to_owned(),
        "swarm/disconnect".to_owned(),
        "repo/gc".to_owned(),
        "routing/provide".to_owned(),
        "dag/fetch".to_owned(),
        "anchor/add".to_owned(),
    ]
    .into()
}

/// Adds `content` through the CLI (which presents the daemon's key): its CID.
fn add(daemon: &StargateDaemon, name: &str, content: &[u8]) -> Result<String> {
    let path = daemon.dir().join(name);
    std::fs::write(&path, content)?;
    Ok(daemon
        .cli_ok(&["add", "-Q", path.to_str().context("UTF-8")?])?
        .trim()
        .to_owned())
}

fn http() -> Result<Client> {
    Ok(Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// POSTs `/api/v0/<command>` with `authorization` (if any): the status and the JSON body.
fn call(
    http: &Client,
    api: &str,
    command: &str,
    authorization: Option<&str>,
) -> Result<(u16, Value)> {
    let mut req = http.post(format!("{api}/api/v0/{command}"));
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    let res = req.send().with_context(|| format!("POST {command}"))?;
    let status = res.status().as_u16();
    let text = res.text()?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

fn metric(daemon: &StargateDaemon, series: &str) -> Result<f64> {
    let text = daemon.metrics()?;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(Ok(0.0), |v| v.trim().parse().context("not a number"))
}

fn basic(user_password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_password)
    )
}

fn no_secret_in_the_log(daemon: &StargateDaemon, secrets: &[&str]) -> Result<()> {
    let log = daemon.log();
    for s in secrets {
        ensure!(
            !log.contains(s),
            "a secret ({} chars) is in the log",
            s.len()
        );
    }
    Ok(())
}

#[test]
fn the_api_key_guards_writes_and_loopback_reads_stay_open() -> Result<()> {
    let daemon = StargateDaemon::start(DaemonOptions {
        env: vec![("STARGATE_API_KEY".to_owned(), KEY.to_owned())],
        ..DaemonOptions::default()
    })?;
    let api = daemon.api_url()?;
    let http = http()?;
    let right = format!("Bearer {KEY}");
    // The CLI presents STARGATE_API_KEY from its environment (the harness passes the daemon's).
    let cid = add(&daemon, "kept", b"guarded")?;
    let writes = writes(&add(&daemon, "removed", b"removed by the matrix")?);
    for command in &writes {
        let (status, body) = call(&http, &api, command, None)?;
        ensure!(status == 401, "{command} without a key: {status} {body}");
        ensure!(body["error"].is_string(), "{command}: {body}");
        let (status, body) = call(&http, &api, command, Some("Bearer wrong"))?;
        ensure!(status == 403, "{command} with a wrong key: {status} {body}");
        ensure!(
            body == serde_json::json!({"error": "Invalid API key"}),
            "{command}: {body}"
        );
        let (status, body) = call(&http, &api, command, Some(&right))?;
        ensure!(
            status != 401 && status != 403,
            "{command} with the key: {status} {body}"
        );
    }
    let count = writes.len() as f64;
    ensure!(metric(&daemon, "api_auth_rejections_total{reason=\"missing\"}")? == count);
    ensure!(metric(&daemon, "api_auth_rejections_total{reason=\"invalid\"}")? == count);

    let path = daemon.dir().join("kept");
    let without = std::process::Command::new(stargate_bin()?)
        .arg("--data-dir")
        .arg(daemon.dir())
        .args(["add", "-Q"])
        .arg(&path)
        .env_remove("STARGATE_API_KEY")
        .output()?;
    ensure!(!without.status.success(), "the CLI added without the key");
    let stderr = String::from_utf8_lossy(&without.stderr);
    ensure!(stderr.contains("API key"), "the CLI's error: {stderr}");

    // Reads need nothing on loopback.
    for command in ["id", "version", &format!("cat?arg={cid}")] {
        let (status, body) = call(&http, &api, command, None)?;
        ensure!(status == 200, "{command} without a key: {status} {body}");
    }

    let report = kubo_rpc_client_auth(&api, &cid, &[&right, "Bearer wrong"])?;
    ensure!(
        report[&right] == serde_json::json!({"add": "ok", "cat": "ok", "pin": "ok"}),
        "{report}"
    );
    ensure!(report["none"]["cat"] == "ok", "{report}");
    for who in ["none", "Bearer wrong"] {
        for write in ["add", "pin"] {
            ensure!(report[who][write] != "ok", "{who} could {write}: {report}");
        }
    }
    ensure!(
        report["Bearer wrong"]["cat"] != "ok",
        "a wrong key could read: {report}"
    );
    no_secret_in_the_log(&daemon, &[KEY])
}

#[test]
fn named_secrets_work_as_kubos_authorizations() -> Result<()> {
    let secret_dir = tempfile::tempdir()?;
    let platform_file = secret_dir.path().join("platform");
    std::fs::write(&platform_file, "basic:platform:s3cret-pw\n")?;
    let daemon = StargateDaemon::start(DaemonOptions {
        // The operator's CLI (and the harness's readiness probe) uses the API key.
        env: vec![("STARGATE_API_KEY".to_owned(), KEY.to_owned())],
        extra_config: format!(
            r#"[api.authorizations.reader]
auth_secret = "bearer:reader-token-1d2e"
allowed_paths = ["/api/v0/cat", "/api/v0/id"]

[api.authorizations.platform]
auth_secret_file = {platform_file:?}
allowed_paths = ["/api/v0"]
"#
        ),
        ..DaemonOptions::default()
    })?;
    let api = daemon.api_url()?;
    let http = http()?;
    let platform = basic("platform:s3cret-pw");

    let (status, body) = call(&http, &api, "add", Some(&platform))?;
    ensure!(
        status == 400,
        "add with no body, as the platform: {status} {body}"
    );
    // With named secrets every call needs credentials, reads too, as in Kubo.
    let (status, _) = call(&http, &api, "id", None)?;
    ensure!(status == 401, "id without credentials: {status}");
    let (status, _) = call(&http, &api, "id", Some("Bearer reader-token-1d2e"))?;
    ensure!(status == 200, "id as the reader: {status}");
    let (status, body) = call(&http, &api, "add", Some("Bearer reader-token-1d2e"))?;
    ensure!(
        status == 403,
        "add as the read-only secret: {status} {body}"
    );
    let (status, _) = call(&http, &api, "add", Some(&basic("platform:wrong")))?;
    ensure!(status == 403, "add with a wrong password: {status}");
    ensure!(
        metric(
            &daemon,
            "api_auth_rejections_total{reason=\"path_not_allowed\"}"
        )? == 1.0
    );

    let cid = add(&daemon, "named", b"named")?;
    let report = kubo_rpc_client_auth(&api, &cid, &[&platform])?;
    ensure!(report[&platform]["add"] == "ok", "{report}");
    ensure!(report[&platform]["cat"] == "ok", "{report}");
    ensure!(report["none"]["add"] != "ok", "{report}");
    no_secret_in_the_log(&daemon, &[KEY, "reader-token-1d2e", "s3cret-pw"])
}

#[test]
fn an_unguarded_api_beyond_loopback_refuses_to_start() -> Result<()> {
    let beyond = || DaemonOptions {
        env: vec![("STARGATE_API_ADDR".to_owned(), "0.0.0.0:0".to_owned())],
        ..DaemonOptions::default()
    };
    let refused = StargateDaemon::start(beyond())
        .err()
        .context("the daemon started")?;
    ensure!(
        format!("{refused:#}").contains("beyond loopback and nothing guards it"),
        "{refused:#}"
    );
    // The guide's development mode, said out loud, starts.
    let mut open = beyond();
    open.env
        .push(("STARGATE_API_ALLOW_ANONYMOUS".to_owned(), "true".to_owned()));
    let daemon = StargateDaemon::start(open)?;
    ensure!(
        daemon.log().contains("allow_anonymous"),
        "no warning in the log"
    );
    // And so does a guarded one.
    let mut guarded = beyond();
    guarded
        .env
        .push(("STARGATE_API_KEY".to_owned(), KEY.to_owned()));
    let daemon = StargateDaemon::start(guarded)?;
    let (status, _) = call(&http()?, &daemon.api_url()?, "id", None)?;
    ensure!(
        status == 401,
        "a read beyond loopback without the key: {status}"
    );
    Ok(())
}
