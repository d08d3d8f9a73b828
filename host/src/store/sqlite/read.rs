//! The event log's queries on SQLite ([`Read`] for a connection).

use super::contract_events;
use super::rows::stored_event;
use crate::store::plugin_data::ChainCursor;
use crate::store::read::{BlockId, Gap, LogQuery, Lookup, Read, Totals};
use crate::store::sql::{EVENT_COLUMNS, sql_int};
use crate::store::{StoredEvent, key_hash};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashSet;

impl Read for Connection {
    fn last_seq(&mut self) -> anyhow::Result<u64> {
        Ok(self.query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get::<_, i64>(0))? as u64)
    }

    fn events_from(&mut self, from: u64, limit: usize) -> anyhow::Result<Vec<StoredEvent>> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq >= ?1 AND dropped = 0 ORDER BY seq LIMIT ?2");
        let mut stmt = self.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![sql_int(from), limit as i64], stored_event)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn disk_bytes(&mut self) -> anyhow::Result<u64> {
        Ok(self.path().map_or(0, |path| super::disk_bytes(std::path::Path::new(path))))
    }

    fn log_after(&mut self, after: u64, limit: usize) -> anyhow::Result<Vec<StoredEvent>> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2");
        let mut stmt = self.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![sql_int(after), limit as i64], stored_event)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn log_in_chain_order(&mut self, from: u64, chain: ChainCursor, limit: usize) -> anyhow::Result<Vec<StoredEvent>> {
        // `+seq`: the sequence bounds filter; they must not make the planner read by sequence
        // and sort (50x slower per slice at a million events).
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE (chain_height, seq) > (?1, ?2) AND +seq > ?3 AND +seq <= ?4
             ORDER BY chain_height, seq LIMIT ?5"
        );
        let mut stmt = self.prepare_cached(&sql)?;
        let (height, seq) = chain.after;
        let params = params![sql_int(height), sql_int(seq), sql_int(from), sql_int(chain.bound), limit as i64];
        let rows = stmt.query_map(params, stored_event)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn seen_by(&mut self, seq: u64) -> anyhow::Result<Vec<String>> {
        let mut stmt = self.prepare_cached(
            "SELECT node FROM (SELECT node, 0 AS rank, received_at_ms FROM events WHERE seq = ?1
                               UNION ALL SELECT node, 1, received_at_ms FROM sightings WHERE seq = ?1)
             ORDER BY rank, received_at_ms",
        )?;
        let rows = stmt.query_map([sql_int(seq)], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn gaps(&mut self, limit: usize) -> anyhow::Result<Vec<Gap>> {
        let mut stmt = self.prepare_cached(
            "SELECT stream, from_id, to_id, detected_at_ms, backfilled_blocks, backfill_note, backfilled_at_ms
             FROM gaps ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |r| {
            Ok(Gap {
                stream: r.get(0)?,
                from_id: r.get(1)?,
                to_id: r.get(2)?,
                detected_at_ms: r.get(3)?,
                backfilled_blocks: r.get(4)?,
                backfill_note: r.get(5)?,
                backfilled_at_ms: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn gaps_to_backfill(&mut self, node: &str) -> anyhow::Result<Vec<(i64, Option<u64>)>> {
        let mut stmt = self.prepare_cached(
            "SELECT id, below_height FROM gaps
             WHERE backfilled_at_ms IS NULL AND (stream = ?1 OR substr(stream, 1, length(?1) + 1) = ?1 || '/')
             ORDER BY id",
        )?;
        let rows = stmt.query_map([node], |r| Ok((r.get(0)?, r.get::<_, Option<i64>>(1)?.map(|h| h as u64))))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn stored_keys(&mut self, keys: &[String]) -> anyhow::Result<HashSet<String>> {
        let mut stmt = self.prepare_cached("SELECT 1 FROM events WHERE key_hash = ?1")?;
        let mut stored = HashSet::new();
        for key in keys {
            if stmt.exists([key_hash(key)])? {
                stored.insert(key.clone());
            }
        }
        Ok(stored)
    }

    fn block_heights_above(&mut self, height: u64, limit: usize) -> anyhow::Result<Vec<u64>> {
        let mut stmt = self.prepare_cached(
            "SELECT block_height FROM events WHERE kind = 'BlockAdded' AND block_height > ?1
             ORDER BY block_height LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![sql_int(height), limit as i64], |r| r.get::<_, i64>(0).map(|h| h as u64))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn block(&mut self, id: &BlockId) -> anyhow::Result<Option<StoredEvent>> {
        let served = "kind = 'BlockAdded' AND dropped = 0";
        let (condition, value) = match id {
            BlockId::Hash(hash) => ("block_hash = ?1", Value::Text(hash.to_lowercase())),
            BlockId::Height(h) => ("block_height = ?1", Value::Integer(sql_int(*h))),
            BlockId::Latest => ("?1 IS NULL", Value::Null),
        };
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE {condition} AND {served}
             ORDER BY block_height DESC, seq DESC LIMIT 1"
        );
        Ok(self.prepare_cached(&sql)?.query_row([value], stored_event).optional()?)
    }

    fn transaction_events(&mut self, hash: &str) -> anyhow::Result<Vec<StoredEvent>> {
        let kinds = crate::event::TRANSACTION_KINDS.map(|kind| format!("'{kind}'")).join(", ");
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE transaction_hash = ?1 AND kind IN ({kinds}) AND dropped = 0
             ORDER BY seq"
        );
        let mut stmt = self.prepare_cached(&sql)?;
        let rows = stmt.query_map([hash.to_lowercase()], stored_event)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Each query is served by an index: `signatures_by_block`, `era_events`.
    fn lookup(&mut self, lookup: &Lookup, limit: usize) -> anyhow::Result<Vec<StoredEvent>> {
        let (condition, value) = match lookup {
            Lookup::Signatures(block_hash) => {
                ("kind = 'FinalitySignature' AND block_hash = ?1", Value::Text(block_hash.to_lowercase()))
            }
            Lookup::FaultsInEra(era) => ("kind = 'Fault' AND era_id = ?1", Value::Integer(sql_int(*era))),
            // A fault's key is `fault:{era}:{public key}`.
            Lookup::FaultsOf(key) => ("kind = 'Fault' AND key LIKE '%:' || ?1", Value::Text(key.to_lowercase())),
            Lookup::Step(era) => ("kind = 'Step' AND era_id = ?1", Value::Integer(sql_int(*era))),
        };
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE {condition} AND dropped = 0 ORDER BY seq LIMIT ?2");
        let mut stmt = self.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![value, limit as i64], stored_event)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Served by `blocks_by_height`.
    fn blocks_page(
        &mut self,
        heights: std::ops::RangeInclusive<u64>,
        page: u64,
        limit: u64,
    ) -> anyhow::Result<(Vec<StoredEvent>, u64)> {
        let served = "kind = 'BlockAdded' AND dropped = 0 AND block_height BETWEEN ?1 AND ?2";
        let (low, high) = (sql_int(*heights.start()), sql_int(*heights.end()));
        let count: i64 = self
            .prepare_cached(&format!("SELECT count(*) FROM events WHERE {served}"))?
            .query_row([low, high], |r| r.get(0))?;
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE {served} ORDER BY block_height DESC, seq DESC LIMIT ?3 OFFSET ?4"
        );
        let offset = sql_int((page - 1).saturating_mul(limit));
        let mut stmt = self.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![low, high, sql_int(limit), offset], stored_event)?;
        Ok((rows.collect::<rusqlite::Result<_>>()?, count as u64))
    }

    /// By account and by transaction, an index serves the query; by type, the log is read in
    /// order from `from_seq`.
    fn log_page(&mut self, query: &LogQuery) -> anyhow::Result<Vec<StoredEvent>> {
        let mut conditions = vec!["seq >= ?1 AND dropped = 0".to_owned()];
        let mut values = vec![Value::Integer(sql_int(query.from_seq)), Value::Integer(query.limit as i64)];
        let mut bind = |condition: &str, value: Value| {
            values.push(value);
            conditions.push(condition.replace('?', &format!("?{}", values.len())));
        };
        if !query.kinds.is_empty() {
            bind("kind IN (SELECT value FROM json_each(?))", Value::Text(serde_json::to_string(&query.kinds)?));
        }
        if let Some(account) = &query.account {
            bind("account = ?", Value::Text(account.clone()));
        }
        if let Some(transaction) = &query.transaction {
            bind("transaction_hash = ?", Value::Text(transaction.to_lowercase()));
        }
        let sql =
            format!("SELECT {EVENT_COLUMNS} FROM events WHERE {} ORDER BY seq LIMIT ?2", conditions.join(" AND "));
        let mut stmt = self.prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(values), stored_event)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Served by `events_by_account`.
    fn account_transactions(&mut self, account: &str, page: u64, limit: u64) -> anyhow::Result<(Vec<String>, u64)> {
        let served = "account = ?1 AND dropped = 0";
        let count: i64 = self
            .prepare_cached(&format!("SELECT count(DISTINCT transaction_hash) FROM events WHERE {served}"))?
            .query_row([account], |r| r.get(0))?;
        let sql = format!(
            "SELECT transaction_hash FROM events WHERE {served}
             GROUP BY transaction_hash ORDER BY min(seq) DESC LIMIT ?2 OFFSET ?3"
        );
        let offset = sql_int((page - 1).saturating_mul(limit));
        let mut stmt = self.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![account, sql_int(limit), offset], |r| r.get(0))?;
        Ok((rows.collect::<rusqlite::Result<_>>()?, count as u64))
    }

    fn totals(&mut self) -> anyhow::Result<Totals> {
        Ok(self.query_row(
            "SELECT (SELECT coalesce(max(seq), 0) FROM events), (SELECT count(*) FROM rejected_frames)",
            [],
            |r| Ok(Totals { events: r.get::<_, i64>(0)? as u64, rejected_frames: r.get::<_, i64>(1)? as u64 }),
        )?)
    }

    fn contract_events(
        &mut self,
        query: &crate::store::contract_events::Query,
    ) -> anyhow::Result<Vec<(StoredEvent, Option<u64>)>> {
        Ok(contract_events::list(self, query)?)
    }
}
