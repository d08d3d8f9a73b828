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
}

impl PluginStorage {
    /// Storage for an instance of `plugin` reading through `conn`.
    pub fn new(plugin: Arc<str>, conn: Connection, max_value: usize) -> Self {
        PluginStorage { plugin, conn, indexes: Arc::default(), max_value, overlay: None }
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

    /// The value under `key`, as this batch left it.
    pub fn get(&self, collection: &str, key: &str) -> Option<String> {
        if let Some(value) = self.pending(collection, key) {
            return value.clone();
        }
        plugin_data::get(&self.conn, &self.plugin, collection, key).unwrap_or_else(|e| self.failed("get", e))
    }

    /// Store or remove (`None`) the value under `key`.
    pub fn put(&mut self, collection: String, key: String, value: Option<String>) -> Result<(), String> {
        if let Some(value) = &value {
            if value.len() > self.max_value {
                return Err(format!("a value of {} bytes is over the limit of {} bytes", value.len(), self.max_value));
            }
            serde_json::from_str::<serde::de::IgnoredAny>(value).map_err(|e| format!("the value is not JSON: {e}"))?;
        }
        let overlay = self.overlay.as_mut().ok_or("storage is read-only here (only `index` may write)")?;
        overlay.insert((collection, key), value);
        Ok(())
    }

    /// Entries whose key starts with `prefix`, after `after`, at most `limit`, as this batch
    /// left them.
    pub fn scan(&self, collection: &str, prefix: &str, after: Option<&str>, limit: u32) -> Vec<(String, String)> {
        let limit = limit.min(MAX_PAGE);
        // Stored entries the overlay removes or replaces are read and filtered: ask for more.
        let extra = self.overlay.as_ref().map_or(0, |o| o.len() as u32);
        let stored = plugin_data::scan(&self.conn, &self.plugin, collection, prefix, after, limit + extra)
            .unwrap_or_else(|e| self.failed("scan", e));
        let pending = self.overlay.iter().flatten().filter(|((c, key), _)| {
            c == collection && key.starts_with(prefix) && after.is_none_or(|after| key.as_str() > after)
        });
        self.merge(collection, stored, pending.map(|((_, key), value)| (key, value)), limit)
    }

    /// Entries whose `field` equals `value` (JSON), through a declared index.
    pub fn find(
        &self,
        collection: &str,
        field: &str,
        value: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, String)>, String> {
        if !self.indexes.contains(&(collection.to_owned(), field.to_owned())) {
            return Err(format!("no index on {collection}.{field}: declare it in the manifest"));
        }
        let wanted: serde_json::Value =
            serde_json::from_str(value).map_err(|e| format!("the value is not JSON: {e}"))?;
        let limit = limit.min(MAX_PAGE);
        let extra = self.overlay.as_ref().map_or(0, |o| o.len() as u32);
        let stored = plugin_data::find(&self.conn, &self.plugin, collection, field, &wanted, after, limit + extra)
            .unwrap_or_else(|e| self.failed("find", e));
        let pending = self.overlay.iter().flatten().filter(|((c, key), new)| {
            let matches = new.as_deref().and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok());
            c == collection
                && after.is_none_or(|after| key.as_str() > after)
                && (new.is_none() || matches.is_some_and(|v| v.get(field) == Some(&wanted)))
        });
        Ok(self.merge(collection, stored, pending.map(|((_, key), value)| (key, value)), limit))
    }

    /// Stored entries overridden by the overlay's `pending` ones, in key order, at most `limit`.
    fn merge<'a>(
        &self,
        collection: &str,
        stored: Vec<(String, String)>,
        pending: impl Iterator<Item = (&'a String, &'a Option<String>)>,
        limit: u32,
    ) -> Vec<(String, String)> {
        let mut merged: BTreeMap<String, String> =
            stored.into_iter().filter(|(key, _)| self.pending(collection, key).is_none()).collect();
        merged.extend(pending.filter_map(|(key, value)| Some((key.clone(), value.clone()?))));
        merged.into_iter().take(limit as usize).collect()
    }

    fn pending(&self, collection: &str, key: &str) -> Option<&Option<String>> {
        self.overlay.as_ref()?.get(&(collection.to_owned(), key.to_owned()))
    }

    /// A read failed (the database is locked or gone): log it and answer as if empty.
    fn failed<T: Default>(&self, what: &str, error: rusqlite::Error) -> T {
        tracing::error!(plugin = %self.plugin, "plugin storage {what} failed: {error}");
        T::default()
    }
}
