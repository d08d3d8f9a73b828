//! Stock plugins inside the real host runtime (the harness), fed the captured node events.

use crate::support;

use crate::support::{plugin, root};
use sluice::harness::Harness;

fn fixture(path: &str) -> String {
    std::fs::read_to_string(root().join("host/fixtures").join(path)).unwrap()
}

/// Which of `events` the filter configured with `config` keeps (their kinds).
fn kept(config: &str, events: &[&str]) -> Vec<String> {
    let mut filter = Harness::load(&std::path::PathBuf::from(plugin("filter")), config).unwrap();
    let fed = filter.feed(events).unwrap();
    fed.into_iter().filter(|f| !f.dropped).map(|f| f.event.kind).collect()
}

const INITIATOR: &str = "0118ea8b6ed62393f8d36cb1a96b9ee62b48e35317bd2ea3ceb533a6f7ff212ad6";
const INITIATOR_HASH: &str = "account-hash-7c95dcbaa72f1fc533e3a9ff38816bfd658a8d9364fc214afc31aca75efc2f3a";
const PROPOSER: &str = "0140afe8f752e5ff100e0189c080bc207e8805b3e5e82f792ec608de2f11f39f6c";

#[test]
fn the_filter_keeps_or_drops_by_account_contract_height_and_type() {
    let (block, processed, signature) = (
        fixture("casper2/block_added_event_v2.json"),
        fixture("casper2/transaction_processed_event_with_messages.json"),
        fixture("casper2/finality_signature_event_v2.json"),
    );
    let events = [block.as_str(), processed.as_str(), signature.as_str()];

    // An account, by public key or by account hash: the initiator's transaction; the proposer's block.
    assert_eq!(kept(&format!("mode = \"keep\"\naccounts = [\"{INITIATOR}\"]"), &events), ["TransactionProcessed"]);
    assert_eq!(kept(&format!("mode = \"keep\"\naccounts = [\"{INITIATOR_HASH}\"]"), &events), ["TransactionProcessed"]);
    assert_eq!(kept(&format!("mode = \"keep\"\naccounts = [\"{PROPOSER}\"]"), &events), ["BlockAdded"]);
    // A contract its messages come from.
    let contract =
        "mode = \"keep\"\ncontracts = [\"0c3ed6cb3ad89799d30ec6f00846c815b3ebecc28149f40dc874f64adbb460c3\"]";
    assert_eq!(kept(contract, &events), ["TransactionProcessed"]);
    // A minimum height: the block (89049) and the signature (89177) carry one.
    assert_eq!(kept("mode = \"keep\"\nmin_block_height = 89100", &events), ["FinalitySignature"]);
    // Rules combine; `drop` inverts.
    let both = "mode = \"drop\"\nkinds = [\"BlockAdded\", \"FinalitySignature\"]\nmin_block_height = 89000";
    assert_eq!(kept(both, &events), ["TransactionProcessed"]);
    // The original lists still work.
    assert_eq!(kept("drop = [\"FinalitySignature\"]", &events), ["BlockAdded", "TransactionProcessed"]);
}

#[test]
fn the_filter_refuses_unknown_types_unless_declared() {
    let wasm = std::path::PathBuf::from(plugin("filter"));
    let error = Harness::load(&wasm, "mode = \"keep\"\nkinds = [\"Decoded\"]").err().unwrap();
    assert!(format!("{error:#}").contains("unknown event type \"Decoded\""), "{error:#}");
    assert!(Harness::load(&wasm, "mode = \"keep\"\nkinds = [\"Decoded\"]\nother_kinds = [\"Decoded\"]").is_ok());
    assert!(Harness::load(&wasm, "keep = [\"ContractEvent\", \"block-finalised\"]").is_ok());
    let error = Harness::load(&wasm, "mode = \"keep\"\naccounts = [\"xyz\"]").err().unwrap();
    assert!(format!("{error:#}").contains("neither a public key nor an account hash"), "{error:#}");
}

/// GET a route of a harnessed plugin as JSON (with its status).
fn get_route(plugin: &Harness, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = plugin.request("GET", path, "").unwrap();
    (status, serde_json::from_str(&body).unwrap_or_default())
}

#[test]
fn transfers_are_indexed_per_account_from_2x_and_1x_results() {
    let mut transfers = Harness::load(&std::path::PathBuf::from(plugin("transfers")), "").unwrap();
    // 1.x: a deploy whose effects write one transfer (the fixture's, with a WriteTransfer added).
    let (sender, receiver) = ("11".repeat(32), "22".repeat(32));
    let mut deploy: serde_json::Value = serde_json::from_str(&fixture("casper1/deploy_processed_event.json")).unwrap();
    let deploy_hash = deploy["DeployProcessed"]["deploy_hash"].clone();
    let success = &mut deploy["DeployProcessed"]["execution_result"]["Success"];
    success["transfers"] = serde_json::json!([format!("transfer-{}", "33".repeat(32))]);
    let written = serde_json::json!({"key": format!("transfer-{}", "33".repeat(32)), "transform": {"WriteTransfer": {
        "deploy_hash": deploy_hash, "from": format!("account-hash-{sender}"),
        "to": format!("account-hash-{receiver}"), "source": format!("uref-{}-007", "44".repeat(32)),
        "target": format!("uref-{}-004", "55".repeat(32)), "amount": "2500000000", "gas": "0", "id": 7}}});
    success["effect"]["transforms"].as_array_mut().unwrap().push(written);
    let processed_2x = fixture("casper2/transaction_processed_event_with_messages.json");
    transfers.feed(&[&processed_2x, &deploy.to_string()]).unwrap();

    // 2.x: the initiator made two transfers of 3 motes; found by account hash or public key.
    for account in [INITIATOR_HASH, INITIATOR] {
        let (status, page) = get_route(&transfers, &format!("/accounts/{account}"));
        assert_eq!(status, 200, "{page}");
        let amounts: Vec<&str> =
            page["data"].as_array().unwrap().iter().map(|t| t["amount"].as_str().unwrap()).collect();
        assert_eq!(amounts, ["3", "3"], "{page}");
        assert_eq!(page["data"][0]["direction"], "out");
        assert_eq!(
            page["data"][0]["transaction_hash"],
            "968fafb41be4d4fb1c4b3c3647bb4803de12bff05bbaa8d16d1ef3b18fc47ee1"
        );
    }
    // 1.x: the sender's is out, the receiver's in.
    let (_, sent) = get_route(&transfers, &format!("/accounts/account-hash-{sender}"));
    let (_, received) = get_route(&transfers, &format!("/accounts/account-hash-{receiver}"));
    assert_eq!((&sent["data"][0]["direction"], &sent["data"][0]["amount"]), (&"out".into(), &"2500000000".into()));
    assert_eq!((&received["data"][0]["direction"], &received["data"][0]["id"]), (&"in".into(), &7.into()));
    assert_eq!(received["data"].as_array().unwrap().len(), 1);

    // Pages of one, then the end.
    let (_, first) = get_route(&transfers, &format!("/accounts/{INITIATOR_HASH}?limit=1"));
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let (_, second) = get_route(&transfers, &format!("/accounts/{INITIATOR_HASH}?limit=1&cursor={cursor}"));
    assert_eq!(second["data"].as_array().unwrap().len(), 1);
    let (_, end) = get_route(
        &transfers,
        &format!("/accounts/{INITIATOR_HASH}?limit=1&cursor={}", second["next_cursor"].as_str().unwrap()),
    );
    assert_eq!((end["data"].as_array().unwrap().len(), &end["next_cursor"]), (0, &serde_json::Value::Null));
    // Bad parameters: JSON errors.
    for (path, code) in [
        ("/accounts/xyz", "invalid_account"),
        (&*format!("/accounts/{INITIATOR}?limit=0"), "invalid_limit"),
        (&*format!("/accounts/{INITIATOR}?cursor=abc"), "invalid_cursor"),
    ] {
        let (status, body) = get_route(&transfers, path);
        assert_eq!((status, body["code"].as_str()), (400, Some(code)), "{path}");
    }
}

#[test]
fn an_attached_filter_hides_only_where_it_is_attached() {
    let plugins = [
        support::plugin_toml("no-sigs", "filter", "attached = true", "drop = [\"FinalitySignature\"]"),
        support::plugin_toml("tally", "tally", "input = \"no-sigs\"", ""),
    ]
    .concat();
    let rig = support::Rig::start(&["--count", "40"], &plugins);
    rig.wait_for_stored(47);
    // The indexer attached to it never saw a signature; it saw the blocks.
    let count = |kind: &str| {
        support::get_json(&format!("{}/plugins/tally/counts/{kind}", rig.http)).map(|c| c["count"].clone())
    };
    rig.wait_for("the indexer to catch up", || count("BlockAdded").is_some_and(|c| c.as_u64() == Some(11)));
    assert_eq!(count("FinalitySignature").and_then(|c| c.as_u64()), None);
    // A stream with `?filter=` has no signatures; the firehose still has them.
    let kinds = |query: &str| -> Vec<String> {
        let frames = support::read_sse(&format!("{}/events?start_from=0{query}", rig.http), 36);
        frames.iter().map(|(_, data)| data.split('"').nth(1).unwrap_or_default().to_owned()).collect()
    };
    assert!(kinds("").iter().any(|k| k == "FinalitySignature"));
    assert!(!kinds("&filter=no-sigs").iter().any(|k| k == "FinalitySignature"));
    let (status, body) = support::get(&format!("{}/events?filter=nope", rig.http)).unwrap();
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("unknown_filter"), "{body}");

    // `input` must name an attached filter.
    let (ok, error) = support::check(&format!(
        "{}{}",
        support::plugin_toml("sigs", "filter", "", "drop = [\"FinalitySignature\"]"),
        support::plugin_toml("tally", "tally", "input = \"sigs\"", "")
    ));
    assert!(!ok && error.contains("no plugin named \"sigs\" with `attached = true`"), "{error}");
}
