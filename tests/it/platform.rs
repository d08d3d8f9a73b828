//! The plugin platform end to end: an indexer with its own storage and routes (the test-only
//! `tally` plugin), isolation between plugins, consistency after `kill -9`, dead letters.

use crate::support;

use crate::support::{Rig, get, get_json, plugin_toml};
use serde_json::Value;

/// Wait until every stored event went through plugin `name`'s indexer (its current version, or
/// the storage id `name@version`).
fn wait_indexed(rig: &Rig, name: &str, events: i64) {
    let condition = if name.contains('@') { format!("plugin = '{name}'") } else { format!("plugin LIKE '{name}@%'") };
    rig.wait_for(&format!("{name} to index {events} events"), || {
        rig.number(&format!("SELECT max(last_seq) FROM plugin_cursors WHERE {condition}")) == Some(events)
    });
}

/// Events of each type in the store whose sequence is not in `skipped`.
fn stored_counts(rig: &Rig, skipped: std::ops::RangeInclusive<i64>) -> Vec<(String, i64)> {
    let (from, to) = (skipped.start(), skipped.end());
    let sql =
        format!("SELECT kind, count(*) FROM events WHERE seq NOT BETWEEN {from} AND {to} GROUP BY kind ORDER BY kind");
    rig.rows(&sql).iter().map(|r| (r[0].as_str().unwrap().to_owned(), r[1].as_i64().unwrap())).collect()
}

/// No sequence (`stored_counts` of every event).
const NONE: std::ops::RangeInclusive<i64> = 0..=0;

/// The indexer's count for `kind`, through its route (0 when it has none: a 404 `not_found`).
fn indexed_count(rig: &Rig, plugin: &str, kind: &str) -> i64 {
    let (status, body) = get(&format!("{}/plugins/{plugin}/counts/{kind}", rig.http)).expect("the host answers");
    let body: Value = serde_json::from_str(&body).expect("JSON");
    match status {
        200 => body["count"].as_i64().expect("a count"),
        404 if body["code"] == "not_found" => 0,
        _ => panic!("{plugin} answered {status}: {body}"),
    }
}

#[test]
fn an_indexer_keeps_its_own_storage_and_serves_it() {
    let rig = Rig::start(&["--rate", "0", "--count", "2000"], &plugin_toml("tally", "tally", "", ""));
    rig.wait_for_stored(2007);
    wait_indexed(&rig, "tally", 2007);
    let counts = stored_counts(&rig, NONE);
    assert_eq!(counts.len(), 7, "{counts:?}");
    for (kind, count) in &counts {
        assert_eq!(indexed_count(&rig, "tally", kind), *count, "{kind}");
    }

    // Paging through a scan, and a lookup through the index the plugin declared.
    let first = get_json(&format!("{}/plugins/tally/counts?limit=3", rig.http)).unwrap();
    let kinds: Vec<String> = serde_json::from_value(first["kinds"].clone()).unwrap();
    let rest = get_json(&format!("{}/plugins/tally/counts?after={}", rig.http, kinds[2])).unwrap();
    let rest: Vec<String> = serde_json::from_value(rest["kinds"].clone()).unwrap();
    let all: Vec<String> = kinds.into_iter().chain(rest).collect();
    assert_eq!(all, counts.iter().map(|(kind, _)| kind.clone()).collect::<Vec<_>>());
    let eras = rig
        .rows("SELECT era_id, count(*) FROM events WHERE kind = 'BlockAdded' GROUP BY era_id")
        .iter()
        .map(|r| (r[0].as_i64().unwrap(), r[1].as_i64().unwrap()))
        .collect::<Vec<_>>();
    for (era, blocks) in eras {
        let found = get_json(&format!("{}/plugins/tally/blocks?era={era}", rig.http)).unwrap();
        assert_eq!(found["blocks"].as_array().unwrap().len() as i64, blocks.min(1000), "era {era}");
        assert!(found["blocks"].as_array().unwrap().iter().all(|b| b["era"] == era));
    }

    // Routes may only read; a body over the output limit is refused; unknown plugins are 404.
    let (status, body) = post(&format!("{}/plugins/tally/counts/BlockAdded", rig.http));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("read-only"), "{body}");
    let (status, body) = get(&format!("{}/plugins/tally/huge", rig.http)).unwrap();
    assert_eq!((status, serde_json::from_str::<Value>(&body).unwrap()["code"].as_str()), (502, Some("plugin_failed")));
    let (status, _) = get(&format!("{}/plugins/nobody/counts", rig.http)).unwrap();
    assert_eq!(status, 404);
    let plugins = get_json(&format!("{}/plugins", rig.admin)).unwrap();
    assert_eq!(plugins["plugins"][0]["errors"], 1, "the oversized answer is counted: {plugins}");
}

/// The automatic read API: the collections `tally` lists as served, read by the host without
/// calling the plugin.
#[test]
fn the_host_serves_declared_collections_with_filters_paging_counts_and_400s() {
    let rig = Rig::start(&["--rate", "0", "--count", "2000"], &plugin_toml("tally", "tally", "", ""));
    rig.wait_for_stored(2007);
    wait_indexed(&rig, "tally", 2007);
    let url = |path: &str| format!("{}/plugins/tally/collections{path}", rig.http);
    let index = get_json(&url("")).unwrap();
    assert_eq!(
        index["collections"],
        serde_json::json!([{"name": "blocks", "filters": ["era"]}, {"name": "counts", "filters": []}])
    );
    let blocks = rig.number("SELECT count(*) FROM events WHERE kind = 'BlockAdded'").unwrap();
    let entry = get_json(&url("/counts/BlockAdded")).unwrap();
    assert_eq!((entry["key"].as_str(), entry["value"]["count"].as_i64()), (Some("BlockAdded"), Some(blocks)));

    // Every block of one era, five at a time, in key order, with the count.
    let era = rig.number("SELECT era_id FROM events WHERE kind = 'BlockAdded' ORDER BY seq LIMIT 1 OFFSET 50").unwrap();
    let in_era =
        rig.number(&format!("SELECT count(*) FROM events WHERE kind = 'BlockAdded' AND era_id = {era}")).unwrap();
    let (mut keys, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let after = cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default();
        let page = get_json(&url(&format!("/blocks?era={era}&limit=5&count=true{after}"))).unwrap();
        assert_eq!((page["count"].as_i64(), &page["count_complete"]), (Some(in_era), &Value::Bool(true)));
        for entry in page["data"].as_array().unwrap() {
            assert_eq!(entry["value"]["era"], era, "{entry}");
            keys.push(entry["key"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(keys.len() as i64, in_era);
    assert!(keys.windows(2).all(|pair| pair[0] < pair[1]), "in key order, once each: {keys:?}");
    // By key prefix: the ten heights sharing all digits but the last with one stored block.
    let tens = (rig.number("SELECT max(chain_height) FROM events WHERE kind = 'BlockAdded'").unwrap() - 20) / 10 * 10;
    let prefix = &format!("{tens:020}")[..19];
    let page = get_json(&url(&format!("/blocks?prefix={prefix}&limit=1000&count=true"))).unwrap();
    let heights: Vec<i64> =
        page["data"].as_array().unwrap().iter().map(|e| e["value"]["height"].as_i64().unwrap()).collect();
    assert_eq!(heights, (tens..tens + 10).collect::<Vec<_>>());
    assert_eq!(page["count"], 10);

    for (query, code) in [
        ("/blocks?limit=0", "invalid_limit"),
        ("/blocks?height=7", "invalid_parameter"),
        ("/blocks?era=1&prefix=0", "invalid_filter"),
        ("/blocks?prefix=1&cursor=0", "invalid_cursor"),
        ("/blocks?count=maybe", "invalid_count"),
        ("/counts?era=1", "invalid_parameter"),
    ] {
        let (status, body) = get(&url(query)).unwrap();
        assert_eq!(
            (status, serde_json::from_str::<Value>(&body).unwrap()["code"].as_str()),
            (400, Some(code)),
            "{query}"
        );
    }
    assert_eq!(get(&url("/blocks/nothing-here")).unwrap().0, 404);
    assert_eq!(post(&url("/blocks")).0, 405);
    // A collection it does not serve is its own route's business (tally has no such route).
    let (status, body) = get(&url("/secrets")).unwrap();
    assert_eq!(
        (status, serde_json::from_str::<Value>(&body).unwrap()["message"].as_str()),
        (404, Some("no such route"))
    );
    let document = get_json(&format!("{}/api-doc.json", rig.http)).unwrap();
    let list = &document["paths"]["/plugins/tally/collections/blocks"]["get"];
    let parameters: Vec<&str> =
        list["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(parameters, ["prefix", "cursor", "limit", "count", "era"]);
    assert!(document["paths"]["/plugins/tally/collections/counts/{key}"]["get"].is_object());
}

/// A live subscription to one key of a served collection: a snapshot, then every committed
/// change of that key and of no other, over many batches, and after a reconnect exactly those
/// it missed.
#[test]
fn a_subscription_gets_exactly_the_changes_of_its_key_across_batches_and_a_reconnect() {
    let rig = Rig::start(&["--rate", "60", "--count", "900"], &plugin_toml("tally", "tally", "", ""));
    let url = |after: Option<&str>| {
        let after = after.map(|id| format!("&after={id}")).unwrap_or_default();
        format!("{}/plugins/tally/changes/counts?key=BlockAdded{after}", rig.http)
    };
    let json = |data: &str| serde_json::from_str::<Value>(data).unwrap();
    // Ids are `{change}@{plugin version}`.
    let change = |id: &str| id.split_once('@').unwrap().0.parse::<u64>().unwrap();
    let first: Vec<(String, String)> = support::read_frames_until(&url(None), |frames| frames.len() >= 4);
    let (snapshot_id, snapshot) = (change(&first[0].0), json(&first[0].1));
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    let mut delivered: Vec<(u64, Value)> = first[1..4].iter().map(|(id, data)| (change(id), json(data))).collect();
    // Away while more batches commit; then back, from the last change it saw.
    std::thread::sleep(std::time::Duration::from_secs(2));
    rig.wait_for_stored(907);
    wait_indexed(&rig, "tally", 907);
    let blocks = rig.number("SELECT count(*) FROM events WHERE kind = 'BlockAdded'").unwrap();
    let last = change(&first[3].0);
    let rest: Vec<(String, String)> = support::read_frames_until(&url(Some(&first[3].0)), |frames| {
        frames.last().is_some_and(|(_, data)| json(data)["value"]["count"] == blocks)
    });
    delivered.extend(rest.iter().map(|(id, data)| (change(id), json(data))));
    let logged = rig.rows(&format!(
        "SELECT id, value FROM plugin_changes WHERE plugin LIKE 'tally@%' AND collection = 'counts'
         AND key = 'BlockAdded' AND id > {snapshot_id} ORDER BY id"
    ));
    let logged: Vec<(u64, Value)> =
        logged.iter().map(|row| (row[0].as_u64().unwrap(), json(row[1].as_str().unwrap()))).collect();
    assert!(logged.len() > 5, "changes over several batches: {logged:?}");
    let received: Vec<(u64, Value)> = delivered.iter().map(|(id, change)| (*id, change["value"].clone())).collect();
    assert_eq!(received, logged, "exactly the key's changes, once each, in order");
    assert!(delivered.iter().all(|(_, change)| change["type"] == "change" && change["key"] == "BlockAdded"));
    let counts: Vec<i64> = received.iter().map(|(_, value)| value["count"].as_i64().unwrap()).collect();
    assert!(counts.windows(2).all(|pair| pair[0] < pair[1]), "{counts:?}");
    let before = snapshot["entries"][0]["value"]["count"].as_i64().unwrap_or(0);
    assert!(before < counts[0], "the snapshot comes before the first change");
    // Another version's id is a resync; a subscription names one key, one prefix or one field.
    let other =
        support::read_frames_until::<String>(&url(Some(&format!("{last}@0123456789abcdef"))), |f| !f.is_empty());
    assert_eq!(json(&other[0].1)["type"], "snapshot", "after a resync, a new snapshot");
    let (status, body) = get(&format!("{}/plugins/tally/changes/counts?era=1", rig.http)).unwrap();
    assert_eq!((status, json(&body)["code"].as_str()), (400, Some("invalid_parameter")));
}

fn post(url: &str) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    sluice::install_tls_provider();
    runtime.block_on(async {
        let response = reqwest::Client::new().post(url).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    })
}

#[test]
fn plugins_cannot_see_each_others_storage() {
    let plugins = [
        plugin_toml("tally_a", "tally", "", "kinds = [\"BlockAdded\"]"),
        plugin_toml("tally_b", "tally", "", "kinds = [\"TransactionAccepted\"]"),
    ]
    .concat();
    let rig = Rig::start(&["--rate", "0", "--count", "400"], &plugins);
    rig.wait_for_stored(407);
    wait_indexed(&rig, "tally_a", 407);
    wait_indexed(&rig, "tally_b", 407);
    // Same code, same collection and key names: each sees only what it wrote.
    let kinds = |plugin: &str| get_json(&format!("{}/plugins/{plugin}/counts", rig.http)).unwrap()["kinds"].clone();
    assert_eq!(kinds("tally_a"), serde_json::json!(["BlockAdded"]));
    assert_eq!(kinds("tally_b"), serde_json::json!(["TransactionAccepted"]));
    assert_eq!(indexed_count(&rig, "tally_b", "BlockAdded"), 0);
    assert_eq!(indexed_count(&rig, "tally_a", "BlockAdded"), 101);
    let owners =
        rig.number("SELECT count(DISTINCT plugin) FROM plugin_data WHERE collection = 'counts' AND key = 'BlockAdded'");
    assert_eq!(owners, Some(1));
}

#[test]
fn after_kill_9_the_index_equals_a_clean_run() {
    // The writes of an indexed batch commit with the batch: a host killed mid-stream and
    // restarted neither loses nor double-applies any.
    let mut rig = Rig::start(&["--rate", "3000", "--count", "9000"], &plugin_toml("tally", "tally", "", ""));
    rig.wait_for_stored(2000);
    drop(rig.host.take()); // SIGKILL
    rig.start_host();
    rig.wait_for_stored(9007);
    wait_indexed(&rig, "tally", 9007);
    for (kind, count) in stored_counts(&rig, NONE) {
        assert_eq!(indexed_count(&rig, "tally", &kind), count, "{kind}");
    }
}

#[test]
fn a_failing_batch_is_a_dead_letter_and_halt_stops_only_that_plugin() {
    // Both refuse the batch holding the fixtures' Step (sequence 7 at most): `skip` records it
    // and goes on, `halt` records it and stops there.
    let plugins = [
        plugin_toml("skipper", "tally", "", "fail_on = \"Step\""),
        plugin_toml("halter", "tally", "on_error = \"halt\"", "fail_on = \"Step\""),
        // Fails on every batch with a block: suspended after 3 failures in a row.
        plugin_toml("quitter", "tally", "max_consecutive_failures = 3", "fail_on = \"BlockAdded\""),
    ]
    .concat();
    let rig = Rig::start(&["--rate", "1000", "--count", "3000"], &plugins);
    rig.wait_for_stored(3007);
    wait_indexed(&rig, "skipper", 3007);
    let failure = |plugin: &str| -> (i64, i64, String) {
        let row =
            rig.row(&format!("SELECT from_seq, to_seq, error FROM plugin_failures WHERE plugin LIKE '{plugin}@%'"));
        (row[0].as_i64().unwrap(), row[1].as_i64().unwrap(), row[2].as_str().unwrap().to_owned())
    };
    let (from, to, error) = failure("skipper");
    assert!(from <= 7 && to >= 7 && error.contains("refusing a batch with a Step"), "{from}..{to}: {error}");
    for (kind, count) in stored_counts(&rig, from..=to) {
        assert_eq!(indexed_count(&rig, "skipper", &kind), count, "all but the dead letter: {kind}");
    }
    let (from, _, _) = failure("halter");
    assert_eq!(rig.number("SELECT last_seq FROM plugin_cursors WHERE plugin LIKE 'halter@%'"), Some(from - 1));
    let plugins = get_json(&format!("{}/plugins", rig.admin)).unwrap();
    assert_eq!(plugins["plugins"][1]["suspended"], true, "{plugins}");
    assert_eq!(plugins["plugins"][0]["suspended"], false, "{plugins}");
    assert_eq!(plugins["plugins"][2]["suspended"], true, "{plugins}");
    // At least 3 (a batch without a block succeeds and starts the count again).
    let quit_after = rig.number("SELECT count(*) FROM plugin_failures WHERE plugin LIKE 'quitter@%'").unwrap();
    assert!(quit_after >= 3, "{quit_after}");
}

#[test]
fn a_new_indexer_and_a_new_version_replay_the_log_and_match_live_processing() {
    let live = plugin_toml("live", "tally", "", "");
    let mut rig = Rig::start(&["--rate", "2000", "--count", "4000"], &live);
    rig.wait_for_stored(2000);
    rig.stop_host();
    let old_version = rig.text("SELECT plugin FROM plugin_cursors WHERE plugin LIKE 'live@%'");
    // Restarted with a second indexer (same code, new name) and a new version of the first
    // (a new config): both replay the stored log, then follow live events.
    let config = "kinds = [\"BlockAdded\", \"TransactionAccepted\", \"TransactionProcessed\", \"FinalitySignature\", \"TransactionExpired\", \"Fault\", \"Step\"]";
    rig.write_config(&[plugin_toml("live", "tally", "", config), plugin_toml("added", "tally", "", "")].concat());
    rig.start_host();
    rig.wait_for_stored(4007);
    wait_indexed(&rig, "added", 4007);
    let new_version = rig.text("SELECT plugin FROM plugin_cursors WHERE plugin LIKE 'live@%'");
    assert_ne!(new_version, old_version);
    wait_indexed(&rig, &new_version, 4007);
    for (kind, count) in stored_counts(&rig, NONE) {
        assert_eq!(indexed_count(&rig, "added", &kind), count, "added: {kind}");
        assert_eq!(indexed_count(&rig, "live", &kind), count, "new version: {kind}");
    }
    let leftovers = rig.number(&format!("SELECT count(*) FROM plugin_data WHERE plugin = '{old_version}'"));
    assert_eq!(leftovers, Some(0), "the old version's storage is removed once the new one is live");
}

#[test]
fn sluice_replay_rebuilds_an_indexer_from_the_log() {
    let mut rig = Rig::start(&["--rate", "0", "--count", "2000"], &plugin_toml("tally", "tally", "", ""));
    rig.wait_for_stored(2007);
    wait_indexed(&rig, "tally", 2007);
    rig.stop_host();
    let snapshot = |rig: &Rig| -> Vec<(String, String)> {
        let rows = rig.rows("SELECT key, value FROM plugin_data ORDER BY collection, key");
        rows.iter().map(|r| (r[0].as_str().unwrap().to_owned(), r[1].as_str().unwrap().to_owned())).collect()
    };
    let live = snapshot(&rig);
    let output = support::sluice()
        .args(["replay", "--plugin", "tally", "--config"])
        .arg(rig.config_path())
        .current_dir(support::root())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("replayed events 1..=2007"));
    assert_eq!(snapshot(&rig), live, "replaying the log rebuilds exactly what live indexing built");
}

#[test]
fn a_decoder_derives_events_stored_after_their_source_and_indexed_like_any_other() {
    let plugins = [
        plugin_toml("decoder", "tally", "", "kinds = []\nderive = true"),
        plugin_toml("counter", "tally", "", "kinds = [\"TallyDerived\"]"),
    ]
    .concat();
    let mut rig = Rig::start(&["--rate", "0", "--count", "800", "--drop-after", "300"], &plugins);
    let processed: i64 = 1 + 200;
    rig.wait_for_stored(807 + processed as u64);
    wait_indexed(&rig, "counter", 807 + processed);
    let count = |sql: &str| rig.number(sql).unwrap();
    assert_eq!(count("SELECT count(*) FROM events WHERE kind = 'TallyDerived' AND node = 'plugin:decoder'"), processed);
    // Each right after its source, pointing back at it, with its transaction indexed.
    let from = rig.database.json_text("d.raw", "TallyDerived.from");
    let misplaced = format!(
        "SELECT count(*) FROM events d JOIN events s ON s.seq = d.seq - 1
         WHERE d.kind = 'TallyDerived' AND (s.kind != 'TransactionProcessed'
            OR CAST({from} AS BIGINT) != s.seq OR d.transaction_hash != s.transaction_hash)"
    );
    assert_eq!(count(&misplaced), 0);
    assert_eq!(indexed_count(&rig, "counter", "TallyDerived"), processed);
    // Restarted, nothing is derived twice; the SSE stream carries derived events too.
    rig.stop_host();
    rig.start_host();
    rig.wait_for_stored(807 + processed as u64);
    assert_eq!(rig.number("SELECT count(*) FROM events WHERE kind = 'TallyDerived'"), Some(processed));
    let frames = support::read_sse(&format!("{}/events?start_from=1", rig.http), 20);
    assert!(frames.iter().any(|(_, data)| data.contains("TallyDerived")), "{frames:?}");
}

#[test]
fn a_plugin_queries_only_the_node_it_is_granted_and_only_to_read() {
    let plugins = [
        plugin_toml("granted", "tally", "node = \"mock\"", "kinds = []"),
        plugin_toml("plain", "tally", "", "kinds = []"),
    ]
    .concat();
    let rig = Rig::start(&["--rate", "0", "--count", "100"], &plugins);
    rig.wait_for_stored(107);
    let block = get_json(&format!("{}/plugins/granted/node/1000003", rig.http)).unwrap();
    let hash = block["block_with_signatures"]["block"]["Version2"]["hash"].as_str().unwrap().to_owned();
    assert_eq!(hash, rig.text("SELECT block_hash FROM events WHERE block_height = 1000003"));
    let (status, body) = get(&format!("{}/plugins/plain/node/1000003", rig.http)).unwrap();
    assert_eq!(status, 502);
    assert!(body.contains("no node granted"), "{body}");
    let (status, body) = get(&format!("{}/plugins/granted/node-write", rig.http)).unwrap();
    assert_eq!(status, 403);
    assert!(body.contains("not a read-only query"), "{body}");
}

#[test]
fn a_new_decoder_that_indexes_decodes_live_events_while_it_replays_the_log() {
    let mut rig = Rig::start(&["--rate", "1500", "--count", "12000"], "");
    rig.wait_for_stored(4000);
    rig.stop_host();
    let restart_head = rig.number("SELECT max(seq) FROM events").unwrap();
    // Slow indexing (busy work per event) keeps it replaying while live events arrive.
    let decoder = plugin_toml("decoder", "tally", "timeout_ms = 20000", "derive = true\nindex_spin = 2000000");
    rig.write_config(&decoder);
    rig.start_host();
    rig.wait_for("the stream to end", || rig.number("SELECT count(*) FROM events WHERE node = 'mock'") == Some(12_007));
    // Every transaction processed after the restart got its derived event, replay or not.
    let missing = rig.number(&format!(
        "SELECT count(*) FROM events s WHERE s.kind = 'TransactionProcessed' AND s.seq > {restart_head}
         AND NOT EXISTS (SELECT 1 FROM events d WHERE d.kind = 'TallyDerived' AND d.transaction_hash = s.transaction_hash)"
    ));
    assert_eq!(missing, Some(0));
    let plugins = get_json(&format!("{}/plugins", rig.admin)).unwrap();
    assert!(plugins["plugins"][0]["derived"].as_u64() > Some(0), "{plugins}");
}
