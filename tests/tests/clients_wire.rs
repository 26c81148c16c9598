//! What every client of the RPC API, and every scraper of `/metrics`, relies on, seen on the wire:
//! a failure is never answered with status 200 (before the answer starts it has its own status;
//! after, Kubo's `X-Stream-Error` trailer for a client that reads trailers, else a body cut
//! short); Kubo's `timeout` option; Kubo's 404 for commands the node does not have; `/metrics` in
//! the format the scraper asks for, as PyPI prometheus-client's parsers read it; and a CLI error
//! printed once.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use sha2::Digest;
use stargate_protocol::{Bytes, Cid, Multihash, PbNode};
use stargate_tests::{StargateNode, metrics_formats, write_pseudo_random_file};

/// Longest any single answer here may take.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

fn started() -> Result<StargateNode> {
    let mut node = StargateNode::new()?;
    node.start()?;
    Ok(node)
}

fn http() -> Result<reqwest::blocking::Client> {
    Ok(reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(ANSWER_TIMEOUT)
        .build()?)
}

/// A multipart body of `parts` (file name, bytes) and its content type.
fn multipart(parts: &[(&str, &[u8])]) -> (Vec<u8>, String) {
    let boundary = "stargate-wire-test";
    let mut body = Vec::new();
    for (name, bytes) in parts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (body, format!("multipart/form-data; boundary={boundary}"))
}

/// POSTs `target` over a raw HTTP/1.1 connection (closed after the answer) and returns the
/// whole answer as sent: head, chunked body and trailer.
fn raw_post(node: &StargateNode, target: &str, headers: &str) -> Result<String> {
    let addr = node.api_url().trim_start_matches("http://").to_owned();
    let mut tcp = TcpStream::connect(&addr)?;
    tcp.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    write!(
        tcp,
        "POST {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}Content-Length: 0\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer)?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// The CID of content no node has.
fn nobody_has() -> Result<String> {
    let digest = sha2::Sha256::digest(b"content no node has");
    Ok(Cid::new_v1(0x55, Multihash::wrap(0x12, &digest)?).to_string())
}

fn error_json(res: reqwest::blocking::Response) -> Result<(u16, Value)> {
    let status = res.status().as_u16();
    ensure!(
        res.headers()["content-type"] == "application/json",
        "{:?}",
        res.headers()
    );
    Ok((status, res.json()?))
}

#[test]
fn failures_before_the_answer_have_their_status_and_change_nothing() -> Result<()> {
    let node = started()?;
    let http = http()?;
    let big = vec![7u8; 3 << 20];
    for (query, parts, needle) in [
        // The second part is refused after the first was read (and imported).
        (
            "",
            vec![("ok.bin", &big[..]), ("../evil", b"x".as_slice())],
            "invalid file name",
        ),
        // Refused before the body is read; the body is read away first, so the client gets this.
        ("?trickle=true", vec![("ok.bin", &big[..])], "trickle"),
        ("?to-files=/x", vec![("ok.bin", &big[..])], "MFS"),
    ] {
        let (body, content_type) = multipart(&parts);
        let res = http
            .post(format!("{}/api/v0/add{query}", node.api_url()))
            .header("content-type", content_type)
            .body(body)
            .send()?;
        let (status, error) = error_json(res)?;
        ensure!(status == 400, "add{query}: {status} {error}");
        ensure!(error["Type"] == "error" && error["Code"] == 1, "{error}");
        let message = error["Message"].as_str().unwrap_or_default();
        ensure!(message.contains(needle), "add{query}: {message}");
    }
    let pins = node.cli_ok(&["pin", "ls"])?;
    ensure!(pins.trim().is_empty(), "a refused add pinned {pins}");
    Ok(())
}

#[test]
fn a_failure_after_the_head_is_a_trailer_or_a_cut() -> Result<()> {
    let node = started()?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("file.bin");
    write_pseudo_random_file(&file, 1 << 20, 7)?;
    let path = file.display().to_string();
    let root = node.cli_ok(&["add", "-Q", "--pin=false", &path])?;
    let root = root.trim();
    // Lose the last of its four chunks: `cat` starts, then fails.
    let http = http()?;
    let block = http
        .post(format!("{}/api/v0/block/get?arg={root}", node.api_url()))
        .send()?
        .bytes()?;
    let links = PbNode::decode(&Bytes::from(block.to_vec()))?.links;
    let last = links.last().context("a file of one block")?.cid.to_string();
    node.cli_ok(&["block", "rm", &last])?;

    let target = format!("/api/v0/cat?arg={root}&offline=true");
    let answer = raw_post(&node, &target, "TE: trailers\r\n")?;
    ensure!(answer.starts_with("HTTP/1.1 200"), "{}", &answer[..200]);
    let trailer = answer
        .split_once("\r\n0\r\n")
        .map(|(_, t)| t.to_ascii_lowercase())
        .context("no last chunk")?;
    ensure!(
        trailer.starts_with("x-stream-error: ") && trailer.contains(&last.to_ascii_lowercase()),
        "trailer: {trailer:?}"
    );
    // Without `TE: trailers` the body is cut short, which the client reports as an error.
    let cut = http.post(format!("{}{target}", node.api_url())).send()?;
    ensure!(cut.status() == 200, "{}", cut.status());
    ensure!(cut.bytes().is_err(), "a failed cat read as a whole body");
    Ok(())
}

#[test]
fn the_timeout_option_ends_a_command_with_kubos_words() -> Result<()> {
    let node = started()?;
    // Without the option the node would look for it on the network.
    let missing = nobody_has()?;
    let start = Instant::now();
    let res = http()?
        .post(format!(
            "{}/api/v0/cat?arg={missing}&timeout=300ms",
            node.api_url()
        ))
        .send()?;
    let (status, error) = error_json(res)?;
    ensure!(
        status == 500 && error["Message"] == "context deadline exceeded",
        "{status} {error}"
    );
    ensure!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    // An add whose time runs out while its request is read.
    let (body, content_type) = multipart(&[("big.bin", &vec![1u8; 8 << 20])]);
    let res = http()?
        .post(format!("{}/api/v0/add?timeout=1ms", node.api_url()))
        .header("content-type", content_type)
        .body(body)
        .send()?;
    let (status, error) = error_json(res)?;
    ensure!(
        status == 500 && error["Message"] == "context deadline exceeded",
        "add: {status} {error}"
    );
    let res = http()?
        .post(format!("{}/api/v0/version?timeout=soon", node.api_url()))
        .send()?;
    ensure!(res.status() == 400, "an invalid timeout: {}", res.status());
    Ok(())
}

#[test]
fn commands_the_node_lacks_answer_as_kubo_answers() -> Result<()> {
    let node = started()?;
    let http = http()?;
    for command in [
        "bitswap/stat",
        "files/ls",
        "files/stat",
        "name/publish",
        "name/resolve",
        "key/gen",
        "shutdown",
    ] {
        let res = http
            .post(format!("{}/api/v0/{command}?arg=x", node.api_url()))
            .send()?;
        let (status, error) = error_json(res)?;
        ensure!(status == 404, "{command}: {status}");
        let message = error["Message"].as_str().unwrap_or_default();
        ensure!(
            error["Type"] == "error"
                && error["Code"] == 1
                && message.contains(&format!("{command:?}")),
            "{command}: {error}"
        );
    }
    // Kubo checks the method first.
    let get = http
        .get(format!("{}/api/v0/bitswap/stat", node.api_url()))
        .send()?;
    ensure!(get.status() == 405, "GET: {}", get.status());
    // Outside the API, a plain 404.
    let outside = http
        .post(format!("{}/nothing/here", node.api_url()))
        .send()?;
    ensure!(outside.status() == 404, "{}", outside.status());
    Ok(())
}

#[test]
fn metrics_come_in_the_format_the_scraper_asks_for() -> Result<()> {
    let node = started()?;
    // Traffic, so that the request histogram has samples.
    node.cli_ok(&["id"])?;
    let report = metrics_formats(&format!("{}/metrics", node.gateway_url()))?;
    for (format, content_type) in [
        ("text", "text/plain; version=0.0.4"),
        ("openmetrics", "application/openmetrics-text; version=1.0.0"),
    ] {
        let scraped = &report[format];
        let kind = scraped["content_type"].as_str().unwrap_or_default();
        ensure!(kind.starts_with(content_type), "{format}: {kind}");
        let families = scraped["families"].as_object().context("no families")?;
        for (name, kind) in [
            ("stargate_block_cache_hits", "counter"),
            ("http_request_duration_seconds", "histogram"),
        ] {
            let family = &families[name];
            ensure!(
                family["type"] == kind && family["samples"].as_u64() > Some(0),
                "{format} {name}: {family}"
            );
        }
        // The classic parser meeting OpenMetrics splits a counter into an empty family and
        // an untyped one; nothing here may look like that.
        for (name, family) in families {
            ensure!(
                family["samples"].as_u64() > Some(0),
                "{format}: {name} is empty"
            );
            ensure!(family["type"] != "unknown", "{format}: {name} is untyped");
        }
    }
    Ok(())
}

#[test]
fn a_cli_error_without_a_daemon_is_printed_once() -> Result<()> {
    let node = StargateNode::new()?;
    let missing = nobody_has()?;
    for args in [vec!["cat", missing.as_str()], vec!["swarm", "peers"]] {
        let stderr = node.cli_err(&args)?;
        let lines: Vec<&str> = stderr.lines().collect();
        ensure!(
            lines.len() == 1 && lines[0].starts_with("Error: "),
            "stargate {}: {stderr:?}",
            args.join(" ")
        );
    }
    Ok(())
}
