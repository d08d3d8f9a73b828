//! Sluice's event model: one node frame parsed once into the fields the store indexes.
//!
//! Parsing is tolerant on purpose: only the fields Sluice indexes are read (everything else is
//! skipped by serde without building a tree), so a node that adds fields never breaks ingestion.
//! The frame's bytes are kept as they arrived.

pub use kinds::{CONTRACT_EVENT, SOURCE_KINDS, TRANSACTION_KINDS, derived_kind_problem, transaction_type};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::Arc;
use wire::*;

mod kinds;
mod wire;

/// A chain event delivered by a node, ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEvent {
    /// Event type as the node names it (`BlockAdded`, `DeployProcessed`, ...).
    pub kind: String,
    /// Natural identity: two frames with the same key are the same event.
    pub key: String,
    /// Block this event is about, if any.
    pub block_hash: Option<String>,
    /// Height of that block, when the event says it.
    pub block_height: Option<u64>,
    /// Transaction or deploy hash, for transaction events.
    pub transaction_hash: Option<String>,
    /// Era, for era-scoped events.
    pub era_id: Option<u64>,
    /// The account that sent the transaction (its account hash, see [`crate::account`]), for
    /// accepted and processed transaction events.
    pub account: Option<String>,
    /// The frame's JSON exactly as received.
    pub raw: String,
}

impl NodeEvent {
    /// The `"Shutdown"` a node sends on `stream` before it stops, received now: stored like any
    /// event (each one received is another), so streams replayed later carry it too.
    pub fn shutdown(stream: &str) -> NodeEvent {
        NodeEvent {
            kind: "Shutdown".into(),
            key: format!("shutdown:{stream}:{}", now_ms()),
            block_hash: None,
            block_height: None,
            transaction_hash: None,
            era_id: None,
            account: None,
            raw: "\"Shutdown\"".into(),
        }
    }
}

/// Something a node connection hands to the store: an event, a rejected frame, or node metadata.
#[derive(Debug)]
pub struct Delivery {
    /// Configured name of the node.
    pub node: Arc<str>,
    /// The node's SSE stream it came by, which owns the id: the node name (2.x `/events`) or
    /// `name/main`, `name/deploys`, `name/sigs` (1.x).
    pub stream: Arc<str>,
    /// The frame's SSE `id:`, if it had one.
    pub node_event_id: Option<u32>,
    /// Wall-clock arrival time, milliseconds since the Unix epoch.
    pub received_at_ms: i64,
    /// What arrived.
    pub payload: Payload,
}

impl Delivery {
    /// A delivery received now.
    pub fn now(node: Arc<str>, stream: Arc<str>, node_event_id: Option<u32>, payload: Payload) -> Delivery {
        Delivery { node, stream, node_event_id, received_at_ms: now_ms(), payload }
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The content of a [`Delivery`].
#[derive(Debug)]
pub enum Payload {
    /// A chain event.
    Event(NodeEvent),
    /// A block's events fetched over JSON-RPC (the block, its transactions, its signatures),
    /// stored together in one transaction.
    Block(Vec<NodeEvent>),
    /// The node announced its API version (first frame of a connection).
    ApiVersion(String),
    /// A frame that could not be parsed, kept with the reason.
    Rejected {
        /// Why it was rejected.
        reason: String,
        /// The frame as received.
        raw: String,
    },
    /// The node no longer had the events with these ids (inclusive) when they were asked for.
    Gap {
        /// First missing id.
        from_id: u32,
        /// Last missing id.
        to_id: u32,
    },
    /// The blocks of a gap were fetched over JSON-RPC (sent after their events).
    Backfilled {
        /// The gap's id in the store.
        gap: i64,
        /// Blocks stored by the backfill.
        blocks: u32,
        /// What could not be fetched, if anything.
        note: Option<String>,
    },
}

impl Payload {
    /// The chain events it carries.
    pub fn events(&self) -> &[NodeEvent] {
        match self {
            Payload::Event(event) => std::slice::from_ref(event),
            Payload::Block(events) => events,
            _ => &[],
        }
    }

    /// What tells this frame from another one a node numbered alike: the event's key, or a
    /// rejected frame's bytes. On resuming, the frame a node sends under the id stored last
    /// must be the one stored: otherwise the node restarted and numbers anew.
    pub fn identity(&self) -> Option<[u8; 16]> {
        match self {
            Payload::Event(event) => Some(key_hash(&event.key)),
            Payload::Rejected { raw, reason } => Some(key_hash(&format!("rejected:{reason}:{raw}"))),
            Payload::Block(_) | Payload::ApiVersion(_) | Payload::Gap { .. } | Payload::Backfilled { .. } => None,
        }
    }
}

/// BLAKE3 of a natural key, cut to 128 bits: the store's unique index. Cryptographic, so a
/// hostile node cannot craft an event whose key collides with a real one's and hides it.
pub fn key_hash(key: &str) -> [u8; 16] {
    blake3::hash(key.as_bytes()).as_bytes()[..16].try_into().expect("BLAKE3 gives 32 bytes")
}

/// What one SSE `data:` payload turned out to be.
#[derive(Debug)]
pub enum Frame {
    /// `{"ApiVersion":"2.0.0"}`: first frame of every connection.
    ApiVersion(String),
    /// The bare string `"Shutdown"` a node sends before it stops.
    Shutdown,
    /// A chain event.
    Event(NodeEvent),
}

/// A payload that could not be turned into an event; kept with its reason.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct ParseError {
    /// Why the payload was rejected.
    pub reason: String,
    /// The payload, handed back so it can be stored.
    pub raw: String,
}

impl Frame {
    /// Parse one `data:` payload. Unknown event types become events keyed by their content, so
    /// a newer node's event is stored rather than lost.
    pub fn parse(raw: String) -> Result<Frame, ParseError> {
        match read_fields(&raw) {
            Ok(Parsed::ApiVersion(version)) => Ok(Frame::ApiVersion(version)),
            Ok(Parsed::Shutdown) => Ok(Frame::Shutdown),
            Ok(Parsed::Event(kind, fields)) => Ok(Frame::Event(fields.finish(kind, raw))),
            Err(reason) => Err(ParseError { reason, raw }),
        }
    }
}

enum Parsed {
    ApiVersion(String),
    Shutdown,
    Event(String, EventFields),
}

fn read_fields(raw: &str) -> Result<Parsed, String> {
    if raw.trim() == "\"Shutdown\"" {
        return Ok(Parsed::Shutdown);
    }
    if nests_deeper_than(raw, MAX_JSON_DEPTH) {
        return Err(format!("JSON nested deeper than {MAX_JSON_DEPTH} levels: it could not be served"));
    }
    let outer: HashMap<&str, &RawValue> =
        serde_json::from_str(raw).map_err(|e| format!("not a JSON object with one event: {e}"))?;
    let mut entries = outer.into_iter();
    let (kind, body) = match (entries.next(), entries.next()) {
        (Some(entry), None) => entry,
        _ => return Err("expected exactly one top-level key naming the event type".into()),
    };
    let body = body.get();
    let bad = |e: serde_json::Error| format!("{kind}: {e}");
    let mut event = EventFields::default();
    match kind {
        "ApiVersion" => return Ok(Parsed::ApiVersion(serde_json::from_str(body).map_err(bad)?)),
        "BlockAdded" => {
            let b: BlockAdded = serde_json::from_str(body).map_err(bad)?;
            event.block_height = b.block.header().map(|h| h.height);
            event.era_id = b.block.header().map(|h| h.era_id);
            event.key = format!("block:{}", b.block_hash);
            event.block_hash = Some(b.block_hash);
        }
        "TransactionAccepted" => {
            let t = serde_json::from_str::<Versioned<Accepted>>(body).map_err(bad)?.into_inner();
            event.account = t.account().map(str::to_owned);
            event.transaction(kind, t.hash);
        }
        "DeployAccepted" => {
            let t: Accepted = serde_json::from_str(body).map_err(bad)?;
            event.account = t.account().map(str::to_owned);
            event.transaction(kind, t.hash);
        }
        "TransactionProcessed" => {
            let t: TransactionProcessed = serde_json::from_str(body).map_err(bad)?;
            event.account = t.initiator_addr.and_then(Initiator::into_inner);
            event.transaction(kind, t.transaction_hash.into_inner());
            event.block_hash = Some(t.block_hash);
        }
        "DeployProcessed" => {
            let t: DeployProcessed = serde_json::from_str(body).map_err(bad)?;
            event.account = t.account;
            event.transaction(kind, t.deploy_hash);
            event.block_hash = Some(t.block_hash);
        }
        "TransactionExpired" => {
            let t: TransactionExpired = serde_json::from_str(body).map_err(bad)?;
            event.transaction(kind, t.transaction_hash.into_inner());
        }
        "DeployExpired" => {
            let t: DeployExpired = serde_json::from_str(body).map_err(bad)?;
            event.transaction(kind, t.deploy_hash);
        }
        "FinalitySignature" => {
            let s = serde_json::from_str::<SignatureAny>(body).map_err(bad)?.into_inner();
            event.key = format!("signature:{}:{}", s.block_hash, s.public_key);
            event.block_hash = Some(s.block_hash);
            event.block_height = s.block_height;
            event.era_id = Some(s.era_id);
        }
        "Fault" => {
            let f: Fault = serde_json::from_str(body).map_err(bad)?;
            event.key = format!("fault:{}:{}", f.era_id, f.public_key);
            event.era_id = Some(f.era_id);
        }
        "Step" => {
            let s: Step = serde_json::from_str(body).map_err(bad)?;
            event.key = format!("step:{}", s.era_id);
            event.era_id = Some(s.era_id);
        }
        _ => event.key = format!("other:{kind}:{:016x}", fingerprint(raw)),
    }
    // Indexed by account hash, whichever form the event names the account in (an account
    // Sluice cannot read leaves the event unindexed by account, not rejected).
    event.account = event.account.and_then(|account| crate::account::account_hash(&account).ok());
    // SQLite integers are i64: a larger height or era is not a real one.
    if [event.block_height, event.era_id].into_iter().flatten().any(|v| i64::try_from(v).is_err()) {
        return Err(format!("{kind}: height or era_id out of range"));
    }
    Ok(Parsed::Event(kind.to_owned(), event))
}

/// The indexed fields, filled in per event type.
#[derive(Default)]
struct EventFields {
    key: String,
    block_hash: Option<String>,
    block_height: Option<u64>,
    transaction_hash: Option<String>,
    era_id: Option<u64>,
    account: Option<String>,
}

impl EventFields {
    /// Transaction events are keyed by hash and kind: accepted, processed and expired differ.
    fn transaction(&mut self, kind: &str, hash: String) {
        self.key = format!("{kind}:{hash}");
        self.transaction_hash = Some(hash);
    }

    fn finish(self, kind: String, raw: String) -> NodeEvent {
        NodeEvent {
            kind,
            key: self.key,
            block_hash: self.block_hash,
            block_height: self.block_height,
            transaction_hash: self.transaction_hash,
            era_id: self.era_id,
            account: self.account,
            raw,
        }
    }
}

/// Where a node's SSE stream stands: the last id stored for it, and what identifies the frame
/// under that id (see [`Payload::identity`]), when it was one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamCursor {
    /// The last id stored.
    pub last_id: u32,
    /// Its frame's identity.
    pub identity: Option<[u8; 16]>,
}

/// Deepest nesting of arrays and objects Sluice stores: everything stored must be servable as
/// JSON, and JSON libraries (serde_json, browsers' parsers) refuse to go deeper than about 128.
/// Real events nest about 20 levels.
pub const MAX_JSON_DEPTH: usize = 100;

/// Why `json` cannot be stored and served, if it cannot: it is not JSON, or it nests arrays and
/// objects deeper than [`MAX_JSON_DEPTH`].
pub fn json_problem(json: &str) -> Option<&'static str> {
    const _: () = assert!(MAX_JSON_DEPTH == 100, "the message below names the depth");
    if nests_deeper_than(json, MAX_JSON_DEPTH) {
        return Some("JSON nested deeper than 100 levels");
    }
    serde_json::from_str::<serde::de::IgnoredAny>(json).is_err().then_some("not JSON")
}

/// Whether `json` opens more than `max` arrays or objects inside one another (brackets inside
/// strings do not count). One pass over the bytes, without parsing.
fn nests_deeper_than(json: &str, max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for byte in json.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// FNV-1a: a stable content fingerprint for events Sluice has no natural key for.
pub fn fingerprint(raw: &str) -> u64 {
    raw.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(raw: &str) -> NodeEvent {
        match Frame::parse(raw.to_owned()).expect("parses") {
            Frame::Event(e) => e,
            other => panic!("not an event: {other:?}"),
        }
    }

    #[test]
    fn every_casper2_fixture_parses_with_its_natural_key() {
        let block = event(include_str!("../../fixtures/casper2/block_added_event_v2.json"));
        assert_eq!(block.key, "block:cb64adaae660d227b7d7579039a75e21f1022e2c044a5ed0ce0beefb12b95758");
        assert_eq!((block.block_height, block.era_id), (Some(89049), Some(202)));

        let processed = event(include_str!("../../fixtures/casper2/transaction_processed_event_with_messages.json"));
        assert_eq!(
            processed.key,
            "TransactionProcessed:968fafb41be4d4fb1c4b3c3647bb4803de12bff05bbaa8d16d1ef3b18fc47ee1"
        );
        assert!(processed.block_hash.is_some());
        assert_eq!(
            processed.account,
            crate::account::account_hash("0118ea8b6ed62393f8d36cb1a96b9ee62b48e35317bd2ea3ceb533a6f7ff212ad6").ok()
        );

        let accepted = event(include_str!("../../fixtures/casper2/transaction_accepted_event.json"));
        assert_eq!(
            accepted.transaction_hash.as_deref(),
            Some("446f9511258112c6e5150ee13d57c421da2bc30e0058db6165855a9d1ba4b868")
        );

        let expired = event(include_str!("../../fixtures/casper2/transaction_expired_event.json"));
        assert!(expired.key.starts_with("TransactionExpired:f5582cb8"));

        let signature = event(include_str!("../../fixtures/casper2/finality_signature_event_v2.json"));
        assert_eq!(signature.block_height, Some(89177));
        assert!(signature.key.ends_with(":017536433a73f7562526f3e9fcb8d720428ae2d28788a9909f3c6f637a9d848a4b"));

        assert_eq!(event(include_str!("../../fixtures/casper2/fault_event.json")).era_id, Some(45914488));
        assert_eq!(event(include_str!("../../fixtures/casper2/step_event_v2_synthesized.json")).key, "step:203");
    }

    #[test]
    fn api_version_shutdown_unknown_and_garbage() {
        assert!(matches!(Frame::parse(r#"{"ApiVersion":"2.0.0"}"#.into()), Ok(Frame::ApiVersion(v)) if v == "2.0.0"));
        assert!(matches!(Frame::parse("\"Shutdown\"".into()), Ok(Frame::Shutdown)));
        let unknown = event(r#"{"SomethingNew":{"x":1}}"#);
        assert_eq!(unknown.kind, "SomethingNew");
        assert!(unknown.key.starts_with("other:SomethingNew:"));
        assert!(Frame::parse("{not json".into()).is_err());
        assert!(Frame::parse(r#"{"BlockAdded":{"no_hash":1}}"#.into()).unwrap_err().reason.contains("block_hash"));
        assert!(Frame::parse(r#"{"A":1,"B":2}"#.into()).is_err());
        let huge = r#"{"Step":{"era_id":18446744073709551615}}"#;
        assert!(Frame::parse(huge.into()).unwrap_err().reason.contains("out of range"));
    }

    #[test]
    fn an_account_in_an_unknown_shape_is_no_account_not_a_rejection() {
        let raw = r#"{"TransactionProcessed":{"transaction_hash":{"Version1":"aa"},"block_hash":"bb","initiator_addr":{"Multisig":[1]}}}"#;
        assert_eq!(event(raw).account, None);
        let raw = r#"{"DeployAccepted":{"hash":"cc","header":{"timestamp":"t"}}}"#;
        assert_eq!(event(raw).account, None);
    }

    #[test]
    fn json_nested_too_deep_to_serve_is_rejected() {
        let deep =
            |levels: usize| format!("{{\"SomethingNew\":{{\"x\":{}1{}}}}}", "[".repeat(levels), "]".repeat(levels));
        assert!(matches!(Frame::parse(deep(MAX_JSON_DEPTH - 2)), Ok(Frame::Event(_))));
        let error = Frame::parse(deep(200)).unwrap_err();
        assert!(error.reason.contains("nested deeper than 100"), "{}", error.reason);
        assert!(!nests_deeper_than(r#"{"a":"[[[[[[\"{{{{"}"#, 2), "brackets in strings do not count");
        assert_eq!(json_problem(&"[".repeat(101)), Some("JSON nested deeper than 100 levels"));
        assert_eq!(json_problem("[1,"), Some("not JSON"));
        assert_eq!(json_problem(r#"{"ok":[1]}"#), None);
    }

    #[test]
    fn extra_fields_from_a_newer_node_are_tolerated() {
        let raw = r#"{"Fault":{"era_id":1,"public_key":"01ab","timestamp":"t","brand_new":{"deep":[1,2]}}}"#;
        assert_eq!(event(raw).key, "fault:1:01ab");
    }
}
