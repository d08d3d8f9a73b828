//! Serving over REST: the casper-sidecar's and the Event Store's shapes, pages and edges, the
//! log as REST, request limits, OpenAPI; through the real binary over a mock node.

use crate::support;

use crate::support::{Rig, runtime};
use serde_json::{Value, json};

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
    let heights: Vec<u64> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let block = &b["data"]["BlockAdded"]["block"]["Version2"]["header"]["height"];
            block.as_u64().unwrap()
        })
        .collect();
    assert!(heights.windows(2).all(|w| w[0] > w[1]), "{heights:?}");
    assert_eq!(get("/blocks?page=2").1["data"].as_array().unwrap().len(), 1);
    assert_eq!(get("/blocks?page=3&limit=10").1["data"], json!([]));
    // Pages list a window of 5 each side, not every page.
    let one_per_page = get("/blocks?limit=1&page=8").1;
    let numbers: Vec<u64> =
        one_per_page["pages"].as_array().unwrap().iter().map(|p| p["number"].as_u64().unwrap()).collect();
    assert_eq!((&one_per_page["pageCount"], numbers), (&json!(11), (3..=11).collect::<Vec<_>>()));
    let wrong_method = runtime().block_on(reqwest::Client::new().post(format!("{}/blocks", rig.http)).send()).unwrap();
    assert_eq!(wrong_method.status().as_u16(), 405);
    assert_eq!(runtime().block_on(wrong_method.json::<Value>()).unwrap()["code"], "method_not_allowed");
    for (path, code) in [
        ("/blocks?page=0", "invalid_page"),
        ("/blocks?limit=1000", "invalid_limit"),
        ("/blocks?limit=x", "invalid_query"),
    ] {
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
    for (path, code) in
        [("/faults/xyz", "invalid_fault_id"), ("/step/x", "invalid_era"), ("/signatures/12", "invalid_hash")]
    {
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
fn deploys_accounts_block_transactions_and_log_pages_are_served_from_indexes() {
    // 176 blocks: the first block's sender sends every 16th block's transaction, 11 in all.
    let rig = Rig::start(&["--rate", "0", "--count", "704"], "");
    rig.wait_for_stored(711);
    let get = |path: &str| {
        let (status, body) = support::get(&format!("{}{path}", rig.http)).unwrap();
        (status, serde_json::from_str::<Value>(&body).unwrap_or_default())
    };
    // The processed fixture's sender, by public key.
    let fixture_sender = "0118ea8b6ed62393f8d36cb1a96b9ee62b48e35317bd2ea3ceb533a6f7ff212ad6";
    let processed = "968fafb41be4d4fb1c4b3c3647bb4803de12bff05bbaa8d16d1ef3b18fc47ee1";
    let (status, deploy) = get(&format!("/deploy/{processed}"));
    assert_eq!(status, 200, "{deploy}");
    assert_eq!(
        (&deploy["deployHash"], &deploy["account"], &deploy["state"]),
        (&json!(processed), &json!(fixture_sender), &json!("processed"))
    );
    assert!(deploy["cost"].as_str().is_some_and(|c| c.parse::<u64>().is_ok()), "{deploy}");
    assert!(deploy["blockHash"].is_string() && deploy["timestamp"].is_string(), "{deploy}");
    let accepted = get("/deploy/446f9511258112c6e5150ee13d57c421da2bc30e0058db6165855a9d1ba4b868").1;
    assert_eq!((&accepted["state"], &accepted["blockHash"]), (&json!("accepted"), &Value::Null), "{accepted}");
    assert_eq!(get(&format!("/deploy/{}", "ab".repeat(32))).0, 404);

    // The first generated block's sender: 11 transactions, newest first, pages of the Event Store.
    let row = rig.row(
        "SELECT raw, transaction_hash FROM events WHERE kind = 'TransactionAccepted' AND seq > 7 ORDER BY seq LIMIT 1",
    );
    let accepted: Value = serde_json::from_str(row[0].as_str().unwrap()).unwrap();
    let sender = accepted["TransactionAccepted"]["Version1"]["payload"]["initiator_addr"]["PublicKey"].as_str();
    let (sender, first_sent) = (sender.unwrap().to_owned(), row[1].as_str().unwrap().to_owned());
    let (status, page) = get(&format!("/accountDeploys/{sender}?limit=4"));
    assert_eq!((status, &page["itemCount"], &page["pageCount"]), (200, &json!(11), &json!(3)), "{page}");
    assert_eq!(page["pages"][2]["url"], format!("/accountDeploys/{sender}?page=3&limit=4"));
    let last = get(&format!("/accountDeploys/{sender}?page=3&limit=4")).1;
    assert_eq!(last["data"].as_array().unwrap().len(), 3);
    assert_eq!(last["data"][2]["deployHash"], first_sent, "the oldest last");
    let hash = stored_account_hash(&rig, &first_sent);
    assert_eq!(get(&format!("/accountDeploys/account-hash-{hash}")).1["itemCount"], 11, "by account hash too");
    assert_eq!(get(&format!("/accountDeploys/{fixture_sender}")).1["itemCount"], 1);
    assert_eq!(get(&format!("/accountDeploys/{}", "cd".repeat(32))).1["itemCount"], 0);
    for (path, code) in
        [("/accountDeploys/01ab", "invalid_account"), (&format!("/accountDeploys/{sender}?page=0"), "invalid_page")]
    {
        let (status, body) = get(path);
        assert_eq!((status, body["code"].as_str()), (400, Some(code)), "{path}: {body}");
    }

    // A block's transactions, with their events; blocks by height range.
    // (The mock node's generated blocks start at height 1,000,000.)
    let blocks = get("/blocks?from_height=1000003&to_height=1000005").1;
    assert_eq!(blocks["itemCount"], 3, "{blocks}");
    assert_eq!(blocks["pages"][0]["url"], "/blocks?page=1&limit=10&from_height=1000003&to_height=1000005");
    let top = &blocks["data"][0]["data"]["BlockAdded"];
    assert_eq!(top["block"]["Version2"]["header"]["height"], 1000005);
    let (status, of_block) = get(&format!("/block/{}/transactions", top["block_hash"].as_str().unwrap()));
    assert_eq!((status, &of_block["height"]), (200, &json!(1000005)), "{of_block}");
    let listed = of_block["transactions"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{of_block}");
    assert_eq!(listed[0]["processed"]["data"]["TransactionProcessed"]["block_hash"], top["block_hash"]);
    assert_eq!(get("/block/1000005/transactions").1, of_block);
    assert_eq!(get("/blocks?from_height=6&to_height=5").1["itemCount"], 0, "an empty range");

    // The log as REST: pages with a cursor, by type and by account.
    let (status, first) = get("/events?limit=5");
    assert_eq!(
        (status, first["data"].as_array().unwrap().len(), &first["next_from_seq"]),
        (200, 5, &json!(6)),
        "{first}"
    );
    let seqs = |page: &Value| {
        page["data"].as_array().unwrap().iter().map(|e| e["sequence"].as_u64().unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(seqs(&get("/events?from_seq=6&limit=3").1), [6, 7, 8]);
    let blocks_only = get("/events?type=BlockAdded&from_seq=1&limit=1000").1;
    assert_eq!(blocks_only["data"].as_array().unwrap().len(), 177);
    let mine = get(&format!("/events?account={sender}&from_seq=1")).1;
    let mine = mine["data"].as_array().unwrap();
    assert_eq!(mine.len(), 22, "an accepted and a processed event per transaction");
    assert!(
        mine.iter().all(|e| ["TransactionAccepted", "TransactionProcessed"].contains(&e["kind"].as_str().unwrap()))
    );
    let past_the_end = get("/events?from_seq=1000").1;
    assert_eq!((&past_the_end["data"], &past_the_end["next_from_seq"]), (&json!([]), &json!(1000)));
    for (path, code) in [
        ("/events?limit=0", "invalid_limit"),
        ("/events?from_seq=x", "invalid_query"),
        ("/events?limit=5&account=zz", "invalid_account"),
    ] {
        let (status, body) = get(path);
        assert_eq!((status, body["code"].as_str()), (400, Some(code)), "{path}: {body}");
    }
    // Accept: application/json is enough to get a page instead of the stream.
    let json_page = runtime().block_on(async {
        let client = reqwest::Client::new();
        let response =
            client.get(format!("{}/events", rig.http)).header("accept", "application/json").send().await.unwrap();
        response.json::<Value>().await.unwrap()
    });
    assert_eq!(json_page["data"][0]["sequence"], 1);

    // SSE by account: its transactions' events only.
    let frames = support::read_sse(&format!("{}/events?start_from=1&account={sender}", rig.http), 22);
    assert_eq!(frames.len(), 22);
    assert!(frames.iter().all(|(_, data)| data.contains(&sender)));
}

/// The account hash of the sender of `transaction`, as the store has it.
fn stored_account_hash(rig: &Rig, transaction: &str) -> String {
    let sql = format!(
        "SELECT account FROM events WHERE transaction_hash = '{transaction}' AND kind = 'TransactionProcessed'"
    );
    let account = rig.text(&sql);
    assert_eq!(account.len(), 64, "{transaction}'s sender has an account hash");
    account
}

#[test]
fn request_limits_cors_and_response_times_follow_the_config() {
    let mut rig = Rig::start(&["--count", "4"], "");
    rig.wait_for_stored(11);
    rig.restart_with_http("requests_per_second = 5\nmax_body_kib = 1\ncors_origins = [\"https://app.example\"]");
    let client = reqwest::Client::new();
    runtime().block_on(async {
        // A browser's preflight from the allowed origin, and a plain request from another.
        let preflight = client
            .request(reqwest::Method::OPTIONS, format!("{}/blocks", rig.http))
            .header("origin", "https://app.example")
            .header("access-control-request-method", "GET")
            .send()
            .await
            .unwrap();
        let allowed = preflight.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(allowed.as_deref(), Some("https://app.example"));
        let other =
            client.get(format!("{}/health", rig.http)).header("origin", "https://evil.example").send().await.unwrap();
        assert!(other.headers().get("access-control-allow-origin").is_none());

        // Bodies over 1 KiB: 413 with JSON.
        let big = client.post(format!("{}/plugins/none/x", rig.http)).body(vec![b'x'; 4096]).send().await.unwrap();
        assert_eq!(big.status().as_u16(), 413);
        assert_eq!(big.json::<Value>().await.unwrap()["code"], "body_too_large");

        // A burst beyond 5 per second: 429 with JSON (the two requests above count too).
        let mut statuses = Vec::new();
        for _ in 0..10 {
            statuses.push(client.get(format!("{}/block", rig.http)).send().await.unwrap());
        }
        let refused = statuses.into_iter().find(|r| r.status().as_u16() == 429).expect("a 429 within 12 requests");
        assert_eq!(refused.json::<Value>().await.unwrap()["code"], "rate_limited");
        // The limit is per client address: another one (127.0.0.2 is loopback too) still gets in.
        let elsewhere = reqwest::Client::builder().local_address("127.0.0.2".parse().ok()).build().unwrap();
        let response = elsewhere.get(format!("{}/block", rig.http)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);

        // Response times by route, on the admin listener.
        let metrics = reqwest::get(format!("{}/metrics", rig.admin)).await.unwrap().text().await.unwrap();
        let timed = metrics
            .lines()
            .find(|l| l.starts_with("sluice_http_response_seconds_count") && l.contains("route=\"/block\""));
        let count: u64 = timed.expect("/block is timed").rsplit(' ').next().unwrap().parse().unwrap();
        assert!(count >= 1, "{metrics}");
        let errors = "error_counts_total{category=\"source\",description=\"rejected_frames\"} 0";
        assert!(metrics.lines().any(|l| l == errors), "{metrics}");
    });
    let (ok, message) = support::check("[http]\nmax_body_kib = 0\n");
    assert!(!ok && message.contains("http.max_body_kib"), "{message}");
}

#[test]
fn the_openapi_document_lists_every_route_and_the_plugins_mounts_and_swagger_ui_serves_it() {
    let rig = Rig::start(&["--count", "4"], &support::plugin_toml("transfers", "transfers", "", ""));
    rig.wait_for_stored(11);
    let document = support::get_json(&format!("{}/api-doc.json", rig.http)).expect("the document");
    assert!(document["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{document}");
    // Descriptions are for the API's users: no source files or internal types.
    let text = document.to_string();
    for internal in [".rs`", ".rs)", "View`", "StoredEvent", "AppState"] {
        assert!(!text.contains(internal), "the document mentions {internal}");
    }
    let paths = document["paths"].as_object().unwrap();
    for path in [
        "/events",
        "/ws/events",
        "/block/{id}",
        "/blocks",
        "/deploy/{hash}",
        "/accountDeploys/{account}",
        "/transaction/{state}/{type}/{hash}",
        "/signatures/{block_hash}",
        "/contract-events",
        "/plugins/transfers/{path}",
    ] {
        assert!(paths.contains_key(path), "{path} is missing from {:?}", paths.keys().collect::<Vec<_>>());
    }
    let blocks_params = document["paths"]["/blocks"]["get"]["parameters"].as_array().unwrap();
    let names: Vec<&str> = blocks_params.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["page", "limit", "from_height", "to_height"]);
    // The document states the limits the server checks, so clients and generators know them.
    let limit = &blocks_params[1]["schema"];
    assert_eq!((limit["minimum"].as_u64(), limit["maximum"].as_u64()), (Some(1), Some(100)), "{limit}");
    let hash = &document["paths"]["/deploy/{hash}"]["get"]["parameters"][0]["schema"]["pattern"];
    assert_eq!(hash, "^(.*-)?[0-9a-fA-F]{64}$");
    let plugin_path = &document["paths"]["/plugins/transfers/{path}"]["get"]["parameters"][0];
    assert_eq!(plugin_path["schema"]["type"], "string", "{plugin_path}");
    assert!(document["components"]["schemas"]["ErrorBody"].is_object());

    let (status, index) = support::get(&format!("{}/swagger-ui/", rig.http)).unwrap();
    assert_eq!(status, 200);
    assert!(index.contains("swagger-ui"), "{index}");
    let (status, initializer) = support::get(&format!("{}/swagger-ui/swagger-initializer.js", rig.http)).unwrap();
    assert!(status == 200 && initializer.contains("/api-doc.json"), "{status}: {initializer}");
}

#[test]
fn idle_connections_are_closed_and_beyond_the_cap_refused_at_once() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};
    let mut rig = Rig::start(&["--rate", "50"], "");
    rig.restart_with_http("header_read_timeout_ms = 1000\nmax_connections = 1000");
    let address = rig.http.trim_start_matches("http://").to_owned();
    // An SSE stream: it must outlive the timeout.
    let url = format!("{}/events", rig.http);
    let stream = std::thread::spawn(move || support::read_sse(&url, 150));
    // 2,000 sockets that connect and say nothing: 1,000 refused with a 503 at once, the others
    // closed once the header-read timeout passes.
    let started = Instant::now();
    let mut idle: Vec<TcpStream> = (0..2000).map(|_| TcpStream::connect(&address).unwrap()).collect();
    let (mut refused, mut closed) = (0, 0);
    for socket in &mut idle {
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut answer = Vec::new();
        match socket.read_to_end(&mut answer) {
            Ok(_) if answer.starts_with(b"HTTP/1.1 503") => refused += 1,
            Ok(_) => closed += 1,
            Err(e) => panic!("an idle connection still open after {:?}: {e}", started.elapsed()),
        }
    }
    assert!(refused >= 900 && refused + closed == 2000, "{refused} refused, {closed} closed");
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
    // A keep-alive connection idle after its response is closed likewise.
    let mut keep_alive = TcpStream::connect(&address).unwrap();
    keep_alive.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    keep_alive.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut all = Vec::new();
    assert!(keep_alive.read_to_end(&mut all).is_ok(), "closed when idle");
    assert!(all.starts_with(b"HTTP/1.1 200"));
    assert_eq!(support::get(&format!("{}/health", rig.http)).unwrap().0, 200, "new clients are served");
    assert_eq!(stream.join().unwrap().len(), 150, "the SSE stream went on past the timeout");
}

#[test]
fn the_server_agrees_with_its_openapi_document_at_the_edges() {
    // The cases a schema-driven fuzzer (schemathesis, on /api-doc.json) found.
    let rig = Rig::start(&["--rate", "0", "--count", "40"], "");
    rig.wait_for_stored(47);
    let status = |path: &str, header: Option<(&str, &str)>| {
        runtime().block_on(async {
            let mut request = reqwest::Client::new().get(format!("{}{path}", rig.http));
            if let Some((name, value)) = header {
                request = request.header(name, value);
            }
            request.send().await.unwrap().status().as_u16()
        })
    };
    // Numbers above int64 (what the document says) are refused, not accepted as u64.
    for path in [
        "/blocks?to_height=18446744073709551615",
        "/blocks?page=9223372036854775808",
        "/accountDeploys/0118ea8b6ed62393f8d36cb1a96b9ee62b48e35317bd2ea3ceb533a6f7ff212ad6?page=9223372036854775808",
        "/events?from_seq=9223372036854775808",
        "/events?start_from=9223372036854775808",
        "/contract-events?cursor=99999999999999999999",
    ] {
        assert_eq!(status(path, None), 400, "{path}");
    }
    assert_eq!(status("/events?limit=1", Some(("last-event-id", "9223372036854775808"))), 400);
    // A height the path pattern allows is looked up (404), not refused.
    assert_eq!(status("/block/9999999999999999999", None), 404);
    // An empty range of heights is an empty page; an empty filter is no filter.
    let empty = support::get_json(&format!("{}/blocks?from_height=6&to_height=5", rig.http)).unwrap();
    assert_eq!((&empty["itemCount"], &empty["data"]), (&json!(0), &json!([])), "{empty}");
    assert_eq!(status("/events?limit=1&filter=&name=&types=", None), 200);
    // /events takes the stream's parameters in page mode too (start_from is where a page starts).
    assert_eq!(status("/events?start_from=5&limit=2&contract=", None), 400, "contract= is not a hash");
    let page = support::get_json(&format!("{}/events?start_from=5&limit=2", rig.http)).unwrap();
    assert_eq!(page["data"][0]["sequence"], 5, "{page}");
    // A channel asked for types it does not carry streams nothing rather than failing.
    assert_eq!(status("/events/main?types=FinalitySignature", None), 200);
    // /ws/events needs an upgrade request, as documented.
    assert_eq!(status("/ws/events", None), 400);
}
