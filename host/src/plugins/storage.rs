//! The `sluice:plugin/storage` capability: a plugin's own collections of JSON values.
//!
//! Reads go to the database through the instance's own read-only connection, bound to the
//! plugin's name. Writes made while indexing are kept in an overlay (reads see them) and handed
//! to the pipeline at the end of the batch, which commits them in the batch's transaction
//! together with the plugin's cursor; a failed batch discards them. Route instances are
//! read-only.

use crate::store::plugin_data::{self, MAX_PAGE, Write};
use rusqlite::Connection;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// Most writes one batch may keep (beyond it, `set` fails and the batch with it).
const MAX_WRITES: usize = 100_000;
/// Longest collection name or key, in bytes.
const MAX_NAME: usize = 1024;

/// What one instance may do with its plugin's storage.
pub struct PluginStorage {
    /// The storage id (`name@version`) its entries are stored under.
    plugin: Arc<str>,
    conn: Connection,
    /// Indexes the plugin declared: (collection, field).
    indexes: Arc<HashSet<(String, String)>>,
    /// Largest value accepted, in bytes.
    max_value: usize,
    /// Writes of the current batch, by (collection, key); `None` when writes are not allowed.
    overlay: Option<BTreeMap<(String, String), Option<String>>>,
    /// A read failed (the database is locked or gone): the call must not be trusted, since the
    /// plugin saw "absent" where there may be data.
    failure: Option<String>,
}

impl PluginStorage {
    /// Storage for an instance of `plugin` reading through `conn`.
    pub fn new(plugin: Arc<str>, conn: Connection, max_value: usize) -> Self {
        PluginStorage { plugin, conn, indexes: Arc::default(), max_value, overlay: None, failure: None }
    }

    /// The indexes the plugin declared, which `find` may use.
    pub fn set_indexes(&mut self, indexes: Arc<HashSet<(String, String)>>) {
        self.indexes = indexes;
    }

    /// Allow writes until [`take_writes`](Self::take_writes).
    pub fn begin_writes(&mut self) {
        self.overlay = Some(BTreeMap::new());
    }

    /// End the writes, returning them (empty when there were none).
    pub fn take_writes(&mut self) -> Vec<Write> {
        let overlay = self.overlay.take().unwrap_or_default();
        overlay.into_iter().map(|((collection, key), value)| Write { collection, key, value }).collect()
    }

    /// The read failure of the last call, if any (taken: the next call starts clean).
    pub fn take_failure(&mut self) -> Option<String> {
        self.failure.take()
    }

    /// The value under `key`, as this batch left it.
    pub fn get(&mut self, collection: &str, key: &str) -> Option<String> {
        if let Some(value) = self.pending(collection, key) {
            return value.clone();
        }
        let read = plugin_data::get(&self.conn, &self.plugin, collection, key);
        self.checked("get", read)
    }

    /// Store or remove (`None`) the value under `key`.
    pub fn put(&mut self, collection: String, key: String, value: Option<String>) -> Result<(), String> {
        if collection.len() > MAX_NAME || key.len() > MAX_NAME {
            return Err(format!("collection names and keys are limited to {MAX_NAME} bytes"));
        }
        if let Some(value) = &value {
            if value.len() > self.max_value {
                return Err(format!("a value of {} bytes is over the limit of {} bytes", value.len(), self.max_value));
            }
            serde_json::from_str::<serde::de::IgnoredAny>(value).map_err(|e| format!("the value is not JSON: {e}"))?;
        }
        let overlay = self.overlay.as_mut().ok_or("storage is read-only here (only `index` may write)")?;
        if overlay.len() >= MAX_WRITES && !overlay.contains_key(&(collection.clone(), key.clone())) {
            return Err(format!("one batch may write at most {MAX_WRITES} entries"));
        }
        overlay.insert((collection, key), value);
        Ok(())
    }

    /// Entries whose key starts with `prefix`, after `after`, at most `limit`, as this batch
    /// left them.
    pub fn scan(&mut self, collection: &str, prefix: &str, after: Option<&str>, limit: u32) -> Vec<(String, String)> {
        let limit = limit.min(MAX_PAGE);
        let wanted = limit + self.pending_in(collection);
        let read = plugin_data::scan(&self.conn, &self.plugin, collection, prefix, after, wanted);
        let stored = self.checked("scan", read);
        let matches = |key: &str, _: &Option<String>| key.starts_with(prefix);
        self.merge(collection, stored, wanted, after, matches, limit)
    }

    /// Entries whose `field` equals `value` (a JSON string or integer), through a declared
    /// index.
    pub fn find(
        &mut self,
        collection: &str,
        field: &str,
        value: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, String)>, String> {
        if !self.indexes.contains(&(collection.to_owned(), field.to_owned())) {
            return Err(format!("no index on {collection}.{field}: declare it in the manifest"));
        }
        let wanted_value: serde_json::Value =
            serde_json::from_str(value).map_err(|e| format!("the value is not JSON: {e}"))?;
        // Only values SQLite and JSON compare alike, so a find means the same before and after
        // the batch commits.
        if !(wanted_value.is_string() || wanted_value.is_i64() || wanted_value.is_u64()) {
            return Err("find looks up a string or an integer".into());
        }
        let limit = limit.min(MAX_PAGE);
        let wanted = limit + self.pending_in(collection);
        let read = plugin_data::find(&self.conn, &self.plugin, collection, field, &wanted_value, after, wanted);
        let stored = self.checked("find", read);
        let matches = |_: &str, new: &Option<String>| {
            let parsed = new.as_deref().and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok());
            parsed.is_some_and(|v| v.get(field) == Some(&wanted_value))
        };
        Ok(self.merge(collection, stored, wanted, after, matches, limit))
    }

    /// Writes pending in `collection`.
    fn pending_in(&self, collection: &str) -> u32 {
        let overlay = self.overlay.iter().flatten();
        overlay.filter(|((c, _), _)| c == collection).count().min(MAX_WRITES) as u32
    }

    /// One page, in key order: the `stored` entries (a page of `asked` rows after `after`)
    /// with the batch's writes applied: removed or changed entries replaced by what `matches`
    /// keeps of the pending ones. When the stored page is full, pending entries past its last
    /// key wait for the next page, so paging skips nothing.
    fn merge(
        &self,
        collection: &str,
        stored: Vec<(String, String)>,
        asked: u32,
        after: Option<&str>,
        matches: impl Fn(&str, &Option<String>) -> bool,
        limit: u32,
    ) -> Vec<(String, String)> {
        let last_stored = (stored.len() as u32 >= asked).then(|| stored.last().map(|(key, _)| key.clone())).flatten();
        let mut merged: BTreeMap<String, String> =
            stored.into_iter().filter(|(key, _)| self.pending(collection, key).is_none()).collect();
        let pending = self.overlay.iter().flatten().filter(|((c, key), new)| {
            c == collection
                && after.is_none_or(|after| key.as_str() > after)
                && last_stored.as_deref().is_none_or(|last| key.as_str() <= last)
                && matches(key, new)
        });
        merged.extend(pending.filter_map(|((_, key), value)| Some((key.clone(), value.clone()?))));
        merged.into_iter().take(limit as usize).collect()
    }

    fn pending(&self, collection: &str, key: &str) -> Option<&Option<String>> {
        self.overlay.as_ref()?.get(&(collection.to_owned(), key.to_owned()))
    }

    /// A read's result; a failure is remembered (the call fails) and answered as empty.
    fn checked<T: Default>(&mut self, what: &str, read: rusqlite::Result<T>) -> T {
        read.unwrap_or_else(|error| {
            tracing::error!(plugin = %self.plugin, "plugin storage {what} failed: {error}");
            self.failure.get_or_insert_with(|| format!("storage {what} failed: {error}"));
            T::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::plugin_data::{PluginBatch, apply};
    use crate::store::{Location, Writer};

    /// Storage over a fresh database holding `a0`..`a9` in collection `c`.
    fn storage() -> (Location, PluginStorage) {
        let location = Location::resolve(":memory:").unwrap();
        Writer::open(&location).unwrap();
        let mut conn = rusqlite::Connection::open(location.path()).unwrap();
        let writes =
            (0..10).map(|i| Write { collection: "c".into(), key: format!("a{i}"), value: Some(format!("{i}")) });
        let batch = PluginBatch { plugin: "p@1".into(), writes: writes.collect(), ..PluginBatch::default() };
        let tx = conn.transaction().unwrap();
        apply(&tx, &batch, 0).unwrap();
        tx.commit().unwrap();
        let read = crate::store::reader::open_read_only(&location).unwrap();
        (location, PluginStorage::new(Arc::from("p@1"), read, 1 << 20))
    }

    #[test]
    fn pages_of_a_scan_see_the_batch_writes_and_skip_nothing() {
        let (_location, mut storage) = storage();
        storage.begin_writes();
        storage.put("c".into(), "a0".into(), None).unwrap();
        storage.put("c".into(), "a7".into(), Some("70".into())).unwrap();
        storage.put("c".into(), "a35".into(), Some("35".into())).unwrap();
        let mut keys = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = storage.scan("c", "a", after.as_deref(), 3);
            if page.is_empty() {
                break;
            }
            after = page.last().map(|(key, _)| key.clone());
            keys.extend(page);
        }
        let expected: Vec<(String, String)> = ["a1", "a2", "a3", "a35", "a4", "a5", "a6", "a7", "a8", "a9"]
            .iter()
            .map(|key| (key.to_string(), if *key == "a7" { "70".into() } else { key[1..].to_string() }))
            .collect();
        assert_eq!(keys, expected);
        assert!(storage.take_failure().is_none());
    }
}
