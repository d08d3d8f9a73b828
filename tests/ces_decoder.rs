//! The stock CES decoder on the real voting-contract deploy, inside the real host runtime.

mod support;

use serde_json::Value;
use sluice::harness::{Fed, Harness};
use support::*;

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
        let fields: Vec<&str> = event["fields_raw"].as_object().unwrap().values().map(|v| v.as_str().unwrap()).collect();
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
    let transforms = event["DeployProcessed"]["execution_result"]["Success"]["effect"]["transforms"].as_array_mut().unwrap();
    // Only the seven `Any` dictionary writes that are not events (balances, allowances, …).
    let negatives: Vec<Value> = [94, 97, 103, 106, 107, 110, 113].iter().map(|i| transforms[*i].clone()).collect();
    *transforms = negatives;
    let fed = decoder(&offline_config()).feed(&[&event.to_string()]).unwrap();
    assert_eq!(fed.len(), 1, "{fed:#?}");

    // The whole deploy, failed: nothing.
    let mut failed = voting_deploy_event(false);
    let result = failed["DeployProcessed"]["execution_result"].take();
    failed["DeployProcessed"]["execution_result"] =
        serde_json::json!({"Failure": {"effect": result["Success"]["effect"], "transfers": [], "cost": "1", "error_message": "User error: 1"}});
    let fed = decoder(&offline_config()).feed(&[&failed.to_string()]).unwrap();
    assert_eq!(fed.len(), 1, "{fed:#?}");
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
    assert!(load(&format!("[[contracts]]\ncontract_hash = \"{VOTING_CONTRACT}\"\nschema_hex = \"0800\"")).contains("not a CES schema"));
    assert!(load("[[contracts]]\nevents_uref = \"x\"").contains("events_uref"));
}
