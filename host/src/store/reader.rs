//! Read side of the store: queries the API needs, on pooled read-only connections.

use super::{Location, StoredEvent, schema};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use std::sync::{Arc, Mutex};

/// Cheap-to-clone read handle. Each query runs on a blocking thread with a connection it has to
/// itself; idle connections are kept for reuse.
#[derive(Clone)]
pub struct Store {
    location: Location,
    idle: Arc<Mutex<Vec<Connection>>>,
}

/// Columns of [`StoredEvent`], in the order [`stored_event`] reads them.
const EVENT_COLUMNS: &str = "seq, kind, node, received_at_ms, raw, annotations, hidden_by, account";

/// How many idle read connections are kept.
const MAX_IDLE: usize = 8;

impl Store {
    /// A read handle on a database the [`super::Writer`] has already created.
    pub fn new(location: Location) -> Store {
        Store { location, idle: Arc::default() }
    }

    /// Run `query` on a read connection, off the async runtime.
    pub async fn read<T, F>(&self, query: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = store.checkout()?;
            let result = query(&conn);
            store.checkin(conn);
            Ok(result?)
        })
        .await?
    }

    /// Bytes the database takes on disk (its file and write-ahead log).
    pub fn disk_bytes(&self) -> u64 {
        let path = self.location.path();
        let wal = path.with_file_name(format!("{}-wal", path.file_name().unwrap_or_default().to_string_lossy()));
        [path.to_path_buf(), wal].iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum()
    }

    fn checkout(&self) -> anyhow::Result<Connection> {
        if let Some(conn) = self.idle.lock().expect("pool lock").pop() {
            return Ok(conn);
        }
        Ok(open_read_only(&self.location)?)
    }

    fn checkin(&self, conn: Connection) {
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
}

/// A new read-only connection to the database at `location`.
pub fn open_read_only(location: &Location) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(location.path(), flags)?;
    schema::configure(&conn)?;
    Ok(conn)
}

/// [`EVENT_COLUMNS`] of the `events` table aliased `alias` (for joins), and how many there
/// are: a query's own columns come after them.
pub(super) fn event_columns_of(alias: &str) -> (String, usize) {
    let columns: Vec<String> = EVENT_COLUMNS.split(", ").map(|column| format!("{alias}.{column}")).collect();
    (columns.join(", "), columns.len())
}

/// Map a row selected with [`EVENT_COLUMNS`] (or [`event_columns_of`]).
pub(super) fn stored_event(row: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    Ok(StoredEvent {
        seq: row.get::<_, i64>(0)? as u64,
        kind: row.get(1)?,
        node: row.get(2)?,
        received_at_ms: row.get(3)?,
        raw: Arc::from(row.get::<_, String>(4)?),
        annotations: row.get(5)?,
        hidden_by: row.get(6)?,
        account: row.get(7)?,
    })
}

/// Highest sequence number stored (0 when empty). Sequence numbers have no gaps, so this is
/// also the number of events; every stored event has its plugin outcome.
pub fn last_seq(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get::<_, i64>(0)).map(|s| s as u64)
}

/// Visible events with `seq >= from`, oldest first, at most `limit`.
pub fn events_from(conn: &Connection, from: u64, limit: usize) -> rusqlite::Result<Vec<StoredEvent>> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq >= ?1 AND dropped = 0 ORDER BY seq LIMIT ?2");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![sql_int(from), limit as i64], stored_event)?;
    rows.collect()
}

/// Up to `limit` events after `after`, in sequence order, dropped ones included: the log
/// indexers replay.
pub fn log_after(conn: &Connection, after: u64, limit: usize) -> rusqlite::Result<Vec<StoredEvent>> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![sql_int(after), limit as i64], stored_event)?;
    rows.collect()
}

/// Every node that delivered event `seq`: the first, then the others in order of arrival.
pub fn seen_by(conn: &Connection, seq: u64) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT node FROM (SELECT node, 0 AS rank, received_at_ms FROM events WHERE seq = ?1
                           UNION ALL SELECT node, 1, received_at_ms FROM sightings WHERE seq = ?1)
         ORDER BY rank, received_at_ms",
    )?;
    let rows = stmt.query_map([seq as i64], |r| r.get(0))?;
    rows.collect()
}

/// `event` with every node that delivered it (see [`seen_by`]).
pub fn with_seen_by(conn: &Connection, event: StoredEvent) -> rusqlite::Result<(StoredEvent, Vec<String>)> {
    let nodes = seen_by(conn, event.seq)?;
    Ok((event, nodes))
}

/// Each of `events` with every node that delivered it.
pub fn all_with_seen_by(
    conn: &Connection,
    events: Vec<StoredEvent>,
) -> rusqlite::Result<Vec<(StoredEvent, Vec<String>)>> {
    events.into_iter().map(|event| with_seen_by(conn, event)).collect()
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

/// The most recent gaps first, at most `limit`.
pub fn gaps(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<Gap>> {
    let mut stmt = conn.prepare_cached(
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
    rows.collect()
}

/// A gap of `node` whose blocks are still to be fetched: its id and the highest block stored
/// when it was found (`None`: there was none).
pub fn gaps_to_backfill(conn: &Connection, node: &str) -> rusqlite::Result<Vec<(i64, Option<u64>)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, below_height FROM gaps
         WHERE backfilled_at_ms IS NULL AND (stream = ?1 OR substr(stream, 1, length(?1) + 1) = ?1 || '/')
         ORDER BY id",
    )?;
    let rows = stmt.query_map([node], |r| Ok((r.get(0)?, r.get::<_, Option<i64>>(1)?.map(|h| h as u64))))?;
    rows.collect()
}

/// Which of `keys` (natural keys) are stored.
pub fn stored_keys(conn: &Connection, keys: &[String]) -> rusqlite::Result<std::collections::HashSet<String>> {
    let mut stmt = conn.prepare_cached("SELECT 1 FROM events WHERE key_hash = ?1")?;
    let mut stored = std::collections::HashSet::new();
    for key in keys {
        if stmt.exists([super::key_hash(key)])? {
            stored.insert(key.clone());
        }
    }
    Ok(stored)
}

/// Heights of the blocks stored above `height`, lowest first, at most `limit`.
pub fn block_heights_above(conn: &Connection, height: u64, limit: usize) -> rusqlite::Result<Vec<u64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT block_height FROM events WHERE kind = 'BlockAdded' AND block_height > ?1
         ORDER BY block_height LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![height as i64, limit as i64], |r| r.get::<_, i64>(0).map(|h| h as u64))?;
    rows.collect()
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

/// A visible `BlockAdded` event.
pub fn block(conn: &Connection, id: &BlockId) -> rusqlite::Result<Option<StoredEvent>> {
    let served = "kind = 'BlockAdded' AND dropped = 0";
    let (condition, value) = match id {
        BlockId::Hash(hash) => ("block_hash = ?1", rusqlite::types::Value::Text(hash.to_lowercase())),
        BlockId::Height(h) => ("block_height = ?1", rusqlite::types::Value::Integer(*h as i64)),
        BlockId::Latest => ("?1 IS NULL", rusqlite::types::Value::Null),
    };
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE {condition} AND {served}
         ORDER BY block_height DESC, seq DESC LIMIT 1"
    );
    conn.prepare_cached(&sql)?.query_row([value], stored_event).optional()
}

/// Visible events of one transaction or deploy: accepted, processed, expired (not the events
/// decoders derived from it).
pub fn transaction_events(conn: &Connection, hash: &str) -> rusqlite::Result<Vec<StoredEvent>> {
    let kinds = crate::event::TRANSACTION_KINDS.map(|kind| format!("'{kind}'")).join(", ");
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE transaction_hash = ?1 AND kind IN ({kinds}) AND dropped = 0 ORDER BY seq"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([hash.to_lowercase()], stored_event)?;
    rows.collect()
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

/// Visible events answering `lookup`, oldest first, at most `limit` (each query is served by
/// an index: `signatures_by_block`, `era_events`).
pub fn lookup(conn: &Connection, lookup: &Lookup, limit: usize) -> rusqlite::Result<Vec<StoredEvent>> {
    use rusqlite::types::Value;
    let (condition, value) = match lookup {
        Lookup::Signatures(block_hash) => {
            ("kind = 'FinalitySignature' AND block_hash = ?1", Value::Text(block_hash.to_lowercase()))
        }
        Lookup::FaultsInEra(era) => ("kind = 'Fault' AND era_id = ?1", Value::Integer(*era as i64)),
        // A fault's key is `fault:{era}:{public key}`.
        Lookup::FaultsOf(key) => ("kind = 'Fault' AND key LIKE '%:' || ?1", Value::Text(key.to_lowercase())),
        Lookup::Step(era) => ("kind = 'Step' AND era_id = ?1", Value::Integer(*era as i64)),
    };
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE {condition} AND dropped = 0 ORDER BY seq LIMIT ?2");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![value, limit as i64], stored_event)?;
    rows.collect()
}

/// Page `page` (from 1) of the visible blocks with heights in `heights`, highest first, `limit`
/// per page, and how many there are (served by `blocks_by_height`).
pub fn blocks_page(
    conn: &Connection,
    heights: std::ops::RangeInclusive<u64>,
    page: u64,
    limit: u64,
) -> rusqlite::Result<(Vec<StoredEvent>, u64)> {
    let served = "kind = 'BlockAdded' AND dropped = 0 AND block_height BETWEEN ?1 AND ?2";
    let (low, high) = (sql_int(*heights.start()), sql_int(*heights.end()));
    let count: i64 = conn
        .prepare_cached(&format!("SELECT count(*) FROM events WHERE {served}"))?
        .query_row([low, high], |r| r.get(0))?;
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE {served} ORDER BY block_height DESC, seq DESC LIMIT ?3 OFFSET ?4"
    );
    let offset = sql_int((page - 1).saturating_mul(limit));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![low, high, limit as i64, offset], stored_event)?;
    Ok((rows.collect::<rusqlite::Result<_>>()?, count as u64))
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

/// Visible events matching `query`, oldest first (by account and by transaction, an index
/// serves the query; by type, the log is read in order from `from_seq`).
pub fn log_page(conn: &Connection, query: &LogQuery) -> rusqlite::Result<Vec<StoredEvent>> {
    use rusqlite::types::Value;
    let mut conditions = vec!["seq >= ?1 AND dropped = 0".to_owned()];
    let mut values = vec![Value::Integer(sql_int(query.from_seq)), Value::Integer(query.limit as i64)];
    let mut bind = |condition: &str, value: Value| {
        values.push(value);
        conditions.push(condition.replace('?', &format!("?{}", values.len())));
    };
    if !query.kinds.is_empty() {
        bind(
            "kind IN (SELECT value FROM json_each(?))",
            Value::Text(serde_json::to_string(&query.kinds).expect("strings")),
        );
    }
    if let Some(account) = &query.account {
        bind("account = ?", Value::Text(account.clone()));
    }
    if let Some(transaction) = &query.transaction {
        bind("transaction_hash = ?", Value::Text(transaction.to_lowercase()));
    }
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE {} ORDER BY seq LIMIT ?2", conditions.join(" AND "));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(values), stored_event)?;
    rows.collect()
}

/// Page `page` (from 1) of the transactions `account` (its hash) sent, newest first, `limit`
/// per page, and how many there are (served by `events_by_account`).
pub fn account_transactions(
    conn: &Connection,
    account: &str,
    page: u64,
    limit: u64,
) -> rusqlite::Result<(Vec<String>, u64)> {
    let served = "account = ?1 AND dropped = 0";
    let count: i64 = conn
        .prepare_cached(&format!("SELECT count(DISTINCT transaction_hash) FROM events WHERE {served}"))?
        .query_row([account], |r| r.get(0))?;
    let sql = format!(
        "SELECT transaction_hash FROM events WHERE {served}
         GROUP BY transaction_hash ORDER BY min(seq) DESC LIMIT ?2 OFFSET ?3"
    );
    let offset = sql_int((page - 1).saturating_mul(limit));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![account, limit as i64, offset], |r| r.get(0))?;
    Ok((rows.collect::<rusqlite::Result<_>>()?, count as u64))
}

/// SQLite integers are signed: larger values saturate.
fn sql_int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Counts for the health endpoint.
#[derive(Debug, serde::Serialize)]
pub struct Totals {
    /// Events stored (visible or not); also the highest sequence number.
    pub events: u64,
    /// Frames that could not be parsed.
    pub rejected_frames: u64,
}

/// Store-wide counts.
pub fn totals(conn: &Connection) -> rusqlite::Result<Totals> {
    conn.query_row(
        "SELECT (SELECT coalesce(max(seq), 0) FROM events), (SELECT count(*) FROM rejected_frames)",
        [],
        |r| Ok(Totals { events: r.get::<_, i64>(0)? as u64, rejected_frames: r.get::<_, i64>(1)? as u64 }),
    )
}
