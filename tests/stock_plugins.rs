//! Stock plugins inside the real host runtime (the harness), fed the captured node events.

mod support;

use sluice::harness::Harness;
use support::{plugin, root};

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
