//! `sluice mock-f1r3fly`: a stand-in for an F1r3fly node's `/ws/events`.
//!
//! Every connection gets `{"event":"started","schema-version":1}`, then the three events the
//! node buffered at start-up (replayed on every connection, as the node does), then block events
//! (`block-created`, `block-added`, `block-finalised` per block) from where the live stream stands:
//! events produced while nobody listens are not kept, as on the real node.

use super::chain::push_hash;
use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the mock node behaves.
#[derive(Debug, Clone, clap::Args)]
pub struct F1r3flyOptions {
    /// Blocks to produce (three events each).
    #[arg(long, default_value_t = 100)]
    pub blocks: u32,
    /// Close each connection after this many block events.
    #[arg(long)]
    pub drop_after: Option<u32>,
}

struct Node {
    options: F1r3flyOptions,
    /// The next block event of the live stream.
    next: Mutex<u32>,
}

const BLOCK_EVENTS: [&str; 3] = ["block-created", "block-added", "block-finalised"];

/// The mock's routes.
pub fn router(options: F1r3flyOptions) -> Router {
    Router::new().route("/ws/events", get(events)).with_state(Arc::new(Node { options, next: Mutex::new(0) }))
}

async fn events(State(node): State<Arc<Node>>, upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(move |socket| stream(node, socket))
}

async fn stream(node: Arc<Node>, mut socket: WebSocket) {
    let mut genesis = String::new();
    push_hash(&mut genesis, 0, 0xf0);
    let startup = [
        json!({"event": "started", "schema-version": 1}),
        envelope("node-started", json!({"address": "rnode://f1r3fly@127.0.0.1?protocol=40400&discovery=40404"})),
        envelope("approved-block-received", json!({"block-hash": genesis})),
        envelope("entered-running-state", json!({"block-hash": genesis})),
    ];
    for message in startup {
        if socket.send(Message::Text(message.to_string().into())).await.is_err() {
            return;
        }
    }
    let total = node.options.blocks * BLOCK_EVENTS.len() as u32;
    let mut sent = 0;
    loop {
        let index = {
            let mut next = node.next.lock().expect("mock lock");
            if *next >= total || node.options.drop_after.is_some_and(|n| sent >= n) {
                break;
            }
            *next += 1;
            *next - 1
        };
        if socket.send(Message::Text(block_event(index).to_string().into())).await.is_err() {
            return;
        }
        sent += 1;
    }
    if node.options.drop_after.is_some_and(|n| sent >= n) {
        return;
    }
    while socket.send(Message::Ping(Default::default())).await.is_ok() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn envelope(event: &str, payload: Value) -> Value {
    json!({"event": event, "schema-version": 1, "payload": payload})
}

/// Block event `index`: block `index / 3`, in the order created, added, finalised.
fn block_event(index: u32) -> Value {
    let block = u64::from(index / 3);
    let (mut hash, mut parent, mut creator, mut deploy) = (String::new(), String::new(), String::new(), String::new());
    push_hash(&mut hash, block, 0xf1);
    push_hash(&mut parent, block.wrapping_sub(1), 0xf1);
    push_hash(&mut creator, block % 4, 0xf2);
    push_hash(&mut deploy, block, 0xf3);
    envelope(
        BLOCK_EVENTS[index as usize % 3],
        json!({
            "block-hash": hash,
            "block-number": block + 1,
            "timestamp": 1_700_000_000_000u64 + block * 1000,
            "parent-hashes": [parent],
            "justification-hashes": [[creator.clone(), parent]],
            "deploys": [{"id": deploy, "cost": 100 + block, "deployer": creator.clone(), "errored": false}],
            "creator": creator,
            "seq-num": block,
        }),
    )
}

/// Serve the mock on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, options: F1r3flyOptions) -> std::io::Result<()> {
    axum::serve(listener, router(options)).await
}
