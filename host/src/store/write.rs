//! The single writer: appends deliveries in one transaction per batch and records plugin
//! outcomes. What a batch does is decided here, once; each backend supplies the statements
//! ([`Database`], [`Batch`]).

use super::chain_order::{self, ChainPositions};
use super::contract_events::Identity;
use super::plugin_data::PluginBatch;
use super::{Location, StoredEvent};
use crate::event::{Delivery, NodeEvent, Payload, StreamCursor};
use anyhow::Context;
use std::collections::HashMap;
use std::sync::Arc;

/// What the plugins decided about one stored event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Hidden from subscribers and the API.
    pub dropped: bool,
    /// JSON object of annotations (plugin name → value), if any.
    pub annotations: Option<String>,
    /// Attached filters that dropped it (comma-separated), if any.
    pub hidden_by: Option<String>,
    /// Events decoders derived from it, to store right after it.
    pub derived: Vec<Derived>,
}

impl Outcome {
    /// Whether anything must be written onto the event's row.
    fn is_default(&self) -> bool {
        !self.dropped && self.annotations.is_none() && self.hidden_by.is_none()
    }
}

/// An event a decoder plugin derived from a stored one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    /// Stored as its source: `plugin:NAME`.
    pub plugin: String,
    /// The event (its key is the plugin's, prefixed with the plugin's name).
    pub event: NodeEvent,
}

/// What runs inside a batch's transaction: the plugins.
pub trait Processor {
    /// Rule on one new event (filters).
    fn decide(&mut self, event: &StoredEvent) -> Outcome;
    /// After the batch's new events: what to commit with them (indexers' storage writes,
    /// cursors, dead letters). `last_seq` is the store's last sequence after the batch.
    fn finish(&mut self, stored: &[(StoredEvent, Outcome)], last_seq: u64) -> Vec<PluginBatch>;
}

/// What a batch moves a stream's cursor to: the last id and its identity, and the API version.
#[derive(Debug, Default)]
pub struct CursorUpdate<'a> {
    /// The last node event id stored, and the identity of its frame.
    pub last: Option<(u32, Option<[u8; 16]>)>,
    /// The API version the node announced.
    pub api_version: Option<&'a str>,
}

/// The statements of one transaction, on one backend.
pub trait Batch {
    /// The natural keys of the node events the batch brings, before the first is inserted: a
    /// backend may look them all up at once (by default nothing happens).
    fn expect(&mut self, _keys: &[&str]) -> anyhow::Result<()> {
        Ok(())
    }
    /// Insert `event` as delivered by `node`, at `chain_height`, unless its natural key is
    /// stored; its sequence number (the next one, without gaps) when it was inserted.
    fn insert_event(
        &mut self,
        event: &NodeEvent,
        node: &str,
        node_event_id: Option<u32>,
        received_at_ms: i64,
        chain_height: u64,
    ) -> anyhow::Result<Option<u64>>;
    /// Record that `node` delivered the stored event with natural key `key` too (unless it is
    /// the node that delivered it first, or did so before).
    fn record_sighting(
        &mut self,
        key: &str,
        node: &str,
        node_event_id: Option<u32>,
        received_at_ms: i64,
    ) -> anyhow::Result<()>;
    /// Write a non-default outcome onto event `seq`.
    fn record_outcome(&mut self, seq: u64, outcome: &Outcome) -> anyhow::Result<()>;
    /// Index contract event `seq`.
    fn index_contract_event(&mut self, seq: u64, identity: &Identity) -> anyhow::Result<()>;
    /// Keep a frame that could not be parsed.
    fn insert_rejected(
        &mut self,
        node: &str,
        node_event_id: Option<u32>,
        received_at_ms: i64,
        reason: &str,
        raw: &str,
    ) -> anyhow::Result<()>;
    /// Record a gap in a stream's ids, with the highest block stored now.
    fn insert_gap(&mut self, stream: &str, from_id: u32, to_id: u32, detected_at_ms: i64) -> anyhow::Result<()>;
    /// Mark gap `gap` as backfilled.
    fn record_backfill(&mut self, gap: i64, blocks: u32, note: Option<&str>, at_ms: i64) -> anyhow::Result<()>;
    /// Move a stream's cursor (fields of `update` that are `None` keep their value).
    fn save_cursor(&mut self, stream: &str, update: &CursorUpdate<'_>, now_ms: i64) -> anyhow::Result<()>;
    /// The highest sequence stored, this transaction's inserts included.
    fn last_seq(&mut self) -> anyhow::Result<u64>;
    /// Write one plugin's batch: its storage changes, dead letters and cursor.
    fn apply_plugin_batch(&mut self, batch: &PluginBatch, now_ms: i64) -> anyhow::Result<()>;
    /// Remove everything stored under `storage_id`: entries and cursor (an older version's).
    fn remove_plugin_storage(&mut self, storage_id: &str) -> anyhow::Result<()>;
}

/// A backend's write connection.
pub trait Database: Send {
    /// Run `work` in one transaction, committed if it succeeds and rolled back if not.
    fn transaction(&mut self, work: &mut dyn FnMut(&mut dyn Batch) -> anyhow::Result<()>) -> anyhow::Result<()>;
    /// The highest sequence stored (0 when empty).
    fn last_seq(&mut self) -> anyhow::Result<u64>;
    /// The highest chain position stored (0 when empty).
    fn chain_height(&mut self) -> anyhow::Result<u64>;
    /// Create the storage index plugins declared on JSON field `field` (checked by the caller).
    fn create_plugin_index(&mut self, field: &str) -> anyhow::Result<()>;
    /// Where each SSE stream stands, to resume with `start_from`.
    fn cursors(&mut self) -> anyhow::Result<HashMap<String, StreamCursor>>;
    /// What errors name: the database file, or the server without credentials.
    fn name(&self) -> &str;
}

/// Owns the write connection. Only the pipeline thread holds one.
pub struct Writer {
    database: Box<dyn Database>,
    /// Where new events are in the chain (read from the store on the first batch).
    chain: Option<ChainPositions>,
}

impl Writer {
    /// Open (creating if needed) the database and bring its schema up to date; on PostgreSQL,
    /// wait until this instance leads.
    pub fn open(location: &Location) -> anyhow::Result<Writer> {
        Writer::open_or_wait(location, &mut || {})
    }

    /// [`Writer::open`], calling `on_standby` once if another instance leads (before waiting).
    pub fn open_or_wait(location: &Location, on_standby: &mut dyn FnMut()) -> anyhow::Result<Writer> {
        Ok(Writer { database: super::open_database(location, on_standby)?, chain: None })
    }

    /// Store a batch in one transaction. Events already stored (same natural key) are skipped
    /// (a delivery by another node than the first is recorded in `sightings`);
    /// each new one gets its sequence number, then `decide` (the plugins) rules on it and the
    /// outcome is stored with it. Each node's cursor moves to the last event id it delivered in
    /// the batch. Everything commits together: an event is never stored without its outcome.
    /// Returns the new events with their outcomes, in sequence order. On an error nothing is
    /// stored and the caller may retry (`decide` then sees those events again).
    pub fn append(
        &mut self,
        batch: &[Delivery],
        processor: &mut impl Processor,
    ) -> anyhow::Result<Vec<(StoredEvent, Outcome)>> {
        let mut stored = Vec::new();
        let chain = match &mut self.chain {
            Some(chain) => chain,
            None => self.chain.insert(ChainPositions::starting_at(self.database.chain_height()?)),
        };
        self.database
            .transaction(&mut |tx| {
                stored.clear();
                append_to(tx, batch, processor, chain, &mut stored)
            })
            .with_context(|| format!("writing to {}", self.database.name()))?;
        Ok(stored)
    }

    /// Commit a slice of plugin replay (see [`crate::plugins::CatchUp`]) in one transaction: the
    /// events decoders derived from stored ones (each where its source is in the chain, stored
    /// once by its key, ruled on by the plugins like any new event), each replaying plugin's
    /// writes and cursor, and the removal of `retired` storage ids (older versions). Returns
    /// the new events with their outcomes.
    pub fn commit_replay(
        &mut self,
        derived: &[(u64, Derived)],
        batches: &[PluginBatch],
        retired: &[String],
        processor: &mut impl Processor,
    ) -> anyhow::Result<Vec<(StoredEvent, Outcome)>> {
        let mut stored = Vec::new();
        let now = crate::event::now_ms();
        self.database
            .transaction(&mut |tx| {
                stored.clear();
                for (chain_height, derived) in derived {
                    if let Some(event) = insert(tx, &derived.event, &derived.plugin, None, now, *chain_height)? {
                        let outcome = processor.decide(&event);
                        stored.push(record(tx, event, outcome)?);
                    }
                }
                if let Some((last, _)) = stored.last() {
                    for plugin in processor.finish(&stored, last.seq) {
                        tx.apply_plugin_batch(&plugin, now)?;
                    }
                }
                for batch in batches {
                    tx.apply_plugin_batch(batch, now)?;
                }
                retired.iter().try_for_each(|storage_id| tx.remove_plugin_storage(storage_id))
            })
            .with_context(|| format!("writing to {}", self.database.name()))?;
        Ok(stored)
    }

    /// Commit plugin work done outside a batch: each plugin's writes and cursor, and the
    /// removal of `retired` storage ids (older versions), in one transaction.
    pub fn commit_plugins(&mut self, batches: &[PluginBatch], retired: &[String]) -> anyhow::Result<()> {
        self.commit_replay(&[], batches, retired, &mut NoPlugins).map(drop)
    }

    /// The highest sequence stored (0 when empty).
    pub fn last_seq(&mut self) -> anyhow::Result<u64> {
        self.database.last_seq()
    }

    /// Create the storage indexes plugins declared on these JSON fields.
    pub fn create_plugin_indexes(&mut self, fields: &[String]) -> anyhow::Result<()> {
        fields.iter().try_for_each(|field| self.database.create_plugin_index(field))
    }

    /// Where each SSE stream stands, to resume with `start_from`.
    pub fn cursors(&mut self) -> anyhow::Result<HashMap<String, StreamCursor>> {
        self.database.cursors()
    }
}

/// One batch's work inside its transaction (see [`Writer::append`]).
fn append_to(
    tx: &mut dyn Batch,
    batch: &[Delivery],
    processor: &mut impl Processor,
    chain: &mut ChainPositions,
    stored: &mut Vec<(StoredEvent, Outcome)>,
) -> anyhow::Result<()> {
    let keys: Vec<&str> = batch.iter().flat_map(|delivery| delivery.payload.events()).map(|e| e.key.as_str()).collect();
    tx.expect(&keys)?;
    let mut cursors: HashMap<&str, CursorUpdate> = HashMap::new();
    for delivery in batch {
        if let Some(id) = delivery.node_event_id {
            cursors.entry(&delivery.stream).or_default().last = Some((id, delivery.payload.identity()));
        }
        let (node, at) = (&*delivery.node, delivery.received_at_ms);
        match &delivery.payload {
            Payload::Event(_) | Payload::Block(_) => {
                let events = delivery.payload.events();
                let block = match delivery.payload {
                    Payload::Block(_) => chain_order::block_height(events),
                    _ => None,
                };
                for e in events {
                    let chain_height = chain.of(e, block);
                    let Some(event) = insert(tx, e, node, delivery.node_event_id, at, chain_height)? else {
                        tx.record_sighting(&e.key, node, delivery.node_event_id, at)?;
                        continue;
                    };
                    // The plugins rule on the event, then on the events decoders derived from it,
                    // stored right after it (once: by their keys).
                    let mut outcome = processor.decide(&event);
                    let derived = std::mem::take(&mut outcome.derived);
                    stored.push(record(tx, event, outcome)?);
                    for derived in derived {
                        if let Some(event) = insert(tx, &derived.event, &derived.plugin, None, at, chain_height)? {
                            let outcome = processor.decide(&event);
                            stored.push(record(tx, event, outcome)?);
                        }
                    }
                }
            }
            Payload::Rejected { reason, raw } => tx.insert_rejected(node, delivery.node_event_id, at, reason, raw)?,
            Payload::ApiVersion(version) => cursors.entry(&delivery.stream).or_default().api_version = Some(version),
            Payload::Gap { from_id, to_id } => tx.insert_gap(&delivery.stream, *from_id, *to_id, at)?,
            Payload::Backfilled { gap, blocks, note } => tx.record_backfill(*gap, *blocks, note.as_deref(), at)?,
        }
    }
    let now = crate::event::now_ms();
    for (stream, update) in &cursors {
        tx.save_cursor(stream, update, now)?;
    }
    let last_seq = match stored.last() {
        Some((event, _)) => event.seq,
        None => tx.last_seq()?,
    };
    for plugin in processor.finish(stored, last_seq) {
        tx.apply_plugin_batch(&plugin, now)?;
    }
    Ok(())
}

/// Insert `e` as delivered by `node`, at `chain_height`, and index it when it is a contract
/// event; the stored event, or `None` when its key is stored already.
fn insert(
    tx: &mut dyn Batch,
    e: &NodeEvent,
    node: &str,
    node_event_id: Option<u32>,
    received_at_ms: i64,
    chain_height: u64,
) -> anyhow::Result<Option<StoredEvent>> {
    let Some(seq) = tx.insert_event(e, node, node_event_id, received_at_ms, chain_height)? else { return Ok(None) };
    if e.kind == crate::event::CONTRACT_EVENT
        && let Some(identity) = Identity::of(&e.raw)
    {
        tx.index_contract_event(seq, &identity)?;
    }
    Ok(Some(StoredEvent {
        seq,
        kind: e.kind.clone(),
        node: node.to_owned(),
        received_at_ms,
        raw: Arc::from(e.raw.as_str()),
        annotations: None,
        hidden_by: None,
        account: e.account.clone(),
        chain_height,
    }))
}

/// No plugins: every event stored as it is (plugin work committed on its own, tests).
pub struct NoPlugins;

impl Processor for NoPlugins {
    fn decide(&mut self, _: &StoredEvent) -> Outcome {
        Outcome::default()
    }

    fn finish(&mut self, _: &[(StoredEvent, Outcome)], _: u64) -> Vec<PluginBatch> {
        Vec::new()
    }
}

/// Write a non-default outcome onto its event's row (and the stored event).
fn record(tx: &mut dyn Batch, mut event: StoredEvent, outcome: Outcome) -> anyhow::Result<(StoredEvent, Outcome)> {
    if !outcome.is_default() {
        tx.record_outcome(event.seq, &outcome)?;
    }
    event.hidden_by.clone_from(&outcome.hidden_by);
    Ok((event, outcome))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Location;
    use crate::store::plugin_data::{ChainCursor, PluginCursor};

    fn event(kind: &str, key: &str, block_hash: Option<&str>, block_height: Option<u64>) -> NodeEvent {
        NodeEvent {
            kind: kind.into(),
            key: key.into(),
            block_hash: block_hash.map(String::from),
            block_height,
            transaction_hash: None,
            era_id: None,
            account: None,
            raw: "{}".into(),
        }
    }

    fn block(height: u64) -> NodeEvent {
        event("BlockAdded", &format!("b{height}"), Some(&format!("b{height}")), Some(height))
    }

    fn delivery(payload: Payload) -> Delivery {
        let node: Arc<str> = Arc::from("n");
        Delivery::now(node.clone(), node, None, payload)
    }

    #[test]
    fn events_stored_out_of_chain_order_are_read_in_chain_order() {
        let location = Location::resolve(":memory:").unwrap();
        let mut writer = Writer::open(&location).unwrap();
        // Live blocks first, then an older block fetched whole (as a history sync stores them).
        let live = [block(10), event("TransactionAccepted", "a11", None, None), block(11)];
        let batch: Vec<Delivery> = live.into_iter().map(|e| delivery(Payload::Event(e))).collect();
        writer.append(&batch, &mut NoPlugins).unwrap();
        let old = vec![
            event("TransactionAccepted", "a5", None, None),
            block(5),
            event("TransactionProcessed", "p5", Some("b5"), None),
        ];
        writer.append(&[delivery(Payload::Block(old))], &mut NoPlugins).unwrap();
        let mut log = crate::store::open_read(&location).unwrap();
        let all = log.log_in_chain_order(0, ChainCursor { bound: 6, after: (0, 0) }, 100).unwrap();
        let order: Vec<(u64, u64)> = all.iter().map(|e| (e.seq, e.chain_height)).collect();
        assert_eq!(order, [(4, 4), (5, 5), (6, 5), (1, 10), (2, 10), (3, 11)]);
        // From a position, within a bound and above a sequence.
        let next = log.log_in_chain_order(0, ChainCursor { bound: 6, after: (5, 5) }, 2).unwrap();
        assert_eq!(next.iter().map(|e| e.seq).collect::<Vec<_>>(), [6, 1]);
        let bounded = log.log_in_chain_order(1, ChainCursor { bound: 5, after: (0, 0) }, 100).unwrap();
        assert_eq!(bounded.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 5, 2, 3]);
    }

    #[test]
    fn a_replays_cursor_in_chain_order_is_kept_until_it_ends() {
        let location = Location::resolve(":memory:").unwrap();
        let mut writer = Writer::open(&location).unwrap();
        let chain = Some(ChainCursor { bound: 6, after: (5, 4) });
        let batch = PluginBatch { plugin: "p@1".into(), last_seq: 3, chain, ..PluginBatch::default() };
        writer.commit_plugins(&[batch], &[]).unwrap();
        let mut log = crate::store::open_read(&location).unwrap();
        assert_eq!(log.plugin_cursor("p@1").unwrap(), Some(PluginCursor { last_seq: 3, chain }));
        let batch = PluginBatch { plugin: "p@1".into(), last_seq: 6, ..PluginBatch::default() };
        writer.commit_plugins(&[batch], &[]).unwrap();
        assert_eq!(log.plugin_cursor("p@1").unwrap(), Some(PluginCursor { last_seq: 6, chain: None }));
    }
}
