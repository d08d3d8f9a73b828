//! The events a batch inserts, kept in columns until they are sent in one statement: one round
//! trip per batch instead of one per event (row by row, ingest reached ≈10,000 events/s;
//! BENCHMARKS.md).

use crate::event::NodeEvent;
use crate::store::sql::sql_int;
use crate::store::write::Outcome;
use postgres::Transaction;

/// New events not yet sent, in sequence order, column by column (as `unnest` takes them).
#[derive(Default)]
pub(super) struct Pending {
    seq: Vec<i64>,
    key_hash: Vec<Vec<u8>>,
    key: Vec<String>,
    kind: Vec<String>,
    block_hash: Vec<Option<String>>,
    block_height: Vec<Option<i64>>,
    transaction_hash: Vec<Option<String>>,
    era_id: Vec<Option<i64>>,
    node: Vec<String>,
    node_event_id: Vec<Option<i64>>,
    received_at_ms: Vec<i64>,
    raw: Vec<String>,
    account: Vec<Option<String>>,
    dropped: Vec<i16>,
    annotations: Vec<Option<String>>,
    hidden_by: Vec<Option<String>>,
    chain_height: Vec<i64>,
}

impl Pending {
    /// Keep event `seq` (its key hashed as `key_hash`) to send.
    #[allow(clippy::too_many_arguments)] // one row's columns
    pub(super) fn push(
        &mut self,
        seq: i64,
        key_hash: [u8; 16],
        e: &NodeEvent,
        node: &str,
        node_event_id: Option<u32>,
        received_at_ms: i64,
        chain_height: u64,
    ) {
        self.seq.push(seq);
        self.key_hash.push(key_hash.to_vec());
        self.key.push(e.key.clone());
        self.kind.push(e.kind.clone());
        self.block_hash.push(e.block_hash.clone());
        self.block_height.push(e.block_height.map(sql_int));
        self.transaction_hash.push(e.transaction_hash.clone());
        self.era_id.push(e.era_id.map(sql_int));
        self.node.push(node.to_owned());
        self.node_event_id.push(node_event_id.map(i64::from));
        self.received_at_ms.push(received_at_ms);
        self.raw.push(e.raw.clone());
        self.account.push(e.account.clone());
        self.dropped.push(0);
        self.annotations.push(None);
        self.hidden_by.push(None);
        self.chain_height.push(sql_int(chain_height));
    }

    /// Write `outcome` onto event `seq` if it is still here; whether it was.
    pub(super) fn record(&mut self, seq: u64, outcome: &Outcome) -> bool {
        let Some(first) = self.seq.first() else { return false };
        let Some(i) = (seq as i64).checked_sub(*first).and_then(|i| usize::try_from(i).ok()) else { return false };
        if i >= self.seq.len() {
            return false;
        }
        self.dropped[i] = i16::from(outcome.dropped);
        self.annotations[i].clone_from(&outcome.annotations);
        self.hidden_by[i].clone_from(&outcome.hidden_by);
        true
    }

    /// Send them all in one statement (they were checked to be new).
    pub(super) fn send(&mut self, tx: &mut Transaction<'_>) -> anyhow::Result<()> {
        if self.seq.is_empty() {
            return Ok(());
        }
        let sent = tx.execute(
            "INSERT INTO events (seq, key_hash, key, kind, block_hash, block_height, transaction_hash, era_id, node,
                                 node_event_id, received_at_ms, raw, account, dropped, annotations, hidden_by, chain_height)
             SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::text[], $4::text[], $5::text[], $6::bigint[],
                                  $7::text[], $8::bigint[], $9::text[], $10::bigint[], $11::bigint[], $12::text[],
                                  $13::text[], $14::smallint[], $15::text[], $16::text[], $17::bigint[])",
            &[
                &self.seq,
                &self.key_hash,
                &self.key,
                &self.kind,
                &self.block_hash,
                &self.block_height,
                &self.transaction_hash,
                &self.era_id,
                &self.node,
                &self.node_event_id,
                &self.received_at_ms,
                &self.raw,
                &self.account,
                &self.dropped,
                &self.annotations,
                &self.hidden_by,
                &self.chain_height,
            ],
        )?;
        anyhow::ensure!(sent as usize == self.seq.len(), "{sent} of {} new events were stored", self.seq.len());
        *self = Pending::default();
        Ok(())
    }
}
