//! Serving: the WebSocket API (and the stream filters it shares with SSE), through the real
//! binary over a mock node.

mod support;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::{Rig, runtime};
use tokio_tungstenite::tungstenite::Message;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next JSON text message (pings and pongs skipped), within 10 s.
async fn receive(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next()).await;
        match message.expect("a message within 10 s").expect("the socket is open").unwrap() {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn send(socket: &mut Socket, message: Value) {
    socket.send(Message::Text(message.to_string().into())).await.unwrap();
}

#[test]
fn websocket_subscriptions_replay_the_store_then_follow_live_with_filters() {
    let rig = Rig::start(&["--count", "40"], "");
    rig.wait_for_stored(47);
    let url = format!("{}/ws/events", rig.http.replace("http://", "ws://"));
    runtime().block_on(async {
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        assert_eq!(receive(&mut socket).await, json!({"event": "started", "schema-version": 1}));

        // Stored blocks from the first sequence on, in order, in their envelope.
        send(&mut socket, json!({"action": "subscribe", "from": 1, "types": "BlockAdded"})).await;
        assert_eq!(receive(&mut socket).await["event"], "subscribed");
        let mut last = 0;
        for _ in 0..11 {
            let envelope = receive(&mut socket).await;
            assert_eq!((&envelope["event"], &envelope["schema-version"]), (&json!("BlockAdded"), &json!(1)), "{envelope}");
            let seq = envelope["seq"].as_u64().unwrap();
            assert!(seq > last, "{seq} after {last}");
            assert!(envelope["payload"]["BlockAdded"]["block_hash"].is_string());
            last = seq;
        }
        // No more blocks exist: the next message answers the ping.
        send(&mut socket, json!({"action": "ping"})).await;
        assert_eq!(receive(&mut socket).await["event"], "pong");

        // Mistakes get an error and the connection stays.
        send(&mut socket, json!({"action": "subscribe", "contract": "xyz"})).await;
        let error = receive(&mut socket).await;
        assert_eq!((&error["event"], &error["payload"]["code"]), (&json!("error"), &json!("invalid_hash")), "{error}");
        socket.send(Message::Text("nonsense".into())).await.unwrap();
        assert_eq!(receive(&mut socket).await["payload"]["code"], "invalid_message");

        // A new subscription replaces the old one: one transaction's events only.
        let transaction = "968fafb41be4d4fb1c4b3c3647bb4803de12bff05bbaa8d16d1ef3b18fc47ee1";
        send(&mut socket, json!({"action": "subscribe", "from": 1, "transaction": transaction})).await;
        assert_eq!(receive(&mut socket).await["event"], "subscribed");
        let processed = receive(&mut socket).await;
        assert_eq!(processed["event"], "TransactionProcessed", "{processed}");
        send(&mut socket, json!({"action": "unsubscribe"})).await;
        assert_eq!(receive(&mut socket).await["event"], "unsubscribed");
    });
}
