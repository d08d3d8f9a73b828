//! Stock plugin `filter`: keep or drop events by type, account, contract and block height.
//!
//! ```toml
//! [[plugins]]
//! name = "filter"
//! path = "target/wasm32-wasip2/release/filter.wasm"
//! [plugins.config]
//! drop = ["FinalitySignature"]       # or: keep = ["BlockAdded", "TransactionProcessed"]
//! ```
//!
//! Or with rules (an event matches when it meets every rule given; within a list, any entry):
//!
//! ```toml
//! [plugins.config]
//! mode = "keep"                      # keep what matches, drop the rest; or "drop" what matches
//! kinds = ["TransactionProcessed", "ContractEvent"]
//! accounts = ["01…public key", "account-hash-…"]   # initiator, signer, proposer, validator
//! contracts = ["…hash"]              # contract or package hash (hex): CSPR.cloud contract
//!                                    # events, and transactions whose effects or messages touch it
//! min_block_height = 1000000         # blocks and 2.x signatures below it do not match
//! other_kinds = ["MyDecodedEvent"]   # event types beyond the known ones (from decoders)
//! ```
//! Type names are checked against the known ones, so a typo fails at start-up instead of
//! filtering nothing. A public key and its account hash are the same account.

use serde::Deserialize;
use serde_json::Value;
use sluice_plugin_sdk::casper::{CasperEvent, account_hash, bare_hash};
use sluice_plugin_sdk::{Event, Manifest, Plugin, Verdict};
use std::collections::HashSet;

/// Every event type Sluice's sources deliver: Casper 1.x and 2.x nodes, CSPR.cloud, F1r3fly.
/// (The host's `event::SOURCE_KINDS`, which decoders may not derive, is the same list without
/// `ContractEvent` and with the lifecycle frames: keep the two in step.)
const KNOWN_KINDS: &[&str] = &[
    "BlockAdded",
    "TransactionAccepted",
    "TransactionProcessed",
    "TransactionExpired",
    "DeployAccepted",
    "DeployProcessed",
    "DeployExpired",
    "FinalitySignature",
    "Fault",
    "Step",
    "ContractEvent",
    "block-created",
    "block-added",
    "block-finalised",
    "transfers-available",
    "sent-unapproved-block",
    "sent-approved-block",
    "approved-block-received",
    "block-approval-received",
    "entered-running-state",
    "node-started",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    keep: Option<Vec<String>>,
    drop: Option<Vec<String>>,
    mode: Option<Mode>,
    kinds: Option<Vec<String>>,
    accounts: Option<Vec<String>>,
    contracts: Option<Vec<String>>,
    min_block_height: Option<u64>,
    #[serde(default)]
    other_kinds: Vec<String>,
}

#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Mode {
    Keep,
    Drop,
}

/// What an event must be to match.
struct Filter {
    mode: Mode,
    kinds: Option<HashSet<String>>,
    /// Account hashes (hex), public keys converted.
    accounts: Option<HashSet<String>>,
    /// Contract or package hashes (hex).
    contracts: Option<Vec<String>>,
    min_block_height: Option<u64>,
}

impl Plugin for Filter {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        let (mode, kinds) = match (config.keep, config.drop, config.mode) {
            (Some(keep), None, None) => (Mode::Keep, Some(keep)),
            (None, Some(drop), None) => (Mode::Drop, Some(drop)),
            (None, None, Some(mode)) => (mode, config.kinds),
            _ => return Err("give `keep` or `drop` (lists of event types), or `mode` with rules".into()),
        };
        let known = |kind: &String| KNOWN_KINDS.contains(&kind.as_str()) || config.other_kinds.contains(kind);
        if let Some(unknown) = kinds.iter().flatten().find(|kind| !known(kind)) {
            let known = KNOWN_KINDS.join(", ");
            return Err(format!("unknown event type {unknown:?}; known: {known} (and `other_kinds`)"));
        }
        let accounts = match config.accounts {
            Some(accounts) => Some(accounts.iter().map(|a| account_hash(a)).collect::<Result<HashSet<_>, _>>()?),
            None => None,
        };
        let contracts = config.contracts.map(|c| c.iter().map(|h| bare_hash(h).to_lowercase()).collect());
        let filter = Filter {
            mode,
            kinds: kinds.map(HashSet::from_iter),
            accounts,
            contracts,
            min_block_height: config.min_block_height,
        };
        Ok(filter)
    }

    fn manifest(&self) -> Manifest {
        Manifest::new().filtering()
    }

    fn on_event(&mut self, event: &Event) -> Verdict {
        if self.matches(event) == (self.mode == Mode::Keep) { Verdict::Keep } else { Verdict::Drop }
    }
}

impl Filter {
    /// Whether `event` meets every rule (the cheap ones first: the JSON is parsed at most once).
    fn matches(&self, event: &Event) -> bool {
        if self.kinds.as_ref().is_some_and(|kinds| !kinds.contains(&event.kind)) {
            return false;
        }
        if self.accounts.is_none() && self.contracts.is_none() && self.min_block_height.is_none() {
            return true;
        }
        let json: Value = serde_json::from_str(&event.json).unwrap_or(Value::Null);
        let casper = CasperEvent::from_value(&json);
        if let Some(accounts) = &self.accounts
            && !accounts_of(&casper, &json).iter().filter_map(|a| account_hash(a).ok()).any(|a| accounts.contains(&a))
        {
            return false;
        }
        if let Some(contracts) = &self.contracts
            && !contracts.iter().any(|contract| touches(&casper, &json, contract))
        {
            return false;
        }
        match (self.min_block_height, height(&casper, &json)) {
            (Some(min), Some(height)) => height >= min,
            (Some(_), None) => false,
            (None, _) => true,
        }
    }
}

/// The accounts an event is about, as they appear (public keys or account hashes).
fn accounts_of(casper: &CasperEvent, json: &Value) -> Vec<String> {
    let body = json.as_object().and_then(|o| o.values().next()).unwrap_or(&Value::Null);
    let text = |v: &Value| v.as_str().map(str::to_owned);
    match casper {
        CasperEvent::BlockAdded(block) => vec![block.proposer.clone()],
        CasperEvent::FinalitySignature { public_key, .. } | CasperEvent::Fault { public_key, .. } => {
            vec![public_key.clone()]
        }
        _ => {
            // 2.x `initiator_addr` ({"PublicKey": …} or {"AccountHash": …}), 1.x `account`, and an
            // accepted transaction's payload or deploy header.
            let inner = body.get("Version1").or(body.get("Deploy")).unwrap_or(body);
            let candidates = [
                &body["initiator_addr"],
                &body["account"],
                &inner["payload"]["initiator_addr"],
                &inner["header"]["account"],
            ];
            let addresses = candidates.into_iter().filter_map(|v| match v {
                Value::Object(o) => o.values().next().and_then(text),
                other => text(other),
            });
            addresses.collect()
        }
    }
}

/// Whether the event is about `contract` (bare hex): a CSPR.cloud contract event of it, or a
/// processed transaction whose effects or messages touch it.
fn touches(casper: &CasperEvent, json: &Value, contract: &str) -> bool {
    let data = &json["data"];
    if ["contract_hash", "contract_package_hash"]
        .iter()
        .any(|f| data[f].as_str().is_some_and(|h| bare_hash(h) == contract))
    {
        return true;
    }
    match casper {
        CasperEvent::Processed(processed) => {
            processed.effects.iter().any(|effect| effect.key.ends_with(contract))
                || processed.messages.iter().any(|message| message.entity.ends_with(contract))
        }
        _ => false,
    }
}

/// The block height an event carries, if any.
fn height(casper: &CasperEvent, json: &Value) -> Option<u64> {
    match casper {
        CasperEvent::BlockAdded(block) => Some(block.height),
        CasperEvent::FinalitySignature { .. } => {
            let body = &json["FinalitySignature"];
            body.get("V2").unwrap_or(body)["block_height"].as_u64()
        }
        _ => json.as_object()?.values().next()?.get("block_height")?.as_u64(),
    }
}

sluice_plugin_sdk::export!(Filter);
