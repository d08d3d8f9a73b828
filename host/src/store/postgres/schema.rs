//! Table definitions on PostgreSQL, and the check that a database is Sluice's.
//!
//! The same tables as on SQLite, in PostgreSQL's types. Keys that plugins scan by prefix
//! compare byte by byte (`COLLATE "C"`), as SQLite compares them, so a range means the same on
//! both.

use postgres::Client;

/// Bumped whenever the tables change; stored in `sluice_meta`.
const SCHEMA_VERSION: i64 = 3;

const TABLES: &str = r#"
CREATE TABLE IF NOT EXISTS sluice_meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS events (
    seq              BIGINT PRIMARY KEY,
    key_hash         BYTEA NOT NULL UNIQUE,
    key              TEXT NOT NULL,
    kind             TEXT NOT NULL,
    block_hash       TEXT,
    block_height     BIGINT,
    transaction_hash TEXT,
    era_id           BIGINT,
    node             TEXT NOT NULL,
    node_event_id    BIGINT,
    received_at_ms   BIGINT NOT NULL,
    raw              TEXT NOT NULL,
    dropped          SMALLINT NOT NULL DEFAULT 0,
    annotations      TEXT,
    hidden_by        TEXT,
    account          TEXT,
    chain_height     BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS blocks_by_hash ON events (block_hash) WHERE kind = 'BlockAdded';
CREATE INDEX IF NOT EXISTS blocks_by_height ON events (block_height) WHERE kind = 'BlockAdded';
CREATE INDEX IF NOT EXISTS events_by_transaction ON events (transaction_hash)
    WHERE transaction_hash IS NOT NULL;
CREATE INDEX IF NOT EXISTS signatures_by_block ON events (block_hash) WHERE kind = 'FinalitySignature';
CREATE INDEX IF NOT EXISTS events_by_account ON events (account, seq) WHERE account IS NOT NULL;
CREATE INDEX IF NOT EXISTS era_events ON events (kind, era_id) WHERE kind IN ('Fault', 'Step');
CREATE INDEX IF NOT EXISTS events_in_chain_order ON events (chain_height, seq);

CREATE TABLE IF NOT EXISTS sightings (
    seq            BIGINT NOT NULL,
    node           TEXT NOT NULL,
    node_event_id  BIGINT,
    received_at_ms BIGINT NOT NULL,
    PRIMARY KEY (seq, node)
);

CREATE TABLE IF NOT EXISTS rejected_frames (
    id             BIGSERIAL PRIMARY KEY,
    node           TEXT NOT NULL,
    node_event_id  BIGINT,
    received_at_ms BIGINT NOT NULL,
    reason         TEXT NOT NULL,
    raw            TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS gaps (
    id                BIGSERIAL PRIMARY KEY,
    stream            TEXT NOT NULL,
    from_id           BIGINT NOT NULL,
    to_id             BIGINT NOT NULL,
    detected_at_ms    BIGINT NOT NULL,
    below_height      BIGINT,
    backfilled_blocks BIGINT,
    backfill_note     TEXT,
    backfilled_at_ms  BIGINT
);
CREATE INDEX IF NOT EXISTS gaps_to_backfill ON gaps (stream) WHERE backfilled_at_ms IS NULL;

CREATE TABLE IF NOT EXISTS plugin_data (
    plugin     TEXT COLLATE "C" NOT NULL,
    collection TEXT COLLATE "C" NOT NULL,
    key        TEXT COLLATE "C" NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (plugin, collection, key)
);

CREATE TABLE IF NOT EXISTS plugin_cursors (
    plugin   TEXT COLLATE "C" PRIMARY KEY,
    last_seq     BIGINT NOT NULL,
    bytes        BIGINT NOT NULL DEFAULT 0,
    chain_bound  BIGINT,
    chain_height BIGINT,
    chain_seq    BIGINT
);

CREATE TABLE IF NOT EXISTS plugin_changes (
    id         BIGSERIAL PRIMARY KEY,
    plugin     TEXT NOT NULL,
    collection TEXT NOT NULL,
    key        TEXT COLLATE "C" NOT NULL,
    value      TEXT,
    seq        BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS plugin_changes_by_key ON plugin_changes (plugin, collection, key, id);
CREATE INDEX IF NOT EXISTS plugin_changes_in_order ON plugin_changes (plugin, collection, id);

CREATE TABLE IF NOT EXISTS plugin_failures (
    id       BIGSERIAL PRIMARY KEY,
    plugin   TEXT NOT NULL,
    from_seq BIGINT NOT NULL,
    to_seq   BIGINT NOT NULL,
    error    TEXT NOT NULL,
    at_ms    BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS contract_events (
    seq                   BIGINT PRIMARY KEY,
    contract_package_hash TEXT,
    contract_hash         TEXT,
    name                  TEXT,
    transaction_hash      TEXT
);
CREATE INDEX IF NOT EXISTS contract_events_by_package ON contract_events (contract_package_hash, seq);
CREATE INDEX IF NOT EXISTS contract_events_by_contract ON contract_events (contract_hash, seq);
CREATE INDEX IF NOT EXISTS contract_events_by_name ON contract_events (name, seq);
CREATE INDEX IF NOT EXISTS contract_events_by_transaction ON contract_events (transaction_hash, seq);

CREATE TABLE IF NOT EXISTS node_cursors (
    stream        TEXT PRIMARY KEY,
    last_event_id BIGINT,
    last_identity BYTEA,
    api_version   TEXT,
    updated_at_ms BIGINT NOT NULL
);
"#;

/// Create or check the tables, in one transaction. A database holding other tables and no
/// `sluice_meta` is another application's: refused before anything in it changes.
pub(super) fn migrate(client: &mut Client) -> anyhow::Result<()> {
    let mut tx = client.transaction()?;
    // Two instances starting at once must not both create the tables.
    tx.execute("SELECT pg_advisory_xact_lock(hashtext('sluice schema'))", &[])?;
    let tables: i64 = tx
        .query_one("SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()", &[])?
        .get(0);
    let has_meta: bool = tx.query_one("SELECT to_regclass('sluice_meta') IS NOT NULL", &[])?.get(0);
    anyhow::ensure!(
        tables == 0 || has_meta,
        "not a Sluice database: its schema holds {tables} tables of another application; point storage.url at a \
         new database"
    );
    if has_meta {
        let version: Option<String> =
            tx.query_opt("SELECT value FROM sluice_meta WHERE name = 'schema_version'", &[])?.map(|row| row.get(0));
        let version: i64 = version.as_deref().unwrap_or("0").parse().unwrap_or(-1);
        anyhow::ensure!(
            version <= SCHEMA_VERSION,
            "database schema version {version} is newer than this build's ({SCHEMA_VERSION})"
        );
        if version < 2 {
            // Chain positions, for the events stored before as well as can be known.
            tx.batch_execute(&format!(
                "ALTER TABLE events ADD COLUMN chain_height BIGINT NOT NULL DEFAULT 0; {};
                 ALTER TABLE plugin_cursors ADD COLUMN chain_bound BIGINT, ADD COLUMN chain_height BIGINT,
                     ADD COLUMN chain_seq BIGINT;",
                crate::store::chain_order::FILL
            ))?;
        }
    }
    tx.batch_execute(TABLES)?;
    tx.execute(
        "INSERT INTO sluice_meta (name, value) VALUES ('schema_version', $1)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        &[&SCHEMA_VERSION.to_string()],
    )?;
    tx.commit()?;
    Ok(())
}
