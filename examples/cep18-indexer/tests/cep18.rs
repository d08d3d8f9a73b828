//! `cargo test`: the indexer, built for wasm32-wasip2, runs inside the real Sluice host runtime
//! after the stock CES decoder, fed CEP-18 events as a node streams them.

use serde_json::Value;
use sluice::harness::ces::{CesEvent, transaction_processed};
use sluice::harness::{Harness, Upstream};
use std::path::Path;

const TOKEN: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
/// The token's `__events` dictionary (its seed URef address).
const EVENTS: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const CEP18_SCHEMA: &str = include_str!("../../../host/fixtures/ces/cep18_schema.hex");

fn account(n: u8) -> String {
    format!("account-hash-{}", hex_byte(n).repeat(32))
}

fn hex_byte(n: u8) -> String {
    format!("{n:02x}")
}

/// The indexer after the stock decoder, watching the token.
fn indexer() -> Harness {
    let decoder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/wasm32-wasip2/release/ces_decoder.wasm");
    let decoder_config = format!(
        "[[contracts]]\ncontract_hash = \"{TOKEN}\"\nevents_uref = \"uref-{EVENTS}-007\"\nschema_hex = \"{}\"",
        CEP18_SCHEMA.trim()
    );
    let upstream = [Upstream { name: "ces", wasm: &decoder, config_toml: &decoder_config }];
    Harness::build_after(&upstream, env!("CARGO_MANIFEST_DIR"), &format!("contract_hash = \"{TOKEN}\"")).unwrap()
}

fn get(indexer: &Harness, path: &str) -> (u16, Value) {
    let (status, body) = indexer.request("GET", path, "").unwrap();
    (status, serde_json::from_str(&body).unwrap())
}

#[test]
fn a_transfer_flow_yields_balances_supply_allowances_and_history() {
    let (a, b, c, spender) = (account(1), account(2), account(3), account(4));
    let first = transaction_processed(
        &"01".repeat(32),
        &"f1".repeat(32),
        EVENTS,
        0,
        &[CesEvent::new("Mint").key(&a).u256(1000), CesEvent::new("Transfer").key(&a).key(&b).u256(300)],
    );
    let second = transaction_processed(
        &"02".repeat(32),
        &"f2".repeat(32),
        EVENTS,
        2,
        &[
            CesEvent::new("Transfer").key(&b).key(&c).u256(100),
            CesEvent::new("Burn").key(&a).u256(200),
            CesEvent::new("SetAllowance").key(&b).key(&spender).u256(500),
            CesEvent::new("TransferFrom").key(&spender).key(&b).key(&c).u256(50),
        ],
    );
    // Another contract's events are not the token's.
    let other = transaction_processed(
        &"03".repeat(32),
        &"f3".repeat(32),
        &"cc".repeat(32),
        0,
        &[CesEvent::new("Mint").key(&a).u256(7)],
    );
    let mut indexer = indexer();
    let fed = indexer.feed(&[&first.to_string(), &second.to_string(), &other.to_string()]).unwrap();
    assert_eq!(fed.iter().filter(|f| f.event.kind == "ContractEvent").count(), 6, "{:?}", indexer.last_error());

    for (holder, balance) in [(&a, "500"), (&b, "150"), (&c, "150"), (&spender, "0")] {
        let (status, body) = get(&indexer, &format!("/balances/{holder}"));
        assert_eq!((status, body["balance"].as_str()), (200, Some(balance)), "{holder}");
    }
    // The same account by its bare hash, as the host's `/accountDeploys/{account}` takes it.
    let bare = a.trim_start_matches("account-hash-");
    assert_eq!(get(&indexer, &format!("/balances/{bare}")), (200, get(&indexer, &format!("/balances/{a}")).1));
    assert_eq!(get(&indexer, "/supply").1["total_supply"], "800");
    assert_eq!(get(&indexer, &format!("/allowances/{b}/{spender}")).1["allowance"], "500");

    // B's history, newest first: the TransferFrom, its Transfer to C, then A's Transfer to it.
    let (_, history) = get(&indexer, &format!("/transfers?account={b}"));
    let kinds: Vec<&str> = history["data"].as_array().unwrap().iter().map(|t| t["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["TransferFrom", "Transfer", "Transfer"], "{history}");
    assert_eq!(history["data"][2]["from"], a.as_str());
    // Everything, two at a time.
    let (_, page) = get(&indexer, "/transfers?limit=2");
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = get(&indexer, &format!("/transfers?limit=5&cursor={cursor}"));
    assert_eq!(rest["data"].as_array().unwrap().len(), 3, "{rest}");
    // Holders: A, B and C (the spender only has an allowance).
    let (_, holders) = get(&indexer, "/balances");
    assert_eq!(holders["data"].as_array().unwrap().len(), 3, "{holders}");

    let (status, body) = get(&indexer, "/balances/not-an-account");
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_account")));
}
