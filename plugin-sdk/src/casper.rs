//! Typed views of Casper node events, 2.x and 1.x alike, read tolerantly: a field a node does
//! not send is empty rather than an error, and [`CasperEvent::Other`] keeps what this SDK does
//! not know. The node's JSON stays available as `serde_json::Value` where shapes vary.

use serde_json::Value;

/// A node event, as a plugin usually wants it.
#[derive(Debug, Clone, PartialEq)]
pub enum CasperEvent {
    /// A block (2.x `Version2`/`Version1` blocks and 1.x blocks).
    BlockAdded(Block),
    /// A transaction (2.x) or deploy (1.x) was accepted.
    Accepted {
        /// Transaction or deploy hash.
        hash: String,
    },
    /// A transaction (2.x `TransactionProcessed`) or deploy (1.x `DeployProcessed`) executed.
    Processed(Processed),
    /// A transaction or deploy expired.
    Expired {
        /// Transaction or deploy hash.
        hash: String,
    },
    /// A validator signed a block.
    FinalitySignature {
        /// The block.
        block_hash: String,
        /// The validator.
        public_key: String,
        /// The era.
        era_id: u64,
    },
    /// A validator was found at fault.
    Fault {
        /// The era.
        era_id: u64,
        /// The validator.
        public_key: String,
    },
    /// The end of an era.
    Step {
        /// The era.
        era_id: u64,
    },
    /// Anything else: the event type and its body.
    Other(String, Value),
}

/// A block's header fields and transactions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Block {
    /// Block hash.
    pub hash: String,
    /// Height.
    pub height: u64,
    /// Era.
    pub era_id: u64,
    /// `2024-06-20T09:21:29.898Z`.
    pub timestamp: String,
    /// The proposer's public key (hex).
    pub proposer: String,
    /// Transactions (2.x, every lane) or deploys and transfers (1.x), by hash.
    pub transactions: Vec<String>,
}

/// An executed transaction or deploy.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Processed {
    /// Transaction or deploy hash.
    pub hash: String,
    /// The block it executed in.
    pub block_hash: String,
    /// When the transaction was made (`2024-06-20T09:21:29.898Z`).
    pub timestamp: String,
    /// Whether it succeeded.
    pub succeeded: bool,
    /// Why it failed, when it did.
    pub error_message: Option<String>,
    /// Its effects on global state, in order (2.x `effects`, 1.x `transforms`).
    pub effects: Vec<Effect>,
    /// 2.x contract messages.
    pub messages: Vec<Message>,
    /// Native transfers it made.
    pub transfers: Vec<Transfer>,
}

/// A native CSPR transfer (2.x `transfers`, 1.x `WriteTransfer` effects).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transfer {
    /// The paying account, `account-hash-…` (or the initiating entity, as the node formats it).
    pub from: String,
    /// The receiving account, when the transfer names one.
    pub to: Option<String>,
    /// Source purse (`uref-…`).
    pub source: String,
    /// Target purse (`uref-…`).
    pub target: String,
    /// Amount in motes, decimal.
    pub amount: String,
    /// The transfer id the sender gave, if any.
    pub id: Option<u64>,
}

/// One effect on global state.
#[derive(Debug, Clone, PartialEq)]
pub struct Effect {
    /// The key written, formatted (`dictionary-…`, `hash-…`, `balance-…`).
    pub key: String,
    /// What happened: 2.x `kind` (`{"Write":{"CLValue":{…}}}`, `"Identity"`, …) or 1.x
    /// `transform` (`{"WriteCLValue":{…}}`, `"Identity"`, …).
    pub kind: Value,
}

impl Effect {
    /// The CLValue it writes, when it writes one: `{"cl_type", "bytes", "parsed"}`.
    pub fn written_cl_value(&self) -> Option<&Value> {
        self.kind.get("Write").and_then(|write| write.get("CLValue")).or_else(|| self.kind.get("WriteCLValue"))
    }
}

/// A 2.x contract message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The emitting entity (`entity-contract-…`).
    pub entity: String,
    /// The topic's name.
    pub topic_name: String,
    /// `{"String": …}` or `{"Bytes": "hex"}`.
    pub payload: Value,
}

impl CasperEvent {
    /// Read a node event's JSON (`{"BlockAdded":{…}}`, …).
    pub fn parse(json: &str) -> CasperEvent {
        CasperEvent::from_value(&serde_json::from_str(json).unwrap_or(Value::Null))
    }

    /// Read a node event already parsed as JSON.
    pub fn from_value(value: &Value) -> CasperEvent {
        let Some((kind, body)) = value.as_object().and_then(|o| o.iter().next()) else {
            return CasperEvent::Other(String::new(), value.clone());
        };
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let number = |v: &Value| v.as_u64().unwrap_or_default();
        match kind.as_str() {
            "BlockAdded" => CasperEvent::BlockAdded(block(body)),
            "TransactionAccepted" => CasperEvent::Accepted { hash: text(&inner(body)["hash"]) },
            "DeployAccepted" => CasperEvent::Accepted { hash: text(&body["hash"]) },
            "TransactionProcessed" => CasperEvent::Processed(processed(body, &inner(&body["transaction_hash"]))),
            "DeployProcessed" => CasperEvent::Processed(processed(body, &body["deploy_hash"])),
            "TransactionExpired" => CasperEvent::Expired { hash: text(&inner(&body["transaction_hash"])) },
            "DeployExpired" => CasperEvent::Expired { hash: text(&body["deploy_hash"]) },
            "FinalitySignature" => {
                let signature = match body.get("V2").or(body.get("V1")) {
                    Some(versioned) => versioned,
                    None => body,
                };
                CasperEvent::FinalitySignature {
                    block_hash: text(&signature["block_hash"]),
                    public_key: text(&signature["public_key"]),
                    era_id: number(&signature["era_id"]),
                }
            }
            "Fault" => CasperEvent::Fault { era_id: number(&body["era_id"]), public_key: text(&body["public_key"]) },
            "Step" => CasperEvent::Step { era_id: number(&body["era_id"]) },
            other => CasperEvent::Other(other.to_owned(), body.clone()),
        }
    }
}

/// `{"Version1": x}` or `{"Deploy": x}` (2.x wrappers) → x; anything else as it is.
fn inner(value: &Value) -> Value {
    match value.as_object() {
        Some(object)
            if object.len() == 1 && ["Version1", "Version2", "Deploy"].iter().any(|k| object.contains_key(*k)) =>
        {
            object.values().next().cloned().unwrap_or_default()
        }
        _ => value.clone(),
    }
}

fn block(body: &Value) -> Block {
    let block = inner(&body["block"]);
    let (header, block_body) = (&block["header"], &block["body"]);
    let mut transactions: Vec<String> = match block_body["transactions"].as_object() {
        Some(lanes) => lanes
            .values()
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(|hash| inner(hash).as_str().map(str::to_owned))
            .collect(),
        None => Vec::new(),
    };
    for list in ["deploy_hashes", "transfer_hashes"] {
        transactions
            .extend(block_body[list].as_array().into_iter().flatten().filter_map(|h| h.as_str().map(str::to_owned)));
    }
    let proposer = header["proposer"].as_str().or(block_body["proposer"].as_str()).unwrap_or_default();
    Block {
        hash: body["block_hash"].as_str().unwrap_or_default().to_owned(),
        height: header["height"].as_u64().unwrap_or_default(),
        era_id: header["era_id"].as_u64().unwrap_or_default(),
        timestamp: header["timestamp"].as_str().unwrap_or_default().to_owned(),
        proposer: proposer.to_owned(),
        transactions,
    }
}

fn processed(body: &Value, hash: &Value) -> Processed {
    let result = &body["execution_result"];
    // 2.x: {"Version2": {error_message, effects}} or {"Version1": {"Success"|"Failure": …}};
    // 1.x: {"Success"|"Failure": {effect: {transforms}}}.
    let (succeeded, error_message, effects, transfers) = if let Some(v2) = result.get("Version2") {
        let error = v2["error_message"].as_str().map(str::to_owned);
        let transfers = v2["transfers"].as_array().into_iter().flatten().map(|t| transfer(inner(t)));
        (error.is_none(), error, effects(&v2["effects"], "kind"), transfers.collect())
    } else {
        let legacy = result.get("Version1").unwrap_or(result);
        let (succeeded, outcome) = match (legacy.get("Success"), legacy.get("Failure")) {
            (Some(success), _) => (true, success),
            (None, Some(failure)) => (false, failure),
            (None, None) => (false, &Value::Null),
        };
        let error = outcome["error_message"].as_str().map(str::to_owned);
        let effects = effects(&outcome["effect"]["transforms"], "transform");
        // 1.x results list transfer keys; the transfers are their `WriteTransfer` effects.
        let written = effects.iter().filter_map(|e| e.kind.get("WriteTransfer"));
        let transfers = written.map(|t| transfer(t.clone())).collect();
        (succeeded, error, effects, transfers)
    };
    let messages = body["messages"].as_array().into_iter().flatten().map(|m| Message {
        entity: m["entity_addr"].as_str().or(m["entity_hash"].as_str()).unwrap_or_default().to_owned(),
        topic_name: m["topic_name"].as_str().unwrap_or_default().to_owned(),
        payload: m["message"].clone(),
    });
    Processed {
        hash: hash.as_str().unwrap_or_default().to_owned(),
        block_hash: body["block_hash"].as_str().unwrap_or_default().to_owned(),
        timestamp: body["timestamp"].as_str().unwrap_or_default().to_owned(),
        succeeded,
        error_message,
        effects,
        messages: messages.collect(),
        transfers,
    }
}

fn transfer(body: Value) -> Transfer {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    // 2.x `from` is an initiator: {"AccountHash": "account-hash-…"} or {"PublicKey": "01…"}.
    let from = match &body["from"] {
        Value::String(account) => account.clone(),
        Value::Object(initiator) => match initiator.iter().next() {
            Some((kind, key)) if kind == "PublicKey" => {
                key.as_str().and_then(|k| account_hash(k).ok()).map(|h| format!("account-hash-{h}")).unwrap_or_default()
            }
            Some((_, key)) => key.as_str().unwrap_or_default().to_owned(),
            None => String::new(),
        },
        _ => String::new(),
    };
    Transfer {
        from,
        to: text(&body["to"]),
        source: text(&body["source"]).unwrap_or_default(),
        target: text(&body["target"]).unwrap_or_default(),
        amount: text(&body["amount"]).unwrap_or_default(),
        id: body["id"].as_u64(),
    }
}

pub use sluice_casper::{account_hash, bare_hash, holder_key};

fn effects(list: &Value, kind_field: &str) -> Vec<Effect> {
    let effects = list.as_array().into_iter().flatten();
    effects
        .map(|e| Effect { key: e["key"].as_str().unwrap_or_default().to_owned(), kind: e[kind_field].clone() })
        .collect()
}
