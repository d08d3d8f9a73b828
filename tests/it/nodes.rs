//! Casper node connections end to end: the real `sluice` binary against the real mock node
//! scripted with faults (drops, malformed and unreadable frames, restarts, silence, gaps, 1.x),
//! checked in the real SQLite file.

use crate::support;

use crate::support::{FIXTURE_BLOCK, Rig, get, get_json, read_sse};
use serde_json::Value;

#[test]
fn malformed_frames_are_kept_with_their_reason_and_ingestion_goes_on() {
    // Every 100th generated event arrives as truncated JSON: 1 %, 50 of 5000.
    let rig = Rig::start(&["--rate", "0", "--count", "5000", "--corrupt-every", "100"], "");
    rig.wait_for_stored(4957);
    rig.wait_for("the cursor to reach the last frame", || {
        rig.number("SELECT last_event_id FROM node_cursors") == Some(5006)
    });
    let count = |sql: &str| rig.number(sql).unwrap();
    assert_eq!(count("SELECT count(*) FROM events"), 4957);
    assert_eq!(count("SELECT count(DISTINCT node_event_id) FROM events"), 4957);
    assert_eq!(count("SELECT count(*) FROM rejected_frames"), 50);
    assert_eq!(
        count("SELECT count(*) FROM rejected_frames WHERE raw LIKE '{\"BlockAdded\"%' AND reason LIKE '%EOF%'"),
        50
    );
    assert_eq!(count("SELECT min(node_event_id) FROM rejected_frames"), 7 + 99);
    let health = get_json(&format!("{}/health", rig.http)).unwrap();
    assert_eq!((health["ingest"]["rejected"].as_u64(), health["nodes"][0]["rejected"].as_u64()), (Some(50), Some(50)));
}

/// Start a mock node that damages events 7 + 49 and 7 + 99 (of 107) as `mock_flag` says, and a
/// host with `node_toml`; both frames must be rejected with `reason` and their neighbours stored.
fn assert_damaged_frames_are_skipped(mock_flag: &str, node_toml: &str, reason: &str) {
    let rig = Rig::start_with_node_config(&["--rate", "0", "--count", "100", mock_flag, "50"], node_toml);
    rig.wait_for_stored(105);
    rig.wait_for("the last frame, damaged too, to be skipped", || {
        rig.number("SELECT count(*) FROM rejected_frames") == Some(2)
    });
    let rejected: Vec<(i64, String)> = rig
        .rows("SELECT node_event_id, reason FROM rejected_frames ORDER BY node_event_id")
        .iter()
        .map(|r| (r[0].as_i64().unwrap(), r[1].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(rejected.iter().map(|r| r.0).collect::<Vec<_>>(), [56, 106]);
    assert!(rejected[0].1.contains(reason), "{}", rejected[0].1);
    let neighbours = rig.number("SELECT count(*) FROM events WHERE node_event_id IN (55, 57, 105)");
    assert_eq!(neighbours, Some(3), "the neighbours of the skipped frames are stored");
}

#[test]
fn an_unreadable_frame_is_skipped_instead_of_stalling_the_node() {
    // A byte that is not UTF-8: no SSE parser can read that frame.
    assert_damaged_frames_are_skipped("--garble-every", "", "unreadable SSE frame");
}

#[test]
fn a_node_restart_that_resets_ids_skips_nothing() {
    assert_restart_skips_nothing(&[], "TransactionProcessed");
}

#[test]
fn a_1x_node_restart_that_resets_ids_skips_nothing() {
    assert_restart_skips_nothing(&["--protocol", "1"], "DeployProcessed");
}

fn assert_restart_skips_nothing(protocol: &[&str], processed: &str) {
    // The node restarts once 2500 events exist (it says "Shutdown" first): ids start from 0 again
    // while the chain goes on.
    let rig = Rig::start(&[&["--rate", "2000", "--restart-after", "2500"], protocol].concat(), "");
    let health = || get_json(&format!("{}/health", rig.http)).unwrap();
    rig.wait_for("a restart", || health()["nodes"][0]["restarts"].as_u64() >= Some(1));
    rig.wait_for_stored(health()["store"]["events"].as_u64().unwrap() + 1000);
    assert!(rig.host.as_ref().unwrap().log().contains("node announced shutdown"));
    // The node's "Shutdown" is stored like any event, and streams replay it.
    let shutdown = rig.number("SELECT min(seq) FROM events WHERE kind = 'Shutdown'").expect("a stored Shutdown");
    let channel = if protocol.is_empty() { "events" } else { "events/main" };
    let frames = read_sse(&format!("{}/{channel}?start_from={shutdown}", rig.http), 1);
    assert_eq!(frames, [(shutdown as u64, "\"Shutdown\"".to_owned())]);
    // The node said it stopped, so nothing can be missing: no gap is recorded.
    assert_eq!(rig.number("SELECT count(*) FROM gaps"), Some(0), "a restart after the node's Shutdown");
    // Every generated block from the first on is stored, with no hole around the restart.
    let blocks = "FROM events WHERE kind = 'BlockAdded' AND block_height >= 1000000";
    // One query: the node keeps producing while the test reads.
    let row = rig.row(&format!("SELECT count(*), min(block_height), max(block_height) {blocks}"));
    let [count, lowest, highest] = [0, 1, 2].map(|i| row[i].as_i64().unwrap());
    assert_eq!((lowest, count), (1_000_000, highest - lowest + 1));
    assert!(highest > 1_000_000 + 2500 / 4, "blocks from after the restart are stored");
    let processed = rig.number(&format!("SELECT count(*) FROM events WHERE kind = '{processed}'")).unwrap();
    assert!(processed >= count, "{processed} processed transactions for {count} blocks");
}

#[test]
fn a_node_gone_silent_is_left_and_resumed() {
    // After 1000 events on a connection the node holds it open without a byte, not even a
    // keepalive; with a 1 s silence timeout Sluice reconnects and resumes each time.
    let rig = Rig::start_with_node_config(
        &["--rate", "0", "--count", "3000", "--silent-after", "1000"],
        "no_message_timeout_secs = 1",
    );
    rig.wait_for_stored(3007);
    assert_eq!(rig.number("SELECT count(DISTINCT node_event_id) FROM events"), Some(3007));
    let health = get_json(&format!("{}/health", rig.http)).unwrap();
    assert!(health["nodes"][0]["disconnects"].as_u64() >= Some(3), "{health}");
    assert!(rig.host.as_ref().unwrap().log().contains("no bytes for 1s"));
}

#[test]
fn a_gap_beyond_the_node_buffer_is_recorded_and_backfilled_over_json_rpc() {
    assert_gap_is_backfilled(&[], "mock", "TRUE", "TransactionProcessed", 4);
}

#[test]
fn a_gap_in_a_1x_node_is_backfilled_too() {
    let main = "kind IN ('BlockAdded', 'DeployProcessed')";
    assert_gap_is_backfilled(&["--protocol", "1"], "mock/main", main, "DeployProcessed", 2);
}

/// The node keeps only 100 events per stream; while Sluice is stopped it produces about 400
/// more. `stream` carries the blocks (its events are those matching `of_stream`),
/// `events_per_block` of its events per block.
fn assert_gap_is_backfilled(protocol: &[&str], stream: &str, of_stream: &str, processed: &str, events_per_block: i64) {
    let mut rig = Rig::start(&[&["--rate", "400", "--buffer", "100"], protocol].concat(), "");
    rig.wait_for_stored(100);
    rig.stop_host();
    let cursor = rig.number(&format!("SELECT last_event_id FROM node_cursors WHERE stream = '{stream}'")).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(1));
    rig.start_host();
    let gaps_url = format!("{}/gaps", rig.http);
    let all_backfilled = |gaps: &Value| {
        gaps["gaps"].as_array().is_some_and(|gaps| {
            gaps.iter().any(|g| g["stream"] == stream) && gaps.iter().all(|g| !g["backfilled_at_ms"].is_null())
        })
    };
    rig.wait_for("backfilled gaps", || get_json(&gaps_url).is_some_and(|g| all_backfilled(&g)));
    let gaps = get_json(&gaps_url).unwrap();
    let gap = gaps["gaps"].as_array().unwrap().iter().find(|g| g["stream"] == stream).unwrap().clone();
    assert_eq!(gap["from_id"].as_i64(), Some(cursor + 1));
    let to = gap["to_id"].as_i64().unwrap();
    assert!(to > cursor + 100, "{gap}");
    assert!(gaps["gaps"].as_array().unwrap().iter().all(|g| g["backfill_note"].is_null()), "{gaps}");
    let stored = |condition: &str| rig.number(&format!("SELECT count(*) FROM events WHERE {condition}")).unwrap();
    let in_stream = |condition: &str| stored(&format!("node_event_id {condition} AND {of_stream}"));
    assert_eq!(in_stream(&format!("BETWEEN {} AND {to}", cursor + 1)), 0, "the node no longer had these");
    assert_eq!(in_stream(&format!("= {}", to + 1)), 1, "ingestion goes on right after the gap");

    // The gap's blocks came back over JSON-RPC, each with its processed transaction: the chain of
    // blocks has no hole, and every block but the newest has its transaction's execution.
    let backfilled: i64 =
        gaps["gaps"].as_array().unwrap().iter().map(|g| g["backfilled_blocks"].as_i64().unwrap()).sum();
    assert!(backfilled >= (to - cursor) / events_per_block - 1, "{gaps}");
    assert_eq!(stored("node_event_id IS NULL AND kind = 'BlockAdded'"), backfilled);
    let blocks = "kind = 'BlockAdded' AND block_height >= 1000000";
    // Up to a height read first: the node keeps producing while the test reads.
    let highest = rig.number(&format!("SELECT max(block_height) FROM events WHERE {blocks}")).unwrap();
    let count = stored(&format!("{blocks} AND block_height <= {highest}"));
    assert_eq!(count, highest - 1_000_000 + 1, "no block is missing");
    let without_execution = stored(&format!(
        "{blocks} AND block_height < {highest} AND NOT EXISTS (SELECT 1 FROM events t
         WHERE t.kind = '{processed}' AND t.block_hash = events.block_hash)"
    ));
    assert_eq!(without_execution, 0);
    // Complete: each backfilled block has its finality signatures (from the block's proofs), each
    // backfilled transaction its accepted event; /gaps says what no answer holds.
    let backfilled_blocks = "node_event_id IS NULL AND kind = 'BlockAdded'";
    let without_signatures = stored(&format!(
        "{backfilled_blocks} AND NOT EXISTS (SELECT 1 FROM events s
         WHERE s.kind = 'FinalitySignature' AND s.block_hash = events.block_hash)"
    ));
    assert_eq!(without_signatures, 0);
    let accepted = processed.replace("Processed", "Accepted");
    let without_accepted = stored(&format!(
        "node_event_id IS NULL AND kind = '{processed}' AND NOT EXISTS (SELECT 1 FROM events a
         WHERE a.kind = '{accepted}' AND a.transaction_hash = events.transaction_hash)"
    ));
    assert_eq!(without_accepted, 0);
    assert!(stored(&format!("node_event_id IS NULL AND kind = '{accepted}'")) > 0);
    let expired = processed.replace("Processed", "Expired");
    assert!(gap["not_rebuilt"].as_array().unwrap().contains(&Value::from(expired)), "{gap}");
    let (status, _) = get(&format!("{}/gaps?limit=0", rig.http)).unwrap();
    assert_eq!(status, 400);
}

#[test]
fn a_casper_1x_node_is_followed_on_its_three_streams() {
    // The mock's /status says 1.5.8, so Sluice follows /events/main, /events/deploys and
    // /events/sigs, each with its own ids and cursor; connections are cut every 500 events, and
    // every 100th generated event of each stream is malformed (25 + 12 + 12 of 5000).
    let mock = ["--protocol", "1", "--rate", "0", "--count", "5000", "--drop-after", "500", "--corrupt-every", "100"];
    let rig = Rig::start(&mock, "");
    let total = 7 + 5000 - 49;
    rig.wait_for_stored(total);
    rig.wait_for("every frame", || rig.number("SELECT count(*) FROM rejected_frames") == Some(49));
    let count = |sql: &str| rig.number(sql).unwrap();
    assert_eq!(count("SELECT count(*) FROM events"), total as i64);
    for (kind, expected) in [
        ("BlockAdded", 1251),
        ("DeployAccepted", 1251 - 12),
        ("DeployProcessed", 1251 - 25),
        ("FinalitySignature", 1251 - 12),
        ("DeployExpired", 1),
        ("Fault", 1),
        ("Step", 1),
    ] {
        assert_eq!(count(&format!("SELECT count(*) FROM events WHERE kind = '{kind}'")), expected, "{kind}");
    }
    for (stream, last) in [("mock/main", 5 + 2500 - 1), ("mock/deploys", 1250), ("mock/sigs", 1250)] {
        assert_eq!(
            count(&format!("SELECT last_event_id FROM node_cursors WHERE stream = '{stream}'")),
            last,
            "{stream}"
        );
    }
    let deploy =
        get_json(&format!("{}/transaction/99483863a391510b8d3447dd5cfc446b42d65e598672d569abc4cdded85b81e6", rig.http))
            .unwrap();
    assert_eq!(
        (deploy["accepted"]["kind"].as_str(), deploy["processed"]["kind"].as_str()),
        (Some("DeployAccepted"), Some("DeployProcessed"))
    );
    assert_eq!(get_json(&format!("{}/block/97", rig.http)).unwrap()["kind"], "BlockAdded");
    assert_eq!(get_json(&format!("{}/health", rig.http)).unwrap()["nodes"][0]["protocol"], "1.x");
}

#[test]
fn without_a_status_url_a_1x_node_is_found_by_probing() {
    let rig = Rig::start_without_status(&["--protocol", "1", "--rate", "0", "--count", "40"]);
    rig.wait_for_stored(47);
    assert_eq!(rig.number("SELECT count(*) FROM node_cursors WHERE stream LIKE 'mock/%'"), Some(3));
    assert_eq!(get_json(&format!("{}/health", rig.http)).unwrap()["nodes"][0]["protocol"], "1.x");
}

#[test]
fn a_frame_over_the_size_limit_is_skipped_and_the_rest_goes_on() {
    // Padded to over 2 MiB of (valid) JSON; the node's limit is 1 MiB.
    assert_damaged_frames_are_skipped("--bloat-every", "max_frame_mib = 1", "max_frame_mib");
}

#[test]
fn a_frame_of_40_mib_is_stored_whole() {
    // Below the default limit (256 MiB), a frame as large as a big 2.x Step goes through.
    let rig = Rig::start(&["--rate", "0", "--count", "40", "--bloat-every", "20", "--bloat-mib", "40"], "");
    rig.wait_for_stored(47);
    assert_eq!(rig.number("SELECT count(*) FROM rejected_frames"), Some(0));
    let large = rig.number("SELECT count(*) FROM events WHERE length(raw) > 40 * 1024 * 1024");
    assert_eq!(large, Some(2));
}

#[test]
fn several_nodes_deliver_each_event_once() {
    let rig = Rig::start_nodes(2, &["--rate", "0", "--count", "5000", "--drop-after", "500"], "");
    let total = 5007;
    rig.wait_for_stored(total);
    rig.wait_for("both nodes to be read to the end", || {
        get_json(&format!("{}/health", rig.http)).is_some_and(|h| h["ingest"]["duplicates"] == total)
    });
    let count = |sql: &str| rig.number(sql).unwrap();
    assert_eq!(count("SELECT count(*) FROM events"), total as i64);
    assert_eq!(count("SELECT count(*) FROM node_cursors WHERE last_event_id = 5006"), 2);
    // Both nodes are on record for every event: the first in `events`, the other as a sighting.
    let audited = "SELECT count(*) FROM events e JOIN sightings s ON s.seq = e.seq WHERE s.node != e.node";
    assert_eq!(count(audited), total as i64);
    let block = get_json(&format!("{}/block/{FIXTURE_BLOCK}", rig.http)).unwrap();
    let mut seen_by: Vec<String> = serde_json::from_value(block["seen_by"].clone()).unwrap();
    seen_by.sort();
    assert_eq!(seen_by, ["mock", "mock1"]);
    let frames = read_sse(&format!("{}/events?start_from=0", rig.http), total as usize);
    assert!(frames.iter().enumerate().all(|(i, (id, _))| *id == i as u64 + 1));
}

/// A TCP listener that accepts connections and never answers; its port.
fn black_hole() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for socket in listener.incoming() {
            held.extend(socket);
        }
    });
    port
}

#[test]
fn a_node_that_accepts_connections_and_never_answers_is_left_and_shown() {
    // `stuck` never answers on its event stream; `mock` streams, but its REST status never answers.
    let (stuck, silent_rest) = (black_hole(), black_hole());
    let sources = move |port: u16| {
        format!(
            "[[nodes]]\nname = \"stuck\"\nurl = \"http://127.0.0.1:{stuck}\"\nconnect_timeout_secs = 1\n\n\
             [[nodes]]\nname = \"mock\"\nurl = \"http://127.0.0.1:{port}\"\nrest_url = \"http://127.0.0.1:{silent_rest}\"\n\
             connect_timeout_secs = 1\n\n"
        )
    };
    let rig = Rig::start_source("mock-node", &["--rate", "0", "--count", "100"], sources, &[]);
    rig.wait_for_stored(107);
    rig.wait_for("the stuck node to be retried", || {
        let status = get_json(&format!("{}/status", rig.http)).unwrap();
        status["sources"][0]["disconnects"].as_u64() >= Some(2)
    });
    let status = get_json(&format!("{}/status", rig.http)).unwrap();
    let stuck = &status["sources"][0];
    assert!(["connecting", "reconnecting"].contains(&stuck["state"].as_str().unwrap()), "{stuck}");
    let why = stuck["last_error"]["message"].as_str().unwrap();
    assert!(why.contains("no response within 1s"), "{why}");
    let health = get_json(&format!("{}/health", rig.http)).unwrap();
    assert_eq!(
        (health["status"].as_str(), health["checks"]["sources"]["connected"].as_u64()),
        (Some("degraded"), Some(1))
    );
}

#[test]
fn a_node_restarted_past_the_cursor_while_sluice_was_away_loses_nothing() {
    // Sluice stops after about 1,000 events; the node restarts at 3,000 (ids from 0 again) and
    // numbers well past Sluice's cursor before Sluice comes back.
    let mut rig = Rig::start(&["--rate", "500", "--restart-after", "3000"], "");
    rig.wait_for_stored(1000);
    rig.stop_host();
    let cursor = rig.number("SELECT last_event_id FROM node_cursors").unwrap() as u64;
    let status = || get_json(&format!("http://127.0.0.1:{}/status", rig.nodes[0].0)).unwrap();
    rig.wait_for("the node to restart and number past the cursor", || {
        let status = status();
        status["restarted"] == true && status["last_event_id"].as_u64() > Some(cursor + 500)
    });
    rig.start_host();
    rig.wait_for("a restart to be seen", || {
        get_json(&format!("{}/health", rig.http)).is_some_and(|h| h["nodes"][0]["restarts"].as_u64() >= Some(1))
    });
    // What the node's old run sent after the cursor is gone from it: a gap, not a silent loss,
    // and its blocks come back over JSON-RPC.
    let gaps_url = format!("{}/gaps", rig.http);
    rig.wait_for("the gap to be backfilled", || {
        get_json(&gaps_url)
            .is_some_and(|g| g["gaps"].as_array().is_some_and(|g| g.iter().any(|g| !g["backfilled_at_ms"].is_null())))
    });
    let gaps = get_json(&gaps_url).unwrap();
    assert_eq!(gaps["gaps"][0]["from_id"].as_u64(), Some(cursor + 1), "{gaps}");
    let highest = rig.number("SELECT max(block_height) FROM events WHERE kind = 'BlockAdded'").unwrap();
    let row = rig.row(&format!(
        "SELECT count(*), min(block_height) FROM events
         WHERE kind = 'BlockAdded' AND block_height >= 1000000 AND block_height <= {highest}"
    ));
    let [count, lowest] = [0, 1].map(|i| row[i].as_i64().unwrap());
    assert_eq!((lowest, count), (1_000_000, highest - lowest + 1), "no block is missing");
    assert!(gaps["gaps"][0]["backfilled_blocks"].as_u64() > Some(100), "{gaps}");
}

#[test]
fn an_unreadable_frame_without_an_id_neither_stalls_nor_skips() {
    // Every connection opens with an `ApiVersion` frame that is not UTF-8: before any id on a
    // first connection, and without an id on every later one.
    let mut rig = Rig::start(&["--rate", "0", "--count", "200", "--garble-greeting", "--drop-after", "50"], "");
    rig.wait_for_stored(207);
    rig.stop_host();
    rig.start_host();
    rig.wait_for_stored(207);
    assert_eq!(rig.number("SELECT count(DISTINCT node_event_id) FROM events"), Some(207), "no event was skipped");
    let greetings = "SELECT count(*) FROM rejected_frames WHERE node_event_id IS NULL AND reason LIKE '%not UTF-8%'";
    assert!(rig.number(greetings) >= Some(5), "each connection's greeting is rejected");
}

#[test]
fn an_event_nested_too_deep_to_serve_is_rejected_and_every_page_answers() {
    let rig = Rig::start(&["--rate", "0", "--count", "200", "--deep-every", "40"], "");
    rig.wait_for_stored(202);
    rig.wait_for("the deep frames", || rig.number("SELECT count(*) FROM rejected_frames") == Some(5));
    let reason = "SELECT count(*) FROM rejected_frames WHERE reason LIKE '%nested deeper than 100%'";
    assert_eq!(rig.number(reason), Some(5));
    for path in ["/events?from_seq=1&limit=1000", "/blocks?limit=100", "/block", "/events/main?start_from=0&x"] {
        let (status, _) = get(&format!("{}{path}", rig.http)).unwrap_or((0, String::new()));
        if !path.starts_with("/events/main") {
            assert_eq!(status, 200, "{path}");
        }
    }
    let page = get_json(&format!("{}/events?from_seq=1&limit=1000", rig.http)).unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 202);
}

#[test]
fn storage_failures_show_in_health_and_metrics_and_lose_nothing() {
    let rig = Rig::start(&["--rate", "300", "--count", "3000"], "");
    rig.wait_for_stored(500);
    // A file size limit of zero (soft: it can be raised again): every write to a file fails, as
    // on a full disk. (A limit at the files' current size is not enough: the write-ahead log is
    // reused from its start once checkpointed, so it may never write past its size again.) The
    // host's log is a file too: its lines are lost, and the host must live on regardless.
    let pid = rig.host.as_ref().unwrap().pid().to_string();
    let limit = |bytes: &str| {
        let status = std::process::Command::new("prlimit").args(["--pid", &pid, &format!("--fsize={bytes}:")]).status();
        assert!(status.unwrap().success());
    };
    limit("0");
    let health = || support::get(&format!("{}/health", rig.http)).expect("the host answers on a full disk");
    rig.wait_for("/health to say storing fails", || health().0 == 503);
    let report: Value = serde_json::from_str(&health().1).unwrap();
    assert_eq!(report["status"], "failing", "{report}");
    assert!(report["checks"]["storage"]["failures"].as_u64() >= Some(1), "{report}");
    assert!(report["checks"]["storage"]["last_error"].as_str().is_some(), "{report}");
    assert_eq!(get(&format!("{}/ready", rig.http)).unwrap().0, 503);
    let metrics = get(&format!("{}/metrics", rig.admin)).unwrap().1;
    assert!(metrics.contains("sluice_storage_failing 1"), "{metrics}");
    assert!(metrics.contains("sluice_health 2"), "{metrics}");
    // Room again: ingest resumes where it stopped, nothing lost.
    limit("unlimited");
    rig.wait_for_stored(3007);
    assert_eq!(rig.number("SELECT count(DISTINCT node_event_id) FROM events"), Some(3007));
    rig.wait_for("/health to recover", || health().0 == 200);
    assert_eq!(get(&format!("{}/ready", rig.http)).unwrap().0, 200);
}

#[test]
fn the_mock_node_stops_on_ctrl_c() {
    let port = support::free_port();
    let mut mock = support::sluice().args(["mock-node", "--listen", &format!("127.0.0.1:{port}")]).spawn().unwrap();
    let status = format!("http://127.0.0.1:{port}/status");
    let started = std::time::Instant::now();
    while get_json(&status).is_none() {
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "the mock node never answered");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::process::Command::new("kill").args(["-INT", &mock.id().to_string()]).status().unwrap();
    let stopping = std::time::Instant::now();
    let exited = loop {
        if let Some(exited) = mock.try_wait().unwrap() {
            break exited;
        }
        if stopping.elapsed() > std::time::Duration::from_secs(5) {
            mock.kill().unwrap();
            panic!("the mock node still ran 5 s after Ctrl-C");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(exited.success(), "{exited}");
}
