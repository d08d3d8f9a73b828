//! The single writer: appends deliveries in one transaction per batch and records plugin outcomes.

use super::checkpoint::{self, Checkpointer};
use super::plugin_data::{self, PluginBatch};
use super::{Location, StoredEvent, key_hash, schema};
use crate::event::{Delivery, NodeEvent, Payload, StreamCursor};
use anyhow::Context;
use rusqlite::{Connection, params};
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

/// Insert `event` as delivered by `node`; the stored event, or `None` when its key is stored
/// already.
fn insert(
    tx: &rusqlite::Transaction<'_>,
    statement: &mut rusqlite::CachedStatement<'_>,
    e: &NodeEvent,
    node: &str,
    node_event_id: Option<u32>,
    received_at_ms: i64,
) -> rusqlite::Result<Option<StoredEvent>> {
    let inserted = statement.execute(params![
        key_hash(&e.key),
        e.key,
        e.kind,
        e.block_hash,
        e.block_height,
        e.transaction_hash,
        e.era_id,
        node,
        node_event_id,
        received_at_ms,
        e.raw,
        e.account,
    ])?;
    Ok((inserted == 1).then(|| StoredEvent {
        seq: tx.last_insert_rowid() as u64,
        kind: e.kind.clone(),
        node: node.to_owned(),
        received_at_ms,
        raw: Arc::from(e.raw.as_str()),
        annotations: None,
        hidden_by: None,
        account: e.account.clone(),
    }))
}

/// Write a non-default outcome onto its event's row (and the stored event).
fn record(
    statement: &mut rusqlite::CachedStatement<'_>,
    event: &mut StoredEvent,
    outcome: &Outcome,
) -> rusqlite::Result<()> {
    if outcome.dropped || outcome.annotations.is_some() || outcome.hidden_by.is_some() {
        statement.execute(params![event.seq, outcome.dropped, outcome.annotations, outcome.hidden_by])?;
    }
    event.hidden_by.clone_from(&outcome.hidden_by);
    Ok(())
}

/// Index `event` in `contract_events` when it is a contract event.
fn index(statement: &mut rusqlite::CachedStatement<'_>, event: &StoredEvent) -> rusqlite::Result<()> {
    match event.kind == crate::event::CONTRACT_EVENT {
        true => super::contract_events::index(statement, event.seq, &event.raw),
        false => Ok(()),
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
#[derive(Default)]
struct CursorUpdate<'a> {
    last: Option<(u32, Option<[u8; 16]>)>,
    api_version: Option<&'a str>,
}

/// Owns the write connection. Only the pipeline thread holds one.
pub struct Writer {
    conn: Connection,
    /// The database file, named in errors.
    path: String,
    /// Checkpoints the log beside the writer, for as long as it is open.
    _checkpointer: Checkpointer,
}

impl Writer {
    /// Open (creating if needed) the database and bring its schema up to date.
    pub fn open(location: &Location) -> anyhow::Result<Writer> {
        let open = || -> anyhow::Result<Connection> {
            let conn = Connection::open(location.path())?;
            schema::configure(&conn)?;
            schema::migrate(&conn)?;
            // Keep hot index pages in memory (measured in BENCHMARKS.md: page spills dominated
            // ingest time). The log is checkpointed by a thread of its own; past the backstop
            // (the thread fell behind a writer that never pauses) a commit finishes the copy.
            conn.pragma_update(None, "cache_size", -16 * 1024)?;
            checkpoint::set_backstop(&conn)?;
            Ok(conn)
        };
        let conn = open().with_context(|| format!("the database {}", location.path().display()))?;
        let checkpointer = Checkpointer::start(location)?;
        Ok(Writer { conn, path: location.path().display().to_string(), _checkpointer: checkpointer })
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
        self.append_to(batch, processor).with_context(|| format!("writing to {}", self.path))
    }

    fn append_to(
        &mut self,
        batch: &[Delivery],
        processor: &mut impl Processor,
    ) -> anyhow::Result<Vec<(StoredEvent, Outcome)>> {
        let tx = self.conn.transaction()?;
        let mut stored = Vec::new();
        let mut cursors: HashMap<&str, CursorUpdate> = HashMap::new();
        {
            let mut insert_event = tx.prepare_cached(
                "INSERT INTO events (key_hash, key, kind, block_hash, block_height, transaction_hash,
                                     era_id, node, node_event_id, received_at_ms, raw, account)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT (key_hash) DO NOTHING",
            )?;
            // A duplicate from another node than the first is recorded as a sighting.
            let mut record_sighting = tx.prepare_cached(
                "INSERT OR IGNORE INTO sightings (seq, node, node_event_id, received_at_ms)
                 SELECT seq, ?2, ?3, ?4 FROM events WHERE key_hash = ?1 AND node != ?2",
            )?;
            let mut record_outcome =
                tx.prepare_cached("UPDATE events SET dropped = ?2, annotations = ?3, hidden_by = ?4 WHERE seq = ?1")?;
            let mut insert_rejected = tx.prepare_cached(
                "INSERT INTO rejected_frames (node, node_event_id, received_at_ms, reason, raw)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut insert_gap = tx.prepare_cached(
                "INSERT INTO gaps (stream, from_id, to_id, detected_at_ms, below_height)
                 SELECT ?1, ?2, ?3, ?4, max(block_height) FROM events WHERE kind = 'BlockAdded'",
            )?;
            let mut index_contract_event = tx.prepare_cached(super::contract_events::INSERT)?;
            let mut record_backfill = tx.prepare_cached(
                "UPDATE gaps SET backfilled_blocks = ?2, backfill_note = ?3, backfilled_at_ms = ?4 WHERE id = ?1",
            )?;
            for delivery in batch {
                if let Some(id) = delivery.node_event_id {
                    cursors.entry(&delivery.stream).or_default().last = Some((id, delivery.payload.identity()));
                }
                match &delivery.payload {
                    Payload::Event(e) => {
                        let (node, at) = (&*delivery.node, delivery.received_at_ms);
                        let Some(mut event) = insert(&tx, &mut insert_event, e, node, delivery.node_event_id, at)?
                        else {
                            record_sighting.execute(params![key_hash(&e.key), node, delivery.node_event_id, at])?;
                            continue;
                        };
                        index(&mut index_contract_event, &event)?;
                        // The plugins rule on the event, then on the events decoders derived
                        // from it, stored right after it (once: by their keys).
                        let mut outcome = processor.decide(&event);
                        let derived = std::mem::take(&mut outcome.derived);
                        record(&mut record_outcome, &mut event, &outcome)?;
                        stored.push((event, outcome));
                        for derived in derived {
                            let by = derived.plugin.as_str();
                            if let Some(mut event) = insert(&tx, &mut insert_event, &derived.event, by, None, at)? {
                                index(&mut index_contract_event, &event)?;
                                let outcome = processor.decide(&event);
                                record(&mut record_outcome, &mut event, &outcome)?;
                                stored.push((event, outcome));
                            }
                        }
                    }
                    Payload::Rejected { reason, raw } => {
                        insert_rejected.execute(params![
                            &*delivery.node,
                            delivery.node_event_id,
                            delivery.received_at_ms,
                            reason,
                            raw,
                        ])?;
                    }
                    Payload::ApiVersion(version) => {
                        cursors.entry(&delivery.stream).or_default().api_version = Some(version)
                    }
                    Payload::Gap { from_id, to_id } => {
                        insert_gap.execute(params![&*delivery.stream, from_id, to_id, delivery.received_at_ms])?;
                    }
                    Payload::Backfilled { gap, blocks, note } => {
                        record_backfill.execute(params![gap, blocks, note, delivery.received_at_ms])?;
                    }
                }
            }
            let mut save_cursor = tx.prepare_cached(
                "INSERT INTO node_cursors (stream, last_event_id, last_identity, api_version, updated_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (stream) DO UPDATE SET
                     last_identity = iif(excluded.last_event_id IS NULL, last_identity, excluded.last_identity),
                     last_event_id = coalesce(excluded.last_event_id, last_event_id),
                     api_version = coalesce(excluded.api_version, api_version),
                     updated_at_ms = excluded.updated_at_ms",
            )?;
            let now = crate::event::now_ms();
            for (stream, update) in cursors {
                let (last_id, identity) = update.last.unzip();
                save_cursor.execute(params![stream, last_id, identity.flatten(), update.api_version, now])?;
            }
            let last_seq = match stored.last() {
                Some((event, _)) => event.seq,
                None => tx.query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get::<_, i64>(0))? as u64,
            };
            for plugin in processor.finish(&stored, last_seq) {
                plugin_data::apply(&tx, &plugin, now)?;
            }
        }
        tx.commit()?;
        Ok(stored)
    }

    /// Commit plugin work done outside a batch (history replay): each plugin's writes and
    /// cursor, and the removal of `retired` storage ids (older versions), in one transaction.
    pub fn commit_plugins(&mut self, batches: &[PluginBatch], retired: &[String]) -> anyhow::Result<()> {
        let mut commit = || -> rusqlite::Result<()> {
            let tx = self.conn.transaction()?;
            let now = crate::event::now_ms();
            for batch in batches {
                plugin_data::apply(&tx, batch, now)?;
            }
            for storage_id in retired {
                plugin_data::remove_all(&tx, storage_id)?;
            }
            tx.commit()
        };
        commit().with_context(|| format!("writing to {}", self.path))
    }

    /// The highest sequence stored (0 when empty).
    pub fn last_seq(&self) -> anyhow::Result<u64> {
        Ok(super::reader::last_seq(&self.conn)?)
    }

    /// Create the storage indexes plugins declared on these JSON fields.
    pub fn create_plugin_indexes(&self, fields: &[String]) -> anyhow::Result<()> {
        for field in fields {
            plugin_data::create_index(&self.conn, field)?;
        }
        Ok(())
    }

    /// Where each SSE stream stands, to resume with `start_from`.
    pub fn cursors(&self) -> anyhow::Result<HashMap<String, StreamCursor>> {
        let mut stmt = self
            .conn
            .prepare("SELECT stream, last_event_id, last_identity FROM node_cursors WHERE last_event_id IS NOT NULL")?;
        let rows = stmt.query_map([], |r| {
            let identity: Option<Vec<u8>> = r.get(2)?;
            let identity = identity.and_then(|bytes| bytes.try_into().ok());
            Ok((r.get(0)?, StreamCursor { last_id: r.get(1)?, identity }))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
