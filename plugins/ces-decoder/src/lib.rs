//! Stock plugin `ces-decoder`: decodes Casper Event Standard (CES) events and 2.x contract
//! messages of the contracts it watches into `ContractEvent` events.
//!
//! ```toml
//! [[plugins]]
//! name = "ces"
//! path = "target/wasm32-wasip2/release/ces_decoder.wasm"
//! node = "my-node"                 # optional: learn schemas from the node's JSON-RPC
//! [[plugins.config.contracts]]
//! package_hash = "hash-…"          # every version of the package, or
//! contract_hash = "hash-…"         # one contract
//! events_uref = "uref-…-007"       # offline: the `__events` dictionary's URef …
//! schema_hex = "0800…"             # … and the `__events_schema` bytes
//! ```
//!
//! A contract's schema and `__events` dictionary come from the config, from its install or
//! upgrade when seen (the effects name the keys and write the schema), or from the granted
//! node; what is learned is published as a `ContractSchema` event and kept in storage.
//! With `all_messages = true`, every contract's messages are decoded, not only watched ones'.
//!
//! Each event found becomes a `ContractEvent`: contract and package hash, name, fields as JSON
//! (`data`) and as bytes (`fields_raw`, hex), the whole event's bytes (`raw_data`), the CES
//! event index and the transform index, the transaction, block and timestamp. Bytes that do not
//! decode become a `ContractEventError` instead. Failed transactions yield nothing.

mod ces;
mod contracts;
mod node;

use ces::{EventWrite, parse_hash};
use contracts::{Hash, Registry, Watch};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sluice_plugin_sdk::casper::{CasperEvent, Processed};
use sluice_plugin_sdk::{DerivedEvent, Event, Manifest, Plugin, log, storage};
use std::collections::{HashMap, VecDeque};

/// The events this plugin derives.
const CONTRACT_EVENT: &str = "ContractEvent";
const CONTRACT_EVENT_ERROR: &str = "ContractEventError";
const CONTRACT_SCHEMA: &str = "ContractSchema";

/// Where learned contracts are kept.
const CONTRACTS: &str = "contracts";

/// After a failed node query, how many transactions pass before the node is asked again.
const NODE_PAUSE: u32 = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    contracts: Vec<ContractConfig>,
    /// Decode the messages of every contract, watched or not.
    #[serde(default)]
    all_messages: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContractConfig {
    package_hash: Option<String>,
    contract_hash: Option<String>,
    events_uref: Option<String>,
    schema_hex: Option<String>,
}

impl ContractConfig {
    fn watch(self) -> Result<Watch, String> {
        let hash = |field: &str, text: Option<String>| match text {
            Some(text) => parse_hash(&text).map(Some).ok_or_else(|| format!("{field} {text:?} is not a 32-byte hash")),
            None => Ok(None),
        };
        let watch = Watch {
            package: hash("package_hash", self.package_hash)?,
            contract: hash("contract_hash", self.contract_hash)?,
            events_seed: hash("events_uref", self.events_uref)?,
            schema_hex: self.schema_hex,
        };
        match watch.package.or(watch.contract) {
            Some(_) => Ok(watch),
            None => Err("each of `contracts` needs a package_hash or a contract_hash".into()),
        }
    }
}

struct CesDecoder {
    registry: Registry,
    all_messages: bool,
    /// Whether what earlier instances learned has been read back from storage.
    restored: bool,
    /// Transactions to pass before asking the node again (after a failure).
    node_pause: u32,
    /// Whether a node failure was logged (once is enough).
    node_warned: bool,
    /// Heights of recent blocks (a node sends a block before its transactions).
    heights: Heights,
}

impl Plugin for CesDecoder {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        let watches = config.contracts.into_iter().map(ContractConfig::watch).collect::<Result<_, _>>()?;
        let registry = Registry::new(watches)?;
        if registry.is_empty() && !config.all_messages {
            return Err("nothing to decode: list `contracts`, or set `all_messages = true`".into());
        }
        Ok(CesDecoder { registry, all_messages: config.all_messages, restored: false, node_pause: 0, node_warned: false, heights: Heights::default() })
    }

    fn manifest(&self) -> Manifest {
        Manifest { decode: true, filter: false, index_kinds: vec![CONTRACT_SCHEMA.into()], routes: false, indexes: Vec::new() }
    }

    fn decode(&mut self, event: &Event) -> Vec<DerivedEvent> {
        match event.kind.as_str() {
            "BlockAdded" => {
                if let CasperEvent::BlockAdded(block) = event.casper() {
                    self.heights.insert(block.hash, block.height);
                }
                Vec::new()
            }
            "TransactionProcessed" | "DeployProcessed" if worth_parsing(&event.json) => {
                let CasperEvent::Processed(processed) = event.casper() else { return Vec::new() };
                if !processed.succeeded {
                    return Vec::new();
                }
                self.restore();
                self.decode_processed(&processed)
            }
            _ => Vec::new(),
        }
    }

    /// Keep what was learned (`ContractSchema` events, this instance's or an earlier version's).
    fn index(&mut self, events: &[Event]) -> Result<(), String> {
        for event in events {
            let value: Value = serde_json::from_str(&event.json).map_err(|e| e.to_string())?;
            let description = &value[CONTRACT_SCHEMA];
            if let Some(contract) = description["contract_hash"].as_str() {
                storage::set(CONTRACTS, contract, &description.to_string())?;
            }
        }
        Ok(())
    }
}

/// Whether a transaction may hold CES events, messages or contract knowledge (checked on the
/// text, which is much cheaper than parsing it).
fn worth_parsing(json: &str) -> bool {
    ["\"Any\"", "\"topic_name\"", "AddKeys", "NamedKey", "WriteContract", "\"Contract\""]
        .iter()
        .any(|marker| json.contains(marker))
}

/// Where an event came from in its transaction.
struct Origin<'a> {
    processed: &'a Processed,
    block_height: Option<u64>,
}

impl CesDecoder {
    fn decode_processed(&mut self, processed: &Processed) -> Vec<DerivedEvent> {
        let origin = Origin { processed, block_height: self.heights.get(&processed.block_hash) };
        let mut derived = Vec::new();
        let changed = self.registry.learn(&processed.effects);
        derived.extend(changed.iter().map(|contract| self.schema_event(&origin, contract)));
        for (transform_id, effect) in processed.effects.iter().enumerate() {
            let Some(write) = dictionary_event(effect) else { continue };
            if self.registry.by_seed(&write.seed).is_none() && ces::event_name(&write.payload).is_ok() {
                derived.extend(self.ask_node(&origin));
            }
            let Some((contract, _)) = self.registry.by_seed(&write.seed) else { continue };
            if self.registry.watches(&contract) {
                let place = json!({"source": "ces", "event_id": write.event_id, "transform_id": transform_id});
                derived.push(self.contract_event(&origin, contract, &write.payload, place, format!("{transform_id}")));
            }
        }
        for (index, message) in processed.messages.iter().enumerate() {
            let Some(contract) = parse_hash(&message.entity) else { continue };
            if !(self.all_messages || self.registry.watches(&contract)) {
                continue;
            }
            let place = json!({"source": "message", "topic_name": message.topic_name, "message_index": index});
            let key = format!("message:{index}");
            derived.push(match (message.payload.get("Bytes").and_then(Value::as_str), message.payload.get("String")) {
                (Some(bytes), _) => match hex::decode(bytes) {
                    Ok(bytes) if ces::event_name(&bytes).is_ok() => self.contract_event(&origin, contract, &bytes, place, key),
                    _ => message_event(&origin, contract, &message.topic_name, json!({"bytes": bytes}), place, key),
                },
                (None, Some(text)) => message_event(&origin, contract, &message.topic_name, json!({"string": text}), place, key),
                (None, None) => continue,
            });
        }
        derived
    }

    /// Decode one CES event of `contract` (or record why it does not decode).
    fn contract_event(&self, origin: &Origin, contract: Hash, payload: &[u8], place: Value, key: String) -> DerivedEvent {
        let known = self.registry.get(&contract);
        let mut body = identity(origin, contract, known.and_then(|c| c.package));
        merge(&mut body, place);
        body.insert("raw_data".into(), hex::encode(payload).into());
        let decoded = match known.and_then(|c| c.schemas.clone()) {
            Some(schemas) => ces::decode(payload, &schemas),
            None => Err(format!("no schema is known for contract {}", hex::encode(contract))),
        };
        match decoded {
            Ok(decoded) => {
                body.insert("name".into(), decoded.name.into());
                body.insert("data".into(), decoded.data.into());
                body.insert("fields_raw".into(), decoded.fields_raw.into());
                derived(origin, CONTRACT_EVENT, key, body)
            }
            Err(error) => {
                body.insert("name".into(), ces::event_name(payload).ok().map(|(name, _)| name).into());
                body.insert("error".into(), error.into());
                derived(origin, CONTRACT_EVENT_ERROR, key, body)
            }
        }
    }

    /// A `ContractSchema` event: what is now known of `contract`.
    fn schema_event(&self, origin: &Origin, contract: &Hash) -> DerivedEvent {
        let description = self.registry.describe(contract);
        let mut body = description.as_object().cloned().unwrap_or_default();
        body.insert("transaction_hash".into(), origin.processed.hash.clone().into());
        let key = format!("schema:{}", hex::encode(contract));
        derived(origin, CONTRACT_SCHEMA, key, body)
    }

    /// Ask the node about watched contracts not fully known yet, unless it failed recently.
    fn ask_node(&mut self, origin: &Origin) -> Vec<DerivedEvent> {
        if self.node_pause > 0 {
            self.node_pause -= 1;
            return Vec::new();
        }
        let (contracts, packages) = self.registry.incomplete();
        let mut asked = contracts;
        for package in packages {
            match node::package_versions(&package) {
                Ok(versions) => asked.extend(versions),
                Err(error) => return self.node_failed(&error),
            }
        }
        let mut learned = Vec::new();
        for contract in asked {
            match node::contract(&contract) {
                Ok((known, schema_hex)) => {
                    self.registry.update(contract, known);
                    if let Some(schema_hex) = schema_hex {
                        if let Err(error) = self.registry.set_schema(contract, &schema_hex) {
                            log::warn(&format!("contract {}: {error}", hex::encode(contract)));
                        }
                    }
                    learned.push(self.schema_event(origin, &contract));
                }
                Err(error) => return self.node_failed(&error),
            }
        }
        // Contracts that are not (yet) CES contracts are not asked about on every transaction.
        let (contracts, packages) = self.registry.incomplete();
        if !(contracts.is_empty() && packages.is_empty()) {
            self.node_pause = NODE_PAUSE;
        }
        learned
    }

    fn node_failed(&mut self, error: &str) -> Vec<DerivedEvent> {
        if !std::mem::replace(&mut self.node_warned, true) {
            log::warn(&format!("cannot learn watched contracts from the node (asking again later): {error}"));
        }
        self.node_pause = NODE_PAUSE;
        Vec::new()
    }

    /// Read back what was learned before (once per instance).
    fn restore(&mut self) {
        if std::mem::replace(&mut self.restored, true) {
            return;
        }
        let mut after = None;
        loop {
            let page = storage::scan(CONTRACTS, "", after.as_deref(), 1000);
            for entry in &page {
                if let Ok(description) = serde_json::from_str::<Value>(&entry.value) {
                    self.registry.restore(&description);
                }
            }
            match page.last() {
                Some(last) if page.len() == 1000 => after = Some(last.key.clone()),
                _ => break,
            }
        }
    }
}

/// A dictionary write holding a CES event.
fn dictionary_event(effect: &sluice_plugin_sdk::casper::Effect) -> Option<EventWrite> {
    if !effect.key.starts_with("dictionary-") {
        return None;
    }
    let value = effect.written_cl_value()?;
    if value["cl_type"] != "Any" {
        return None;
    }
    ces::event_write(&hex::decode(value["bytes"].as_str()?).ok()?)
}

/// A message that is not CES: its topic is its name, its payload its data.
fn message_event(origin: &Origin, contract: Hash, topic: &str, data: Value, place: Value, key: String) -> DerivedEvent {
    let mut body = identity(origin, contract, None);
    merge(&mut body, place);
    body.insert("name".into(), topic.into());
    body.insert("data".into(), data);
    derived(origin, CONTRACT_EVENT, key, body)
}

/// The fields every derived event starts with.
fn identity(origin: &Origin, contract: Hash, package: Option<Hash>) -> Map<String, Value> {
    let processed = origin.processed;
    let identity = json!({
        "contract_hash": hex::encode(contract),
        "contract_package_hash": package.map(hex::encode),
        "transaction_hash": processed.hash,
        "block_hash": processed.block_hash,
        "block_height": origin.block_height,
        "timestamp": processed.timestamp,
    });
    identity.as_object().cloned().unwrap_or_default()
}

fn merge(body: &mut Map<String, Value>, more: Value) {
    if let Value::Object(more) = more {
        body.extend(more);
    }
}

fn derived(origin: &Origin, kind: &str, key: String, body: Map<String, Value>) -> DerivedEvent {
    let processed = origin.processed;
    DerivedEvent {
        kind: kind.into(),
        key: format!("{}:{key}", processed.hash),
        json: json!({ kind: body }).to_string(),
        transaction_hash: Some(processed.hash.clone()),
        block_hash: Some(processed.block_hash.clone()),
        block_height: origin.block_height,
    }
}

/// The heights of the last blocks seen, by hash.
#[derive(Default)]
struct Heights {
    by_hash: HashMap<String, u64>,
    order: VecDeque<String>,
}

impl Heights {
    const KEPT: usize = 1024;

    fn insert(&mut self, hash: String, height: u64) {
        if self.by_hash.insert(hash.clone(), height).is_none() {
            self.order.push_back(hash);
        }
        if self.order.len() > Self::KEPT {
            if let Some(oldest) = self.order.pop_front() {
                self.by_hash.remove(&oldest);
            }
        }
    }

    fn get(&self, hash: &str) -> Option<u64> {
        self.by_hash.get(hash).copied()
    }
}

sluice_plugin_sdk::export!(CesDecoder);
