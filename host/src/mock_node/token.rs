//! The mock node's CEP-18 token: what `--mix cep18` transactions emit (CES events) and what its
//! JSON-RPC answers about it (`query_global_state` of the package, the contract and the schema),
//! so the stock CES decoder can learn it like on a real network.

use crate::harness::ces::{CesEvent, transaction_processed};
use serde_json::{Map, Value, json};

/// The token's contract package hash.
pub const PACKAGE: &str = "5e1f7c9ab1d2e3f405162738495a6b7c8d9eafb0c1d2e3f405162738495a6b7c";
/// Its (only) contract version.
pub const CONTRACT: &str = "c0de18c0de18c0de18c0de18c0de18c0de18c0de18c0de18c0de18c0de18c0de";
/// The seed URef address of its `__events` dictionary.
pub const EVENTS_SEED: &str = "e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7";
/// The URef address of its `__events_schema`.
const SCHEMA_UREF: &str = "5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c";
/// The CEP-18 schema (`__events_schema` bytes).
pub const SCHEMA_HEX: &str = include_str!("../../fixtures/ces/cep18_schema.hex");

/// Placeholder of each token transaction's hash in the template.
pub const TRANSACTION_PLACEHOLDER: &str = "7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a";
/// Placeholder of its block's hash.
pub const BLOCK_PLACEHOLDER: &str = "b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7";
/// Placeholder of its sender's public key.
pub const INITIATOR_PLACEHOLDER: &str = "011a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a";

/// Events per token transaction: the chain's first mints the supply to the treasury and
/// transfers to 9 holders; each later one transfers from the treasury to 10 holders (so an
/// indexer that sees a transfer before the mint ends with other balances: order matters).
pub const EVENTS_PER_TRANSACTION: u64 = 10;

/// The supply the first token transaction mints.
pub const SUPPLY: u64 = 1_000_000_000;

fn holder(n: u64) -> String {
    format!("account-hash-{}", format!("{:02x}", 0xa0 + n).repeat(32))
}

/// A `[[plugins]]` entry running the stock CES decoder (at `wasm`) on this token, offline:
/// its `__events` URef and schema are given.
pub fn decoder_plugin_toml(name: &str, wasm: &str) -> String {
    format!(
        "[[plugins]]\nname = \"{name}\"\npath = \"{wasm}\"\n[[plugins.config.contracts]]\n\
         contract_hash = \"{CONTRACT}\"\nevents_uref = \"uref-{EVENTS_SEED}-007\"\nschema_hex = \"{}\"\n\n",
        SCHEMA_HEX.trim()
    )
}

/// A `TransactionProcessed` of the token (with the placeholders): the chain's `first` (a mint
/// and 9 transfers), or a later one (10 transfers).
pub fn transaction(first: bool) -> Value {
    let treasury = holder(0);
    let transfer = |n: u64| CesEvent::new("Transfer").key(&treasury).key(&holder(n)).u256(1000);
    let events: Vec<CesEvent> = match first {
        true => std::iter::once(CesEvent::new("Mint").key(&treasury).u256(u128::from(SUPPLY)))
            .chain((1..EVENTS_PER_TRANSACTION).map(transfer))
            .collect(),
        false => (1..=EVENTS_PER_TRANSACTION).map(transfer).collect(),
    };
    let mut processed = transaction_processed(TRANSACTION_PLACEHOLDER, BLOCK_PLACEHOLDER, EVENTS_SEED, 0, &events);
    let initiator = json!({"PublicKey": INITIATOR_PLACEHOLDER});
    processed["TransactionProcessed"]["initiator_addr"] = initiator.clone();
    processed["TransactionProcessed"]["execution_result"]["Version2"]["initiator"] = initiator;
    processed
}

/// What `query_global_state` answers about the token: the package, the contract and its schema.
pub fn state() -> Map<String, Value> {
    let named_key = |name: &str, uref: &str| json!({"name": name, "key": format!("uref-{uref}-007")});
    let entries = [
        (
            format!("hash-{PACKAGE}"),
            json!({"ContractPackage": {
                "access_key": format!("uref-{}-007", "ac".repeat(32)),
                "versions": [{"protocol_version_major": 2, "contract_version": 1, "contract_hash": format!("contract-{CONTRACT}")}],
                "disabled_versions": [], "groups": [], "lock_status": "Unlocked",
            }}),
        ),
        (
            format!("hash-{CONTRACT}"),
            json!({"Contract": {
                "contract_package_hash": format!("contract-package-{PACKAGE}"),
                "contract_wasm_hash": format!("contract-wasm-{}", "3a".repeat(32)),
                "named_keys": [named_key("__events", EVENTS_SEED), named_key("__events_schema", SCHEMA_UREF)],
                "entry_points": [], "protocol_version": "2.0.0",
            }}),
        ),
        (
            format!("uref-{SCHEMA_UREF}-007"),
            json!({"CLValue": {"cl_type": "Any", "bytes": SCHEMA_HEX.trim(), "parsed": null}}),
        ),
    ];
    entries.into_iter().collect()
}
