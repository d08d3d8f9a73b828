//! `sluice mock-cspr-cloud`: a stand-in for CSPR.cloud's streaming API.
//!
//! `GET /contract-events?contract_package_hash=…` (WebSocket) checks the `authorization` header,
//! then sends one JSON message per contract event in CSPR.cloud's shape, a `Ping` text message
//! every 100 events and every second while idle. With a `Persistent-Session` header the stream
//! resumes where that session left off, redelivering the last event (as the service may).

use super::chain::{push_hash, push_timestamp};
use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the mock stream behaves.
#[derive(Debug, Clone, clap::Args)]
pub struct CloudOptions {
    /// Contract events to send in all.
    #[arg(long, default_value_t = 1000)]
    pub count: u32,
    /// The `authorization` header clients must send.
    #[arg(long, default_value = "mock-access-key")]
    pub access_key: String,
    /// Close each connection after sending this many events.
    #[arg(long)]
    pub drop_after: Option<u32>,
    /// Send every Nth event twice.
    #[arg(long)]
    pub duplicate_every: Option<u32>,
}

struct Cloud {
    options: CloudOptions,
    /// Next event per `Persistent-Session` (`""` without one).
    sessions: Mutex<HashMap<String, u32>>,
}

/// The mock's routes.
pub fn router(options: CloudOptions) -> Router {
    let cloud = Arc::new(Cloud { options, sessions: Mutex::default() });
    Router::new().route("/contract-events", get(contract_events)).with_state(cloud)
}

async fn contract_events(
    State(cloud): State<Arc<Cloud>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(cloud.options.access_key.as_str()) {
        return (StatusCode::UNAUTHORIZED, "invalid access key").into_response();
    }
    let Some(hashes) = query.get("contract_package_hash").or(query.get("contract_hash")) else {
        return (StatusCode::BAD_REQUEST, "contract_package_hash or contract_hash is required").into_response();
    };
    let package = hashes.split(',').next().unwrap_or_default().to_owned();
    let session = headers.get("persistent-session").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    upgrade.on_upgrade(move |socket| stream(cloud, socket, package, session))
}

/// Send events from where the session stands until the client leaves or `drop_after`.
async fn stream(cloud: Arc<Cloud>, mut socket: WebSocket, package: String, session: String) {
    let options = &cloud.options;
    let next = |cloud: &Cloud| cloud.sessions.lock().expect("mock lock").get(&session).copied().unwrap_or(0);
    // Redeliver the last event sent before the previous connection ended.
    let mut index = next(&cloud).saturating_sub(1);
    let mut sent = 0;
    while index < options.count {
        if options.drop_after.is_some_and(|n| sent >= n) {
            return;
        }
        let copies = if options.duplicate_every.is_some_and(|n| n > 0 && index % n == n - 1) { 2 } else { 1 };
        for _ in 0..copies {
            if socket.send(Message::Text(message(&package, index).into())).await.is_err() {
                return;
            }
        }
        index += 1;
        sent += 1;
        cloud.sessions.lock().expect("mock lock").insert(session.clone(), index);
        if index % 100 == 0 && socket.send(Message::Text("Ping".into())).await.is_err() {
            return;
        }
    }
    while socket.send(Message::Text("Ping".into())).await.is_ok() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Event `index`: a CEP-18 `Transfer`, three per deploy.
fn message(package: &str, index: u32) -> String {
    let index = u64::from(index);
    let (mut contract, mut deploy, mut from, mut timestamp) =
        (String::new(), String::new(), String::new(), String::new());
    push_hash(&mut contract, 0, 0xc0);
    push_hash(&mut deploy, index / 3, 0xd0);
    push_hash(&mut from, index % 7, 0xa0);
    push_timestamp(&mut timestamp, index / 3);
    serde_json::json!({
        "action": "emitted",
        "data": {
            "contract_package_hash": package,
            "contract_hash": contract,
            "name": "Transfer",
            "data": {"sender": format!("account-hash-{from}"), "recipient": format!("account-hash-{deploy}"), "amount": (index * 1000).to_string()},
        },
        "extra": {"deploy_hash": deploy, "event_id": index, "transform_id": 100 + index % 3},
        "timestamp": timestamp,
    })
    .to_string()
}

/// Serve the mock on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, options: CloudOptions) -> std::io::Result<()> {
    axum::serve(listener, router(options)).await
}
