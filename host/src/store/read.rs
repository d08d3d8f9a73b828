//! The read side of the store, whatever the backend: the queries the API, the plugins and the
//! backfill run ([`Read`]), and [`Store`], which runs them on pooled connections off the async
//! runtime.

use super::plugin_data::{ChainCursor, PluginRead};
use super::{Location, StoredEvent, contract_events};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Queries on the event log. Every backend answers them alike; each method's SQL lives in the
/// backend's module. Events are "visible" unless a plugin dropped them.
pub trait Read: PluginRead + Send {
    /// Highest sequence number stored (0 when empty). Sequence numbers have no gaps, so this is
    /// also the number of events; every stored event has its plugin outcome.
    fn last_seq(&mut self) -> anyhow::Result<u64>;

    /// Visible events with `seq >= from`, oldest first, at most `limit`.
    fn events_from(&mut self, from: u64, limit: usize) -> anyhow::Result<Vec<StoredEvent>>;

    /// Up to `limit` events after `after`, in sequence order, dropped ones included: the log
    /// indexers replay.
    fn log_after(&mut self, after: u64, limit: usize) -> anyhow::Result<Vec<StoredEvent>>;

    /// Up to `limit` events with a sequence above `from` and up to `chain.bound`, in chain
    /// order `(chain_height, seq)` after `chain.after`, dropped ones included: the log plugins
    /// replay (an index makes it a range scan).
    fn log_in_chain_order(&mut self, from: u64, chain: ChainCursor, limit: usize) -> anyhow::Result<Vec<StoredEvent>>;

    /// Every node that delivered event `seq`: the first, then the others in order of arrival.
    fn seen_by(&mut self, seq: u64) -> anyhow::Result<Vec<String>>;

    /// The most recent gaps first, at most `limit`.
    fn gaps(&mut self, limit: usize) -> anyhow::Result<Vec<Gap>>;

    /// The gaps of `node` whose blocks are still to be fetched: each one's id and the highest
    /// block stored when it was found (`None`: there was none).
    fn gaps_to_backfill(&mut self, node: &str) -> anyhow::Result<Vec<(i64, Option<u64>)>>;

    /// Which of `keys` (natural keys) are stored.
    fn stored_keys(&mut self, keys: &[String]) -> anyhow::Result<HashSet<String>>;

    /// Heights of the blocks stored above `height`, lowest first, at most `limit`.
    fn block_heights_above(&mut self, height: u64, limit: usize) -> anyhow::Result<Vec<u64>>;

    /// A visible `BlockAdded` event.
    fn block(&mut self, id: &BlockId) -> anyhow::Result<Option<StoredEvent>>;

    /// Visible events of one transaction or deploy: accepted, processed, expired (not the
    /// events decoders derived from it).
    fn transaction_events(&mut self, hash: &str) -> anyhow::Result<Vec<StoredEvent>>;

    /// Visible events answering `lookup`, oldest first, at most `limit`.
    fn lookup(&mut self, lookup: &Lookup, limit: usize) -> anyhow::Result<Vec<StoredEvent>>;

    /// Page `page` (from 1) of the visible blocks with heights in `heights`, highest first,
    /// `limit` per page, and how many there are.
    fn blocks_page(
        &mut self,
        heights: std::ops::RangeInclusive<u64>,
        page: u64,
        limit: u64,
    ) -> anyhow::Result<(Vec<StoredEvent>, u64)>;

    /// Visible events matching `query`, oldest first.
    fn log_page(&mut self, query: &LogQuery) -> anyhow::Result<Vec<StoredEvent>>;

    /// Page `page` (from 1) of the transactions `account` (its hash) sent, newest first, `limit`
    /// per page, and how many there are.
    fn account_transactions(&mut self, account: &str, page: u64, limit: u64) -> anyhow::Result<(Vec<String>, u64)>;

    /// Store-wide counts.
    fn totals(&mut self) -> anyhow::Result<Totals>;

    /// Bytes the database takes on disk (a SQLite file and its log; a PostgreSQL database).
    fn disk_bytes(&mut self) -> anyhow::Result<u64>;

    /// Visible contract events matching `query`, newest first, each with the height of its
    /// block when that block is stored.
    fn contract_events(&mut self, query: &contract_events::Query) -> anyhow::Result<Vec<(StoredEvent, Option<u64>)>>;

    /// `event` with every node that delivered it (see [`Read::seen_by`]).
    fn with_seen_by(&mut self, event: StoredEvent) -> anyhow::Result<(StoredEvent, Vec<String>)> {
        let nodes = self.seen_by(event.seq)?;
        Ok((event, nodes))
    }

    /// Each of `events` with every node that delivered it.
    fn all_with_seen_by(&mut self, events: Vec<StoredEvent>) -> anyhow::Result<Vec<(StoredEvent, Vec<String>)>> {
        events.into_iter().map(|event| self.with_seen_by(event)).collect()
    }
}

/// Cheap-to-clone read handle. Each query runs on a blocking thread with a connection it has to
/// itself; at most [`CONNECTIONS`] run at once, the others wait for one, and connections are kept
/// for reuse (a PostgreSQL connection takes milliseconds to open and authenticate: opening one
/// per request beyond the pool made `GET /block/{hash}` from 64 clients 100× slower at p99).
#[derive(Clone)]
pub struct Store {
    location: Location,
    idle: Arc<Mutex<Vec<Box<dyn Read>>>>,
    permits: Arc<tokio::sync::Semaphore>,
}

/// Most read connections of one [`Store`]: the queries it runs at once.
const CONNECTIONS: usize = 16;

impl Store {
    /// A read handle on a database the [`super::Writer`] has already created.
    pub fn new(location: Location) -> Store {
        Store { location, idle: Arc::default(), permits: Arc::new(tokio::sync::Semaphore::new(CONNECTIONS)) }
    }

    /// Run `query` on a read connection, off the async runtime.
    pub async fn read<T, F>(&self, query: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Read) -> anyhow::Result<T> + Send + 'static,
    {
        let permit = self.permits.clone().acquire_owned().await?;
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = store.checkout()?;
            let result = query(conn.as_mut());
            store.idle.lock().expect("pool lock").push(conn);
            drop(permit);
            result
        })
        .await?
    }

    fn checkout(&self) -> anyhow::Result<Box<dyn Read>> {
        if let Some(conn) = self.idle.lock().expect("pool lock").pop() {
            return Ok(conn);
        }
        super::open_read(&self.location)
    }
}

/// A range of node event ids that was no longer available when asked for.
#[derive(Debug, serde::Serialize)]
pub struct Gap {
    /// Stream whose ids they are: the node name (2.x) or `name/main` etc. (1.x).
    pub stream: String,
    /// First missing id.
    pub from_id: u32,
    /// Last missing id.
    pub to_id: u32,
    /// When it was noticed, milliseconds since the Unix epoch.
    pub detected_at_ms: i64,
    /// Blocks fetched back over JSON-RPC, once the backfill is done.
    pub backfilled_blocks: Option<u32>,
    /// What the backfill could not fetch, if anything.
    pub backfill_note: Option<String>,
    /// When the backfill finished.
    pub backfilled_at_ms: Option<i64>,
}

/// Which block to look up.
#[derive(Debug, Clone)]
pub enum BlockId {
    /// By block hash (hex).
    Hash(String),
    /// By height.
    Height(u64),
    /// The highest block served so far.
    Latest,
}

/// Where era and block lookups look.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// A block's finality signatures (its hash, hex).
    Signatures(String),
    /// The faults of an era.
    FaultsInEra(u64),
    /// The faults of a validator (public key, hex).
    FaultsOf(String),
    /// The step that ended an era.
    Step(u64),
}

/// What a page of the raw log is narrowed to.
#[derive(Debug, Default)]
pub struct LogQuery {
    /// First sequence number wanted.
    pub from_seq: u64,
    /// Event types (any when empty).
    pub kinds: Vec<String>,
    /// Transactions sent by this account (its hash; see [`crate::account`]).
    pub account: Option<String>,
    /// One transaction's events (its hash, lowercase hex).
    pub transaction: Option<String>,
    /// Most events returned.
    pub limit: usize,
}

/// Counts for the health endpoint.
#[derive(Debug, serde::Serialize)]
pub struct Totals {
    /// Events stored (visible or not); also the highest sequence number.
    pub events: u64,
    /// Frames that could not be parsed.
    pub rejected_frames: u64,
}
