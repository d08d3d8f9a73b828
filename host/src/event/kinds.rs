//! Event types: those the chain's sources emit, those of transactions, and which a plugin may
//! derive.

use std::collections::HashMap;

/// Event type of contract events: CSPR.cloud's, and those decoder plugins derive.
pub const CONTRACT_EVENT: &str = "ContractEvent";

/// Event types the chain's sources emit (Casper 2.x and 1.x nodes, F1r3fly nodes), and the
/// lifecycle frames of Sluice's own channels. A plugin may never derive one of them: that
/// would forge the chain (core lookups such as `/block` or `/transaction` read them).
/// `ContractEvent` is not among them: it is the type decoders derive. (The stock filter plugin
/// keeps its own list of the sources' types, for its config: keep the two in step.)
pub const SOURCE_KINDS: [&str; 25] = [
    "ApiVersion",
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
    "Shutdown",
    "SidecarVersion",
    "SourceState",
    "PluginReload",
    "block-created",
    "block-added",
    "block-finalised",
    "node-started",
    "approved-block-received",
    "entered-running-state",
    "transfers-available",
    "sent-unapproved-block",
    "sent-approved-block",
    "block-approval-received",
];

/// The accepted, processed and expired events of transactions (2.x) and deploys (1.x).
pub const TRANSACTION_KINDS: [&str; 6] = [
    "TransactionAccepted",
    "TransactionProcessed",
    "TransactionExpired",
    "DeployAccepted",
    "DeployProcessed",
    "DeployExpired",
];

/// The casper-sidecar's type of a transaction event's transaction: `deploy` (1.x deploys, and
/// 2.x's legacy `Deploy`) or `version1` (2.x's `Version1`); `None` for other events.
pub fn transaction_type(kind: &str, raw: &str) -> Option<&'static str> {
    use serde::de::IgnoredAny;
    #[derive(serde::Deserialize)]
    enum Type {
        Deploy(IgnoredAny),
        Version1(IgnoredAny),
    }
    #[derive(serde::Deserialize)]
    struct Named {
        transaction_hash: Type,
    }
    let of = |kind: Type| match kind {
        Type::Deploy(_) => "deploy",
        Type::Version1(_) => "version1",
    };
    match kind {
        "DeployAccepted" | "DeployProcessed" | "DeployExpired" => Some("deploy"),
        "TransactionAccepted" => serde_json::from_str::<HashMap<&str, Type>>(raw).ok()?.into_values().next().map(of),
        "TransactionProcessed" | "TransactionExpired" => {
            serde_json::from_str::<HashMap<&str, Named>>(raw).ok()?.into_values().next().map(|n| of(n.transaction_hash))
        }
        _ => None,
    }
}

/// Why `kind` cannot be the type of an event a plugin derives, if it cannot: a type a source
/// emits, or not a short name of letters, digits, `-`, `_` and `.`.
pub fn derived_kind_problem(kind: &str) -> Option<&'static str> {
    let name = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    if kind.is_empty() || kind.len() > 64 || !kind.bytes().all(name) {
        return Some("a type is 1 to 64 letters, digits, `-`, `_` or `.`");
    }
    SOURCE_KINDS.contains(&kind).then_some("a type the chain's sources emit may not be derived")
}
