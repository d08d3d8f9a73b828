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

#[test]
fn sidecar_and_event_store_lookups_answer_with_their_shapes_and_edges() {
    let rig = Rig::start(&["--count", "40"], "");
    rig.wait_for_stored(47);
    let get = |path: &str| {
        let (status, body) = support::get(&format!("{}{path}", rig.http)).unwrap();
        (status, serde_json::from_str::<Value>(&body).unwrap_or_default())
    };
    // Event Store pages: 11 blocks, 10 per page by default, highest first.
    let (status, first) = get("/blocks");
    assert_eq!((status, &first["itemCount"], &first["pageCount"]), (200, &json!(11), &json!(2)), "{first}");
    assert_eq!(first["data"].as_array().unwrap().len(), 10);
    assert_eq!(first["pages"][1], json!({"number": 2, "url": "/blocks?page=2&limit=10"}));
    let heights: Vec<u64> = first["data"].as_array().unwrap().iter().map(|b| {
        let block = &b["data"]["BlockAdded"]["block"]["Version2"]["header"]["height"];
        block.as_u64().unwrap()
    }).collect();
    assert!(heights.windows(2).all(|w| w[0] > w[1]), "{heights:?}");
    assert_eq!(get("/blocks?page=2").1["data"].as_array().unwrap().len(), 1);
    assert_eq!(get("/blocks?page=3&limit=10").1["data"], json!([]));
    for (path, code) in [("/blocks?page=0", "invalid_page"), ("/blocks?limit=1000", "invalid_limit"), ("/blocks?limit=x", "invalid_query")] {
        let (status, body) = get(path);
        assert_eq!((status, body["code"].as_str()), (400, Some(code)), "{path}");
    }

    // The sidecar's lookups, on the captured fixtures.
    let signed_block = "5122b986d344e4cd0ab5a2df1b3bb398de9c557a2e463391b58de82626154428";
    let (status, signatures) = get(&format!("/signatures/{signed_block}"));
    assert_eq!((status, signatures.as_array().map(Vec::len)), (200, Some(1)), "{signatures}");
    assert_eq!(signatures[0]["kind"], "FinalitySignature");
    let validator = "012fa85eb06279da42e68530e1116be04bfd2aaa5ed8d63401ebff4d9153a609a9";
    for id in ["45914488", validator] {
        let (status, faults) = get(&format!("/faults/{id}"));
        assert_eq!((status, faults.as_array().map(Vec::len)), (200, Some(1)), "{id}: {faults}");
    }
    assert_eq!(get("/faults/7").1, json!([]));
    assert_eq!(get("/step/203").1["kind"], "Step");
    assert_eq!(get("/step/7").0, 404);
    for (path, code) in [("/faults/xyz", "invalid_fault_id"), ("/step/x", "invalid_era"), ("/signatures/12", "invalid_hash")] {
        let (status, body) = get(path);
        assert_eq!((status, body["code"].as_str()), (400, Some(code)), "{path}");
    }

    let transaction = "968fafb41be4d4fb1c4b3c3647bb4803de12bff05bbaa8d16d1ef3b18fc47ee1";
    let (status, all) = get(&format!("/transaction/version1/{transaction}"));
    assert_eq!((status, &all["processed"]["kind"]), (200, &json!("TransactionProcessed")), "{all}");
    assert_eq!(get(&format!("/transaction/processed/version1/{transaction}")).1["kind"], "TransactionProcessed");
    assert_eq!(get(&format!("/transaction/accepted/version1/{transaction}")).0, 404);
    assert_eq!(get(&format!("/transaction/sideways/version1/{transaction}")).1["code"], "invalid_state");
    assert_eq!(get(&format!("/transaction/v3/{transaction}")).1["code"], "invalid_transaction_type");
}

#[test]
fn subscriptions_beyond_max_subscribers_get_503_until_one_ends() {
    let mut rig = Rig::start(&["--count", "4"], "");
    rig.wait_for_stored(11);
    rig.http_toml = "max_subscribers = 1".into();
    rig.write_config("");
    rig.stop_host();
    rig.start_host();
    let (ws_url, sse_url) = (format!("{}/ws/events", rig.http.replace("http://", "ws://")), format!("{}/events", rig.http));
    let metrics_url = format!("{}/metrics", rig.admin);
    let metric = |text: &str, name: &str| {
        text.lines().find_map(|line| line.strip_prefix(&format!("{name} ")).map(str::to_owned))
    };
    runtime().block_on(async {
        let (mut socket, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
        receive(&mut socket).await;
        send(&mut socket, json!({"action": "subscribe"})).await;
        assert_eq!(receive(&mut socket).await["event"], "subscribed");
        // Only the status: an SSE body never ends.
        let status = reqwest::get(&sse_url).await.unwrap().status().as_u16();
        assert_eq!(status, 503);
        let refused = reqwest::get(&sse_url).await.unwrap().text().await.unwrap();
        assert!(refused.contains("too_many_subscribers"), "{refused}");
        let metrics = reqwest::get(&metrics_url).await.unwrap().text().await.unwrap();
        assert_eq!(metric(&metrics, "sluice_subscribers").as_deref(), Some("1"), "{metrics}");
        assert!(metric(&metrics, "sluice_db_bytes").is_some_and(|b| b.parse::<u64>().unwrap() > 0));
        send(&mut socket, json!({"action": "unsubscribe"})).await;
        // Live events sent before it may come first.
        while receive(&mut socket).await["event"] != "unsubscribed" {}
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while reqwest::get(&sse_url).await.unwrap().status().as_u16() == 503 {
            assert!(std::time::Instant::now() < deadline, "the slot was never given back");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    });
}

#[test]
fn the_sse_stream_starts_with_the_nodes_api_version() {
    let rig = Rig::start(&["--count", "4"], "");
    rig.wait_for_stored(11);
    let url = format!("{}/events?start_from=0", rig.http);
    let first = runtime().block_on(async {
        let mut response = reqwest::get(&url).await.unwrap();
        let mut text = String::new();
        while !text.contains("\n\n") {
            text.push_str(&String::from_utf8_lossy(&response.chunk().await.unwrap().unwrap()));
        }
        text
    });
    let frame = first.split("\n\n").next().unwrap();
    assert!(frame.starts_with("data:") && frame.contains("{\"ApiVersion\":\"2.0.0\"}"), "{first}");
    assert!(!frame.contains("id:"), "{first}");
}
