use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::Request;
use futures::future::BoxFuture;
use prometheus_client::registry::Registry;
use stargate_protocol::Cid;
use stargate_protocol::mirror::Keypair;
use stargate_protocol::stego::signature::CallbackSecret;
use stargate_storage::{StegoAdmission, StegoUpload};
use tower::ServiceExt;

use super::*;
use crate::stego::{Stego, StegoError};

const SECRET: &str = "callback-secret";
const TOKEN: &str = "ingest-token";
const IMAGE: &str = "bafybeihbuy7yccquml6u3ojkkcaxggp7mre22ttufcg6mdj3sgvnbjv4i4";
const PAYLOAD: &str = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";

#[derive(Default)]
struct Fake {
    calls: Mutex<Vec<Callback>>,
}

impl Stego for Fake {
    fn approve(&self, callback: Callback) -> BoxFuture<'_, Result<(), StegoError>> {
        self.calls.lock().unwrap().push(callback);
        Box::pin(async { Ok(()) })
    }
    fn reject(&self, callback: Callback) -> BoxFuture<'_, Result<(), StegoError>> {
        self.calls.lock().unwrap().push(callback);
        Box::pin(async { Ok(()) })
    }
    fn status(&self) -> BoxFuture<'_, Result<Value, StegoError>> {
        Box::pin(async { Ok(json!({"waiting": 1})) })
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    store: Store,
    fake: Arc<Fake>,
    auth: StegoAuth,
    router: Router,
}

fn setup(secret: Option<&str>, token: Option<&str>, stego: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store =
        stargate_storage::Store::open(dir.path(), stargate_storage::StoreOptions::default())
            .unwrap();
    let fake = Arc::new(Fake::default());
    let mut state = AppState::new(
        store.clone(),
        Arc::new(store.clone()),
        crate::HttpOptions::default(),
    );
    if stego {
        state = state.with_stego(fake.clone());
    }
    let auth = StegoAuth::register(&mut Registry::default(), secret, token);
    let router = stego_router(state, auth.clone());
    Setup {
        _dir: dir,
        store,
        fake,
        auth,
        router,
    }
}

async fn send(router: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn body(verdict: &str) -> String {
    format!(
        r#"{{"image_cid":"{IMAGE}","payload_cid":"{PAYLOAD}","verdict":"{verdict}","metadata":{{"wish":"w-1"}}}}"#
    )
}

fn signed(timestamp: u64, signed_body: &str, sent_body: &str) -> Request<Body> {
    let secret = CallbackSecret::new(SECRET.as_bytes()).unwrap();
    let ts = timestamp.to_string();
    Request::post("/api/v1/stego/callback")
        .header(TIMESTAMP_HEADER, &ts)
        .header(SIGNATURE_HEADER, secret.sign(&ts, signed_body.as_bytes()))
        .body(Body::from(sent_body.to_owned()))
        .unwrap()
}

#[tokio::test]
async fn a_signed_approval_is_accepted_once_and_a_rejection_recorded() {
    let s = setup(Some(SECRET), Some(TOKEN), true);
    let now = unix_now();
    let approved = body("approved");
    let (code, answer) = send(&s.router, signed(now, &approved, &approved)).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["status"], "approved");
    assert_eq!(answer["id"].as_str().unwrap().len(), 64);
    let (code, _) = send(&s.router, signed(now, &approved, &approved)).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let rejected = body("rejected");
    let (code, answer) = send(&s.router, signed(now, &rejected, &rejected)).await;
    assert_eq!(code, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], "rejected");
    let calls = s.fake.calls.lock().unwrap();
    let verdicts: Vec<Verdict> = calls.iter().map(|c| c.verdict).collect();
    assert_eq!(verdicts, [Verdict::Approved, Verdict::Rejected]);
    assert_eq!(calls[0].metadata["wish"], "w-1");
    assert_eq!(s.auth.refused_callbacks().get("replayed"), Some(&1));
}

#[tokio::test]
async fn every_bad_callback_is_refused_counted_and_changes_nothing() {
    let s = setup(Some(SECRET), Some(TOKEN), true);
    let now = unix_now();
    let good = body("approved");
    let other = CallbackSecret::new(b"other").unwrap();
    let unsigned = Request::post("/api/v1/stego/callback")
        .body(Body::from(good.clone()))
        .unwrap();
    let wrong = Request::post("/api/v1/stego/callback")
        .header(TIMESTAMP_HEADER, now.to_string())
        .header(
            SIGNATURE_HEADER,
            other.sign(&now.to_string(), good.as_bytes()),
        )
        .body(Body::from(good.clone()))
        .unwrap();
    let malformed = r#"{"image_cid":"nope","payload_cid":"x","verdict":"approved"}"#;
    let cases = [
        (unsigned, StatusCode::UNAUTHORIZED, "missing_signature"),
        (wrong, StatusCode::UNAUTHORIZED, "bad_signature"),
        (
            signed(now - 301, &good, &good),
            StatusCode::UNAUTHORIZED,
            "stale",
        ),
        (
            signed(now, &good, &good.replace("w-1", "w-2")),
            StatusCode::UNAUTHORIZED,
            "bad_signature",
        ),
        (
            signed(now, malformed, malformed),
            StatusCode::BAD_REQUEST,
            "bad_image_cid",
        ),
        (
            signed(now, "{", "{"),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            signed(now, "", &" ".repeat(MAX_STEGO_CALLBACK_SIZE + 1)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
    ];
    for (req, status, reason) in cases {
        let (code, answer) = send(&s.router, req).await;
        assert_eq!(code, status, "{reason}: {answer}");
        assert!(answer["error"].is_string(), "{reason}: {answer}");
        assert!(
            s.auth.refused_callbacks().contains_key(reason),
            "{reason} not counted"
        );
    }
    assert!(s.fake.calls.lock().unwrap().is_empty());
    let refused = s.auth.refused_callbacks();
    assert_eq!(refused.get("bad_signature"), Some(&2));
    assert_eq!(refused.values().sum::<u64>(), 7);
}

#[tokio::test]
async fn callbacks_without_a_secret_or_stego_are_unavailable() {
    let now = unix_now();
    let good = body("approved");
    let s = setup(None, Some(TOKEN), true);
    let (code, answer) = send(&s.router, signed(now, &good, &good)).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("STARGATE_STEGO_CALLBACK_SECRET")
    );
    let s = setup(Some(SECRET), Some(TOKEN), false);
    let (code, _) = send(&s.router, signed(now, &good, &good)).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
}

fn make_records(store: &Store, n: u8) {
    let publisher = Keypair::ed25519_from_bytes([3; 32])
        .unwrap()
        .public()
        .to_peer_id();
    for i in 0..n {
        let cid = |x: u8| -> Cid {
            let block = stargate_protocol::Block::encode(
                stargate_protocol::Version::V1,
                stargate_protocol::Codec::Raw,
                stargate_protocol::HashCode::Sha2_256,
                vec![i, x],
            )
            .unwrap();
            *block.cid()
        };
        let upload = StegoUpload::new(cid(0), cid(1), publisher, r#"{"n":1}"#.to_owned(), 0);
        store.stego_record(&upload, StegoAdmission::Stored).unwrap();
        store.ingest_make(&upload.id(), 5).unwrap();
    }
}

fn get(uri: &str, token: Option<&str>) -> Request<Body> {
    let mut req = Request::get(uri);
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    req.body(Body::empty()).unwrap()
}

fn ack_request(id: u64, token: &str) -> Request<Body> {
    Request::post(format!("/api/v1/ingestions/{id}/ack"))
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn the_pull_api_pages_acks_and_needs_the_token() {
    let s = setup(Some(SECRET), Some(TOKEN), false);
    make_records(&s.store, 5);
    let (code, page) = send(&s.router, get("/api/v1/ingestions?limit=2", Some(TOKEN))).await;
    assert_eq!(code, StatusCode::OK, "{page}");
    assert_eq!(page["next"], 2);
    let first = &page["records"][0];
    assert_eq!(
        (first["id"].as_u64(), first["consumed"].as_bool()),
        (Some(1), Some(false))
    );
    assert_eq!(first["metadata"]["n"], 1);
    assert_eq!(first["created_ms"], 5);
    let (_, page) = send(&s.router, get("/api/v1/ingestions?after=2", Some(TOKEN))).await;
    assert_eq!(page["records"].as_array().unwrap().len(), 3);
    assert_eq!(page["next"], 5);
    let (_, page) = send(&s.router, get("/api/v1/ingestions?after=5", Some(TOKEN))).await;
    assert_eq!(
        (page["records"].as_array().unwrap().len(), &page["next"]),
        (0, &json!(5))
    );

    let (code, _) = send(&s.router, ack_request(1, TOKEN)).await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = send(&s.router, ack_request(99, TOKEN)).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (_, page) = send(
        &s.router,
        get("/api/v1/ingestions?pending=true", Some(TOKEN)),
    )
    .await;
    assert_eq!(page["records"][0]["id"], 2);

    for (req, status) in [
        (get("/api/v1/ingestions", None), StatusCode::UNAUTHORIZED),
        (
            get("/api/v1/ingestions", Some("wrong")),
            StatusCode::UNAUTHORIZED,
        ),
        (ack_request(2, "wrong"), StatusCode::UNAUTHORIZED),
        (
            get("/api/v1/ingestions?limit=1001", Some(TOKEN)),
            StatusCode::BAD_REQUEST,
        ),
        (
            get("/api/v1/ingestions?limit=0", Some(TOKEN)),
            StatusCode::BAD_REQUEST,
        ),
        (
            get("/api/v1/ingestions?afterr=1", Some(TOKEN)),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (code, answer) = send(&s.router, req).await;
        assert_eq!(code, status, "{answer}");
    }
    let (_, page) = send(
        &s.router,
        get("/api/v1/ingestions?pending=true", Some(TOKEN)),
    )
    .await;
    assert_eq!(page["records"][0]["id"], 2, "a refused ack changed nothing");

    let ls = Request::post("/api/v0/ingest/ls?after=3")
        .body(Body::empty())
        .unwrap();
    let (code, page) = send(&s.router, ls).await;
    assert_eq!((code, page["next"].as_u64()), (StatusCode::OK, Some(5)));
}

#[tokio::test]
async fn without_a_token_the_pull_api_is_unavailable_never_open() {
    let s = setup(Some(SECRET), None, false);
    make_records(&s.store, 1);
    let (code, answer) = send(&s.router, get("/api/v1/ingestions", None)).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("STARGATE_INGEST_TOKEN")
    );
    let (code, _) = send(&s.router, ack_request(1, "")).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn the_gateways_router_takes_the_callback_and_nothing_else() {
    let s = setup(Some(SECRET), Some(TOKEN), true);
    let state = AppState::new(
        s.store.clone(),
        Arc::new(s.store.clone()),
        crate::HttpOptions::default(),
    )
    .with_stego(s.fake.clone());
    let router = stego_callback_router(state, s.auth.clone());
    let approved = body("approved");
    let (code, _) = send(&router, signed(unix_now(), &approved, &approved)).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    let res = router
        .oneshot(get("/api/v1/ingestions", Some(TOKEN)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}
