//! `GET /ws/events`: the event log over a WebSocket. The server greets with
//! `{"event":"started","schema-version":1}`; the client sends JSON messages:
//!
//! - `{"action":"subscribe", "from": N, "types": "…", "contract": "…", "package": "…",
//!   "name": "…", "transaction": "…", "filter": "…"}` (every key optional; the same filters as
//!   SSE): replaces the current subscription; events then arrive as
//!   `{"event": <type>, "schema-version": 1, "seq": N, "payload": <the event's JSON>}`,
//!   stored ones from `from` first, then live ones, none missing or repeated at the seam;
//! - `{"action":"unsubscribe"}`, `{"action":"ping"}` (answered `{"event":"pong"}`).
//!
//! Mistakes are answered `{"event":"error", "payload": {"code", "message"}}` and the connection
//! stays open; a message over 64 KiB ends it. A client too slow to read its events gets the code `too_slow`, then a close. WebSocket pings are answered, and the server pings every 30 s.

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::filter::StreamParams;
use super::subscription::{Next, Subscription, subscribe};
use crate::store::StoredEvent;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

/// The version of the messages' shape.
const SCHEMA_VERSION: u32 = 1;

/// The largest message a client may send (a subscribe message takes well under 1 KiB); a
/// larger one ends the session, rather than being buffered (axum's default is 64 MiB).
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

/// What a client may send.
#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
enum Request {
    Subscribe(StreamParams),
    Unsubscribe,
    Ping,
}

/// Upgrade to a WebSocket session.
#[utoipa::path(get, path = "/ws/events", tag = "streams",
    params(
        ("Upgrade" = String, Header, description = "`websocket`", pattern = "^[Ww][Ee][Bb][Ss][Oo][Cc][Kk][Ee][Tt]$"),
        ("Connection" = String, Header, description = "`Upgrade`", pattern = "(?i)upgrade"),
        ("Sec-WebSocket-Version" = String, Header, description = "`13`", pattern = "^13$"),
        ("Sec-WebSocket-Key" = String, Header, description = "The client's WebSocket key")),
    responses(
        (status = 101, description = "A WebSocket session: subscribe/unsubscribe/ping messages, `{event, schema-version, seq, payload}` envelopes"),
        (status = 400, description = "Not a WebSocket upgrade request", body = ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.map_err(|rejection| ApiError::bad_request("not_a_websocket", rejection.body_text()))?;
    let upgrade = upgrade.max_message_size(MAX_CLIENT_MESSAGE).max_frame_size(MAX_CLIENT_MESSAGE);
    Ok(upgrade.on_upgrade(move |socket| session(state, socket)))
}

async fn session(state: AppState, mut socket: WebSocket) {
    if send(&mut socket, notice("started", None)).await.is_err() {
        return;
    }
    let mut events: Option<Subscription> = None;
    let mut shutdown = state.shutdown.clone();
    let mut keepalive = tokio::time::interval(Duration::from_secs(30));
    loop {
        let sent = tokio::select! {
            message = socket.recv() => match message {
                Some(Ok(Message::Text(text))) => {
                    let answer = answer(&state, &text, &mut events).await;
                    send(&mut socket, answer).await
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                // Pings are answered by the WebSocket layer; nothing else is expected.
                Some(Ok(_)) => Ok(()),
            },
            next = next(&mut events) => match next {
                Some(Next::Event(published)) => send(&mut socket, envelope(&published.event)).await,
                Some(Next::Disconnected(reason)) => {
                    let payload = json!({"code": "too_slow", "message": reason});
                    _ = send(&mut socket, notice("error", Some(payload))).await;
                    _ = socket.send(Message::Close(None)).await;
                    return;
                }
                None => {
                    events = None;
                    Ok(())
                }
            },
            _ = keepalive.tick() => socket.send(Message::Ping(Default::default())).await.map_err(|_| ()),
            _ = shutdown.changed() => {
                _ = socket.send(Message::Close(None)).await;
                return;
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

/// Carry out one client message; what to answer.
async fn answer(state: &AppState, text: &str, events: &mut Option<Subscription>) -> String {
    match serde_json::from_str::<Request>(text) {
        Ok(Request::Subscribe(params)) => match subscribe(state, &params).await {
            Ok(subscription) => {
                *events = Some(subscription);
                notice("subscribed", None)
            }
            Err(error) => notice("error", Some(error.to_json())),
        },
        Ok(Request::Unsubscribe) => {
            *events = None;
            notice("unsubscribed", None)
        }
        Ok(Request::Ping) => notice("pong", None),
        Err(error) => notice("error", Some(json!({"code": "invalid_message", "message": error.to_string()}))),
    }
}

/// The next event of the subscription; never, without one.
async fn next(events: &mut Option<Subscription>) -> Option<Next> {
    match events {
        Some(subscription) => subscription.next().await,
        None => std::future::pending().await,
    }
}

/// An event in its envelope (the stored JSON is inserted as it is).
fn envelope(event: &StoredEvent) -> String {
    let kind = Value::String(event.kind.clone());
    format!("{{\"event\":{kind},\"schema-version\":{SCHEMA_VERSION},\"seq\":{},\"payload\":{}}}", event.seq, event.raw)
}

fn notice(event: &str, payload: Option<Value>) -> String {
    let mut notice = json!({"event": event, "schema-version": SCHEMA_VERSION});
    if let Some(payload) = payload {
        notice["payload"] = payload;
    }
    notice.to_string()
}

async fn send(socket: &mut WebSocket, text: String) -> Result<(), ()> {
    socket.send(Message::Text(text.into())).await.map_err(|_| ())
}
