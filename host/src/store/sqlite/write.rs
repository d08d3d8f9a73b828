//! The write side on SQLite: the one write connection ([`Database`]) and a batch's statements,
//! prepared once per transaction ([`Batch`]).

use super::checkpoint::{self, Checkpointer};
use super::{connection, contract_events, plugin_data, schema};
use crate::event::{NodeEvent, StreamCursor};
use crate::store::contract_events::Identity;
use crate::store::key_hash;
use crate::store::plugin_data::PluginBatch;
use crate::store::sql::sql_int;
use crate::store::write::{Batch, CursorUpdate, Database, Outcome};
use anyhow::Context;
use rusqlite::{CachedStatement, Connection, params};
use std::collections::HashMap;
use std::path::Path;

/// The write connection to a SQLite file, and the thread checkpointing its log beside it.
pub struct Sqlite {
    conn: Connection,
    /// The database file, named in errors.
    path: String,
    _checkpointer: Checkpointer,
}

impl Sqlite {
    /// Open (creating if needed) the database and bring its schema up to date.
    pub fn open(path: &Path) -> anyhow::Result<Sqlite> {
        let open = || -> anyhow::Result<Connection> {
            let conn = Connection::open(path)?;
            connection::configure(&conn)?;
            schema::migrate(&conn)?;
            // Keep hot index pages in memory (measured in BENCHMARKS.md: page spills dominated
            // ingest time). The log is checkpointed by a thread of its own; past the backstop
            // (the thread fell behind a writer that never pauses) a commit finishes the copy.
            conn.pragma_update(None, "cache_size", -16 * 1024)?;
            checkpoint::set_backstop(&conn)?;
            Ok(conn)
        };
        let conn = open().with_context(|| format!("the database {}", path.display()))?;
        let checkpointer = Checkpointer::start(path)?;
        Ok(Sqlite { conn, path: path.display().to_string(), _checkpointer: checkpointer })
    }
}

impl Database for Sqlite {
    fn transaction(&mut self, work: &mut dyn FnMut(&mut dyn Batch) -> anyhow::Result<()>) -> anyhow::Result<()> {
        let tx = self.conn.transaction()?;
        work(&mut Statements::prepare(&tx)?)?;
        Ok(tx.commit()?)
    }

    fn last_seq(&mut self) -> anyhow::Result<u64> {
        crate::store::Read::last_seq(&mut self.conn)
    }

    fn chain_height(&mut self) -> anyhow::Result<u64> {
        let highest =
            self.conn.query_row("SELECT coalesce(max(chain_height), 0) FROM events", [], |r| r.get::<_, i64>(0))?;
        Ok(highest as u64)
    }

    fn create_plugin_index(&mut self, field: &str) -> anyhow::Result<()> {
        Ok(plugin_data::create_index(&self.conn, field)?)
    }

    fn cursors(&mut self) -> anyhow::Result<HashMap<String, StreamCursor>> {
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

    fn name(&self) -> &str {
        &self.path
    }
}

/// A batch's statements on its transaction.
struct Statements<'t> {
    tx: &'t Connection,
    insert_event: CachedStatement<'t>,
    record_sighting: CachedStatement<'t>,
    record_outcome: CachedStatement<'t>,
    index_contract_event: CachedStatement<'t>,
}

impl<'t> Statements<'t> {
    fn prepare(tx: &'t Connection) -> rusqlite::Result<Statements<'t>> {
        Ok(Statements {
            tx,
            insert_event: tx.prepare_cached(
                "INSERT INTO events (key_hash, key, kind, block_hash, block_height, transaction_hash,
                                     era_id, node, node_event_id, received_at_ms, raw, account, chain_height)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT (key_hash) DO NOTHING",
            )?,
            // A duplicate from another node than the first is recorded as a sighting.
            record_sighting: tx.prepare_cached(
                "INSERT OR IGNORE INTO sightings (seq, node, node_event_id, received_at_ms)
                 SELECT seq, ?2, ?3, ?4 FROM events WHERE key_hash = ?1 AND node != ?2",
            )?,
            record_outcome: tx
                .prepare_cached("UPDATE events SET dropped = ?2, annotations = ?3, hidden_by = ?4 WHERE seq = ?1")?,
            index_contract_event: tx.prepare_cached(contract_events::INSERT)?,
        })
    }
}

impl Batch for Statements<'_> {
    fn insert_event(
        &mut self,
        e: &NodeEvent,
        node: &str,
        node_event_id: Option<u32>,
        received_at_ms: i64,
        chain_height: u64,
    ) -> anyhow::Result<Option<u64>> {
        let inserted = self.insert_event.execute(params![
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
            sql_int(chain_height),
        ])?;
        Ok((inserted == 1).then(|| self.tx.last_insert_rowid() as u64))
    }

    fn record_sighting(
        &mut self,
        key: &str,
        node: &str,
        node_event_id: Option<u32>,
        received_at_ms: i64,
    ) -> anyhow::Result<()> {
        self.record_sighting.execute(params![key_hash(key), node, node_event_id, received_at_ms])?;
        Ok(())
    }

    fn record_outcome(&mut self, seq: u64, outcome: &Outcome) -> anyhow::Result<()> {
        self.record_outcome.execute(params![seq as i64, outcome.dropped, outcome.annotations, outcome.hidden_by])?;
        Ok(())
    }

    fn index_contract_event(&mut self, seq: u64, identity: &Identity) -> anyhow::Result<()> {
        Ok(contract_events::index(&mut self.index_contract_event, seq, identity)?)
    }

    fn insert_rejected(
        &mut self,
        node: &str,
        node_event_id: Option<u32>,
        received_at_ms: i64,
        reason: &str,
        raw: &str,
    ) -> anyhow::Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO rejected_frames (node, node_event_id, received_at_ms, reason, raw)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![node, node_event_id, received_at_ms, reason, raw])?;
        Ok(())
    }

    fn insert_gap(&mut self, stream: &str, from_id: u32, to_id: u32, detected_at_ms: i64) -> anyhow::Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO gaps (stream, from_id, to_id, detected_at_ms, below_height)
                 SELECT ?1, ?2, ?3, ?4, max(block_height) FROM events WHERE kind = 'BlockAdded'",
            )?
            .execute(params![stream, from_id, to_id, detected_at_ms])?;
        Ok(())
    }

    fn record_backfill(&mut self, gap: i64, blocks: u32, note: Option<&str>, at_ms: i64) -> anyhow::Result<()> {
        self.tx
            .prepare_cached(
                "UPDATE gaps SET backfilled_blocks = ?2, backfill_note = ?3, backfilled_at_ms = ?4 WHERE id = ?1",
            )?
            .execute(params![gap, blocks, note, at_ms])?;
        Ok(())
    }

    fn save_cursor(&mut self, stream: &str, update: &CursorUpdate<'_>, now_ms: i64) -> anyhow::Result<()> {
        let (last_id, identity) = update.last.unzip();
        self.tx
            .prepare_cached(
                "INSERT INTO node_cursors (stream, last_event_id, last_identity, api_version, updated_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (stream) DO UPDATE SET
                     last_identity = iif(excluded.last_event_id IS NULL, last_identity, excluded.last_identity),
                     last_event_id = coalesce(excluded.last_event_id, last_event_id),
                     api_version = coalesce(excluded.api_version, api_version),
                     updated_at_ms = excluded.updated_at_ms",
            )?
            .execute(params![stream, last_id, identity.flatten(), update.api_version, now_ms])?;
        Ok(())
    }

    fn last_seq(&mut self) -> anyhow::Result<u64> {
        Ok(self.tx.query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get::<_, i64>(0))? as u64)
    }

    fn apply_plugin_batch(&mut self, batch: &PluginBatch, now_ms: i64) -> anyhow::Result<()> {
        Ok(plugin_data::apply(self.tx, batch, now_ms)?)
    }

    fn remove_plugin_storage(&mut self, storage_id: &str) -> anyhow::Result<()> {
        Ok(plugin_data::remove_all(self.tx, storage_id)?)
    }
}
