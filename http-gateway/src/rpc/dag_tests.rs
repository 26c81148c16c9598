//! The dag commands through the API router on a store of their own.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use stargate_protocol::car::read_car;
use stargate_storage::{Store, StoreOptions};
use tower::ServiceExt;

use crate::{AppState, HttpOptions, api_router};

const BOUNDARY: &str = "dagtestboundary";

fn node() -> (tempfile::TempDir, AppState) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let state = AppState::new(store.clone(), Arc::new(store), HttpOptions::default());
    (dir, state)
}

/// Calls `uri` with `parts` as a multipart body (none: no body); the status and the body.
async fn call(state: &AppState, uri: &str, parts: &[&[u8]]) -> (StatusCode, Vec<u8>) {
    let mut req = Request::post(uri);
    let body = if parts.is_empty() {
        Body::empty()
    } else {
        req = req.header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        );
        let mut body = Vec::new();
        for part in parts {
            body.extend_from_slice(
                format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            );
            body.extend_from_slice(part);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        Body::from(body)
    };
    let res = api_router(state.clone())
        .oneshot(req.uri(uri).body(body).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let body = axum::body::to_bytes(res.into_body(), 16 << 20)
        .await
        .unwrap();
    (status, body.to_vec())
}

fn lines(body: &[u8]) -> Vec<Value> {
    body.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

fn blocks_stored(state: &AppState) -> u64 {
    state.store().stat().unwrap().blocks
}

#[tokio::test]
async fn put_get_stat_export_import() {
    let (_dir, state) = node();
    let (code, body) = call(
        &state,
        "/api/v0/dag/put?pin=true",
        &[br#"{"b": 1, "a": [true]}"#],
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let child = lines(&body)[0]["Cid"]["/"].as_str().unwrap().to_owned();
    let parent_doc = format!(r#"{{"child": {{"/": "{child}"}}}}"#);
    let put = |query: &'static str| {
        let state = state.clone();
        let doc = parent_doc.clone();
        async move {
            let (_, body) = call(
                &state,
                &format!("/api/v0/dag/put{query}"),
                &[doc.as_bytes()],
            )
            .await;
            lines(&body)[0]["Cid"]["/"].as_str().unwrap().to_owned()
        }
    };
    let parent = put("").await;
    // Stored as dag-json, read back as the same canonical text.
    let as_json = put("?store-codec=dag-json").await;
    assert!(
        as_json.starts_with("baguqeera"),
        "a dag-json CID: {as_json}"
    );
    let (_, body) = call(&state, &format!("/api/v0/dag/get?arg={as_json}"), &[]).await;
    assert_eq!(
        body,
        format!(r#"{{"child":{{"/":"{child}"}}}}"#).into_bytes()
    );

    let (code, body) = call(&state, &format!("/api/v0/dag/get?arg={parent}"), &[]).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        body,
        format!(r#"{{"child":{{"/":"{child}"}}}}"#).into_bytes()
    );
    let (_, body) = call(
        &state,
        &format!("/api/v0/dag/get?arg={parent}/child/a/0"),
        &[],
    )
    .await;
    assert_eq!(body, b"true");
    let (_, cbor) = call(
        &state,
        &format!("/api/v0/dag/get?arg={child}&output-codec=dag-cbor"),
        &[],
    )
    .await;
    // {"a": [true], "b": 1}: keys of one byte, in order.
    assert_eq!(cbor, [0xa2, 0x61, b'a', 0x81, 0xf5, 0x61, b'b', 0x01]);

    // dag/resolve: the last block reached and the rest of the path inside it, as Kubo says.
    for (path, cid, rem) in [
        (parent.clone(), &parent, ""),
        (format!("{parent}/child"), &child, ""),
        (format!("/ipfs/{parent}/child/a/0"), &child, "a/0"),
    ] {
        let (code, body) = call(&state, &format!("/api/v0/dag/resolve?arg={path}"), &[]).await;
        assert_eq!(code, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        assert_eq!(
            lines(&body),
            [json!({ "Cid": { "/": cid }, "RemPath": rem })],
            "{path}"
        );
    }
    let (code, _) = call(
        &state,
        &format!("/api/v0/dag/resolve?arg={parent}/nothing"),
        &[],
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);

    let (_, body) = call(&state, &format!("/api/v0/dag/stat?arg={parent}"), &[]).await;
    let stats = lines(&body);
    let last = stats.last().unwrap();
    assert_eq!(
        stats.len(),
        3,
        "a line per block, then the summary: {stats:?}"
    );
    assert_eq!(last["UniqueBlocks"], 2);
    assert_eq!(last["DagStats"][0]["NumBlocks"], 2);
    assert_eq!(last["Ratio"], 1.0);

    let (code, car) = call(&state, &format!("/api/v0/dag/export?arg={parent}"), &[]).await;
    assert_eq!(code, StatusCode::OK);
    let (roots, blocks) = read_car(&car).unwrap();
    assert_eq!(roots[0].to_string(), parent);
    let order: Vec<String> = blocks.iter().map(|b| b.cid().to_string()).collect();
    assert_eq!(order, [parent.clone(), child.clone()]);

    let (_other_dir, other) = node();
    let (code, body) = call(&other, "/api/v0/dag/import?stats=true", &[&car]).await;
    assert_eq!(code, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        lines(&body),
        [
            json!({ "Root": { "Cid": { "/": parent }, "PinErrorMsg": "" } }),
            json!({ "Stats": { "BlockCount": 2, "BlockBytesCount": blocks.iter().map(|b| b.data().len()).sum::<usize>() } }),
        ]
    );
    assert_eq!(blocks_stored(&other), 2);
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let (_dir, state) = node();
    let big = format!(r#"{{"x": "{}"}}"#, "a".repeat(1 << 20));
    for (uri, part) in [
        ("/api/v0/dag/put", &br#"{"a":"#[..]),
        ("/api/v0/dag/put", br#"{"/": "not a cid"}"#),
        ("/api/v0/dag/put?store-codec=no-such", b"{}"),
        ("/api/v0/dag/put?input-codec=dag-cbor", b"{}"),
        ("/api/v0/dag/put?hash=md5", b"{}"),
        ("/api/v0/dag/put", big.as_bytes()),
        ("/api/v0/dag/import", b"not a car"),
    ] {
        let (code, body) = call(&state, uri, &[part]).await;
        let error: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(code, StatusCode::BAD_REQUEST, "{uri}: {error}");
        assert_eq!(
            (error["Code"].clone(), error["Type"].clone()),
            (json!(1), json!("error"))
        );
    }
    for uri in [
        "/api/v0/dag/get?arg=not-a-cid",
        "/api/v0/dag/get?arg=bafkqaaa&output-codec=nope",
        "/api/v0/dag/export?arg=Qm",
    ] {
        let (code, _) = call(&state, uri, &[]).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{uri}");
    }
    assert_eq!(blocks_stored(&state), 0);
}
