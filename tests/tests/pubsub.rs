//! Pubsub through the RPC API (Kubo's `pubsub/pub|sub|ls|peers`), between Stargate daemons and
//! with a real Kubo peer on loopback: the guide's announcement JSON arrives byte-identical with
//! its publisher in `from`, both ways; a restarted Stargate (same data dir) is still heard by
//! Kubo, with sequence numbers above the ones it used before; a node whose recorded sequence
//! numbers are slightly ahead of its clock waits at start, far ahead holds publishing with a
//! clear error; pubsub switched off answers Kubo's error.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc::{Receiver, RecvTimeoutError, sync_channel};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use stargate_storage::{Store, StoreOptions};
use stargate_tests::{KuboPeer, StargateNode, wait_until};

const TOPIC: &str = "stargate-uploads";
/// The guide's announcement, as an unchanged backend publishes it.
const ANNOUNCEMENT: &str = r#"{"cid":"bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku","type":"image","metadata":{"name":"a.png"}}"#;
/// Longest wait for a subscription to be seen or a message to arrive.
const WAIT: Duration = Duration::from_secs(20);
/// Longest any single RPC answer may take.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

fn multibase(bytes: &[u8]) -> String {
    format!("u{}", URL_SAFE_NO_PAD.encode(bytes))
}

fn unmultibase(text: &str) -> Result<Vec<u8>> {
    let b64 = text
        .strip_prefix('u')
        .with_context(|| format!("{text:?} is not base64url multibase"))?;
    Ok(URL_SAFE_NO_PAD.decode(b64)?)
}

fn http() -> Result<reqwest::blocking::Client> {
    Ok(reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(ANSWER_TIMEOUT)
        .build()?)
}

fn started() -> Result<StargateNode> {
    let mut node = StargateNode::new()?;
    node.start()?;
    Ok(node)
}

fn peer_id(node: &StargateNode) -> Result<String> {
    let identity: Value = serde_json::from_str(&node.cli_ok(&["id"])?)?;
    Ok(identity["ID"].as_str().context("no ID")?.to_owned())
}

fn tcp_addr(node: &StargateNode) -> Result<String> {
    let identity: Value = serde_json::from_str(&node.cli_ok(&["id"])?)?;
    identity["Addresses"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .find(|a| a.contains("/tcp/"))
        })
        .map(str::to_owned)
        .context("no TCP address")
}

/// `pubsub/pub` of `data` on `topic`: the status and the body.
fn publish(node: &StargateNode, topic: &str, data: &[u8]) -> Result<(u16, String)> {
    let part = reqwest::blocking::multipart::Part::bytes(data.to_vec()).file_name("data");
    let res = http()?
        .post(format!(
            "{}/api/v0/pubsub/pub?arg={}",
            node.api_url(),
            multibase(topic.as_bytes())
        ))
        .multipart(reqwest::blocking::multipart::Form::new().part("file", part))
        .send()?;
    Ok((res.status().as_u16(), res.text()?))
}

fn publish_ok(node: &StargateNode, topic: &str, data: &[u8]) -> Result<()> {
    let (status, body) = publish(node, topic, data)?;
    ensure!(
        status == 200 && body.is_empty(),
        "pubsub/pub: {status} {body}"
    );
    Ok(())
}

/// `pubsub/<command>` answering `{"Strings": [...]}`.
fn strings(node: &StargateNode, command: &str, topic: Option<&str>) -> Result<Vec<String>> {
    let arg = topic.map_or(String::new(), |t| {
        format!("?arg={}", multibase(t.as_bytes()))
    });
    let res = http()?
        .post(format!("{}/api/v0/pubsub/{command}{arg}", node.api_url()))
        .send()?;
    ensure!(res.status() == 200, "pubsub/{command}: {}", res.status());
    let body: Value = res.json()?;
    serde_json::from_value(body["Strings"].clone())
        .with_context(|| format!("pubsub/{command}: {body}"))
}

/// A `pubsub/sub` stream read on its own thread, line by line, over a plain HTTP/1.0
/// connection (its body ends with the connection) that dropping it closes.
struct Subscription {
    lines: Receiver<Result<Value>>,
    connection: TcpStream,
}

impl Subscription {
    /// Subscribes and waits until the node lists the topic.
    fn start(node: &StargateNode, topic: &str) -> Result<Self> {
        let addr = node.api_url().trim_start_matches("http://").to_owned();
        let mut connection = TcpStream::connect(&addr)?;
        write!(
            connection,
            "POST /api/v0/pubsub/sub?arg={} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n",
            multibase(topic.as_bytes())
        )?;
        let mut reader = BufReader::new(connection.try_clone()?);
        let mut status = String::new();
        reader.read_line(&mut status)?;
        ensure!(status.contains(" 200 "), "pubsub/sub: {status}");
        // The rest of the head.
        let mut header = String::new();
        while reader.read_line(&mut header)? > 2 {
            header.clear();
        }
        let (tx, lines) = sync_channel(64);
        thread::spawn(move || {
            for line in reader.lines() {
                let parsed = line
                    .map_err(anyhow::Error::from)
                    .and_then(|l| serde_json::from_str(&l).map_err(anyhow::Error::from));
                if tx.send(parsed).is_err() {
                    break;
                }
            }
        });
        let listed = wait_until(WAIT, || {
            strings(node, "ls", None)
                .is_ok_and(|t| t.iter().any(|t| t == &multibase(topic.as_bytes())))
        });
        listed.context("the subscription is not listed by pubsub/ls")?;
        Ok(Self { lines, connection })
    }

    /// The next message line.
    fn next(&self) -> Result<Value> {
        match self.lines.recv_timeout(WAIT) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => bail!("no pubsub message within {WAIT:?}"),
            Err(RecvTimeoutError::Disconnected) => bail!("the pubsub/sub stream ended"),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // The client goes away; the reading thread ends with the connection.
        let _ = self.connection.shutdown(Shutdown::Both);
    }
}

/// A line of `pubsub sub` checked against Kubo's shape: the publisher, the data bytes and the
/// sequence number.
fn decode_line(line: &Value, topic: &str) -> Result<(String, Vec<u8>, u64)> {
    let object = line.as_object().context("a line is not an object")?;
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    ensure!(
        keys == ["data", "from", "seqno", "topicIDs"],
        "line: {line}"
    );
    ensure!(
        line["topicIDs"] == serde_json::json!([multibase(topic.as_bytes())]),
        "line: {line}"
    );
    let seqno = unmultibase(line["seqno"].as_str().context("seqno")?)?;
    let seqno: [u8; 8] = seqno
        .try_into()
        .map_err(|_| anyhow::anyhow!("seqno: {line}"))?;
    Ok((
        line["from"].as_str().context("from")?.to_owned(),
        unmultibase(line["data"].as_str().context("data")?)?,
        u64::from_be_bytes(seqno),
    ))
}

/// The value of one series of `node`'s `/metrics` (0 when absent).
fn metric(node: &StargateNode, series: &str) -> Result<u64> {
    let text = http()?
        .get(format!("{}/metrics", node.gateway_url()))
        .send()?
        .text()?;
    let prefix = format!("{series} ");
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|n| n.trim().parse())
        .transpose()?
        .unwrap_or(0))
}

/// Waits until `node` sees `peer` subscribed to `topic`.
fn wait_for_peer(node: &StargateNode, topic: &str, peer: &str) -> Result<()> {
    wait_until(WAIT, || {
        strings(node, "peers", Some(topic)).is_ok_and(|p| p.iter().any(|p| p == peer))
    })
    .with_context(|| format!("{peer} never showed on {topic}"))
}

/// A daemon that does not mirror: the topic is a plain one, whatever is published on it
/// reaches subscribers unvalidated, and the node is on no topic of its own.
fn started_without_mirror() -> Result<StargateNode> {
    let mut node = StargateNode::new()?;
    std::fs::write(
        node.data_dir().join("config.toml"),
        "[ipfs]\nmirror_enabled = false\n",
    )?;
    node.start()?;
    Ok(node)
}

#[test]
fn stargate_daemons_publish_and_subscribe_through_the_rpc() -> Result<()> {
    let subscriber = started_without_mirror()?;
    let publisher = started_without_mirror()?;
    publisher.cli_ok(&["swarm", "connect", &tcp_addr(&subscriber)?])?;
    let sub = Subscription::start(&subscriber, TOPIC)?;
    let publisher_id = peer_id(&publisher)?;
    let subscriber_id = peer_id(&subscriber)?;
    wait_for_peer(&publisher, TOPIC, &subscriber_id)?;
    ensure!(strings(&publisher, "peers", None)? == std::slice::from_ref(&subscriber_id));

    publish_ok(&publisher, TOPIC, ANNOUNCEMENT.as_bytes())?;
    let (from, data, first) = decode_line(&sub.next()?, TOPIC)?;
    ensure!(from == publisher_id && data == ANNOUNCEMENT.as_bytes());
    publish_ok(&publisher, TOPIC, b"second")?;
    let (_, data, second) = decode_line(&sub.next()?, TOPIC)?;
    ensure!(data == b"second" && second > first, "{first} then {second}");

    // The subscriber's own publishes reach its own subscription too, as in Kubo.
    publish_ok(&subscriber, TOPIC, b"own")?;
    let (from, data, _) = decode_line(&sub.next()?, TOPIC)?;
    ensure!(from == subscriber_id && data == b"own");

    // The metrics count what came and went; the gauges follow within a tick.
    ensure!(
        metric(
            &subscriber,
            "stargate_pubsub_messages_received_total{verdict=\"unvalidated\"}"
        )? == 2
    );
    ensure!(
        metric(
            &publisher,
            "stargate_pubsub_messages_published_total{outcome=\"sent\"}"
        )? == 2
    );
    // A mesh needs both ends on the topic.
    let _publisher_sub = Subscription::start(&publisher, TOPIC)?;
    wait_until(WAIT, || {
        metric(&subscriber, "stargate_pubsub_topics").is_ok_and(|n| n == 1)
            && metric(&subscriber, "stargate_pubsub_mesh_peers").is_ok_and(|n| n == 1)
    })
    .context("the pubsub gauges never showed the topic and its mesh peer")?;

    // Once the client goes away the node leaves the topic.
    drop(sub);
    wait_until(WAIT, || {
        strings(&subscriber, "ls", None).is_ok_and(|t| t.is_empty())
    })
    .context("the topic stayed subscribed after its client left")?;

    // Bad input: a topic that is not base64url multibase, no data part; nothing published.
    let res = http()?
        .post(format!(
            "{}/api/v0/pubsub/pub?arg={TOPIC}",
            publisher.api_url()
        ))
        .send()?;
    ensure!(res.status() == 400, "plain topic: {}", res.status());
    let res = http()?
        .post(format!("{}/api/v0/pubsub/sub", publisher.api_url()))
        .send()?;
    ensure!(res.status() == 400, "no topic: {}", res.status());
    Ok(())
}

/// A Kubo peer and a Stargate daemon connected, both on the topic.
fn kubo_and_stargate() -> Result<(KuboPeer, StargateNode, stargate_tests::SubscriptionId)> {
    let mut kubo = KuboPeer::start()?;
    let node = started()?;
    node.cli_ok(&["swarm", "connect", &kubo.tcp_multiaddr()?])?;
    let kubo_sub = kubo.pubsub_subscribe(TOPIC)?;
    Ok((kubo, node, kubo_sub))
}

#[test]
fn kubo_and_stargate_exchange_announcements_both_ways() -> Result<()> {
    let (mut kubo, node, kubo_sub) = kubo_and_stargate()?;
    let sub = Subscription::start(&node, TOPIC)?;
    let node_id = peer_id(&node)?;
    wait_until(WAIT, || {
        kubo.pubsub_peers(TOPIC)
            .is_ok_and(|p| p.iter().any(|p| p == &node_id))
    })
    .context("Kubo never saw the node on the topic")?;

    // Kubo publishes the guide's JSON; the node's subscriber gets exactly it, from Kubo.
    kubo.pubsub_publish(TOPIC, ANNOUNCEMENT.as_bytes())?;
    let (from, data, _) = decode_line(&sub.next()?, TOPIC)?;
    ensure!(
        from == kubo.peer_id(),
        "from {from}, Kubo is {}",
        kubo.peer_id()
    );
    ensure!(
        data == ANNOUNCEMENT.as_bytes(),
        "data {:?}",
        String::from_utf8_lossy(&data)
    );

    // The node publishes; Kubo's subscriber gets exactly that, from the node (after Kubo's
    // own message).
    let own = kubo
        .pubsub_next(kubo_sub, WAIT)?
        .context("Kubo's own message")?;
    ensure!(own.from == kubo.peer_id(), "Kubo's own message: {own:?}");
    wait_for_peer(&node, TOPIC, kubo.peer_id())?;
    publish_ok(&node, TOPIC, ANNOUNCEMENT.as_bytes())?;
    let got = kubo
        .pubsub_next(kubo_sub, WAIT)?
        .context("Kubo received nothing")?;
    ensure!(
        got.from == node_id && got.data == ANNOUNCEMENT.as_bytes() && got.topic == TOPIC,
        "Kubo received {got:?}"
    );
    Ok(())
}

#[test]
fn kubo_still_hears_a_restarted_stargate_with_higher_sequence_numbers() -> Result<()> {
    let (mut kubo, mut node, kubo_sub) = kubo_and_stargate()?;
    let node_id = peer_id(&node)?;
    let seqno_from_kubo = |kubo: &mut KuboPeer, expected: &[u8]| -> Result<u64> {
        let got = kubo
            .pubsub_next(kubo_sub, WAIT)?
            .context("Kubo received nothing")?;
        ensure!(
            got.from == node_id && got.data == expected,
            "Kubo received {got:?}"
        );
        let hex = got.seqno_hex.context("no seqno")?;
        Ok(u64::from_str_radix(&hex, 16)?)
    };

    wait_for_peer(&node, TOPIC, kubo.peer_id())?;
    publish_ok(&node, TOPIC, b"before the restart")?;
    let before = seqno_from_kubo(&mut kubo, b"before the restart")?;

    node.stop()?;
    let recorded = Store::open(node.data_dir(), StoreOptions::default())?.gossip_last_seqno()?;
    ensure!(
        recorded == Some(before),
        "recorded {recorded:?}, used {before}"
    );
    node.start()?;
    node.cli_ok(&["swarm", "connect", &kubo.tcp_multiaddr()?])?;
    ensure!(peer_id(&node)? == node_id);
    wait_for_peer(&node, TOPIC, kubo.peer_id())?;
    publish_ok(&node, TOPIC, b"after the restart")?;
    let after = seqno_from_kubo(&mut kubo, b"after the restart")?;
    ensure!(after > before, "{after} is not above {before}");
    Ok(())
}

#[test]
fn publishing_is_held_while_the_clock_is_behind_the_recorded_sequence_number() -> Result<()> {
    let mut node = StargateNode::new()?;
    // As if the node had published up to about the year 2500 and the clock then stepped back.
    let ahead = u64::MAX / 2;
    Store::open(node.data_dir(), StoreOptions::default())?.gossip_record_seqno(ahead)?;
    node.start()?;
    let (status, body) = publish(&node, TOPIC, b"x")?;
    ensure!(status == 500, "pubsub/pub: {status} {body}");
    let error: Value = serde_json::from_str(&body)?;
    let message = error["Message"].as_str().unwrap_or_default();
    ensure!(
        message.contains("publishing is held") && message.contains(&ahead.to_string()),
        "{error}"
    );
    ensure!(
        node.log().contains("publishing is held until a restart"),
        "no log line: {}",
        node.log()
    );
    // Receiving still works.
    let _sub = Subscription::start(&node, TOPIC)?;
    Ok(())
}

#[test]
fn a_clock_slightly_behind_the_recorded_sequence_number_is_waited_for() -> Result<()> {
    let mut node = StargateNode::new()?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let ahead = u64::try_from((now + Duration::from_millis(500)).as_nanos())?;
    Store::open(node.data_dir(), StoreOptions::default())?.gossip_record_seqno(ahead)?;
    node.start()?;
    ensure!(
        node.log().contains("waiting for it"),
        "no log line: {}",
        node.log()
    );
    let sub = Subscription::start(&node, TOPIC)?;
    publish_ok(&node, TOPIC, b"x")?;
    let (_, data, seqno) = decode_line(&sub.next()?, TOPIC)?;
    ensure!(
        data == b"x" && seqno > ahead,
        "{seqno} is not above {ahead}"
    );
    Ok(())
}

#[test]
fn pubsub_switched_off_answers_kubos_error() -> Result<()> {
    let mut node = StargateNode::new()?;
    std::fs::write(
        node.data_dir().join("config.toml"),
        "[pubsub]\nenabled = false\n",
    )?;
    node.start()?;
    let (status, body) = publish(&node, TOPIC, b"x")?;
    ensure!(status == 500, "pubsub/pub: {status} {body}");
    let res = http()?
        .post(format!("{}/api/v0/pubsub/ls", node.api_url()))
        .send()?;
    ensure!(res.status() == 500);
    for body in [body, res.text()?] {
        let error: Value = serde_json::from_str(&body)?;
        ensure!(
            error["Message"]
                .as_str()
                .is_some_and(|m| m.starts_with("experimental pubsub feature not enabled")),
            "{error}"
        );
    }
    Ok(())
}
