//! The write side on PostgreSQL: the one writing instance's connection ([`Database`]), which
//! holds the leader lock for as long as it writes, and a batch's statements ([`Batch`]).
//!
//! Sequence numbers are assigned here, not by a PostgreSQL sequence (whose numbers a rolled
//! back transaction loses): the leader is the only writer, so the next number is the highest
//! stored plus one, read when a batch begins. For the same reason which of a batch's events
//! are new is known from one lookup of its keys, and the new ones are sent together
//! (`pending.rs`).

use super::pending::Pending;
use super::{Connection, LEADER_LOCK, listen, plugin_data, schema};
use crate::event::{NodeEvent, StreamCursor};
use crate::store::contract_events::Identity;
use crate::store::key_hash;
use crate::store::plugin_data::PluginBatch;
use crate::store::read::Read;
use crate::store::write::{Batch, CursorUpdate, Database, Outcome};
use anyhow::Context;
use postgres::{Statement, Transaction};
use std::collections::HashMap;
use std::time::Duration;

/// How often a standby asks for the leader lock.
const STANDBY_POLL: Duration = Duration::from_millis(250);

/// The leader's connection and its statements, prepared once per session.
pub struct Postgres {
    connection: Connection,
    statements: Statements,
    /// The connection's generation whose session holds the leader lock.
    leading: u64,
}

struct Statements {
    record_sighting: Statement,
    record_outcome: Statement,
    index_contract_event: Statement,
}

impl Postgres {
    /// Connect to `url` and become the leader: bring the schema up to date, then wait for the
    /// leader lock, which another instance may hold (this one is then a standby). The lock is
    /// the session's: it is released when this connection closes, also when the process is
    /// killed, and then a standby takes over. `on_standby` is called once, when it starts to wait.
    pub fn lead(url: &str, on_standby: &mut dyn FnMut()) -> anyhow::Result<Postgres> {
        let mut connection = Connection::open(url)?;
        schema::migrate(&mut connection.client).with_context(|| format!("the database {}", connection.name))?;
        let mut waiting = false;
        loop {
            // A standby's lost connection (a server restart, a network fault) is opened again.
            match connection.reopen_if_lost().and_then(|()| try_lock(&mut connection)) {
                Ok(true) => break,
                Ok(false) if !waiting => {
                    tracing::info!(
                        "standby: another instance writes to {}; taking over when it stops",
                        connection.name
                    );
                    waiting = true;
                    on_standby();
                }
                Ok(false) => {}
                Err(error) => tracing::warn!("standby: asking for the leader lock: {error:#}; asking again"),
            }
            std::thread::sleep(STANDBY_POLL);
        }
        if waiting {
            tracing::info!("taking over as the writing instance");
        }
        let statements = Statements::prepare(&mut connection)?;
        Ok(Postgres { leading: connection.generation, connection, statements })
    }

    /// Make sure this session still leads before writing: a lost connection is opened again
    /// and must take the lock again, which another instance may hold by now (then nothing is
    /// written and the batch waits, as on any storage failure).
    fn keep_leading(&mut self) -> anyhow::Result<()> {
        self.connection.reopen_if_lost()?;
        if self.connection.generation == self.leading {
            return Ok(());
        }
        if !try_lock(&mut self.connection)? {
            anyhow::bail!("another instance writes to {} since this one lost its connection", self.connection.name);
        }
        self.statements = Statements::prepare(&mut self.connection)?;
        self.leading = self.connection.generation;
        tracing::info!("connected to {} again; still the writing instance", self.connection.name);
        Ok(())
    }
}

impl Connection {
    /// A connection to import a store into `url` (`sluice migrate`): the tables created, the
    /// leader lock held (no instance writes meanwhile), and no store there yet.
    pub fn open_for_import(url: &str) -> anyhow::Result<Connection> {
        let mut connection = Connection::open(url)?;
        let name = connection.name.clone();
        schema::migrate(&mut connection.client).with_context(|| format!("the database {name}"))?;
        if !try_lock(&mut connection)? {
            anyhow::bail!("an instance writes to {name}: stop it first");
        }
        let stored = "SELECT EXISTS (SELECT 1 FROM events) OR EXISTS (SELECT 1 FROM plugin_data)
                             OR EXISTS (SELECT 1 FROM node_cursors)";
        if connection.client.query_one(stored, &[])?.get(0) {
            anyhow::bail!("{name} already holds a store: migrate into an empty database");
        }
        Ok(connection)
    }

    /// The client, to import with.
    pub fn client(&mut self) -> &mut postgres::Client {
        &mut self.client
    }

    /// The database, without credentials.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Take the leader lock if no other session holds it; whether this one now does.
fn try_lock(connection: &mut Connection) -> anyhow::Result<bool> {
    Ok(connection.client.query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK])?.get(0))
}

impl Statements {
    /// The batch statements, prepared on `connection`'s session.
    fn prepare(connection: &mut Connection) -> Result<Statements, postgres::Error> {
        let client = &mut connection.client;
        Ok(Statements {
            record_sighting: client.prepare(
                "INSERT INTO sightings (seq, node, node_event_id, received_at_ms)
                 SELECT seq, $2, $3, $4 FROM events WHERE key_hash = $1 AND node != $2 ON CONFLICT DO NOTHING",
            )?,
            record_outcome: client
                .prepare("UPDATE events SET dropped = $2, annotations = $3, hidden_by = $4 WHERE seq = $1")?,
            index_contract_event: client.prepare(
                "INSERT INTO contract_events (seq, contract_package_hash, contract_hash, name, transaction_hash)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )?,
        })
    }
}

impl Database for Postgres {
    fn transaction(&mut self, work: &mut dyn FnMut(&mut dyn Batch) -> anyhow::Result<()>) -> anyhow::Result<()> {
        self.keep_leading()?;
        let mut tx = self.connection.client.transaction()?;
        let next_seq = tx.query_one("SELECT coalesce(max(seq), 0) + 1 FROM events", &[])?.get::<_, i64>(0);
        let mut batch = PgBatch {
            tx: &mut tx,
            statements: &self.statements,
            next_seq,
            stored: HashMap::new(),
            pending: Pending::default(),
        };
        work(&mut batch)?;
        batch.pending.send(batch.tx)?;
        let last_seq = batch.next_seq - 1;
        if last_seq >= next_seq {
            // Delivered to `sluice serve` instances at the commit, in commit order.
            tx.execute("SELECT pg_notify($1, $2)", &[&listen::CHANNEL, &last_seq.to_string()])?;
        }
        Ok(tx.commit()?)
    }

    fn last_seq(&mut self) -> anyhow::Result<u64> {
        self.connection.last_seq()
    }

    fn chain_height(&mut self) -> anyhow::Result<u64> {
        let row = self.connection.client.query_one("SELECT coalesce(max(chain_height), 0) FROM events", &[])?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    fn create_plugin_index(&mut self, field: &str) -> anyhow::Result<()> {
        Ok(plugin_data::create_index(&mut *self.connection.client, field)?)
    }

    fn cursors(&mut self) -> anyhow::Result<HashMap<String, StreamCursor>> {
        let rows = self.connection.client.query(
            "SELECT stream, last_event_id, last_identity FROM node_cursors WHERE last_event_id IS NOT NULL",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|row| {
                let identity: Option<Vec<u8>> = row.get(2);
                let identity = identity.and_then(|bytes| bytes.try_into().ok());
                (row.get(0), StreamCursor { last_id: row.get::<_, i64>(1) as u32, identity })
            })
            .collect())
    }

    fn name(&self) -> &str {
        &self.connection.name
    }
}

/// One batch's transaction.
struct PgBatch<'a, 't> {
    tx: &'a mut Transaction<'t>,
    statements: &'a Statements,
    /// The sequence number the next inserted event gets.
    next_seq: i64,
    /// Whether each key (hashed) is stored, or about to be, for the keys looked up when the
    /// batch began and those it inserted.
    stored: HashMap<[u8; 16], bool>,
    /// New events not sent yet: sent before anything reads `events`, and at the end.
    pending: Pending,
}

/// A node event id as PostgreSQL holds it.
fn id(node_event_id: Option<u32>) -> Option<i64> {
    node_event_id.map(i64::from)
}

impl Batch for PgBatch<'_, '_> {
    /// One query for the whole batch: which of its keys are stored.
    fn expect(&mut self, keys: &[&str]) -> anyhow::Result<()> {
        let hashes: Vec<[u8; 16]> = keys.iter().map(|key| key_hash(key)).collect();
        let as_bytes: Vec<&[u8]> = hashes.iter().map(|hash| hash.as_slice()).collect();
        let rows = self.tx.query("SELECT key_hash FROM events WHERE key_hash = ANY($1)", &[&as_bytes])?;
        self.stored.extend(hashes.into_iter().map(|hash| (hash, false)));
        self.stored.extend(rows.iter().filter_map(|row| Some((row.get::<_, &[u8]>(0).try_into().ok()?, true))));
        Ok(())
    }

    fn insert_event(
        &mut self,
        e: &NodeEvent,
        node: &str,
        node_event_id: Option<u32>,
        received_at_ms: i64,
        chain_height: u64,
    ) -> anyhow::Result<Option<u64>> {
        let hash = key_hash(&e.key);
        let stored = match self.stored.get(&hash) {
            Some(stored) => *stored,
            // A derived event's key: asked for alone.
            None => self.tx.query_opt("SELECT 1 FROM events WHERE key_hash = $1", &[&hash.as_slice()])?.is_some(),
        };
        if stored {
            return Ok(None);
        }
        self.stored.insert(hash, true);
        let seq = self.next_seq;
        self.pending.push(seq, hash, e, node, node_event_id, received_at_ms, chain_height);
        self.next_seq += 1;
        Ok(Some(seq as u64))
    }

    fn record_sighting(
        &mut self,
        key: &str,
        node: &str,
        node_event_id: Option<u32>,
        received_at_ms: i64,
    ) -> anyhow::Result<()> {
        self.pending.send(self.tx)?;
        let hash = key_hash(key);
        let params: [&(dyn postgres::types::ToSql + Sync); 4] =
            [&hash.as_slice(), &node, &id(node_event_id), &received_at_ms];
        self.tx.execute(&self.statements.record_sighting, &params)?;
        Ok(())
    }

    fn record_outcome(&mut self, seq: u64, outcome: &Outcome) -> anyhow::Result<()> {
        if self.pending.record(seq, outcome) {
            return Ok(());
        }
        let params: [&(dyn postgres::types::ToSql + Sync); 4] =
            [&(seq as i64), &i16::from(outcome.dropped), &outcome.annotations, &outcome.hidden_by];
        self.tx.execute(&self.statements.record_outcome, &params)?;
        Ok(())
    }

    fn index_contract_event(&mut self, seq: u64, identity: &Identity) -> anyhow::Result<()> {
        self.tx.execute(
            &self.statements.index_contract_event,
            &[
                &(seq as i64),
                &identity.contract_package_hash,
                &identity.contract_hash,
                &identity.name,
                &identity.transaction_hash,
            ],
        )?;
        Ok(())
    }

    fn insert_rejected(
        &mut self,
        node: &str,
        node_event_id: Option<u32>,
        received_at_ms: i64,
        reason: &str,
        raw: &str,
    ) -> anyhow::Result<()> {
        self.tx.execute(
            "INSERT INTO rejected_frames (node, node_event_id, received_at_ms, reason, raw)
             VALUES ($1, $2, $3, $4, $5)",
            &[&node, &id(node_event_id), &received_at_ms, &reason, &raw],
        )?;
        Ok(())
    }

    fn insert_gap(&mut self, stream: &str, from_id: u32, to_id: u32, detected_at_ms: i64) -> anyhow::Result<()> {
        self.pending.send(self.tx)?;
        self.tx.execute(
            "INSERT INTO gaps (stream, from_id, to_id, detected_at_ms, below_height)
             SELECT $1, $2, $3, $4, max(block_height) FROM events WHERE kind = 'BlockAdded'",
            &[&stream, &i64::from(from_id), &i64::from(to_id), &detected_at_ms],
        )?;
        Ok(())
    }

    fn record_backfill(&mut self, gap: i64, blocks: u32, note: Option<&str>, at_ms: i64) -> anyhow::Result<()> {
        self.tx.execute(
            "UPDATE gaps SET backfilled_blocks = $2, backfill_note = $3, backfilled_at_ms = $4 WHERE id = $1",
            &[&gap, &i64::from(blocks), &note, &at_ms],
        )?;
        Ok(())
    }

    fn save_cursor(&mut self, stream: &str, update: &CursorUpdate<'_>, now_ms: i64) -> anyhow::Result<()> {
        let (last_id, identity) = update.last.unzip();
        let identity = identity.flatten().map(|bytes| bytes.to_vec());
        self.tx.execute(
            "INSERT INTO node_cursors (stream, last_event_id, last_identity, api_version, updated_at_ms)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (stream) DO UPDATE SET
                 last_identity = CASE WHEN excluded.last_event_id IS NULL THEN node_cursors.last_identity
                                      ELSE excluded.last_identity END,
                 last_event_id = coalesce(excluded.last_event_id, node_cursors.last_event_id),
                 api_version = coalesce(excluded.api_version, node_cursors.api_version),
                 updated_at_ms = excluded.updated_at_ms",
            &[&stream, &id(last_id), &identity, &update.api_version, &now_ms],
        )?;
        Ok(())
    }

    fn last_seq(&mut self) -> anyhow::Result<u64> {
        Ok((self.next_seq - 1) as u64)
    }

    fn apply_plugin_batch(&mut self, batch: &PluginBatch, now_ms: i64) -> anyhow::Result<()> {
        Ok(plugin_data::apply(self.tx, batch, now_ms)?)
    }

    fn remove_plugin_storage(&mut self, storage_id: &str) -> anyhow::Result<()> {
        Ok(plugin_data::remove_all(self.tx, storage_id)?)
    }
}

impl Connection {
    /// The highest sequence stored (0 when empty).
    fn last_seq(&mut self) -> anyhow::Result<u64> {
        Read::last_seq(self)
    }
}
