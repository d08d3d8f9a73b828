//! The events the decoder derives, serialized straight from typed structs (building
//! `serde_json::Value` trees first costs more than the decoding itself).

use serde::Serialize;
use serde_json::{Map, Value};
use sluice_plugin_sdk::DerivedEvent;
use sluice_plugin_sdk::casper::Processed;

/// A decoded contract event.
pub const CONTRACT_EVENT: &str = "ContractEvent";
/// A contract event whose bytes do not decode, with the reason.
pub const CONTRACT_EVENT_ERROR: &str = "ContractEventError";
/// What the decoder learned about a contract.
pub const CONTRACT_SCHEMA: &str = "ContractSchema";

/// Where an event came from: its transaction, and its block's height when known.
pub struct Origin<'a> {
    /// The transaction.
    pub processed: &'a Processed,
    /// Its block's height, when the block was seen.
    pub block_height: Option<u64>,
}

/// Where in its transaction one contract event was found.
pub enum Place<'a> {
    /// A CES dictionary write: the event's CES index and the effect's index.
    Ces { event_id: u64, transform_id: usize },
    /// A 2.x contract message: its topic and index among the transaction's messages.
    Message { topic_name: &'a str, message_index: usize },
}

/// A `ContractEvent` (or, with `error`, a `ContractEventError`).
#[derive(Serialize)]
pub struct ContractEvent<'a> {
    /// The emitting contract (hex).
    pub contract_hash: String,
    /// Its package (hex), when known.
    pub contract_package_hash: Option<String>,
    /// The event's name (a message's topic when it is not CES).
    pub name: Option<String>,
    /// The fields as JSON (or a plain message's payload).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// Each field's bytes (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields_raw: Option<Map<String, Value>>,
    /// The whole event's bytes (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_data: Option<String>,
    /// Why it does not decode (a `ContractEventError`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    transform_id: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    topic_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_index: Option<usize>,
    transaction_hash: &'a str,
    block_hash: &'a str,
    block_height: Option<u64>,
    timestamp: &'a str,
}

impl<'a> ContractEvent<'a> {
    /// An event of `contract` found at `place` in `origin`, with nothing decoded yet.
    pub fn new(origin: &Origin<'a>, place: &Place<'a>, contract: String, package: Option<String>) -> Self {
        let (source, event_id, transform_id, topic_name, message_index) = match *place {
            Place::Ces { event_id, transform_id } => ("ces", Some(event_id), Some(transform_id), None, None),
            Place::Message { topic_name, message_index } => {
                ("message", None, None, Some(topic_name), Some(message_index))
            }
        };
        let processed = origin.processed;
        ContractEvent {
            contract_hash: contract,
            contract_package_hash: package,
            name: None,
            data: None,
            fields_raw: None,
            raw_data: None,
            error: None,
            source,
            event_id,
            transform_id,
            topic_name,
            message_index,
            transaction_hash: &processed.hash,
            block_hash: &processed.block_hash,
            block_height: origin.block_height,
            timestamp: &processed.timestamp,
        }
    }

    /// The derived event: a `ContractEvent`, or a `ContractEventError` when it has an error.
    pub fn derive(&self, key: String, origin: &Origin) -> DerivedEvent {
        let kind = if self.error.is_some() { CONTRACT_EVENT_ERROR } else { CONTRACT_EVENT };
        derived(origin, kind, key, &self)
    }
}

/// `{kind: body}` as a derived event of `origin`'s transaction, keyed `{transaction}:{key}`.
pub fn derived(origin: &Origin, kind: &str, key: String, body: &impl Serialize) -> DerivedEvent {
    let processed = origin.processed;
    let body = serde_json::to_string(body).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    DerivedEvent {
        kind: kind.into(),
        key: format!("{}:{key}", processed.hash),
        json: format!("{{\"{kind}\":{body}}}"),
        transaction_hash: Some(processed.hash.clone()),
        block_hash: Some(processed.block_hash.clone()),
        block_height: origin.block_height,
    }
}
