//! End to end: the real `sluice` binary against the real mock node, real plugins, real SQLite.

use crate::support;

use crate::support::{FIXTURE_BLOCK, Rig, check, fixtures, get, get_json, plugin_toml, read_sse};
use serde_json::Value;

const FIXTURE_TRANSACTION: &str = "968fafb41be4d4fb1c4b3c3647bb4803de12bff05bbaa8d16d1ef3b18fc47ee1";

#[test]
fn every_event_is_stored_once_across_reconnects_and_served() {
    // 7 fixtures + 5000 generated events, the connection cut every 500 events.
    let rig = Rig::start(&["--rate", "0", "--count", "5000", "--drop-after", "500"], "");
    let total = 5007;
    rig.wait_for_stored(total);

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
    let mut stored: Vec<Value> = rig
        .rows("SELECT raw FROM events WHERE node_event_id < 7")
        .iter()
        .map(|row| serde_json::from_str(row[0].as_str().unwrap()).unwrap())
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
    let raw_of = |seq: u64| rig.text(&format!("SELECT raw FROM events WHERE seq = {seq}"));
    for (id, data) in [&frames[0], &frames[2600], &frames[total as usize - 1]] {
        assert_eq!(serde_json::from_str::<Value>(data).unwrap(), serde_json::from_str::<Value>(&raw_of(*id)).unwrap());
    }
    // ... and from the middle.
    let tail = read_sse(&format!("{}/events?start_from=5000", rig.http), 8);
    assert_eq!(tail.iter().map(|(id, _)| *id).collect::<Vec<_>>(), (5000..=5007).collect::<Vec<_>>());
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
    let subscriber = std::thread::spawn(move || support::read_sse_text(&url));
    std::thread::sleep(std::time::Duration::from_millis(300));
    rig.stop_host();
    let text = subscriber.join().unwrap();
    assert!(text.ends_with("data: \"Shutdown\"\n\n"), "a stopping Sluice says so last, as a node does");
    let before: Vec<u64> = support::parse_sse(&text, usize::MAX).into_iter().map(|(id, _)| id).collect();
    assert!(before.len() >= 200);
    assert_eq!(before, (1..=before.len() as u64).collect::<Vec<_>>(), "every event once, in order");
    let stopped_at = rig.number("SELECT max(seq) FROM events").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    rig.start_host();
    rig.wait_for_stored(stopped_at as u64 + 200);
    let host_log = rig.host.as_ref().unwrap().log();
    // From the last id stored (the node's ids start at 0), to check it is still that event.
    assert!(host_log.contains(&format!("start_from={}", stopped_at - 1)), "resumed from the cursor:\n{host_log}");
    let row = rig.row("SELECT count(*), count(DISTINCT node_event_id), max(node_event_id) FROM events");
    let [rows, distinct, max_id] = [0, 1, 2].map(|i| row[i].as_i64().unwrap());
    // No duplicates and no holes: ids 0..=max each stored once.
    assert_eq!((rows, distinct), (max_id + 1, max_id + 1));
    // The SSE client resumes after the last id it got, from the store of the new process:
    // nothing lost or repeated across the restart.
    let last = *before.last().unwrap();
    let after: Vec<u64> =
        read_sse(&format!("{}/events?start_from={}", rig.http, last + 1), 100).into_iter().map(|(id, _)| id).collect();
    assert_eq!(after, (last + 1..=last + 100).collect::<Vec<_>>());
}

#[test]
fn configuration_errors_name_the_key_and_line() {
    // The shipped configurations are valid.
    for example in ["examples/sluice.toml", "examples/demo.toml"] {
        let (ok, stderr) = check(&std::fs::read_to_string(support::root().join(example)).unwrap());
        assert!(ok, "{example}: {stderr}");
    }

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

#[test]
fn logs_are_plain_text_and_follow_rust_log() {
    let mut rig = Rig::start(&["--rate", "0", "--count", "10"], "");
    rig.wait_for_stored(17);
    rig.stop_host();
    rig.host_env = vec![("RUST_LOG".into(), "debug".into())];
    rig.start_host();
    rig.wait_for_stored(17);
    let log = rig.host.as_ref().unwrap().log();
    assert!(log.contains(" DEBUG "), "RUST_LOG=debug is honoured:\n{log}");
    assert!(!log.contains('\u{1b}'), "no colour codes in a log file");
}

#[test]
fn another_applications_database_is_refused_unchanged_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("wallet.db");
    let db = rusqlite::Connection::open(&other).unwrap();
    db.execute_batch("CREATE TABLE keys (id INTEGER PRIMARY KEY, secret TEXT); INSERT INTO keys VALUES (1, 'x');")
        .unwrap();
    drop(db);
    let before = std::fs::read(&other).unwrap();
    let config = dir.path().join("sluice.toml");
    let ports = (support::free_port(), support::free_port());
    let text = format!(
        "[storage]\npath = \"{}\"\n[http]\nlisten = \"127.0.0.1:{}\"\n[admin]\nlisten = \"127.0.0.1:{}\"\n",
        other.display(),
        ports.0,
        ports.1
    );
    std::fs::write(&config, text).unwrap();
    let output = support::host_binary().args(["run", "--config"]).arg(&config).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains(&other.display().to_string()) && stderr.contains("not a Sluice database"), "{stderr}");
    assert!(stderr.lines().count() < 5, "a short error:\n{stderr}");
    assert_eq!(std::fs::read(&other).unwrap(), before, "the file is unchanged");
    assert!(!dir.path().join("wallet.db-wal").exists(), "not switched to WAL");
    // What `run` refuses, `check` refuses too.
    let (ok, stderr) = check("[http]\nlisten = \"127.0.0.1:7700\"\n[admin]\nlisten = \"127.0.0.1:7700\"\n");
    assert!(!ok && stderr.contains("cannot share a port"), "{stderr}");
    let (ok, stderr) = check(&format!("[storage]\npath = \"{}/sub/sluice.db\"\n", other.display()));
    assert!(!ok && stderr.contains("is not a directory"), "{stderr}");
}
