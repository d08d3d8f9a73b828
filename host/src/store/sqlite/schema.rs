//! Table definitions and connection settings shared by the writer and readers.

use rusqlite::Connection;

/// Bumped whenever the tables change; stored in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 13;

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq              INTEGER PRIMARY KEY,
    -- 128-bit BLAKE3 of `key`: a unique index 4x smaller than one on the text, which matters
    -- because every batch rewrites the index pages its random keys land on.
    key_hash         BLOB NOT NULL UNIQUE,
    key              TEXT NOT NULL,
    kind             TEXT NOT NULL,
    block_hash       TEXT,
    block_height     INTEGER,
    transaction_hash TEXT,
    era_id           INTEGER,
    node             TEXT NOT NULL,
    node_event_id    INTEGER,
    received_at_ms   INTEGER NOT NULL,
    raw              TEXT NOT NULL,
    dropped          INTEGER NOT NULL DEFAULT 0,
    annotations      TEXT,
    -- Attached filters that dropped it (comma-separated plugin names).
    hidden_by        TEXT,
    -- Account hash of the transaction's sender (accepted and processed transaction events).
    account          TEXT,
    chain_height     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS blocks_by_hash ON events (block_hash) WHERE kind = 'BlockAdded';
CREATE INDEX IF NOT EXISTS blocks_by_height ON events (block_height) WHERE kind = 'BlockAdded';
CREATE INDEX IF NOT EXISTS events_by_transaction ON events (transaction_hash)
    WHERE transaction_hash IS NOT NULL;
CREATE INDEX IF NOT EXISTS signatures_by_block ON events (block_hash) WHERE kind = 'FinalitySignature';
CREATE INDEX IF NOT EXISTS events_by_account ON events (account, seq) WHERE account IS NOT NULL;
CREATE INDEX IF NOT EXISTS era_events ON events (kind, era_id) WHERE kind IN ('Fault', 'Step');
-- Where each event is in the chain (store/chain_order.rs): plugins replay by (chain_height, seq).
CREATE INDEX IF NOT EXISTS events_in_chain_order ON events (chain_height, seq);

-- Other nodes that delivered an event after the first one (`events.node`), for audit.
CREATE TABLE IF NOT EXISTS sightings (
    seq            INTEGER NOT NULL,
    node           TEXT NOT NULL,
    node_event_id  INTEGER,
    received_at_ms INTEGER NOT NULL,
    PRIMARY KEY (seq, node)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS rejected_frames (
    id             INTEGER PRIMARY KEY,
    node           TEXT NOT NULL,
    node_event_id  INTEGER,
    received_at_ms INTEGER NOT NULL,
    reason         TEXT NOT NULL,
    raw            TEXT NOT NULL
);

-- Ids a node no longer held when Sluice asked for them (its buffer had moved on), and how the
-- blocks in between were fetched back over JSON-RPC.
CREATE TABLE IF NOT EXISTS gaps (
    id                INTEGER PRIMARY KEY,
    stream            TEXT NOT NULL,
    from_id           INTEGER NOT NULL,
    to_id             INTEGER NOT NULL,
    detected_at_ms    INTEGER NOT NULL,
    -- Highest block stored when the gap was found: backfill starts above it.
    below_height      INTEGER,
    backfilled_blocks INTEGER,
    backfill_note     TEXT,
    backfilled_at_ms  INTEGER
);
CREATE INDEX IF NOT EXISTS gaps_to_backfill ON gaps (stream) WHERE backfilled_at_ms IS NULL;

-- Plugins' own storage (see plugin_data.rs): JSON values by plugin, collection and key.
CREATE TABLE IF NOT EXISTS plugin_data (
    plugin     TEXT NOT NULL,
    collection TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (plugin, collection, key)
) WITHOUT ROWID;

-- The last sequence each indexing or decoding plugin processed, committed with its writes, and
-- the bytes its storage holds (keys and values: what its quota counts). While it replays the
-- log in chain order: the events up to `chain_bound`, and the last one replayed.
CREATE TABLE IF NOT EXISTS plugin_cursors (
    plugin       TEXT PRIMARY KEY,
    last_seq     INTEGER NOT NULL,
    bytes        INTEGER NOT NULL DEFAULT 0,
    chain_bound  INTEGER,
    chain_height INTEGER,
    chain_seq    INTEGER
);

-- The change log of the collections plugins have served (version 13): what clients follow,
-- the newest CHANGES_KEPT changes.
CREATE TABLE IF NOT EXISTS plugin_changes (
    -- Never reused, even after the newest rows are removed with a retired plugin version.
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    plugin     TEXT NOT NULL,
    collection TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT,
    seq        INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS plugin_changes_by_key ON plugin_changes (plugin, collection, key, id);
CREATE INDEX IF NOT EXISTS plugin_changes_in_order ON plugin_changes (plugin, collection, id);

-- Dead letters: events a plugin failed on, with the error.
CREATE TABLE IF NOT EXISTS plugin_failures (
    id       INTEGER PRIMARY KEY,
    plugin   TEXT NOT NULL,
    from_seq INTEGER NOT NULL,
    to_seq   INTEGER NOT NULL,
    error    TEXT NOT NULL,
    at_ms    INTEGER NOT NULL
);

-- Contract events (kind `ContractEvent`) by what clients filter on; see contract_events.rs.
CREATE TABLE IF NOT EXISTS contract_events (
    seq                   INTEGER PRIMARY KEY,
    contract_package_hash TEXT,
    contract_hash         TEXT,
    name                  TEXT,
    transaction_hash      TEXT
);
CREATE INDEX IF NOT EXISTS contract_events_by_package ON contract_events (contract_package_hash, seq);
CREATE INDEX IF NOT EXISTS contract_events_by_contract ON contract_events (contract_hash, seq);
CREATE INDEX IF NOT EXISTS contract_events_by_name ON contract_events (name, seq);
CREATE INDEX IF NOT EXISTS contract_events_by_transaction ON contract_events (transaction_hash, seq);

-- Per SSE stream (the node name on 2.x, `name/main` etc. on 1.x): where to resume, and what
-- identifies the frame stored under the last id (a node that restarted numbers anew).
CREATE TABLE IF NOT EXISTS node_cursors (
    stream        TEXT PRIMARY KEY,
    last_event_id INTEGER,
    last_identity BLOB,
    api_version   TEXT,
    updated_at_ms INTEGER NOT NULL
);
";

/// What `PRAGMA application_id` holds in a Sluice database: "SLCE".
const APPLICATION_ID: i64 = 0x534C_4345;

/// Create or check the tables; called by the writer before anyone reads. A file that is not a
/// Sluice database is refused before anything in it changes.
pub(super) fn migrate(conn: &Connection) -> anyhow::Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let application: i64 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
    let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
    let has_events = conn.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'events'")?.exists([])?;
    // Files from before the application id was set are Sluice's if they have its version and log.
    let sluice = application == APPLICATION_ID || (application == 0 && version > 0 && has_events);
    anyhow::ensure!(
        tables == 0 || sluice,
        "not a Sluice database: it holds another application's tables (application_id {application}, \
         user_version {version}); point storage.path at a new file"
    );
    anyhow::ensure!(
        [0, 6, 7, 8, 9, 10, 11, 12, SCHEMA_VERSION].contains(&version),
        "database schema version {version} is not supported by this build (expects {SCHEMA_VERSION})"
    );
    // Node events are 1–10 KB: with 16 KiB pages most fit without overflow chains. Only takes
    // effect on a new database, so it must come before WAL mode.
    conn.pragma_update(None, "page_size", 16 * 1024)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "application_id", APPLICATION_ID)?;
    if version == 6 {
        // One transaction: a crash leaves version 6 as it was. Gaps from before backfill existed
        // are marked as not backfilled, with the reason.
        conn.execute_batch(
            "BEGIN;
             ALTER TABLE gaps ADD COLUMN below_height INTEGER;
             ALTER TABLE gaps ADD COLUMN backfilled_blocks INTEGER;
             ALTER TABLE gaps ADD COLUMN backfill_note TEXT;
             ALTER TABLE gaps ADD COLUMN backfilled_at_ms INTEGER;
             UPDATE gaps SET backfilled_blocks = 0, backfilled_at_ms = detected_at_ms,
                 backfill_note = 'recorded before gap backfill existed; not backfilled';
             PRAGMA user_version = 7;
             COMMIT;",
        )?;
    }
    // One transaction: a crash leaves the file as it was. Version 9 records attached filters'
    // drops (a column an early version 9 lacked) and indexes contract events, version 10
    // transactions by account: both for the events stored before too.
    let tx = conn.unchecked_transaction()?;
    let has_column = |table: &str, name: &str| {
        tx.prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2").and_then(|mut s| s.exists([table, name]))
    };
    if version != 0 && !has_column("events", "hidden_by")? {
        tx.execute_batch("ALTER TABLE events ADD COLUMN hidden_by TEXT;")?;
    }
    if version != 0 && !has_column("events", "account")? {
        tx.execute_batch("ALTER TABLE events ADD COLUMN account TEXT;")?;
        index_accounts(&tx)?;
    }
    if has_column("node_cursors", "stream")? && !has_column("node_cursors", "last_identity")? {
        tx.execute_batch("ALTER TABLE node_cursors ADD COLUMN last_identity BLOB;")?;
    }
    if has_column("plugin_cursors", "last_seq")? && !has_column("plugin_cursors", "bytes")? {
        // Plugin storage quotas: what each plugin's storage already holds.
        tx.execute_batch(
            "ALTER TABLE plugin_cursors ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
             UPDATE plugin_cursors SET bytes = (SELECT coalesce(sum(octet_length(collection) + octet_length(key)
                 + octet_length(value)), 0) FROM plugin_data WHERE plugin_data.plugin = plugin_cursors.plugin);",
        )?;
    }
    if version != 0 && !has_column("events", "chain_height")? {
        // Version 12: chain positions, for the events stored before as well as can be known.
        tx.execute_batch(&format!(
            "ALTER TABLE events ADD COLUMN chain_height INTEGER NOT NULL DEFAULT 0; {};",
            crate::store::chain_order::FILL
        ))?;
    }
    if has_column("plugin_cursors", "last_seq")? && !has_column("plugin_cursors", "chain_bound")? {
        tx.execute_batch(
            "ALTER TABLE plugin_cursors ADD COLUMN chain_bound INTEGER;
             ALTER TABLE plugin_cursors ADD COLUMN chain_height INTEGER;
             ALTER TABLE plugin_cursors ADD COLUMN chain_seq INTEGER;",
        )?;
    }
    tx.execute_batch(TABLES)?;
    if version != 0 && version < 9 {
        super::contract_events::index_all(&tx)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

/// Fill `events.account` for transaction events stored before the column existed.
fn index_accounts(tx: &rusqlite::Transaction<'_>) -> anyhow::Result<()> {
    let mut select = tx.prepare(
        "SELECT seq, raw FROM events WHERE kind IN
         ('TransactionAccepted', 'DeployAccepted', 'TransactionProcessed', 'DeployProcessed')",
    )?;
    let mut update = tx.prepare("UPDATE events SET account = ?2 WHERE seq = ?1")?;
    let mut rows = select.query([])?;
    while let Some(row) = rows.next()? {
        if let Ok(crate::event::Frame::Event(event)) = crate::event::Frame::parse(row.get(1)?)
            && let Some(account) = event.account
        {
            update.execute(rusqlite::params![row.get::<_, i64>(0)?, account])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_applications_database_is_refused_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.db");
        let other = Connection::open(&path).unwrap();
        other
            .execute_batch("CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT); PRAGMA user_version = 3;")
            .unwrap();
        drop(other);
        let before = std::fs::read(&path).unwrap();
        let error = migrate(&Connection::open(&path).unwrap()).unwrap_err().to_string();
        assert!(error.starts_with("not a Sluice database"), "{error}");
        assert_eq!(error.lines().count(), 1, "{error}");
        assert_eq!(std::fs::read(&path).unwrap(), before, "the file is not changed");
        let journal: String =
            Connection::open(&path).unwrap().pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        assert_eq!(journal, "delete");
    }

    #[test]
    fn version_11_files_gain_chain_positions_for_the_events_stored_before() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("v11.db")).unwrap();
        migrate(&conn).unwrap();
        // Back to what version 11 had: no chain positions.
        conn.execute_batch(
            "DROP INDEX events_in_chain_order; ALTER TABLE events DROP COLUMN chain_height;
             ALTER TABLE plugin_cursors DROP COLUMN chain_bound; ALTER TABLE plugin_cursors DROP COLUMN chain_height;
             ALTER TABLE plugin_cursors DROP COLUMN chain_seq; PRAGMA user_version = 11;",
        )
        .unwrap();
        let events = [
            ("TransactionAccepted", None),
            ("BlockAdded", Some(7)),
            ("TransactionProcessed", None),
            ("FinalitySignature", Some(6)),
            ("BlockAdded", Some(8)),
            ("Step", None),
        ];
        for (n, (kind, height)) in events.into_iter().enumerate() {
            conn.execute(
                "INSERT INTO events (key_hash, key, kind, block_height, node, received_at_ms, raw)
                 VALUES (?1, ?1, ?2, ?3, 'n', 0, '{}')",
                rusqlite::params![n.to_string(), kind, height],
            )
            .unwrap();
        }
        migrate(&conn).unwrap();
        let mut select = conn.prepare("SELECT chain_height FROM events ORDER BY seq").unwrap();
        let heights: Vec<i64> = select.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
        // Its block's height, else the highest block stored before it.
        assert_eq!(heights, [0, 7, 7, 6, 8, 8]);
    }

    #[test]
    fn version_9_files_gain_accounts_for_the_events_stored_before() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("v9.db")).unwrap();
        migrate(&conn).unwrap();
        // Back to what version 9 had: no account column.
        conn.execute_batch(
            "DROP INDEX events_by_account; ALTER TABLE events DROP COLUMN account; PRAGMA user_version = 9;",
        )
        .unwrap();
        let processed = include_str!("../../../fixtures/casper2/transaction_processed_event_with_messages.json");
        conn.execute(
            "INSERT INTO events (key_hash, key, kind, node, received_at_ms, raw)
             VALUES (x'00', 'k', 'TransactionProcessed', 'n', 0, ?1)",
            [processed],
        )
        .unwrap();
        migrate(&conn).unwrap();
        let account: String = conn.query_row("SELECT account FROM events", [], |r| r.get(0)).unwrap();
        let sender = "0118ea8b6ed62393f8d36cb1a96b9ee62b48e35317bd2ea3ceb533a6f7ff212ad6";
        assert_eq!(Ok(account), crate::account::account_hash(sender));
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }
}
