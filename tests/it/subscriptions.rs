//! Serving streams: the WebSocket API, SSE (the node's first frame, `max_subscribers`, slow
//! subscribers, the 1.x channels and the sidecar channel); through the real binary over a mock
//! node.

use crate::support;

use crate::support::{Rig, get, runtime};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
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
        let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        assert_eq!(receive(&mut socket).await, json!({"event": "started", "schema-version": 1}));

        // Stored blocks from the first sequence on, in order, in their envelope.
        send(&mut socket, json!({"action": "subscribe", "from": 1, "types": "BlockAdded"})).await;
        assert_eq!(receive(&mut socket).await["event"], "subscribed");
        let mut last = 0;
        for _ in 0..11 {
            let envelope = receive(&mut socket).await;
            assert_eq!(
                (&envelope["event"], &envelope["schema-version"]),
                (&json!("BlockAdded"), &json!(1)),
                "{envelope}"
            );
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

        // A message far larger than any request closes the session instead of being buffered.
        let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        assert_eq!(receive(&mut socket).await["event"], "started");
        _ = socket.send(Message::Text("x".repeat(1 << 20).into())).await;
        let after = loop {
            match tokio::time::timeout(std::time::Duration::from_secs(10), socket.next()).await.unwrap() {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => break other,
            }
        };
        assert!(matches!(after, None | Some(Err(_)) | Some(Ok(Message::Close(_)))), "{after:?}");
    });
    // A plain request is answered in JSON like any other mistake.
    let (status, body) = get(&format!("{}/ws/events", rig.http)).unwrap();
    assert_eq!(status, 400, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["code"], "not_a_websocket", "{body}");
}

#[test]
fn subscriptions_beyond_max_subscribers_get_503_until_one_ends() {
    let mut rig = Rig::start(&["--count", "4"], "");
    rig.wait_for_stored(11);
    rig.restart_with_http("max_subscribers = 1");
    let (ws_url, sse_url) =
        (format!("{}/ws/events", rig.http.replace("http://", "ws://")), format!("{}/events", rig.http));
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

#[test]
fn a_stalled_subscriber_does_not_delay_others_and_is_cut_off_with_a_final_comment() {
    use tokio::io::AsyncReadExt;
    let rig = flooding_rig("slow_subscriber_timeout_ms = 500");
    runtime().block_on(async {
        let mut stalled = stalled_subscriber(&rig).await;
        let total = 30_007;
        let url = format!("{}/events?start_from=1", rig.http);
        let started = std::time::Instant::now();
        let frames = tokio::task::spawn_blocking(move || support::read_sse(&url, total)).await.unwrap();
        assert_eq!(frames.len(), total, "the other subscriber got every event");
        assert!(frames.iter().enumerate().all(|(i, (id, _))| *id == i as u64 + 1));
        eprintln!("the reading subscriber got {total} events in {:?}", started.elapsed());

        // The stalled one is cut off: what it finally reads ends with a comment saying why, and
        // its slot is given back.
        let mut received = Vec::new();
        let mut chunk = vec![0; 1 << 16];
        let read_all = async {
            loop {
                let n = stalled.read(&mut chunk).await.unwrap();
                received.extend_from_slice(&chunk[..n]);
                if n == 0 || received.ends_with(b"0\r\n\r\n") {
                    break;
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(20), read_all).await.expect("the stream ends");
        let text = String::from_utf8_lossy(&received);
        let tail = &text[text.len().saturating_sub(300)..];
        assert!(tail.contains(": disconnected: too slow"), "{tail}");
        let metrics_url = format!("{}/metrics", rig.admin);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let metrics = reqwest::get(&metrics_url).await.unwrap().text().await.unwrap();
            if metrics.lines().any(|l| l == "sluice_subscribers 0") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the stalled subscriber's slot was never given back:\n{metrics}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    });
}

#[test]
fn a_client_that_stops_reading_is_closed_after_the_write_timeout_and_gives_its_slot_back() {
    use tokio::io::AsyncReadExt;
    // Only the write timeout can end it: the slow-subscriber limit is far away.
    let rig = flooding_rig("write_timeout_ms = 1000\nslow_subscriber_timeout_ms = 600000");
    runtime().block_on(async {
        let mut stalled = stalled_subscriber(&rig).await;
        // Without reading a byte, its subscription ends: the host closed the connection.
        let metrics_url = format!("{}/metrics", rig.admin);
        let subscribers = || async {
            let metrics = reqwest::get(&metrics_url).await.unwrap().text().await.unwrap();
            metrics.lines().find_map(|l| l.strip_prefix("sluice_subscribers ")).unwrap().parse::<u64>().unwrap()
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while subscribers().await == 0 {
            assert!(std::time::Instant::now() < deadline, "the subscription never started");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        while subscribers().await > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the connection of a client that stopped reading stayed open"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        // What it reads now stops short of the whole stream: an error or the end of the connection.
        let mut chunk = vec![0; 1 << 16];
        let mut read = 0;
        let read_all = async {
            loop {
                match stalled.read(&mut chunk).await {
                    Ok(0) => break "closed",
                    Ok(n) => read += n,
                    Err(_) => break "reset",
                }
            }
        };
        let ended =
            tokio::time::timeout(std::time::Duration::from_secs(20), read_all).await.expect("the connection ends");
        eprintln!("the stalled client read {read} bytes, then the connection was {ended}");
        assert!(read < 40_000_000, "it was not cut off");
    });
}

#[test]
fn a_websocket_replay_goes_on_while_the_client_keeps_sending() {
    // Every client message interrupts the session's wait for its next event. A store read under
    // way must survive that, or a client that keeps sending never gets past its first page.
    let rig = Rig::start(&["--mix", "realistic", "--rate", "10000", "--count", "5000"], "");
    let stored = settled(&rig) as u64;
    let url = format!("{}/ws/events", rig.http.replace("http://", "ws://"));
    runtime().block_on(async {
        let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let (mut sink, mut stream) = socket.split();
        sink.send(Message::Text(json!({"action": "subscribe", "from": 1}).to_string().into())).await.unwrap();
        let pinging = tokio::spawn(async move {
            while sink.send(Message::Ping(Default::default())).await.is_ok() {
                tokio::task::yield_now().await;
            }
        });
        let mut last = 0;
        let replayed = async {
            while last < stored {
                if let Message::Text(text) = stream.next().await.expect("the socket is open").unwrap() {
                    let message: Value = serde_json::from_str(&text).unwrap();
                    last = message["seq"].as_u64().unwrap_or(last);
                }
            }
        };
        let finished = tokio::time::timeout(std::time::Duration::from_secs(30), replayed).await;
        pinging.abort();
        assert!(finished.is_ok(), "the replay stopped at sequence {last} of {stored}");
    });
}

/// A host with `http` keys whose node sends 30,000 events (≈40 MB, far more than socket
/// buffers hold) in 3 s.
fn flooding_rig(http: &str) -> Rig {
    let mut rig = Rig::start(&["--mix", "realistic", "--rate", "10000", "--count", "30000"], "");
    rig.restart_with_http(http);
    rig
}

/// A client that asks for every event and then reads nothing, through a tiny window.
async fn stalled_subscriber(rig: &Rig) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let address: std::net::SocketAddr = rig.http.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(address).await.unwrap();
    stalled.write_all(b"GET /events?start_from=1 HTTP/1.1\r\nhost: sluice\r\n\r\n").await.unwrap();
    stalled
}

/// Wait until the store stops growing for half a second; the number of events.
fn settled(rig: &Rig) -> i64 {
    let count = || rig.number("SELECT count(*) FROM events").unwrap_or(0);
    let mut last = -1;
    loop {
        let now = count();
        if now == last && now > 0 {
            return now;
        }
        last = now;
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

#[test]
fn the_1x_channels_serve_1x_shapes_from_1x_and_2x_nodes() {
    // From a 1.x node: what it sent, per channel.
    let rig = Rig::start(&["--protocol", "1", "--count", "40"], "");
    settled(&rig);
    let of_kinds =
        |kinds: &str| rig.number(&format!("SELECT count(*) FROM events WHERE kind IN ({kinds})")).unwrap() as usize;
    for (channel, kinds) in [
        ("main", "'BlockAdded', 'DeployProcessed', 'DeployExpired', 'Fault', 'Step'"),
        ("deploys", "'DeployAccepted'"),
        ("sigs", "'FinalitySignature'"),
    ] {
        let expected = of_kinds(kinds);
        assert!(expected > 0, "{channel}");
        let frames = support::read_sse(&format!("{}/events/{channel}?start_from=1", rig.http), expected);
        assert_eq!(frames.len(), expected, "{channel}");
        for (seq, data) in &frames {
            let raw = rig.text(&format!("SELECT raw FROM events WHERE seq = {seq}"));
            assert_eq!(data, &raw, "{channel}: 1.x events are served as received");
        }
    }
    drop(rig);

    // From a 2.x node: translated; 2.x-only transactions left out.
    let rig = Rig::start(&["--count", "40"], "");
    rig.wait_for_stored(47);
    let main = support::read_sse(&format!("{}/events/main?start_from=1", rig.http), 13);
    let kinds: Vec<String> = main
        .iter()
        .map(|(_, d)| serde_json::from_str::<Value>(d).unwrap().as_object().unwrap().keys().next().unwrap().clone())
        .collect();
    assert_eq!(kinds.iter().filter(|k| *k == "BlockAdded").count(), 11, "{kinds:?}");
    assert!(kinds.contains(&"Fault".to_owned()) && kinds.contains(&"Step".to_owned()), "{kinds:?}");
    let block: Value = serde_json::from_str(&main.iter().find(|(_, d)| d.contains("BlockAdded")).unwrap().1).unwrap();
    let block = &block["BlockAdded"]["block"];
    assert!(
        block.get("Version2").is_none() && block["body"]["proposer"].is_string() && block["header"]["height"].is_u64(),
        "{block}"
    );
    let sigs = support::read_sse(&format!("{}/events/sigs?start_from=1", rig.http), 11);
    assert_eq!(sigs.len(), 11);
    let signature: Value = serde_json::from_str(&sigs[0].1).unwrap();
    assert!(
        signature["FinalitySignature"].get("V2").is_none() && signature["FinalitySignature"]["signature"].is_string()
    );
    assert_eq!(support::get(&format!("{}/events/elsewhere", rig.http)).unwrap().0, 404);

    // The sidecar channel: its version, then the source's state.
    let url = format!("{}/events/sidecar", rig.http);
    let text = runtime().block_on(async {
        let mut response = reqwest::get(&url).await.unwrap();
        let mut text = String::new();
        while text.matches("\n\n").count() < 2 {
            text.push_str(&String::from_utf8_lossy(&response.chunk().await.unwrap().unwrap()));
        }
        text
    });
    let frames: Vec<Value> =
        text.split("\n\n").filter_map(|f| f.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect();
    assert!(frames[0]["SidecarVersion"].is_string(), "{text}");
    assert_eq!(frames[1], json!({"SourceState": {"name": "mock", "state": "connected"}}), "{text}");
}

#[test]
fn a_reconnecting_event_source_resumes_after_its_last_event_id() {
    let rig = Rig::start(&["--rate", "0", "--count", "100"], "");
    rig.wait_for_stored(107);
    // What a browser's EventSource sends when it reconnects: the same URL, and the last id.
    let resumed = |path: &str, last: &str| {
        runtime().block_on(async {
            let response = reqwest::Client::new()
                .get(format!("{}{path}", rig.http))
                .header("last-event-id", last)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let mut body = response.bytes_stream();
            let mut text = String::new();
            while status == 200 && support::parse_sse(&text, 1).is_empty() {
                text.push_str(&String::from_utf8_lossy(&body.next().await.unwrap().unwrap()));
            }
            (status, support::parse_sse(&text, 1).first().map(|(id, _)| *id))
        })
    };
    assert_eq!(resumed("/events?start_from=0", "50"), (200, Some(51)));
    assert_eq!(resumed("/events", "99"), (200, Some(100)));
    let (status, first) = resumed("/events/main?start_from=1", "60");
    assert!(status == 200 && first > Some(60), "{first:?}");
    assert_eq!(resumed("/events", "not-an-id"), (400, None));
}
