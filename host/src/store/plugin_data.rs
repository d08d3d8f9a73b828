//! Plugins' own storage: `plugin_data(plugin, collection, key, value)`. Every query is bound to
//! one plugin's name, so a plugin reaches only its entries; it never sees SQL or another table.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

/// Most entries one scan or find returns.
pub const MAX_PAGE: u32 = 1000;

/// One change a plugin made: `None` removes the entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// Collection.
    pub collection: String,
    /// Key.
    pub key: String,
    /// New JSON value, or `None` to remove.
    pub value: Option<String>,
}

/// What one plugin did in a batch, committed with the batch.
#[derive(Debug, Default)]
pub struct PluginBatch {
    /// Plugin name.
    pub plugin: String,
    /// Its storage writes, in order.
    pub writes: Vec<Write>,
    /// Highest sequence it has processed (its cursor).
    pub last_seq: u64,
    /// Events it failed on: (first seq, last seq, error), kept as dead letters.
    pub failures: Vec<(u64, u64, String)>,
}

/// The value under `key`.
pub fn get(conn: &Connection, plugin: &str, collection: &str, key: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT value FROM plugin_data WHERE plugin = ?1 AND collection = ?2 AND key = ?3")?
        .query_row([plugin, collection, key], |r| r.get(0))
        .optional()
}

/// Entries whose key starts with `prefix`, after `after`, in key order, at most `limit` (the
/// caller bounds it).
pub fn scan(
    conn: &Connection,
    plugin: &str,
    collection: &str,
    prefix: &str,
    after: Option<&str>,
    limit: u32,
) -> rusqlite::Result<Vec<(String, String)>> {
    // Keys run from `prefix` up to `prefix` + the last character: a range of the primary key.
    let mut stmt = conn.prepare_cached(
        "SELECT key, value FROM plugin_data
         WHERE plugin = ?1 AND collection = ?2 AND key > ?3 AND key >= ?4 AND key < ?4 || char(1114111)
         ORDER BY key LIMIT ?5",
    )?;
    let after = after.unwrap_or("");
    let rows = stmt.query_map(params![plugin, collection, after, prefix, limit], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Entries whose top-level JSON field `field` equals `value` (JSON), after `after`, in key
/// order, at most `limit`. `field` must be one the plugin declared (checked by the caller):
/// it is part of the SQL, matching the index created for it.
pub fn find(
    conn: &Connection,
    plugin: &str,
    collection: &str,
    field: &str,
    value: &serde_json::Value,
    after: Option<&str>,
    limit: u32,
) -> rusqlite::Result<Vec<(String, String)>> {
    let sql = format!(
        "SELECT key, value FROM plugin_data
         WHERE plugin = ?1 AND collection = ?2 AND {} = ?3 AND key > ?4 ORDER BY key LIMIT ?5",
        field_expression(field)
    );
    let value = match value {
        serde_json::Value::String(s) => rusqlite::types::Value::Text(s.clone()),
        serde_json::Value::Number(n) if n.is_i64() => rusqlite::types::Value::Integer(n.as_i64().unwrap_or_default()),
        serde_json::Value::Number(n) => rusqlite::types::Value::Real(n.as_f64().unwrap_or_default()),
        serde_json::Value::Bool(b) => rusqlite::types::Value::Integer(i64::from(*b)),
        other => rusqlite::types::Value::Text(other.to_string()),
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows =
        stmt.query_map(params![plugin, collection, value, after.unwrap_or(""), limit], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Whether `field` may name an index: letters, digits and `_` only (it becomes part of SQL).
pub fn valid_field(field: &str) -> bool {
    !field.is_empty() && field.len() <= 64 && field.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn field_expression(field: &str) -> String {
    format!("json_extract(value, '$.{field}')")
}

/// Create the index for JSON field `field` (checked by the caller), which every plugin and
/// collection declaring an index on a field of that name shares.
pub fn create_index(conn: &Connection, field: &str) -> rusqlite::Result<()> {
    // SQLite names ignore case; fields do not.
    let name = format!("plugin_index_{}", &blake3::hash(field.as_bytes()).to_hex()[..16]);
    conn.execute_batch(&format!(
        "CREATE INDEX IF NOT EXISTS \"{name}\" ON plugin_data (plugin, collection, {}, key)",
        field_expression(field)
    ))
}

/// The highest sequence `plugin` has processed, if it ever ran.
pub fn cursor(conn: &Connection, plugin: &str) -> rusqlite::Result<Option<u64>> {
    conn.query_row("SELECT last_seq FROM plugin_cursors WHERE plugin = ?1", [plugin], |r| r.get::<_, i64>(0))
        .optional()
        .map(|seq| seq.map(|s| s as u64))
}

/// Remove everything stored under `storage_id`: entries and cursor (an older version's).
pub fn remove_all(tx: &Transaction<'_>, storage_id: &str) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM plugin_data WHERE plugin = ?1", [storage_id])?;
    tx.execute("DELETE FROM plugin_cursors WHERE plugin = ?1", [storage_id])?;
    Ok(())
}

/// The storage ids of other versions of plugin `name` (`name@…` but not `current`).
pub fn other_versions(conn: &Connection, name: &str, current: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT plugin FROM plugin_cursors WHERE substr(plugin, 1, length(?1) + 1) = ?1 || '@' AND plugin != ?2",
    )?;
    let rows = stmt.query_map([name, current], |r| r.get(0))?;
    rows.collect()
}

/// Write one plugin's batch: its storage changes, dead letters and cursor.
pub fn apply(tx: &Transaction<'_>, batch: &PluginBatch, now_ms: i64) -> rusqlite::Result<()> {
    let mut upsert = tx.prepare_cached(
        "INSERT INTO plugin_data (plugin, collection, key, value) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (plugin, collection, key) DO UPDATE SET value = excluded.value",
    )?;
    let mut delete = tx.prepare_cached("DELETE FROM plugin_data WHERE plugin = ?1 AND collection = ?2 AND key = ?3")?;
    for write in &batch.writes {
        match &write.value {
            Some(value) => upsert.execute(params![batch.plugin, write.collection, write.key, value])?,
            None => delete.execute(params![batch.plugin, write.collection, write.key])?,
        };
    }
    let mut dead_letter = tx.prepare_cached(
        "INSERT INTO plugin_failures (plugin, from_seq, to_seq, error, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (from, to, error) in &batch.failures {
        dead_letter.execute(params![batch.plugin, *from as i64, *to as i64, error, now_ms])?;
    }
    tx.prepare_cached(
        "INSERT INTO plugin_cursors (plugin, last_seq) VALUES (?1, ?2)
         ON CONFLICT (plugin) DO UPDATE SET last_seq = excluded.last_seq",
    )?
    .execute(params![batch.plugin, batch.last_seq as i64])?;
    Ok(())
}
