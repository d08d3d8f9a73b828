//! The event log's queries on PostgreSQL ([`Read`] for a [`Connection`]).

use super::Connection;
use super::rows::{stored_event, stored_events};
use crate::store::contract_events::Query;
use crate::store::plugin_data::ChainCursor;
use crate::store::read::{BlockId, Gap, LogQuery, Lookup, Read, Totals};
use crate::store::sql::{EVENT_COLUMNS, event_columns_of, sql_int};
use crate::store::{StoredEvent, key_hash};
use postgres::types::ToSql;
use std::collections::HashSet;

impl Read for Connection {
    fn last_seq(&mut self) -> anyhow::Result<u64> {
        Ok(self.query_one("SELECT coalesce(max(seq), 0) FROM events", &[])?.get::<_, i64>(0) as u64)
    }

    fn events_from(&mut self, from: u64, limit: usize) -> anyhow::Result<Vec<StoredEvent>> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq >= $1 AND dropped = 0 ORDER BY seq LIMIT $2");
        Ok(stored_events(self.query(&sql, &[&sql_int(from), &(limit as i64)])?)?)
    }

    fn disk_bytes(&mut self) -> anyhow::Result<u64> {
        let bytes: i64 = self.query_one("SELECT pg_database_size(current_database())", &[])?.get(0);
        Ok(bytes.max(0) as u64)
    }

    fn log_after(&mut self, after: u64, limit: usize) -> anyhow::Result<Vec<StoredEvent>> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq > $1 ORDER BY seq LIMIT $2");
        Ok(stored_events(self.query(&sql, &[&sql_int(after), &(limit as i64)])?)?)
    }

    fn log_in_chain_order(&mut self, from: u64, chain: ChainCursor, limit: usize) -> anyhow::Result<Vec<StoredEvent>> {
        // `+seq`: the sequence bounds filter; they must not make the planner read by sequence
        // and sort.
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE (chain_height, seq) > ($1, $2) AND +seq > $3 AND +seq <= $4
             ORDER BY chain_height, seq LIMIT $5"
        );
        let (height, seq) = chain.after;
        let params: [&(dyn ToSql + Sync); 5] =
            [&sql_int(height), &sql_int(seq), &sql_int(from), &sql_int(chain.bound), &(limit as i64)];
        Ok(stored_events(self.query(&sql, &params)?)?)
    }

    fn seen_by(&mut self, seq: u64) -> anyhow::Result<Vec<String>> {
        let rows = self.query(
            "SELECT node FROM (SELECT node, 0 AS rank, received_at_ms FROM events WHERE seq = $1
                               UNION ALL SELECT node, 1, received_at_ms FROM sightings WHERE seq = $1) nodes
             ORDER BY rank, received_at_ms",
            &[&sql_int(seq)],
        )?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    fn gaps(&mut self, limit: usize) -> anyhow::Result<Vec<Gap>> {
        let rows = self.query(
            "SELECT stream, from_id, to_id, detected_at_ms, backfilled_blocks, backfill_note, backfilled_at_ms
             FROM gaps ORDER BY id DESC LIMIT $1",
            &[&(limit as i64)],
        )?;
        Ok(rows
            .iter()
            .map(|r| Gap {
                stream: r.get(0),
                from_id: r.get::<_, i64>(1) as u32,
                to_id: r.get::<_, i64>(2) as u32,
                detected_at_ms: r.get(3),
                backfilled_blocks: r.get::<_, Option<i64>>(4).map(|b| b as u32),
                backfill_note: r.get(5),
                backfilled_at_ms: r.get(6),
            })
            .collect())
    }

    fn gaps_to_backfill(&mut self, node: &str) -> anyhow::Result<Vec<(i64, Option<u64>)>> {
        let rows = self.query(
            "SELECT id, below_height FROM gaps
             WHERE backfilled_at_ms IS NULL AND (stream = $1 OR left(stream, length($1) + 1) = $1 || '/')
             ORDER BY id",
            &[&node],
        )?;
        Ok(rows.iter().map(|r| (r.get(0), r.get::<_, Option<i64>>(1).map(|h| h as u64))).collect())
    }

    fn stored_keys(&mut self, keys: &[String]) -> anyhow::Result<HashSet<String>> {
        let hashes: Vec<Vec<u8>> = keys.iter().map(|key| key_hash(key).to_vec()).collect();
        let rows = self.query("SELECT key FROM events WHERE key_hash = ANY($1)", &[&hashes])?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    fn block_heights_above(&mut self, height: u64, limit: usize) -> anyhow::Result<Vec<u64>> {
        let rows = self.query(
            "SELECT block_height FROM events WHERE kind = 'BlockAdded' AND block_height > $1
             ORDER BY block_height LIMIT $2",
            &[&sql_int(height), &(limit as i64)],
        )?;
        Ok(rows.iter().map(|row| row.get::<_, i64>(0) as u64).collect())
    }

    fn block(&mut self, id: &BlockId) -> anyhow::Result<Option<StoredEvent>> {
        let order = "ORDER BY block_height DESC, seq DESC LIMIT 1";
        let served = format!("SELECT {EVENT_COLUMNS} FROM events WHERE kind = 'BlockAdded' AND dropped = 0");
        let row = match id {
            BlockId::Hash(hash) => {
                self.query_opt(&format!("{served} AND block_hash = $1 {order}"), &[&hash.to_lowercase()])?
            }
            BlockId::Height(h) => {
                self.query_opt(&format!("{served} AND block_height = $1 {order}"), &[&sql_int(*h)])?
            }
            BlockId::Latest => self.query_opt(&format!("{served} {order}"), &[])?,
        };
        Ok(row.as_ref().map(stored_event).transpose()?)
    }

    fn transaction_events(&mut self, hash: &str) -> anyhow::Result<Vec<StoredEvent>> {
        let kinds = crate::event::TRANSACTION_KINDS.map(|kind| format!("'{kind}'")).join(", ");
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE transaction_hash = $1 AND kind IN ({kinds}) AND dropped = 0
             ORDER BY seq"
        );
        Ok(stored_events(self.query(&sql, &[&hash.to_lowercase()])?)?)
    }

    fn lookup(&mut self, lookup: &Lookup, limit: usize) -> anyhow::Result<Vec<StoredEvent>> {
        let (text, number);
        let (condition, value): (&str, &(dyn ToSql + Sync)) = match lookup {
            Lookup::Signatures(block_hash) => {
                text = block_hash.to_lowercase();
                ("kind = 'FinalitySignature' AND block_hash = $1", &text)
            }
            Lookup::FaultsInEra(era) => {
                number = sql_int(*era);
                ("kind = 'Fault' AND era_id = $1", &number)
            }
            // A fault's key is `fault:{era}:{public key}`.
            Lookup::FaultsOf(key) => {
                text = format!(":{}", key.to_lowercase());
                ("kind = 'Fault' AND right(key, length($1)) = $1", &text)
            }
            Lookup::Step(era) => {
                number = sql_int(*era);
                ("kind = 'Step' AND era_id = $1", &number)
            }
        };
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE {condition} AND dropped = 0 ORDER BY seq LIMIT $2");
        Ok(stored_events(self.query(&sql, &[value, &(limit as i64)])?)?)
    }

    fn blocks_page(
        &mut self,
        heights: std::ops::RangeInclusive<u64>,
        page: u64,
        limit: u64,
    ) -> anyhow::Result<(Vec<StoredEvent>, u64)> {
        let served = "kind = 'BlockAdded' AND dropped = 0 AND block_height BETWEEN $1 AND $2";
        let (low, high) = (sql_int(*heights.start()), sql_int(*heights.end()));
        let count: i64 = self.query_one(&format!("SELECT count(*) FROM events WHERE {served}"), &[&low, &high])?.get(0);
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE {served} ORDER BY block_height DESC, seq DESC LIMIT $3 OFFSET $4"
        );
        let offset = sql_int((page - 1).saturating_mul(limit));
        let rows = self.query(&sql, &[&low, &high, &sql_int(limit), &offset])?;
        Ok((stored_events(rows)?, count as u64))
    }

    fn log_page(&mut self, query: &LogQuery) -> anyhow::Result<Vec<StoredEvent>> {
        let from = sql_int(query.from_seq);
        let limit = query.limit as i64;
        let transaction = query.transaction.as_ref().map(|hash| hash.to_lowercase());
        // Each filter is bound always and switched off by a NULL: one statement for all.
        let kinds = (!query.kinds.is_empty()).then_some(&query.kinds);
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE seq >= $1 AND dropped = 0
                 AND ($3::text[] IS NULL OR kind = ANY($3))
                 AND ($4::text IS NULL OR account = $4)
                 AND ($5::text IS NULL OR transaction_hash = $5)
             ORDER BY seq LIMIT $2"
        );
        let rows = self.query(&sql, &[&from, &limit, &kinds, &query.account, &transaction])?;
        Ok(stored_events(rows)?)
    }

    fn account_transactions(&mut self, account: &str, page: u64, limit: u64) -> anyhow::Result<(Vec<String>, u64)> {
        let served = "account = $1 AND dropped = 0";
        let count: i64 = self
            .query_one(&format!("SELECT count(DISTINCT transaction_hash) FROM events WHERE {served}"), &[&account])?
            .get(0);
        let sql = format!(
            "SELECT transaction_hash FROM events WHERE {served}
             GROUP BY transaction_hash ORDER BY min(seq) DESC LIMIT $2 OFFSET $3"
        );
        let offset = sql_int((page - 1).saturating_mul(limit));
        let rows = self.query(&sql, &[&account, &sql_int(limit), &offset])?;
        Ok((rows.iter().map(|row| row.get(0)).collect(), count as u64))
    }

    fn totals(&mut self) -> anyhow::Result<Totals> {
        let row = self.query_one(
            "SELECT (SELECT coalesce(max(seq), 0) FROM events), (SELECT count(*) FROM rejected_frames)",
            &[],
        )?;
        Ok(Totals { events: row.get::<_, i64>(0) as u64, rejected_frames: row.get::<_, i64>(1) as u64 })
    }

    fn contract_events(&mut self, query: &Query) -> anyhow::Result<Vec<(StoredEvent, Option<u64>)>> {
        let (event_columns, height_column) = event_columns_of("e");
        let before = query.before.map(sql_int);
        let sql = format!(
            "SELECT {event_columns},
                    (SELECT b.block_height FROM events b WHERE b.kind = 'BlockAdded' AND b.block_hash = e.block_hash
                     LIMIT 1)
             FROM contract_events c JOIN events e ON e.seq = c.seq
             WHERE e.dropped = 0
                 AND ($1::text IS NULL OR c.contract_hash = $1)
                 AND ($2::text IS NULL OR c.contract_package_hash = $2)
                 AND ($3::text IS NULL OR c.name = $3)
                 AND ($4::text IS NULL OR c.transaction_hash = $4)
                 AND ($5::bigint IS NULL OR c.seq < $5)
             ORDER BY c.seq DESC LIMIT $6"
        );
        let rows = self.query(
            &sql,
            &[&query.contract, &query.package, &query.name, &query.transaction, &before, &(query.limit as i64)],
        )?;
        rows.iter()
            .map(|row| {
                let height: Option<i64> = row.try_get(height_column)?;
                Ok((stored_event(row)?, height.map(|h| h as u64)))
            })
            .collect()
    }
}
