//! History sync (`[history]`): the mock node serves a long chain whose SSE buffer holds only the
//! newest events and whose JSON-RPC answers every height; Sluice stores the whole chain.

use crate::support;

use crate::support::{Rig, get_json, plugin, plugin_toml};
use serde_json::{Value, json};
use sluice::mock_node::token;
use std::collections::BTreeMap;

/// The mock chain's first generated block.
const FIRST_HEIGHT: u64 = 1_000_000;
/// Events per block of the realistic and CEP-18 mixes (20 accepted, the block, 20 processed,
/// 100 signatures).
const PER_BLOCK: u64 = 141;

fn history_toml(extra: &str) -> String {
    format!("[history]\nfrom_height = {FIRST_HEIGHT}\n{extra}\n\n")
}

fn history(rig: &Rig) -> Value {
    get_json(&format!("{}/status", rig.http)).map(|status| status["history"].clone()).unwrap_or_default()
}

fn wait_for_history(rig: &Rig, state: &str) -> Value {
    rig.wait_for(&format!("the history sync to be {state}"), || history(rig)["state"] == state);
    history(rig)
}

/// The stock CES decoder and the example CEP-18 indexer, on the mock chain's token.
fn token_plugins() -> String {
    let decoder = token::decoder_plugin_toml("ces", &plugin("ces_decoder"));
    let indexer = plugin_toml("cep18", "cep18_indexer", "", &format!("contract_hash = \"{}\"", token::CONTRACT));
    format!("{decoder}{indexer}")
}

/// What the CEP-18 indexer answers once it has indexed every stored event: the holders'
/// balances and the supply.
fn token_balances(rig: &Rig) -> Value {
    rig.wait_for("the CEP-18 indexer to index every stored event", || {
        let head = get_json(&format!("{}/health", rig.http)).unwrap_or_default()["ingest"]["last_seq"].clone();
        let plugins = get_json(&format!("{}/plugins", rig.admin)).unwrap_or_default();
        let mut plugins = plugins["plugins"].as_array().cloned().unwrap_or_default().into_iter();
        plugins.any(|p| p["name"] == "cep18" && p["catching_up"] == false && p["last_seq"] == head)
    });
    let balances = get_json(&format!("{}/plugins/cep18/balances?limit=100", rig.http)).unwrap();
    let supply = get_json(&format!("{}/plugins/cep18/supply", rig.http)).unwrap();
    json!({"balances": balances, "supply": supply})
}

/// The token treasury's balance as the indexer answers it.
fn treasury(rig: &Rig) -> Value {
    let treasury = format!("account-hash-{}", "a0".repeat(32));
    get_json(&format!("{}/plugins/cep18/balances/{treasury}", rig.http)).unwrap()["balance"].clone()
}

/// The treasury's balance after the chain's first `transactions` token transactions, seen in
/// chain order: the first mints the supply and sends 9 transfers, each later one 10 (an indexer
/// that saw a transfer before the mint would hold more).
fn treasury_after(transactions: u64) -> Value {
    Value::from((token::SUPPLY - 1000 * (9 + 10 * (transactions - 1))).to_string())
}

/// Every event by key, its JSON as a 2.x node's JSON-RPC can give it back: a processed
/// transaction's `messages` are not part of `info_get_transaction`.
fn events_by_key(rig: &Rig, condition: &str) -> BTreeMap<String, Value> {
    let rows = rig.rows(&format!("SELECT key, raw FROM events WHERE {condition}"));
    rows.into_iter()
        .map(|row| {
            let mut raw: Value = serde_json::from_str(row[1].as_str().unwrap()).unwrap();
            if let Some(processed) = raw.get_mut("TransactionProcessed") {
                processed["messages"] = Value::Array(Vec::new());
            }
            (row[0].as_str().unwrap().to_owned(), raw)
        })
        .collect()
}

#[test]
fn a_history_sync_stores_what_a_whole_stream_stores() {
    // 60 blocks of the CEP-18 mix; the node's buffer holds the last 10.
    let blocks = 60;
    let count = (blocks * PER_BLOCK).to_string();
    let synced = Rig::start(
        &["--mix", "cep18", "--rate", "0", "--count", &count, "--buffer", &(10 * PER_BLOCK).to_string()],
        &format!("{}{}", token_plugins(), history_toml("")),
    );
    let streamed =
        Rig::start(&["--mix", "cep18", "--rate", "0", "--count", &count, "--buffer", "100000"], &token_plugins());
    let status = wait_for_history(&synced, "done");
    assert_eq!(status["to_height"], FIRST_HEIGHT + blocks - 1, "{status}");
    assert_eq!(status["heights_stored"], blocks, "{status}");
    assert_eq!(status["heights_failed"], 0, "{status}");
    // The whole stream: the node's 7 captured events, then the chain; and the events the decoder
    // derived: four token transactions of ten events a block.
    let derived = blocks * 4 * 10;
    streamed.wait_for_stored(7 + blocks * PER_BLOCK + derived);
    synced.wait_for_stored(blocks * PER_BLOCK + derived);
    let fixtures = "NOT (node = 'mock' AND node_event_id < 7)";
    let (synced_events, streamed_events) = (events_by_key(&synced, "TRUE"), events_by_key(&streamed, fixtures));
    assert!(synced_events.keys().any(|key| key.starts_with("derived:ces:")), "the decoder ran on the history");
    assert_eq!(synced_events.len(), streamed_events.len());
    for (key, event) in &streamed_events {
        assert_eq!(synced_events.get(key), Some(event), "{key}");
    }
    // Same contract events, indexed alike.
    let contract_events = |rig: &Rig| {
        rig.rows(
            "SELECT e.key, c.contract_hash, c.contract_package_hash, c.name, c.transaction_hash
             FROM contract_events c JOIN events e ON e.seq = c.seq ORDER BY e.key",
        )
    };
    let contract = contract_events(&synced);
    assert_eq!(contract.len() as u64, derived);
    assert_eq!(contract, contract_events(&streamed));
    // Each block is stored once, none twice, every height there.
    let heights = synced
        .row("SELECT count(*), count(DISTINCT block_height), min(block_height) FROM events WHERE kind = 'BlockAdded'");
    assert_eq!(heights, [blocks, blocks, FIRST_HEIGHT].map(Value::from));
    // The indexer saw the chain in chain order (the history after its live end arrived first).
    assert_eq!(token_balances(&synced), token_balances(&streamed));
    assert_eq!(treasury(&synced), treasury_after(blocks * 4));
}

#[test]
fn a_decoder_and_an_indexer_added_after_the_history_is_stored_see_all_of_it() {
    let blocks = 40;
    let count = (blocks * PER_BLOCK).to_string();
    let chain = ["--mix", "cep18", "--rate", "0", "--count", &count, "--buffer", &(10 * PER_BLOCK).to_string()];
    let late = Rig::start(&chain, &history_toml(""));
    let early = Rig::start(&chain, &format!("{}{}", token_plugins(), history_toml("")));
    wait_for_history(&late, "done");
    late.wait_for_stored(blocks * PER_BLOCK);
    assert_eq!(late.number("SELECT count(*) FROM events WHERE kind = 'ContractEvent'"), Some(0));
    // Added to the config of the running Sluice: the decoder decodes what is stored, then the
    // indexer indexes it in chain order.
    late.write_config(&format!("{}{}", token_plugins(), history_toml("")));
    let derived = blocks * 4 * 10;
    late.wait_for_stored(blocks * PER_BLOCK + derived);
    assert_eq!(token_balances(&late), token_balances(&early));
    assert_eq!(treasury(&late), treasury_after(blocks * 4));
    let contract_events =
        |rig: &Rig| rig.rows("SELECT e.key, e.chain_height FROM events e WHERE kind = 'ContractEvent' ORDER BY key");
    assert_eq!(contract_events(&late), contract_events(&early), "derived where their sources are in the chain");
}

#[test]
fn a_history_sync_killed_resumes_without_fetching_a_stored_block_again() {
    let blocks = 400;
    let count = (blocks * PER_BLOCK).to_string();
    let mut rig = Rig::start(
        &["--mix", "realistic", "--rate", "0", "--count", &count, "--buffer", &(10 * PER_BLOCK).to_string()],
        &history_toml("max_requests = 2"),
    );
    rig.wait_for("a quarter of the history", || history(&rig)["heights_stored"].as_u64() >= Some(blocks / 4));
    drop(rig.host.take()); // kill -9
    let requests = |rig: &Rig| -> BTreeMap<u64, u64> {
        let counts = get_json(&format!("http://127.0.0.1:{}/rpc-requests", rig.nodes[0].0)).unwrap();
        counts.as_object().unwrap().iter().map(|(h, n)| (h.parse().unwrap(), n.as_u64().unwrap())).collect()
    };
    let before = requests(&rig);
    let stored_before: Vec<u64> = rig
        .rows("SELECT block_height FROM events WHERE kind = 'BlockAdded'")
        .iter()
        .map(|row| row[0].as_u64().unwrap())
        .collect();
    assert!((stored_before.len() as u64) < blocks, "killed before the end");
    rig.start_host();
    let status = wait_for_history(&rig, "done");
    assert_eq!(status["heights_stored"], blocks, "{status}");
    let after = requests(&rig);
    for height in FIRST_HEIGHT..FIRST_HEIGHT + blocks {
        let fetched_again = after.get(&height).unwrap_or(&0) - before.get(&height).unwrap_or(&0);
        assert!(fetched_again <= 1, "block {height} fetched {fetched_again} times after the restart");
        if stored_before.contains(&height) {
            assert_eq!(fetched_again, 0, "block {height} was stored before the restart");
        }
    }
    // Nothing lost, nothing twice: every event of the chain, each once.
    rig.wait_for_stored(blocks * PER_BLOCK);
    let row = rig.row("SELECT count(*), count(DISTINCT block_height) FROM events WHERE kind = 'BlockAdded'");
    assert_eq!(row, [blocks, blocks].map(Value::from));
    assert_eq!(rig.number("SELECT count(*) FROM events"), Some((blocks * PER_BLOCK) as i64));
}

#[test]
fn an_rpc_failing_for_some_heights_is_retried_and_reported_while_the_live_stream_flows() {
    // Every 7th height answers garbage, then too late, then right; every 23rd is never known. The
    // node has 100 blocks (simple mix: 4 events a block) and goes on producing while Sluice syncs.
    let mut rig = Rig::start(
        &[
            "--produced",
            "400",
            "--rate",
            "100",
            "--buffer",
            "40",
            "--rpc-flaky-every",
            "7",
            "--rpc-missing-every",
            "23",
        ],
        &history_toml("request_timeout_ms = 1000\nmax_requests = 8"),
    );
    let status = wait_for_history(&rig, "retrying");
    let (to, failed) = (status["to_height"].as_u64().unwrap(), status["heights_failed"].as_u64().unwrap());
    // Every other height is stored (the flaky ones too), from the history or the live stream.
    let stored = format!("SELECT count(*) FROM events WHERE kind = 'BlockAdded' AND block_height <= {to}");
    let expected = (to + 1 - FIRST_HEIGHT - failed) as i64;
    rig.wait_for("the blocks fetched to be stored", || rig.number(&stored) == Some(expected));
    let heights: Vec<u64> = rig
        .rows(&format!("SELECT block_height FROM events WHERE kind = 'BlockAdded' AND block_height <= {to}"))
        .iter()
        .map(|row| row[0].as_u64().unwrap())
        .collect();
    let missing: Vec<u64> = (FIRST_HEIGHT..=to).filter(|h| !heights.contains(h)).collect();
    assert!(missing.len() >= 3 && missing.iter().all(|h| (h - FIRST_HEIGHT) % 23 == 22), "{missing:?}");
    assert!((FIRST_HEIGHT..=to).filter(|h| (h - FIRST_HEIGHT) % 7 == 6).count() >= 10);
    // ... and each missing one is reported with the node's answer.
    let reported: Vec<u64> =
        status["failed"].as_array().unwrap().iter().map(|f| f["height"].as_u64().unwrap()).collect();
    assert_eq!(reported, missing, "{status}");
    assert!(status["failed"][0]["error"].as_str().unwrap().contains("no such block"), "{status}");
    // Meanwhile the live stream went on: the node's newest events are stored.
    let live = || rig.number("SELECT max(node_event_id) FROM events WHERE node_event_id IS NOT NULL").unwrap();
    let then = live();
    rig.wait_for("live events", || live() > then + 100);
    let metrics = support::get(&format!("{}/metrics", rig.admin)).unwrap().1;
    let failed_metric = format!("sluice_history_heights_failed {failed}");
    assert!(metrics.contains(&failed_metric), "{metrics}");
    rig.stop_host();
}

#[test]
fn a_1x_nodes_history_is_stored_as_its_three_streams_would_have_stored_it() {
    // 100 blocks of a 1.x node (a block, a deploy accepted and processed, a signature each, over
    // `/events/main`, `/events/deploys` and `/events/sigs`); each stream keeps its last 20.
    let blocks = 100;
    let count = (blocks * 4).to_string();
    let synced =
        Rig::start(&["--protocol", "1", "--rate", "0", "--count", &count, "--buffer", "20"], &history_toml(""));
    let streamed = Rig::start(&["--protocol", "1", "--rate", "0", "--count", &count, "--buffer", "100000"], "");
    let status = wait_for_history(&synced, "done");
    assert_eq!(status["heights_failed"], 0, "{status}");
    // The generated chain's events (the node's captured fixtures are not in its blocks).
    let blocks_sql =
        format!("SELECT block_hash FROM events WHERE kind = 'BlockAdded' AND block_height >= {FIRST_HEIGHT}");
    let of_chain = format!(
        "(kind = 'BlockAdded' AND block_height >= {FIRST_HEIGHT})
         OR (kind IN ('DeployProcessed', 'FinalitySignature') AND block_hash IN ({blocks_sql}))
         OR (kind = 'DeployAccepted' AND transaction_hash IN
             (SELECT transaction_hash FROM events WHERE kind = 'DeployProcessed' AND block_hash IN ({blocks_sql})))"
    );
    let total = |rig: &Rig| rig.number(&format!("SELECT count(*) FROM events WHERE {of_chain}"));
    streamed.wait_for("the whole stream", || total(&streamed) == Some(blocks as i64 * 4));
    synced.wait_for("the whole history", || total(&synced) == Some(blocks as i64 * 4));
    assert_eq!(events_by_key(&synced, &of_chain), events_by_key(&streamed, &of_chain));
}
