//! End to end: the real `sluice` binary against the real mock node, real plugins, real SQLite.

mod support;

use serde_json::Value;
use support::{Rig, check, get, get_json, plugin, read_sse};

/// The captured 2.x events (the shared fixtures, without `ApiVersion`), as the mock serves them.
fn fixtures() -> Vec<Value> {
    let dir = support::root().join("../shared/fixtures/casper2");
    let dir = if dir.is_dir() { dir } else { support::root().join("host/fixtures/casper2") };
    let mut events: Vec<Value> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap())
        .filter(|event: &Value| event.get("ApiVersion").is_none())
        .collect();
    events.sort_by_key(|e| e.to_string());
    assert_eq!(events.len(), 7, "fixtures in {}", dir.display());
    events
}

const FIXTURE_BLOCK: &str = "cb64adaae660d227b7d7579039a75e21f1022e2c044a5ed0ce0beefb12b95758";
const FIXTURE_TRANSACTION: &str = "968fafb41be4d4fb1c4b3c3647bb4803de12bff05bbaa8d16d1ef3b18fc47ee1";

fn plugin_toml(name: &str, wasm: &str, extra: &str, config: &str) -> String {
    format!("[[plugins]]\nname = \"{name}\"\npath = \"{}\"\n{extra}\n[plugins.config]\n{config}\n\n", plugin(wasm))
}

#[test]
fn every_event_is_stored_once_across_reconnects_and_served() {
    // 7 fixtures + 5000 generated events, the connection cut every 500 events.
    let rig = Rig::start(&["--rate", "0", "--count", "5000", "--drop-after", "500"], "");
    let total = 5007;
    rig.wait_for_stored(total);
    let db = rig.db();

    // Exactly once: as many rows as node events, one per natural key, one per node id.
    let count = |sql: &str| rig.number(sql).unwrap();
    assert_eq!(count("SELECT count(*) FROM events"), total as i64);
    assert_eq!(count("SELECT count(DISTINCT node_event_id) FROM events"), total as i64);
    assert_eq!(count("SELECT max(seq) FROM events"), total as i64);
    assert_eq!(count("SELECT count(*) FROM rejected_frames"), 0);
    assert_eq!(count("SELECT count(*) FROM sightings"), 0, "replays by the same node are no sightings");
    // ... in the node's order.
    let out_of_order =
        "SELECT count(*) FROM events a JOIN events b ON b.seq = a.seq + 1 WHERE b.node_event_id != a.node_event_id + 1";
    assert_eq!(count(out_of_order), 0);
    assert_eq!(count("SELECT last_event_id FROM node_cursors WHERE stream = 'mock'"), total as i64 - 1);

    // Every captured fixture is stored byte-for-byte equivalent, exactly once.
    let mut stored: Vec<Value> = db
        .prepare("SELECT raw FROM events WHERE node_event_id < 7")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|raw| serde_json::from_str(&raw.unwrap()).unwrap())
        .collect();
    stored.sort_by_key(|e| e.to_string());
    assert_eq!(stored, fixtures());

    // REST: the fixture block by hash and by height, the transaction, the latest block.
    let block = get_json(&format!("{}/block/{FIXTURE_BLOCK}", rig.http)).unwrap();
    let fixture_block = fixtures().into_iter().find(|e| e.get("BlockAdded").is_some()).unwrap();
    assert_eq!(block["data"], fixture_block);
    assert_eq!(block["kind"], "BlockAdded");
    assert_eq!(block["seen_by"], serde_json::json!(["mock"]));
    assert_eq!(get_json(&format!("{}/block/89049", rig.http)).unwrap()["data"], fixture_block);
    let transaction = get_json(&format!("{}/transaction/{FIXTURE_TRANSACTION}", rig.http)).unwrap();
    assert_eq!(transaction["processed"]["kind"], "TransactionProcessed");
    assert!(transaction["accepted"].is_null());
    // Status and metrics: the connection, the events per type.
    let status = get_json(&format!("{}/status", rig.http)).unwrap();
    assert_eq!(status["sources"][0]["events_by_kind"]["BlockAdded"], 1251, "{status}");
    let (_, metrics) = get(&format!("{}/metrics", rig.admin)).unwrap();
    for line in [
        "node_statuses{node=\"mock\"} 2",
        "sluice_source_events_total{node=\"mock\",kind=\"TransactionProcessed\"} 1251",
        &format!("sluice_ingest_stored_total {total}"),
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} not in\n{metrics}");
    }
    let latest = get_json(&format!("{}/block", rig.http)).unwrap();
    assert_eq!(latest["data"]["BlockAdded"]["block"]["Version2"]["header"]["height"], 1_000_000 + 1249);

    // SSE replay from the start: every event, in store order, with the node's JSON.
    let frames = read_sse(&format!("{}/events?start_from=0", rig.http), total as usize);
    assert_eq!(frames.len(), total as usize);
    assert!(frames.iter().enumerate().all(|(i, (id, _))| *id == i as u64 + 1));
    let raw_of =
        |seq: u64| db.query_row("SELECT raw FROM events WHERE seq = ?1", [seq], |r| r.get::<_, String>(0)).unwrap();
    for (id, data) in [&frames[0], &frames[2600], &frames[total as usize - 1]] {
        assert_eq!(serde_json::from_str::<Value>(data).unwrap(), serde_json::from_str::<Value>(&raw_of(*id)).unwrap());
    }
    // ... and from the middle.
    let tail = read_sse(&format!("{}/events?start_from=5000", rig.http), 8);
    assert_eq!(tail.iter().map(|(id, _)| *id).collect::<Vec<_>>(), (5000..=5007).collect::<Vec<_>>());
}

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
    let db = rig.db();
    let rejected: Vec<(i64, String)> = db
        .prepare("SELECT node_event_id, reason FROM rejected_frames ORDER BY node_event_id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
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
    // Every generated block from the first on is stored, with no hole around the restart.
    let blocks = "FROM events WHERE kind = 'BlockAdded' AND block_height >= 1000000";
    let (count, lowest, highest) = (
        rig.number(&format!("SELECT count(*) {blocks}")).unwrap(),
        rig.number(&format!("SELECT min(block_height) {blocks}")).unwrap(),
        rig.number(&format!("SELECT max(block_height) {blocks}")).unwrap(),
    );
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
    let (count, highest) =
        (stored(blocks), rig.number(&format!("SELECT max(block_height) FROM events WHERE {blocks}")).unwrap());
    assert_eq!(count, highest - 1_000_000 + 1, "no block is missing");
    let without_execution = stored(&format!(
        "{blocks} AND block_height < {highest} AND NOT EXISTS (SELECT 1 FROM events t
         WHERE t.kind = '{processed}' AND t.block_hash = events.block_hash)"
    ));
    assert_eq!(without_execution, 0);
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

const PACKAGE: &str = "523bfb3f4406a3b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d";

fn cspr_cloud_toml(port: u16) -> String {
    format!(
        "[[cspr_cloud]]\nname = \"cloud\"\nurl = \"ws://127.0.0.1:{port}\"\ncontract_package_hashes = [\"{PACKAGE}\"]\n\
         access_key_env = \"TEST_CLOUD_KEY\"\npersistent_session = \"sluice-test\"\nno_message_timeout_secs = 10\n\n"
    )
}

#[test]
fn cspr_cloud_contract_events_are_stored_once() {
    // 1000 events, the connection cut every 300 (the session redelivers the last one), and every
    // 50th sent twice.
    let mock = ["--count", "1000", "--drop-after", "300", "--duplicate-every", "50", "--access-key", "s3cret-key"];
    let rig = Rig::start_source("mock-cspr-cloud", &mock, cspr_cloud_toml, &[("TEST_CLOUD_KEY", "s3cret-key")]);
    rig.wait_for_stored(1000);
    let count = |sql: &str| rig.number(sql).unwrap();
    assert_eq!(count("SELECT count(*) FROM events WHERE kind = 'ContractEvent'"), 1000);
    assert_eq!(count("SELECT count(DISTINCT transaction_hash) FROM events"), 334, "three events per deploy");
    assert_eq!(count("SELECT count(*) FROM rejected_frames"), 0);
    let health = get_json(&format!("{}/health", rig.http)).unwrap();
    assert!(health["ingest"]["duplicates"].as_u64() >= Some(20 + 3), "{health}");
    let cloud = &health["nodes"][0];
    assert_eq!((cloud["protocol"].as_str(), cloud["state"].as_str()), (Some("cspr.cloud"), Some("connected")));
    let event: Value = serde_json::from_str(
        &rig.db().query_row("SELECT raw FROM events WHERE seq = 1", [], |r| r.get::<_, String>(0)).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (event["data"]["contract_package_hash"].as_str(), event["extra"]["event_id"].as_u64()),
        (Some(PACKAGE), Some(0))
    );
    assert!(!rig.host.as_ref().unwrap().log().contains("s3cret-key"), "the access key is never logged");
}

#[test]
fn a_refused_cspr_cloud_key_is_reported_as_failed() {
    let mock = ["--access-key", "the-right-key"];
    let rig = Rig::start_source("mock-cspr-cloud", &mock, cspr_cloud_toml, &[("TEST_CLOUD_KEY", "a-wrong-key")]);
    rig.wait_for("the source to be failed", || {
        get_json(&format!("{}/health", rig.http)).is_some_and(|h| h["nodes"][0]["state"] == "failed")
    });
    assert_eq!(rig.number("SELECT count(*) FROM events"), Some(0));
    assert!(rig.host.as_ref().unwrap().log().contains("401"));
    let (_, metrics) = get(&format!("{}/metrics", rig.admin)).unwrap();
    assert!(metrics.contains("node_statuses{node=\"cloud\"} -1"), "{metrics}");
}

#[test]
fn f1r3fly_events_replayed_and_live_are_stored_once() {
    // 400 blocks, 3 events each; every connection replays the 3 start-up events and is cut
    // after 500 block events.
    let toml = |port| format!("[[f1r3fly]]\nname = \"f1\"\nurl = \"ws://127.0.0.1:{port}/ws/events\"\n\n");
    let rig = Rig::start_source("mock-f1r3fly", &["--blocks", "400", "--drop-after", "500"], toml, &[]);
    rig.wait_for_stored(3 + 1200);
    let count = |sql: &str| rig.number(sql).unwrap();
    assert_eq!(count("SELECT count(*) FROM events"), 1203);
    for kind in ["block-created", "block-added", "block-finalised"] {
        assert_eq!(count(&format!("SELECT count(*) FROM events WHERE kind = '{kind}'")), 400, "{kind}");
    }
    assert_eq!(count("SELECT count(DISTINCT block_height) FROM events WHERE kind = 'block-added'"), 400);
    rig.wait_for("the start-up events of the last connection", || {
        get_json(&format!("{}/health", rig.http)).is_some_and(|h| h["ingest"]["duplicates"].as_u64() >= Some(3 * 2))
    });
    let health = get_json(&format!("{}/health", rig.http)).unwrap();
    assert_eq!(health["nodes"][0]["api_version"], "schema-version 1");
    assert_eq!(health["nodes"][0]["events_by_kind"]["node-started"], 3, "{health}");
}

#[test]
fn bad_requests_get_json_errors() {
    let rig = Rig::start(&["--rate", "0", "--count", "10"], "");
    rig.wait_for_stored(17);
    for (path, status, code) in [
        ("/block/not-a-block", 400, "invalid_block_id"),
        ("/block/0000000000000000000000000000000000000000000000000000000000000000", 404, "not_found"),
        ("/transaction/xyz", 400, "invalid_hash"),
        ("/events?start_from=minus-one", 400, "invalid_query"),
        ("/events?startfrom=1", 400, "invalid_query"),
        ("/no/such/thing", 404, "not_found"),
    ] {
        let (got, body) = get(&format!("{}{path}", rig.http)).unwrap();
        let body: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: not JSON: {body}"));
        assert_eq!((got, body["code"].as_str().unwrap()), (status, code), "{path}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{path}");
    }
}

#[test]
fn a_plugin_drop_hides_the_event_but_keeps_it_stored() {
    let filter = plugin_toml("filter", "filter", "", "drop = [\"FinalitySignature\"]");
    let rig = Rig::start(&["--rate", "0", "--count", "400"], &filter);
    let total = 407;
    rig.wait_for_stored(total);
    let count = |sql: &str| rig.number(sql).unwrap();
    let signatures = count("SELECT count(*) FROM events WHERE kind = 'FinalitySignature'");
    assert_eq!(signatures, 101, "1 fixture + 1 per generated block");
    assert_eq!(count("SELECT count(*) FROM events WHERE dropped = 1"), signatures);
    assert_eq!(count("SELECT count(*) FROM events"), total as i64);

    let frames = read_sse(&format!("{}/events?start_from=0", rig.http), (total - 101) as usize);
    assert_eq!(frames.len(), (total - 101) as usize);
    assert!(frames.iter().all(|(_, data)| !data.contains("FinalitySignature")));

    let stats = get_json(&format!("{}/plugins", rig.admin)).unwrap();
    assert_eq!(stats["plugins"][0]["dropped"], 101);
    assert_eq!(stats["plugins"][0]["kept"], total - 101);
}

#[test]
fn misbehaving_plugins_are_contained_and_ingestion_goes_on() {
    let plugins = [
        plugin_toml("trap", "chaos", "", "trap_on = \"Fault\""),
        plugin_toml("spin", "chaos", "timeout_ms = 50", "loop_on = \"Step\""),
        plugin_toml("hog", "chaos", "memory_mib = 8", "exhaust_memory_on = \"TransactionExpired\""),
        plugin_toml("sleeper", "chaos", "", "sleep_on = \"FinalitySignature\""),
        plugin_toml("broken", "chaos", "max_consecutive_failures = 3", "trap_on = \"*\""),
        plugin_toml("tagger", "chaos", "", "annotate = true"),
    ]
    .concat();
    let rig = Rig::start(&["--rate", "0", "--count", "2000"], &plugins);
    let total = 2007;
    rig.wait_for_stored(total);
    assert_eq!(rig.number("SELECT count(*) FROM events"), Some(total as i64));

    let stats = get_json(&format!("{}/plugins", rig.admin)).unwrap();
    let plugin = |name: &str| stats["plugins"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap().clone();
    assert_eq!((plugin("trap")["traps"].as_u64(), plugin("trap")["kept"].as_u64()), (Some(1), Some(total - 1)));
    assert_eq!(plugin("spin")["timeouts"], 1);
    assert_eq!(plugin("hog")["traps"], 1);
    // Sleeping would block in host code, beyond the epoch deadline's reach: it traps instead.
    let signatures = 1 + 2000 / 4;
    assert_eq!(plugin("sleeper")["traps"], signatures);
    assert!(plugin("sleeper")["last_error"].as_str().unwrap().contains("may not block"));
    for name in ["trap", "spin", "hog", "sleeper"] {
        assert_eq!(plugin(name)["calls"], total, "{name} recycled and kept being called");
        assert_eq!(plugin(name)["suspended"], false);
    }
    // A plugin that fails on every event is suspended and then passed by.
    assert_eq!((plugin("broken")["traps"].as_u64(), plugin("broken")["suspended"].as_bool()), (Some(3), Some(true)));
    assert_eq!(plugin("broken")["calls"], 3);
    // Events after the failures still went through every plugin, annotations included.
    assert_eq!(plugin("tagger")["annotated"], total);
    let block = get_json(&format!("{}/block", rig.http)).unwrap();
    assert_eq!(block["annotations"]["tagger"]["seen"], block["sequence"]);
}

#[test]
fn a_restart_resumes_after_the_last_stored_event() {
    let mut rig = Rig::start(&["--rate", "400"], "");
    rig.wait_for_stored(200);
    // An open SSE subscriber must not hold up a graceful stop; its stream ends.
    let url = format!("{}/events?start_from=0", rig.http);
    let subscriber = std::thread::spawn(move || read_sse(&url, usize::MAX).len());
    std::thread::sleep(std::time::Duration::from_millis(300));
    rig.stop_host();
    assert!(subscriber.join().unwrap() >= 200);
    let stopped_at = rig.number("SELECT max(seq) FROM events").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    rig.start_host();
    rig.wait_for_stored(stopped_at as u64 + 200);
    let host_log = rig.host.as_ref().unwrap().log();
    assert!(host_log.contains(&format!("start_from={stopped_at}")), "resumed from the cursor:\n{host_log}");
    let db = rig.db();
    let (rows, distinct, max_id): (i64, i64, i64) = db
        .query_row("SELECT count(*), count(DISTINCT node_event_id), max(node_event_id) FROM events", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    // No duplicates and no holes: ids 0..=max each stored once.
    assert_eq!((rows, distinct), (max_id + 1, max_id + 1));
}

#[test]
fn configuration_errors_name_the_key_and_line() {
    let (ok, stderr) = check("[http]\nlisten = \"127.0.0.1:1\"\nlisen = \"x\"\n");
    assert!(!ok);
    assert!(stderr.contains("line 3") && stderr.contains("lisen"), "{stderr}");

    let (ok, stderr) = check("[[plugins]]\nname = \"f\"\npath = \"nowhere/filter.wasm\"\n");
    assert!(!ok);
    assert!(stderr.contains("line 3") && stderr.contains("plugins[0].path"), "{stderr}");

    // A plugin that rejects its own config stops start-up with its message.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    let text = format!(
        "[storage]\npath = \"{}\"\n[http]\nlisten = \"127.0.0.1:{}\"\n[admin]\nlisten = \"127.0.0.1:{}\"\n{}",
        dir.path().join("db").display(),
        support::free_port(),
        support::free_port(),
        plugin_toml("filter", "filter", "", "drop = [\"FinalitySignatures\"]"),
    );
    std::fs::write(&config, text).unwrap();
    let output = support::sluice().args(["run", "--config"]).arg(&config).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("plugin \"filter\"") && stderr.contains("unknown event type \"FinalitySignatures\""),
        "{stderr}"
    );
}
