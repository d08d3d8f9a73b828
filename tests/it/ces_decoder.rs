//! The stock CES decoder on the real voting-contract deploy, inside the real host runtime.

use crate::support::*;
use serde_json::Value;
use sluice::harness::{Fed, Harness};

fn decoder(config: &str) -> Harness {
    Harness::load(std::path::Path::new(&plugin("ces_decoder")), config).unwrap()
}

fn offline_config() -> String {
    let schema = fixture_text("ces/voting_schema.hex");
    format!(
        "[[contracts]]\ncontract_hash = \"hash-{VOTING_CONTRACT}\"\nevents_uref = \"{VOTING_EVENTS_UREF}\"\nschema_hex = \"{}\"",
        schema.trim()
    )
}

/// The bodies of the derived events of `kind`.
fn derived(fed: &[Fed], kind: &str) -> Vec<Value> {
    let of_kind = fed.iter().filter(|f| f.event.kind == kind);
    of_kind.map(|f| serde_json::from_str::<Value>(&f.event.raw).unwrap()[kind].clone()).collect()
}

fn assert_known_answers(events: &[Value], transaction: &str) {
    let expected = voting_known_answers();
    assert_eq!(events.len(), expected.len(), "{events:#?}");
    for (event, (transform, event_id, name, data)) in events.iter().zip(expected) {
        assert_eq!(event["name"], name);
        assert_eq!(event["data"], data, "{name}");
        assert_eq!((event["transform_id"].as_u64(), event["event_id"].as_u64()), (Some(transform), Some(event_id)));
        assert_eq!(event["contract_hash"], VOTING_CONTRACT);
        assert_eq!(event["transaction_hash"], transaction);
        assert_eq!(event["block_hash"], "6e93a8eccfe34a9e70b58c8429796d3a9d61226b43231197539bad99319f5a6c");
        assert_eq!(event["timestamp"], "2023-02-16T10:49:11.459Z");
        // The event's bytes: its name, then each field's bytes.
        let raw_data = event["raw_data"].as_str().unwrap();
        let name_hex = hex::encode(format!("event_{name}"));
        let fields: Vec<&str> =
            event["fields_raw"].as_object().unwrap().values().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(raw_data.len(), 8 + name_hex.len() + fields.iter().map(|f| f.len()).sum::<usize>(), "{event}");
        assert!(raw_data[8..].starts_with(&name_hex) && fields.iter().all(|f| raw_data.contains(f)), "{event}");
    }
}

const DEPLOY: &str = "18cd3d13852d6fb75f0eabe09807afb14a9af7edae5a885c07c9b9bce340c7ce";

#[test]
fn the_voting_deploy_yields_exactly_the_two_known_events_on_1x_and_2x() {
    for v2 in [false, true] {
        let mut decoder = decoder(&offline_config());
        let fed = decoder.feed(&[&voting_deploy_event(v2).to_string()]).unwrap();
        assert_known_answers(&derived(&fed, "ContractEvent"), DEPLOY);
        assert!(derived(&fed, "ContractEventError").is_empty());
        // The source event is stored first, then what was derived from it.
        assert_eq!(fed[0].event.kind, if v2 { "TransactionProcessed" } else { "DeployProcessed" });
    }
}

#[test]
fn dictionary_writes_that_are_not_events_and_failed_deploys_yield_nothing() {
    let mut event = voting_deploy_event(false);
    let transforms =
        event["DeployProcessed"]["execution_result"]["Success"]["effect"]["transforms"].as_array_mut().unwrap();
    // Only the seven `Any` dictionary writes that are not events (balances, allowances, …).
    let negatives: Vec<Value> = [94, 97, 103, 106, 107, 110, 113].iter().map(|i| transforms[*i].clone()).collect();
    *transforms = negatives;
    let fed = decoder(&offline_config()).feed(&[&event.to_string()]).unwrap();
    assert_eq!(fed.len(), 1, "{fed:#?}");

    // The whole deploy, failed: nothing.
    let mut failed = voting_deploy_event(false);
    let result = failed["DeployProcessed"]["execution_result"].take();
    failed["DeployProcessed"]["execution_result"] = serde_json::json!({"Failure": {"effect": result["Success"]["effect"], "transfers": [], "cost": "1", "error_message": "User error: 1"}});
    let fed = decoder(&offline_config()).feed(&[&failed.to_string()]).unwrap();
    assert_eq!(fed.len(), 1, "{fed:#?}");
}

#[test]
fn an_event_value_written_under_another_dictionary_key_is_not_the_contracts_event() {
    // The real BallotCast write (transform 99), moved to the key of another dictionary item
    // (transform 94's): its seed and item key no longer hash to the key it is written under.
    let mut event = voting_deploy_event(false);
    let transforms =
        event["DeployProcessed"]["execution_result"]["Success"]["effect"]["transforms"].as_array_mut().unwrap();
    let mut moved = transforms[99].clone();
    moved["key"] = transforms[94]["key"].clone();
    *transforms = vec![moved, transforms[115].clone()];
    let fed = decoder(&offline_config()).feed(&[&event.to_string()]).unwrap();
    let names: Vec<Value> = derived(&fed, "ContractEvent").iter().map(|e| e["name"].clone()).collect();
    assert_eq!(names, ["SimpleVotingCreated"], "only the write under its own key is an event");
}

#[test]
fn undecodable_bytes_become_a_decode_error_and_other_contracts_are_ignored() {
    // A schema that says BallotCast's stake is a U8: the bytes do not fit it.
    let schema = fixture_text("ces/voting_schema.hex");
    let mut bytes = hex::decode(schema.trim()).unwrap();
    let ballot_cast = find(&bytes, b"BallotCast").unwrap();
    let at = ballot_cast + find(&bytes[ballot_cast..], b"\x05\x00\x00\x00stake\x08").unwrap();
    bytes[at + 9] = 3;
    let config = offline_config().replace(schema.trim(), &hex::encode(bytes));
    let fed = decoder_fed(&config);
    let errors = derived(&fed, "ContractEventError");
    assert_eq!(errors.len(), 1, "{fed:#?}");
    assert_eq!(errors[0]["name"], "BallotCast");
    assert!(errors[0]["error"].as_str().unwrap().contains("left over"), "{}", errors[0]);
    assert_eq!(derived(&fed, "ContractEvent").len(), 1);

    // Watching another contract: the voting contract's events are not decoded.
    let other = format!("[[contracts]]\ncontract_hash = \"{}\"", "ab".repeat(32));
    let fed = decoder_fed(&other);
    assert_eq!(fed.len(), 1, "{fed:#?}");
}

fn decoder_fed(config: &str) -> Vec<Fed> {
    decoder(config).feed(&[&voting_deploy_event(false).to_string()]).unwrap()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn bad_configs_are_refused_with_the_reason() {
    let wasm = plugin("ces_decoder");
    let load = |config: &str| format!("{:#}", Harness::load(std::path::Path::new(&wasm), config).err().unwrap());
    assert!(load("").contains("nothing to decode"));
    assert!(load("[[contracts]]\ncontract_hash = \"hash-12\"").contains("not a 32-byte hash"));
    assert!(
        load(&format!("[[contracts]]\ncontract_hash = \"{VOTING_CONTRACT}\"\nschema_hex = \"0800\""))
            .contains("not a CES schema")
    );
    assert!(load("[[contracts]]\nevents_uref = \"x\"").contains("events_uref"));
}

/// The decoder's config in a host config file (`[plugins.config]` is its table).
fn in_host_config(plugin_config: &str) -> String {
    plugin_config.replace("[[contracts]]", "[[plugins.config.contracts]]")
}

/// A mock node (`protocol`) serving the voting deploy after its fixtures, with `state` for its
/// JSON-RPC, and a host running the decoder with `extra` keys and `config`.
fn voting_rig(protocol: &str, extra: &str, config: &str, state: Option<Value>) -> (Rig, tempfile::TempDir) {
    let files = tempfile::tempdir().unwrap();
    let script = files.path().join("script.jsonl");
    std::fs::write(&script, format!("{}\n", voting_deploy_event(protocol == "2"))).unwrap();
    let mut args =
        vec!["--protocol".to_owned(), protocol.to_owned(), "--script".to_owned(), script.display().to_string()];
    if let Some(state) = state {
        let path = files.path().join("state.json");
        std::fs::write(&path, state.to_string()).unwrap();
        args.extend(["--state".to_owned(), path.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let rig = Rig::start(&args, &plugin_toml("ces", "ces_decoder", extra, &in_host_config(config)));
    (rig, files)
}

/// Wait for `count` contract events answering `query` and return the page.
fn contract_events(rig: &Rig, query: &str, count: usize) -> Value {
    let url = format!("{}/contract-events?{query}", rig.http);
    let mut page = Value::Null;
    rig.wait_for(&format!("{count} contract events for {query}"), || {
        page = get_json(&url).unwrap_or_default();
        page["data"].as_array().is_some_and(|d| d.len() >= count)
    });
    page
}

#[test]
fn through_the_host_the_voting_events_are_served_filtered_paged_and_streamed() {
    let (rig, _files) = voting_rig("1", "", &offline_config(), None);
    let page = contract_events(&rig, &format!("contract={VOTING_CONTRACT}"), 2);
    let mut events = page["data"].as_array().unwrap().clone();
    assert_eq!(events.len(), 2, "{page}");
    events.reverse(); // newest first
    assert_known_answers(&events, DEPLOY);
    assert_eq!((&events[0]["source"], &events[0]["delivered_by"]), (&"ces".into(), &"plugin:ces".into()));

    // Filters, cursor pages and bad parameters.
    let names = |query: &str| -> Vec<String> {
        let page = get_json(&format!("{}/contract-events?{query}", rig.http)).unwrap();
        page["data"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(names("name=BallotCast"), ["BallotCast"]);
    assert_eq!(
        names(&format!("transaction={DEPLOY}&contract=hash-{VOTING_CONTRACT}")),
        ["SimpleVotingCreated", "BallotCast"]
    );
    assert!(names(&format!("package={VOTING_CONTRACT}")).is_empty());
    let first = get_json(&format!("{}/contract-events?limit=1", rig.http)).unwrap();
    assert_eq!(first["data"][0]["name"], "SimpleVotingCreated");
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = get_json(&format!("{}/contract-events?limit=1&cursor={cursor}", rig.http)).unwrap();
    assert_eq!(second["data"][0]["name"], "BallotCast");
    for (query, code) in [
        ("contract=xyz", "invalid_hash"),
        ("limit=0", "invalid_limit"),
        ("limit=5000", "invalid_limit"),
        ("cursor=abc", "invalid_cursor"),
        ("colour=red", "invalid_query"),
    ] {
        let (status, body) = get(&format!("{}/contract-events?{query}", rig.http)).unwrap();
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["code"], code, "{query}");
    }

    // The SSE stream with the same filters: one contract's BallotCast events only.
    let url =
        format!("{}/events?start_from=0&types=ContractEvent&contract={VOTING_CONTRACT}&name=BallotCast", rig.http);
    let frames = read_sse(&url, 1);
    let event: Value = serde_json::from_str(&frames[0].1).unwrap();
    assert_eq!(event["ContractEvent"]["name"], "BallotCast", "{event}");
    let (status, body) = get(&format!("{}/events?types=ContractEvent&contract=xyz", rig.http)).unwrap();
    assert_eq!(status, 400, "{body}");
}

#[test]
fn through_the_host_events_in_stored_blocks_are_served_with_their_block_height() {
    // The mock chain's CEP-18 token, as in the demo: its blocks are stored with its events.
    let toml = sluice::mock_node::token::decoder_plugin_toml("ces", &plugin("ces_decoder"));
    let rig = Rig::start(&["--mix", "cep18", "--rate", "10000", "--count", "3000"], &toml);
    let page = contract_events(&rig, "name=Transfer&limit=5", 5);
    for event in page["data"].as_array().unwrap() {
        let height = event["block_height"].as_u64().unwrap_or_else(|| panic!("no block height: {event}"));
        let block = get_json(&format!("{}/block/{height}", rig.http)).unwrap();
        assert_eq!(block["data"]["BlockAdded"]["block_hash"], event["block_hash"], "{event}");
    }
}

#[test]
fn through_the_host_a_schema_is_learned_from_the_nodes_json_rpc() {
    let package = "7b8fcb09ec1c8fbd7a4b6c4e0e4c5b7f7a1b6c2d3e4f5a6b7c8d9e0f1a2b3c4d";
    let schema_uref = "uref-9f2c54eeb2e0ad4c91e96a0e4b1d4bd47d3e87b7bc0c3a1e3b2c0d9f8e7a6b5c-007";
    let state = serde_json::json!({
        format!("hash-{VOTING_CONTRACT}"): {"Contract": {
            "contract_package_hash": format!("contract-package-wasm{package}"),
            "contract_wasm_hash": format!("contract-wasm-{}", "11".repeat(32)),
            "named_keys": [{"name": "__events", "key": VOTING_EVENTS_UREF}, {"name": "__events_schema", "key": schema_uref}],
            "entry_points": [], "protocol_version": "1.5.8",
        }},
        schema_uref: {"CLValue": {"cl_type": "Any", "bytes": fixture_text("ces/voting_schema.hex").trim(), "parsed": null}},
    });
    let config = format!("[[contracts]]\ncontract_hash = \"hash-{VOTING_CONTRACT}\"");
    let (rig, _files) = voting_rig("2", "node = \"mock\"", &config, Some(state));
    let page = contract_events(&rig, &format!("package={package}"), 2);
    let mut events = page["data"].as_array().unwrap().clone();
    events.reverse();
    assert_known_answers(&events, DEPLOY);
    assert_eq!(events[0]["contract_package_hash"], package);
    // What it learned is published as a ContractSchema event (and kept by the plugin).
    let schemas = rig.number("SELECT count(*) FROM events WHERE kind = 'ContractSchema'");
    assert_eq!(schemas, Some(1));
    rig.wait_for("the decoder to keep what it learned", || {
        rig.number("SELECT count(*) FROM plugin_data WHERE plugin LIKE 'ces@%' AND collection = 'contracts'") == Some(1)
    });
}

#[test]
fn contract_messages_are_decoded_ces_or_plain() {
    use sluice::harness::ces::{CesEvent, transaction_processed};
    let (token, seed) = ("ab".repeat(32), "cd".repeat(32));
    let schema = fixture_text("ces/cep18_schema.hex");
    let config = format!(
        "[[contracts]]\ncontract_hash = \"{token}\"\nevents_uref = \"{seed}\"\nschema_hex = \"{}\"",
        schema.trim()
    );
    let (sender, recipient) =
        (format!("account-hash-{}", "01".repeat(32)), format!("account-hash-{}", "02".repeat(32)));
    let transfer = CesEvent::new("Transfer").key(&sender).key(&recipient).u256(5);
    let mut event = transaction_processed(&"ee".repeat(32), &"ff".repeat(32), &seed, 0, &[]);
    let entity = format!("entity-contract-{token}");
    event["TransactionProcessed"]["messages"] = serde_json::json!([
        {"entity_addr": entity, "topic_name": "__events", "message": {"Bytes": hex::encode(transfer.payload())}, "topic_name_hash": "00", "topic_index": 0, "block_index": 0},
        {"entity_addr": entity, "topic_name": "status", "message": {"String": "paused"}, "topic_name_hash": "00", "topic_index": 0, "block_index": 1},
        {"entity_addr": format!("entity-contract-{}", "99".repeat(32)), "topic_name": "other", "message": {"String": "x"}, "topic_name_hash": "00", "topic_index": 0, "block_index": 2},
    ]);
    let fed = decoder(&config).feed(&[&event.to_string()]).unwrap();
    let events = derived(&fed, "ContractEvent");
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(
        (&events[0]["name"], &events[0]["source"], &events[0]["topic_name"]),
        (&"Transfer".into(), &"message".into(), &"__events".into())
    );
    assert_eq!(events[0]["data"], serde_json::json!({"sender": sender, "recipient": recipient, "amount": "5"}));
    assert_eq!((&events[1]["name"], &events[1]["data"]), (&"status".into(), &serde_json::json!({"string": "paused"})));

    // `all_messages`: any contract's, such as the captured 2.x transaction's `Locked` message.
    let captured = fixture_text("casper2/transaction_processed_event_with_messages.json");
    let fed = decoder("all_messages = true").feed(&[&captured]).unwrap();
    let events = derived(&fed, "ContractEvent");
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["name"], "Locked");
    assert_eq!(events[0]["contract_hash"], "0c3ed6cb3ad89799d30ec6f00846c815b3ebecc28149f40dc874f64adbb460c3");
    assert!(events[0]["data"]["bytes"].as_str().unwrap().starts_with("0118ea8b"));
}

/// A 1.x `DeployProcessed` of `deploy` with these transforms.
fn deploy_with(deploy: &str, transforms: Vec<Value>) -> String {
    serde_json::json!({"DeployProcessed": {
        "deploy_hash": deploy, "account": format!("01{}", "00".repeat(32)), "timestamp": "2024-01-01T00:00:00.000Z",
        "ttl": "30m", "dependencies": [], "block_hash": "bb".repeat(32),
        "execution_result": {"Success": {"effect": {"operations": [], "transforms": transforms}, "transfers": [], "cost": "1"}},
    }})
    .to_string()
}

fn transform(key: &str, transform: Value) -> Value {
    serde_json::json!({"key": key, "transform": transform})
}

/// An install (or upgrade) on 1.x: the package and one contract written, the contract's
/// `__events` and `__events_schema` keys added, the schema written.
fn install(deploy: &str, package: &str, contract: &str, seed: &str, schema_uref: &str, schema: &[u8]) -> String {
    deploy_with(
        deploy,
        vec![
            transform(&format!("hash-{package}"), "WriteContractPackage".into()),
            transform(&format!("hash-{contract}"), "WriteContract".into()),
            transform(
                &format!("uref-{schema_uref}-000"),
                serde_json::json!({"WriteCLValue": {"cl_type": "Any", "bytes": hex::encode(schema), "parsed": null}}),
            ),
            transform(
                &format!("hash-{contract}"),
                serde_json::json!({"AddKeys": [
                    {"name": "__events", "key": format!("uref-{seed}-007")},
                    {"name": "__events_schema", "key": format!("uref-{schema_uref}-007")},
                ]}),
            ),
        ],
    )
}

#[test]
fn offline_a_contract_is_learned_from_its_install_and_relearned_on_upgrade() {
    use sluice::harness::ces::{CesEvent, dictionary_write};
    let (package, v1, v2, seed, schema_uref) =
        ("0a".repeat(32), "1a".repeat(32), "2a".repeat(32), "5e".repeat(32), "5c".repeat(32));
    let schema = hex::decode(fixture_text("ces/cep18_schema.hex").trim()).unwrap();
    // The upgrade's schema adds an event: {"Paused": [["by", Key]]} (counts 7 → 8).
    let mut upgraded = schema.clone();
    upgraded[0] = 8;
    upgraded.extend(b"\x06\x00\x00\x00Paused\x01\x00\x00\x00\x02\x00\x00\x00by\x0b");
    let holder = format!("account-hash-{}", "01".repeat(32));
    // 1.x transforms carry the dictionary value as `WriteCLValue`.
    let event = |id: u64, e: &CesEvent| {
        let write = dictionary_write(&seed, id, e);
        transform(
            write["key"].as_str().unwrap(),
            serde_json::json!({"WriteCLValue": write["kind"]["Write"]["CLValue"]}),
        )
    };
    let mut decoder = decoder(&format!("[[contracts]]\npackage_hash = \"{package}\""));
    let fed = decoder
        .feed(&[
            &install(&"d1".repeat(32), &package, &v1, &seed, &schema_uref, &schema),
            &deploy_with(&"d2".repeat(32), vec![event(0, &CesEvent::new("Mint").key(&holder).u256(5))]),
            &install(&"d3".repeat(32), &package, &v2, &seed, &schema_uref, &upgraded),
            &deploy_with(&"d4".repeat(32), vec![event(1, &CesEvent::new("Paused").key(&holder))]),
        ])
        .unwrap();
    // Learned at the install; at the upgrade, the new version and (the schema URef being
    // shared) the old one's new schema.
    let learned = derived(&fed, "ContractSchema");
    let described: Vec<(&Value, bool)> =
        learned.iter().map(|l| (&l["contract_hash"], l["schema"]["Paused"].is_array())).collect();
    assert_eq!(
        described,
        [(&v1.clone().into(), false), (&v1.clone().into(), true), (&v2.clone().into(), true)],
        "{learned:#?}"
    );
    assert_eq!(learned[0]["contract_package_hash"], package);
    let events = derived(&fed, "ContractEvent");
    assert_eq!(events.len(), 2, "{:?} {fed:#?}", decoder.last_error());
    assert_eq!((&events[0]["name"], &events[0]["contract_hash"]), (&"Mint".into(), &v1.into()));
    assert_eq!((&events[1]["name"], &events[1]["contract_hash"]), (&"Paused".into(), &v2.into()));
    assert_eq!(events[1]["data"], serde_json::json!({"by": holder}));
    assert_eq!(events[1]["contract_package_hash"], package);
}

#[test]
fn through_the_host_a_schema_is_read_from_a_granted_file() {
    let schemas = tempfile::tempdir().unwrap();
    std::fs::write(schemas.path().join("voting.hex"), fixture_text("ces/voting_schema.hex")).unwrap();
    let config = format!(
        "[[contracts]]\ncontract_hash = \"{VOTING_CONTRACT}\"\nevents_uref = \"{VOTING_EVENTS_UREF}\"\nschema_file = \"voting.hex\""
    );
    let extra = format!("files = \"{}\"", schemas.path().display());
    let (rig, _files) = voting_rig("1", &extra, &config, None);
    let page = contract_events(&rig, &format!("contract={VOTING_CONTRACT}"), 2);
    let mut events = page["data"].as_array().unwrap().clone();
    events.reverse();
    assert_known_answers(&events, DEPLOY);

    // Without the grant, the plugin cannot read it, and says how to fix that.
    let wasm = plugin("ces_decoder");
    let error = Harness::load(std::path::Path::new(&wasm), &config).err().unwrap();
    assert!(format!("{error:#}").contains("grant its directory with `files"), "{error:#}");
}
