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

impl Write {
    /// Bytes the entry takes once written (collection, key and value; 0 for a removal).
    pub fn size(&self) -> u64 {
        self.value.as_ref().map_or(0, |value| entry_size(&self.collection, &self.key, value))
    }
}

/// Bytes an entry counts against its plugin's storage quota.
pub fn entry_size(collection: &str, key: &str, value: &str) -> u64 {
    (collection.len() + key.len() + value.len()) as u64
}

/// What one plugin did in a batch, committed with the batch.
#[derive(Debug, Default)]
pub struct PluginBatch {
    /// Plugin name.
    pub plugin: String,
    /// Its storage writes, in order.
    pub writes: Vec<Write>,
    /// How much its storage grows (or shrinks) with them, in bytes.
    pub bytes_delta: i64,
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

/// Bytes the entry under `key` takes (see [`entry_size`]), if there is one.
pub fn stored_size(conn: &Connection, plugin: &str, collection: &str, key: &str) -> rusqlite::Result<Option<u64>> {
    conn.prepare_cached(
        "SELECT octet_length(collection) + octet_length(key) + octet_length(value) FROM plugin_data
         WHERE plugin = ?1 AND collection = ?2 AND key = ?3",
    )?
    .query_row([plugin, collection, key], |r| r.get::<_, i64>(0))
    .optional()
    .map(|size| size.map(|s| s as u64))
}

/// Bytes `plugin`'s storage holds (its keys and values).
pub fn stored_bytes(conn: &Connection, plugin: &str) -> rusqlite::Result<u64> {
    conn.prepare_cached("SELECT bytes FROM plugin_cursors WHERE plugin = ?1")?
        .query_row([plugin], |r| r.get::<_, i64>(0))
        .optional()
        .map(|bytes| bytes.unwrap_or(0).max(0) as u64)
}

/// A page of entries, in key order.
#[derive(Debug, Default)]
pub struct Page {
    /// (key, value) pairs.
    pub entries: Vec<(String, String)>,
    /// Whether the page stopped at its bound (entries or bytes) rather than at the last match.
    pub cut: bool,
}

/// How much one read may return: entries, and bytes of keys and values (at least one entry
/// whatever its size, so paging always moves on).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    /// Most entries.
    pub entries: u32,
    /// Most bytes.
    pub bytes: usize,
}

/// Entries whose key starts with `prefix`, after `after` (from the first, the empty key
/// included, when `None`), in key order, within `bound`.
pub fn scan(
    conn: &Connection,
    plugin: &str,
    collection: &str,
    prefix: &str,
    after: Option<&str>,
    bound: Bound,
) -> rusqlite::Result<Page> {
    // Keys with the prefix are a range of the primary key: from `prefix` (or past `after`) to
    // the least string above all of them (none when the prefix is empty or only U+10FFFF).
    let (from, above) = match after {
        Some(after) if after >= prefix => (after, true),
        _ => (prefix, false),
    };
    let end = prefix_end(prefix);
    let sql = format!(
        "SELECT key, value FROM plugin_data WHERE plugin = ?1 AND collection = ?2 AND key {} ?3 {} ORDER BY key",
        if above { ">" } else { ">=" },
        if end.is_some() { "AND key < ?4" } else { "AND ?4 IS NULL" },
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    read_page(stmt.query(params![plugin, collection, from, end])?, bound)
}

/// The least string greater than every string starting with `prefix`, if any: its last
/// character that is not U+10FFFF, incremented, with what follows removed. (SQLite compares
/// UTF-8 text byte by byte, which is code-point order.)
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=0x10FFFF).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Read rows of (key, value) until `bound`.
fn read_page(mut rows: rusqlite::Rows<'_>, bound: Bound) -> rusqlite::Result<Page> {
    let mut page = Page::default();
    let mut bytes = 0;
    while let Some(row) = rows.next()? {
        let (key, value): (String, String) = (row.get(0)?, row.get(1)?);
        bytes += key.len() + value.len();
        if page.entries.len() as u32 >= bound.entries || (bytes > bound.bytes && !page.entries.is_empty()) {
            page.cut = true;
            break;
        }
        page.entries.push((key, value));
    }
    Ok(page)
}

/// Entries whose top-level JSON field `field` equals `value` (JSON), after `after`, in key
/// order, within `bound`. `field` must be one the plugin declared (checked by the caller): it
/// is part of the SQL, matching the index created for it.
pub fn find(
    conn: &Connection,
    plugin: &str,
    collection: &str,
    field: &str,
    value: &serde_json::Value,
    after: Option<&str>,
    bound: Bound,
) -> rusqlite::Result<Page> {
    let sql = format!(
        "SELECT key, value FROM plugin_data
         WHERE plugin = ?1 AND collection = ?2 AND {} = ?3 AND key {} ?4 ORDER BY key",
        field_expression(field),
        if after.is_some() { ">" } else { ">=" },
    );
    let value = match value {
        serde_json::Value::String(s) => rusqlite::types::Value::Text(s.clone()),
        serde_json::Value::Number(n) if n.is_i64() => rusqlite::types::Value::Integer(n.as_i64().unwrap_or_default()),
        serde_json::Value::Number(n) => rusqlite::types::Value::Real(n.as_f64().unwrap_or_default()),
        serde_json::Value::Bool(b) => rusqlite::types::Value::Integer(i64::from(*b)),
        other => rusqlite::types::Value::Text(other.to_string()),
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    read_page(stmt.query(params![plugin, collection, value, after.unwrap_or("")])?, bound)
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
        "INSERT INTO plugin_cursors (plugin, last_seq, bytes) VALUES (?1, ?2, ?3)
         ON CONFLICT (plugin) DO UPDATE SET last_seq = excluded.last_seq, bytes = bytes + excluded.bytes",
    )?
    .execute(params![batch.plugin, batch.last_seq as i64, batch.bytes_delta])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_ends_before_the_next_string_without_it() {
        assert_eq!(prefix_end("ab"), Some("ac".into()));
        assert_eq!(prefix_end("a\u{10FFFF}"), Some("b".into()));
        assert_eq!(prefix_end("\u{D7FF}"), Some("\u{E000}".into()), "surrogates are not characters");
        assert_eq!(prefix_end("\u{10FFFF}\u{10FFFF}"), None);
        assert_eq!(prefix_end(""), None);
    }
}
