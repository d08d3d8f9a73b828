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
//! schema_hex = "0800…"             # … and the `__events_schema` bytes (hex), or
//! schema_file = "token.hex"        # the same in a file of the directory granted with
//!                                  # `files = "schemas"` in the [[plugins]] entry
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
mod output;

use ces::{EventWrite, parse_hash};
use contracts::{Hash, Registry, Watch};
use output::{CONTRACT_SCHEMA, ContractEvent, Origin, Place};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_plugin_sdk::casper::{CasperEvent, Processed};
use sluice_plugin_sdk::{DerivedEvent, Event, Manifest, Plugin, log, storage};
use std::collections::{BTreeSet, HashMap, VecDeque};

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
    /// A file (hex) in the directory the operator granted (`/files`).
    schema_file: Option<String>,
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
            schema_hex: match (self.schema_hex, self.schema_file) {
                (Some(_), Some(_)) => return Err("give schema_hex or schema_file, not both".into()),
                (Some(hex), None) => Some(hex),
                (None, Some(file)) => Some(read_granted(&file)?),
                (None, None) => None,
            },
        };
        match watch.package.or(watch.contract) {
            Some(_) => Ok(watch),
            None => Err("each of `contracts` needs a package_hash or a contract_hash".into()),
        }
    }
}

/// A file of the directory the operator granted the plugin (`files = "…"`).
fn read_granted(file: &str) -> Result<String, String> {
    if file.split('/').any(|part| part == "..") {
        return Err(format!("schema_file {file:?} must stay inside the granted directory"));
    }
    std::fs::read_to_string(format!("/files/{file}")).map_err(|e| {
        format!("schema_file {file:?}: {e} (grant its directory with `files = \"…\"` in the [[plugins]] entry)")
    })
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
        Ok(CesDecoder {
            registry,
            all_messages: config.all_messages,
            restored: false,
            node_pause: 0,
            node_warned: false,
            heights: Heights::default(),
        })
    }

    fn manifest(&self) -> Manifest {
        Manifest::new().decoding().indexing([CONTRACT_SCHEMA])
    }

    fn decode(&mut self, event: &Event) -> Vec<DerivedEvent> {
        match event.kind.as_str() {
            "BlockAdded" => {
                if let Some((hash, height)) = block_height(&event.json) {
                    self.heights.insert(hash, height);
                }
                Vec::new()
            }
            "TransactionProcessed" | "DeployProcessed" if self.worth_parsing(&event.json) => {
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

    /// Keep what was learned (`ContractSchema` events, this instance's or an earlier version's),
    /// with when (its sequence).
    fn index(&mut self, events: &[Event]) -> Result<(), String> {
        for event in events {
            let mut value: Value = serde_json::from_str(&event.json).map_err(|e| e.to_string())?;
            let description = &mut value[CONTRACT_SCHEMA];
            if let Some(contract) = description["contract_hash"].as_str().map(str::to_owned) {
                description["learned_at"] = event.sequence.into();
                storage::set(CONTRACTS, &contract, &description.to_string())?;
            }
        }
        Ok(())
    }
}

/// A block's hash and height, read without building the rest of it (2.x and 1.x blocks).
fn block_height(json: &str) -> Option<(String, u64)> {
    #[derive(Deserialize)]
    struct Message {
        #[serde(rename = "BlockAdded")]
        added: Added,
    }
    #[derive(Deserialize)]
    struct Added {
        block_hash: String,
        block: Block,
    }
    #[derive(Deserialize)]
    struct Block {
        header: Option<Header>,
        #[serde(rename = "Version2", alias = "Version1")]
        versioned: Option<Box<Block>>,
    }
    #[derive(Deserialize)]
    struct Header {
        height: u64,
    }
    let Message { added } = serde_json::from_str(json).ok()?;
    let block = added.block.versioned.map_or(added.block.header, |inner| inner.header);
    Some((added.block_hash, block?.height))
}

impl CesDecoder {
    /// Whether a transaction may hold events of watched contracts, or something to learn about
    /// them (checked on the text: much cheaper than parsing it).
    fn worth_parsing(&mut self, json: &str) -> bool {
        if self.all_messages && json.contains("\"topic_name\"") {
            return true;
        }
        match self.registry.needles() {
            Some(needles) => needles.iter().any(|needle| json.contains(needle.as_str())),
            // Not everything is known yet: anything that may be an event or teach something.
            None => {
                ["\"Any\"", "AddKeys", "NamedKey", "WriteContract", "\"Contract\""].iter().any(|m| json.contains(m))
            }
        }
    }

    fn decode_processed(&mut self, processed: &Processed) -> Vec<DerivedEvent> {
        let origin = Origin { processed, block_height: self.heights.get(&processed.block_hash) };
        let mut learned = self.registry.learn(&processed.effects);
        // Something unknown that may be a watched contract's: ask the node (once).
        let mut asked = false;
        let mut ask = |decoder: &mut Self, learned: &mut BTreeSet<Hash>| {
            if !std::mem::replace(&mut asked, true) {
                learned.extend(decoder.ask_node());
            }
        };
        let mut events = Vec::new();
        for (transform_id, effect) in processed.effects.iter().enumerate() {
            let Some(write) = dictionary_event(effect) else { continue };
            if self.registry.by_seed(&write.seed).is_none() && ces::event_name(&write.payload).is_ok() {
                ask(self, &mut learned);
            }
            let Some((contract, _)) = self.registry.by_seed(&write.seed) else { continue };
            if self.registry.watches(&contract) {
                let place = Place::Ces { event_id: write.event_id, transform_id };
                events.push(self.contract_event(&origin, &place, contract, &write.payload, transform_id.to_string()));
            }
        }
        for (message_index, message) in processed.messages.iter().enumerate() {
            let Some(contract) = parse_hash(&message.entity) else { continue };
            if self.registry.get(&contract).is_none() {
                ask(self, &mut learned);
            }
            if !(self.all_messages || self.registry.watches(&contract)) {
                continue;
            }
            let place = Place::Message { topic_name: &message.topic_name, message_index };
            let key = format!("message:{message_index}");
            let (bytes, text) = (message.payload.get("Bytes").and_then(Value::as_str), message.payload.get("String"));
            let payload = match (bytes.map(hex::decode), bytes, text) {
                (Some(Ok(bytes)), _, _) if ces::event_name(&bytes).is_ok() => {
                    events.push(self.contract_event(&origin, &place, contract, &bytes, key));
                    continue;
                }
                (_, Some(bytes), _) => json!({"bytes": bytes}),
                (_, None, Some(text)) => json!({"string": text}),
                (_, None, None) => continue,
            };
            // Not CES: the topic is the event's name, the payload its data.
            let mut event = ContractEvent::new(&origin, &place, base16::encode_lower(&contract), None);
            (event.name, event.data) = (Some(message.topic_name.clone()), Some(payload));
            events.push(event.derive(key, &origin));
        }
        // What was learned, once per contract, then the events.
        let mut derived: Vec<DerivedEvent> =
            learned.iter().map(|contract| self.schema_event(&origin, contract)).collect();
        derived.extend(events);
        derived
    }

    /// Decode one CES event of `contract` (or record why it does not decode).
    fn contract_event(
        &self,
        origin: &Origin,
        place: &Place,
        contract: Hash,
        payload: &[u8],
        key: String,
    ) -> DerivedEvent {
        let known = self.registry.get(&contract);
        let package = known.and_then(|c| c.package).map(|p| base16::encode_lower(&p));
        let mut event = ContractEvent::new(origin, place, base16::encode_lower(&contract), package);
        event.raw_data = Some(base16::encode_lower(payload));
        let decoded = match known.and_then(|c| c.schemas.clone()) {
            Some(schemas) => ces::decode(payload, &schemas),
            None => Err(format!("no schema is known for contract {}", event.contract_hash)),
        };
        match decoded {
            Ok(decoded) => {
                event.name = Some(decoded.name);
                event.data = Some(Value::Object(decoded.data));
                event.fields_raw = Some(decoded.fields_raw);
            }
            Err(error) => {
                event.name = ces::event_name(payload).ok().map(|(name, _)| name);
                event.error = Some(error);
            }
        }
        event.derive(key, origin)
    }

    /// A `ContractSchema` event: what is now known of `contract`.
    fn schema_event(&self, origin: &Origin, contract: &Hash) -> DerivedEvent {
        let mut description = self.registry.describe(contract);
        description["transaction_hash"] = origin.processed.hash.clone().into();
        let key = format!("schema:{}", base16::encode_lower(contract));
        output::derived(origin, CONTRACT_SCHEMA, key, &description)
    }

    /// Ask the node about watched contracts and packages not fully known yet, unless it failed
    /// (or had nothing to tell) recently; the contracts it taught something, even when it
    /// failed part of the way.
    fn ask_node(&mut self) -> BTreeSet<Hash> {
        let mut learned = BTreeSet::new();
        if self.node_pause > 0 {
            self.node_pause -= 1;
            return learned;
        }
        let (mut asked, packages) = self.registry.incomplete();
        for package in packages {
            match node::package_versions(&package) {
                Ok(versions) => asked.extend(versions),
                Err(error) => return self.node_failed(&error, learned),
            }
        }
        for contract in asked {
            match node::contract(&contract) {
                Ok((known, schema_hex)) => {
                    self.registry.update(contract, known);
                    if let Some(schema_hex) = schema_hex {
                        if let Err(error) = self.registry.set_schema(contract, &schema_hex) {
                            log::warn(&format!("contract {}: {error}", base16::encode_lower(&contract)));
                        }
                    }
                    learned.insert(contract);
                }
                Err(error) => return self.node_failed(&error, learned),
            }
        }
        // Contracts that are not (yet) CES contracts are not asked about on every transaction.
        let (contracts, packages) = self.registry.incomplete();
        if !(contracts.is_empty() && packages.is_empty()) {
            self.node_pause = NODE_PAUSE;
        }
        learned
    }

    fn node_failed(&mut self, error: &str, learned: BTreeSet<Hash>) -> BTreeSet<Hash> {
        if !std::mem::replace(&mut self.node_warned, true) {
            log::warn(&format!("cannot learn watched contracts from the node (asking again later): {error}"));
        }
        self.node_pause = NODE_PAUSE;
        learned
    }

    /// Read back what was learned before (once per instance), in the order it was learned:
    /// versions of a package sharing one `__events` dictionary credit the newest.
    fn restore(&mut self) {
        if std::mem::replace(&mut self.restored, true) {
            return;
        }
        let (mut descriptions, mut after) = (Vec::new(), None);
        loop {
            let page = storage::scan(CONTRACTS, "", after.as_deref(), 1000);
            descriptions.extend(page.iter().filter_map(|entry| serde_json::from_str::<Value>(&entry.value).ok()));
            match page.last() {
                Some(last) if page.len() == 1000 => after = Some(last.key.clone()),
                _ => break,
            }
        }
        descriptions.sort_by_key(|description| description["learned_at"].as_u64());
        for description in &descriptions {
            self.registry.restore(description);
        }
    }
}

/// A dictionary write holding a CES event: a CES value written under the key of the item it
/// names (the seed and item key in the value hash to the key), so no other write can pass for
/// a contract's event.
fn dictionary_event(effect: &sluice_plugin_sdk::casper::Effect) -> Option<EventWrite> {
    let address = effect.key.strip_prefix("dictionary-")?;
    let value = effect.written_cl_value()?;
    if value["cl_type"] != "Any" {
        return None;
    }
    let write = ces::event_write(&hex::decode(value["bytes"].as_str()?).ok()?)?;
    (hex::decode(address).ok()? == write.dictionary_addr).then_some(write)
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
