//! Casper Event Standard events as a node would stream them, for tests of plugins that read
//! decoded contract events (and for the mock node): each event becomes a dictionary write under
//! the contract's `__events` dictionary inside a 2.x `TransactionProcessed`.
//!
//! ```
//! use sluice::harness::ces::{CesEvent, transaction_processed};
//!
//! let seed = "11".repeat(32);
//! let mint = CesEvent::new("Mint").key(&format!("account-hash-{}", "22".repeat(32))).u256(1000);
//! let event = transaction_processed(&"33".repeat(32), &"44".repeat(32), &seed, 0, &[mint]);
//! assert!(event["TransactionProcessed"]["execution_result"]["Version2"]["effects"][0]["key"]
//!     .as_str().unwrap().starts_with("dictionary-"));
//! ```

use serde_json::{Value, json};

/// One CES event: its name and its fields' bytes, in the contract schema's order.
#[derive(Debug, Clone)]
pub struct CesEvent {
    name: String,
    fields: Vec<u8>,
}

impl CesEvent {
    /// An event named `name` (without the `event_` prefix), with no fields yet.
    pub fn new(name: &str) -> CesEvent {
        CesEvent { name: name.to_owned(), fields: Vec::new() }
    }

    /// A `Key` field: `account-hash-…` or `hash-…`.
    pub fn key(mut self, key: &str) -> CesEvent {
        let (tag, hex) = match key.strip_prefix("account-hash-") {
            Some(hex) => (0u8, hex),
            None => (1u8, key.strip_prefix("hash-").unwrap_or(key)),
        };
        self.fields.push(tag);
        self.fields.extend(hex::decode(hex).expect("a key is 32 bytes of hex"));
        self
    }

    /// A `U256` (or `U128`, `U512`) field: a length byte, then little-endian bytes.
    pub fn u256(mut self, value: u128) -> CesEvent {
        let bytes = value.to_le_bytes();
        let length = bytes.iter().rposition(|b| *b != 0).map_or(0, |last| last + 1);
        self.fields.push(length as u8);
        self.fields.extend(&bytes[..length]);
        self
    }

    /// A `U64` field.
    pub fn u64(mut self, value: u64) -> CesEvent {
        self.fields.extend(value.to_le_bytes());
        self
    }

    /// A `String` field.
    pub fn string(mut self, value: &str) -> CesEvent {
        self.fields.extend(string(value));
        self
    }

    /// The event's bytes: `String("event_" + name)`, then the fields.
    pub fn payload(&self) -> Vec<u8> {
        let mut payload = string(&format!("event_{}", self.name));
        payload.extend(&self.fields);
        payload
    }

    /// The dictionary value CES writes for it: `CLValue(List(U8))` ‖ seed URef address ‖ the
    /// event index as the item key.
    pub fn dictionary_value(&self, seed: &[u8; 32], event_id: u64) -> Vec<u8> {
        let payload = self.payload();
        let mut list = (payload.len() as u32).to_le_bytes().to_vec();
        list.extend(&payload);
        let mut value = (list.len() as u32).to_le_bytes().to_vec();
        value.extend(&list);
        value.extend([0x0e, 0x03]); // CLType List(U8)
        value.extend(32u32.to_le_bytes());
        value.extend(seed);
        let item_key = event_id.to_string();
        value.extend((item_key.len() as u32).to_le_bytes());
        value.extend(item_key.as_bytes());
        value
    }
}

fn string(text: &str) -> Vec<u8> {
    let mut bytes = (text.len() as u32).to_le_bytes().to_vec();
    bytes.extend(text.as_bytes());
    bytes
}

/// The 2.x effect writing event number `event_id` into the dictionary seeded `seed` (hex).
pub fn dictionary_write(seed_hex: &str, event_id: u64, event: &CesEvent) -> Value {
    let mut seed = [0u8; 32];
    hex::decode_to_slice(seed_hex, &mut seed).expect("a seed URef address is 32 bytes of hex");
    let bytes = event.dictionary_value(&seed, event_id);
    let key = hex::encode(dictionary_address(&seed, event_id.to_string().as_bytes()));
    json!({"key": format!("dictionary-{key}"), "kind": {"Write": {"CLValue": {"cl_type": "Any", "bytes": hex::encode(bytes), "parsed": null}}}})
}

/// The address of item `item_key` in the dictionary seeded `seed`, as Casper computes it:
/// BLAKE2b-256 of the seed URef address and the item key's bytes.
pub fn dictionary_address(seed: &[u8; 32], item_key: &[u8]) -> [u8; 32] {
    use blake2::digest::{Update, VariableOutput};
    let mut hasher = blake2::Blake2bVar::new(32).expect("32 is a valid length");
    hasher.update(seed);
    hasher.update(item_key);
    let mut address = [0u8; 32];
    hasher.finalize_variable(&mut address).expect("the length asked for");
    address
}

/// A successful 2.x `TransactionProcessed` of `transaction` in `block` that emitted `events`
/// into the `__events` dictionary seeded `seed_hex`, numbered from `first_id` (CES counts
/// a contract's events from 0).
pub fn transaction_processed(
    transaction: &str,
    block: &str,
    seed_hex: &str,
    first_id: u64,
    events: &[CesEvent],
) -> Value {
    let ids = first_id..;
    let effects: Vec<Value> = ids.zip(events).map(|(id, event)| dictionary_write(seed_hex, id, event)).collect();
    json!({"TransactionProcessed": {
        "transaction_hash": {"Version1": transaction},
        "initiator_addr": {"AccountHash": format!("account-hash-{}", "00".repeat(32))},
        "timestamp": "2025-07-14T16:51:43.510Z",
        "ttl": "30m",
        "block_hash": block,
        "execution_result": {"Version2": {
            "initiator": {"AccountHash": format!("account-hash-{}", "00".repeat(32))},
            "error_message": null, "current_price": 1, "limit": "100000000000", "consumed": "1000000",
            "cost": "100000000000", "refund": "0", "transfers": [], "size_estimate": 1000,
            "effects": effects,
        }},
        "messages": [],
    }})
}
