//! `cargo test`: the indexer, built for wasm32-wasip2, runs inside the real Sluice host runtime
//! (the `sluice` binary: `SLUICE`, else on `PATH`) after the stock CES decoder, fed CEP-18
//! events as a node streams them (`events.jsonl`; the TypeScript example's test feeds the same).

use sluice_plugin_sdk::testing::{PluginTest, Report};

/// The token (its contract hash) and its events: A mints 1000 and sends B 300; B sends C 100;
/// A burns 200; B allows the spender 500, who moves 50 of B's to C. Then another contract mints.
const TOKEN: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const EVENTS: &str = include_str!("events.jsonl");

fn account(n: u8) -> String {
    format!("account-hash-{}", format!("{n:02x}").repeat(32))
}

/// The indexer after the stock decoder, watching the token, asked `requests`.
fn indexed(requests: &[&str]) -> Report {
    let decoder = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/wasm32-wasip2/release/ces_decoder.wasm");
    let events: Vec<&str> = EVENTS.lines().collect();
    PluginTest::build(env!("CARGO_MANIFEST_DIR"))
        .after("ces", decoder, include_str!("decoder.toml"))
        .config(&format!("contract_hash = \"{TOKEN}\""))
        .run(&[&events], requests)
}

#[test]
fn a_transfer_flow_yields_balances_supply_allowances_and_history() {
    let (a, b, c, spender) = (account(1), account(2), account(3), account(4));
    let bare = a.trim_start_matches("account-hash-").to_owned();
    let balances: Vec<String> = [&a, &b, &c, &spender, &bare].iter().map(|h| format!("GET /balances/{h}")).collect();
    let allowance = format!("GET /allowances/{b}/{spender}");
    let history = format!("GET /transfers?account={b}");
    let mut requests: Vec<&str> = balances.iter().map(String::as_str).collect();
    requests.extend([&allowance, &history, "GET /supply", "GET /transfers?limit=2", "GET /balances"]);
    requests.push("GET /balances/not-an-account");
    let report = indexed(&requests);
    assert_eq!(report.error, None);
    let contract_events = report.events.iter().filter(|e| e["kind"] == "ContractEvent").count();
    assert_eq!(contract_events, 6, "{:?}", report.events);

    for (request, balance) in balances.iter().zip(["500", "150", "150", "0"]) {
        let reply = report.response(request);
        assert_eq!((reply.status, reply.body["balance"].as_str()), (200, Some(balance)), "{request}");
    }
    // The same account by its bare hash, as the host's `/accountDeploys/{account}` takes it.
    assert_eq!(report.response(&balances[4]).body, report.response(&balances[0]).body);
    assert_eq!(report.response("GET /supply").body["total_supply"], "800");
    assert_eq!(report.response(&allowance).body["allowance"], "500");

    // B's history, newest first: the TransferFrom, its Transfer to C, then A's Transfer to it.
    let history = &report.response(&history).body;
    let kinds: Vec<&str> = history["data"].as_array().unwrap().iter().map(|t| t["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["TransferFrom", "Transfer", "Transfer"], "{history}");
    assert_eq!(history["data"][2]["from"], a.as_str());
    // Holders: A, B and C (the spender only has an allowance).
    assert_eq!(report.response("GET /balances").body["data"].as_array().unwrap().len(), 3);
    let invalid = report.response("GET /balances/not-an-account");
    assert_eq!((invalid.status, invalid.body["code"].as_str()), (400, Some("invalid_account")));

    // Everything, two at a time.
    let page = &report.response("GET /transfers?limit=2").body;
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    let rest = format!("GET /transfers?limit=5&cursor={}", page["next_cursor"].as_str().unwrap());
    let rest = indexed(&[&rest]).responses.remove(0).body;
    assert_eq!(rest["data"].as_array().unwrap().len(), 3, "{rest}");
}
