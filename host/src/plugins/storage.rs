//! The `sluice:plugin/storage` capability: a plugin's own collections of JSON values.
//!
//! Reads go to the database through the instance's own read-only connection, bound to the
//! plugin's name, and return at most a page's bytes (`max_output_kib`, at least one entry).
//! Writes made while indexing are kept in an overlay (reads see them) and handed to the
//! pipeline at the end of the batch, which commits them in the batch's transaction together
//! with the plugin's cursor; a failed batch discards them. The overlay counts against the
//! plugin's memory (`memory_mib`, shared with its linear memory) and the storage it would leave
//! against its quota (`storage_quota_mib`). Route instances are read-only.

use crate::store::Read;
use crate::store::plugin_data::{Bound, MAX_PAGE, Page, Write, entry_size};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most writes one batch may keep (beyond it, `set` fails and the batch with it).
const MAX_WRITES: usize = 100_000;
/// Longest collection name or key, in bytes.
const MAX_NAME: usize = 1024;
/// Most bytes of keys the sizes of entries read in a batch are remembered for.
const MAX_REMEMBERED: usize = 1 << 20;

/// How much a plugin may keep.
#[derive(Debug, Clone, Copy)]
pub struct StorageLimits {
    /// Largest value accepted, and most bytes one read returns.
    pub page_bytes: usize,
    /// Most bytes its storage may hold.
    pub quota: u64,
}

/// A pending write: the new value (`None`: removed) and the entry's size before the batch.
type Pending = (Option<String>, u64);

/// What one instance may do with its plugin's storage.
pub struct PluginStorage {
    /// The storage id (`name@version`) its entries are stored under.
    plugin: Arc<str>,
    conn: Box<dyn Read>,
    /// Indexes the plugin declared: (collection, field).
    indexes: Arc<HashSet<(String, String)>>,
    limits: StorageLimits,
    /// Writes of the current batch, by (collection, key); `None` when writes are not allowed.
    overlay: Option<BTreeMap<(String, String), Pending>>,
    /// Bytes the storage held when the batch began.
    stored_bytes: u64,
    /// How much the batch's writes change that.
    bytes_delta: i64,
    /// Bytes the overlay holds in memory.
    pending_bytes: usize,
    /// Sizes of the entries read in this batch (by `get`), so that writing one after reading it
    /// (the usual read-modify-write) does not ask the database again; the bytes its keys take.
    sizes_read: (HashMap<(String, String), u64>, usize),
    /// A read failed (the database is locked or gone): the call must not be trusted, since the
    /// plugin saw "absent" where there may be data.
    failure: Option<String>,
    /// Time the database took to answer this call's reads, not yet excused from its time
    /// limit, and how much more may be excused (see [`PluginStorage::excuse_read_time`]).
    read_time: (Duration, Duration),
}

impl PluginStorage {
    /// Storage for an instance of `plugin` reading through `conn`.
    pub fn new(plugin: Arc<str>, conn: Box<dyn Read>, limits: StorageLimits) -> Self {
        PluginStorage {
            plugin,
            conn,
            indexes: Arc::default(),
            limits,
            overlay: None,
            stored_bytes: 0,
            bytes_delta: 0,
            pending_bytes: 0,
            sizes_read: Default::default(),
            failure: None,
            read_time: Default::default(),
        }
    }

    /// A call begins: of the time its reads will take, at most `allowance` is excused.
    pub fn begin_call(&mut self, allowance: Duration) {
        self.read_time = (Duration::ZERO, allowance);
    }

    /// The time the database took to answer the reads since the last time asked, within what
    /// may still be excused: a call's time limit bounds the plugin's own work, and a server
    /// database answers each read a round trip later than an embedded one. The allowance
    /// bounds how long reads may hold the call.
    pub fn excuse_read_time(&mut self) -> Duration {
        let (waited, allowance) = &mut self.read_time;
        let excused = (*waited).min(*allowance);
        (*waited, *allowance) = (Duration::ZERO, *allowance - excused);
        excused
    }

    /// Run `read` on the connection, timing it.
    fn timed<T>(&mut self, read: impl FnOnce(&mut dyn Read) -> anyhow::Result<T>) -> anyhow::Result<T> {
        let started = Instant::now();
        let result = read(self.conn.as_mut());
        self.read_time.0 += started.elapsed();
        result
    }

    /// The indexes the plugin declared, which `find` may use.
    pub fn set_indexes(&mut self, indexes: Arc<HashSet<(String, String)>>) {
        self.indexes = indexes;
    }

    /// Allow writes until [`take_writes`](Self::take_writes).
    pub fn begin_writes(&mut self) {
        let stored = self.conn.plugin_bytes(&self.plugin);
        self.stored_bytes = self.checked("reading its size", stored);
        (self.bytes_delta, self.pending_bytes) = (0, 0);
        self.sizes_read = Default::default();
        self.overlay = Some(BTreeMap::new());
    }

    /// End the writes, returning them (empty when there were none) and how much they change the
    /// storage's size.
    pub fn take_writes(&mut self) -> (Vec<Write>, i64) {
        let overlay = self.overlay.take().unwrap_or_default();
        let writes = overlay.into_iter().map(|((collection, key), (value, _))| Write { collection, key, value });
        self.pending_bytes = 0;
        self.sizes_read = Default::default();
        (writes.collect(), std::mem::take(&mut self.bytes_delta))
    }

    /// Bytes the batch's pending writes hold in memory.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// The read failure of the last call, if any (taken: the next call starts clean).
    pub fn take_failure(&mut self) -> Option<String> {
        self.failure.take()
    }

    /// The value under `key`, as this batch left it.
    pub fn get(&mut self, collection: &str, key: &str) -> Option<String> {
        if let Some((value, _)) = self.pending(collection, key) {
            return value.clone();
        }
        let plugin = self.plugin.clone();
        let read = self.timed(|conn| conn.plugin_value(&plugin, collection, key));
        let value: Option<String> = self.checked("get", read);
        let (sizes, bytes) = &mut self.sizes_read;
        if self.overlay.is_some() && *bytes + collection.len() + key.len() <= MAX_REMEMBERED {
            let size = value.as_ref().map_or(0, |value| entry_size(collection, key, value));
            *bytes += collection.len() + key.len();
            sizes.insert((collection.to_owned(), key.to_owned()), size);
        }
        value
    }

    /// Store or remove (`None`) the value under `key`, keeping the batch's pending writes
    /// within `room` bytes of memory and the storage within its quota.
    pub fn put(&mut self, collection: String, key: String, value: Option<String>, room: usize) -> Result<(), String> {
        if collection.len() > MAX_NAME || key.len() > MAX_NAME {
            return Err(format!("collection names and keys are limited to {MAX_NAME} bytes"));
        }
        if let Some(value) = &value {
            if value.len() > self.limits.page_bytes {
                let limit = self.limits.page_bytes;
                return Err(format!("a value of {} bytes is over the limit of {limit} bytes", value.len()));
            }
            serde_json::from_str::<serde::de::IgnoredAny>(value).map_err(|e| format!("the value is not JSON: {e}"))?;
        }
        let Some(overlay) = &self.overlay else {
            return Err("storage is read-only here (only `index` may write)".into());
        };
        let entry = (collection, key);
        let (size_before_batch, size_now, held_now) = match overlay.get(&entry) {
            Some((pending, before)) => {
                let size = pending.as_ref().map_or(0, |v| entry_size(&entry.0, &entry.1, v));
                (*before, size, pending_size(&entry, pending))
            }
            None if overlay.len() >= MAX_WRITES => {
                return Err(format!("one batch may write at most {MAX_WRITES} entries"));
            }
            None => {
                let stored = match self.sizes_read.0.get(&entry) {
                    Some(size) => *size,
                    None => {
                        let plugin = self.plugin.clone();
                        let stored = self.timed(|conn| conn.plugin_entry_size(&plugin, &entry.0, &entry.1));
                        self.checked("reading an entry's size", stored).unwrap_or(0)
                    }
                };
                (stored, stored, 0)
            }
        };
        let size_new = value.as_ref().map_or(0, |v| entry_size(&entry.0, &entry.1, v));
        let delta = self.bytes_delta - size_now as i64 + size_new as i64;
        let quota = self.limits.quota;
        if size_new > size_now && self.stored_bytes.saturating_add_signed(delta) > quota {
            return Err(format!("the plugin's storage quota of {quota} bytes is used up (storage_quota_mib)"));
        }
        let pending = self.pending_bytes - held_now + pending_size(&entry, &value);
        if pending > room {
            return Err(format!(
                "this batch's pending writes ({pending} bytes) and the plugin's memory would exceed memory_mib"
            ));
        }
        (self.bytes_delta, self.pending_bytes) = (delta, pending);
        self.overlay.as_mut().expect("checked above").insert(entry, (value, size_before_batch));
        Ok(())
    }

    /// Entries whose key starts with `prefix`, after `after`, at most `limit`, as this batch
    /// left them.
    pub fn scan(&mut self, collection: &str, prefix: &str, after: Option<&str>, limit: u32) -> Vec<(String, String)> {
        let plugin = self.plugin.clone();
        let read = |conn: &mut dyn Read, after: Option<&str>, bound| {
            conn.plugin_scan(&plugin, collection, prefix, after, bound)
        };
        let matches = |key: &str, _: &Option<String>| key.starts_with(prefix);
        let page = self.paged(collection, after, limit, read, matches);
        self.checked("scan", page)
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
        let wanted: serde_json::Value =
            serde_json::from_str(value).map_err(|e| format!("the value is not JSON: {e}"))?;
        // Only values SQLite and JSON compare alike, so a find means the same before and after
        // the batch commits.
        if !(wanted.is_string() || wanted.is_i64() || wanted.is_u64()) {
            return Err("find looks up a string or an integer".into());
        }
        let plugin = self.plugin.clone();
        let read = |conn: &mut dyn Read, after: Option<&str>, bound| {
            conn.plugin_find(&plugin, collection, field, &wanted, after, bound)
        };
        let matches = |_: &str, new: &Option<String>| {
            let parsed = new.as_deref().and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok());
            parsed.is_some_and(|v| v.get(field) == Some(&wanted))
        };
        let page = self.paged(collection, after, limit, read, matches);
        Ok(self.checked("find", page))
    }

    /// One page of a read (`read` pages through the stored entries) with the batch's writes
    /// applied: removed or changed entries replaced by what `matches` keeps of the pending ones.
    /// When a stored page is cut, pending entries past its last key wait for the next page, so
    /// paging skips nothing. At most `limit` entries and the page's bytes (at least one entry).
    fn paged(
        &mut self,
        collection: &str,
        after: Option<&str>,
        limit: u32,
        mut read: impl FnMut(&mut dyn Read, Option<&str>, Bound) -> anyhow::Result<Page>,
        matches: impl Fn(&str, &Option<String>) -> bool,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let limit = limit.min(MAX_PAGE);
        let pending_here = self.overlay.iter().flatten().filter(|((c, _), _)| c == collection);
        let bound =
            Bound { entries: limit + pending_here.count().min(MAX_WRITES) as u32, bytes: self.limits.page_bytes };
        let mut from = after.map(str::to_owned);
        loop {
            let stored = self.timed(|conn| read(conn, from.as_deref(), bound))?;
            let last_stored = stored.cut.then(|| stored.entries.last().map(|(key, _)| key.clone())).flatten();
            let mut merged: BTreeMap<String, String> =
                stored.entries.into_iter().filter(|(key, _)| self.pending(collection, key).is_none()).collect();
            let pending = self.overlay.iter().flatten().filter(|((c, key), (new, _))| {
                c == collection
                    && from.as_deref().is_none_or(|from| key.as_str() > from)
                    && last_stored.as_deref().is_none_or(|last| key.as_str() <= last)
                    && matches(key, new)
            });
            merged.extend(pending.filter_map(|((_, key), (value, _))| Some((key.clone(), value.clone()?))));
            // Every stored entry of a cut page was removed or changed: read on.
            if merged.is_empty() && last_stored.is_some() {
                from = last_stored;
                continue;
            }
            let mut bytes = 0;
            let within = merged.into_iter().enumerate().take_while(|(i, (key, value))| {
                bytes += key.len() + value.len();
                *i == 0 || bytes <= self.limits.page_bytes
            });
            return Ok(within.map(|(_, entry)| entry).take(limit as usize).collect());
        }
    }

    fn pending(&self, collection: &str, key: &str) -> Option<&Pending> {
        self.overlay.as_ref()?.get(&(collection.to_owned(), key.to_owned()))
    }

    /// A read's result; a failure is remembered (the call fails) and answered as empty.
    fn checked<T: Default>(&mut self, what: &str, read: anyhow::Result<T>) -> T {
        read.unwrap_or_else(|error| {
            tracing::error!(plugin = %self.plugin, "plugin storage {what} failed: {error}");
            self.failure.get_or_insert_with(|| format!("storage {what} failed: {error}"));
            T::default()
        })
    }
}

/// Bytes a pending write holds in memory (a removal holds its collection and key).
fn pending_size((collection, key): &(String, String), value: &Option<String>) -> usize {
    entry_size(collection, key, value.as_deref().unwrap_or("")) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::plugin_data::PluginBatch;
    use crate::store::{Location, Writer};

    const LIMITS: StorageLimits = StorageLimits { page_bytes: 1 << 20, quota: 1 << 30 };

    /// Storage over a fresh database holding `writes` for plugin `p@1`.
    fn storage_with(writes: Vec<Write>, limits: StorageLimits) -> (Location, PluginStorage) {
        let location = Location::resolve(":memory:").unwrap();
        let bytes_delta = writes.iter().map(|w| w.size() as i64).sum();
        let batch = PluginBatch { plugin: "p@1".into(), writes, bytes_delta, ..PluginBatch::default() };
        Writer::open(&location).unwrap().commit_plugins(&[batch], &[]).unwrap();
        let read = crate::store::open_read(&location).unwrap();
        (location, PluginStorage::new(Arc::from("p@1"), read, limits))
    }

    fn write(key: &str, value: &str) -> Write {
        Write { collection: "c".into(), key: key.into(), value: Some(value.into()) }
    }

    /// Storage holding `a0`..`a9` in collection `c`.
    fn storage() -> (Location, PluginStorage) {
        storage_with((0..10).map(|i| write(&format!("a{i}"), &i.to_string())).collect(), LIMITS)
    }

    /// Every entry under `prefix`, page by page of `limit`.
    fn scan_all(storage: &mut PluginStorage, prefix: &str, limit: u32) -> Vec<(String, String)> {
        let (mut all, mut after) = (Vec::new(), None::<String>);
        loop {
            let page = storage.scan("c", prefix, after.as_deref(), limit);
            if page.is_empty() {
                return all;
            }
            after = page.last().map(|(key, _)| key.clone());
            all.extend(page);
        }
    }

    #[test]
    fn pages_of_a_scan_see_the_batch_writes_and_skip_nothing() {
        let (_location, mut storage) = storage();
        storage.begin_writes();
        storage.put("c".into(), "a0".into(), None, usize::MAX).unwrap();
        storage.put("c".into(), "a7".into(), Some("70".into()), usize::MAX).unwrap();
        storage.put("c".into(), "a35".into(), Some("35".into()), usize::MAX).unwrap();
        let expected: Vec<(String, String)> = ["a1", "a2", "a3", "a35", "a4", "a5", "a6", "a7", "a8", "a9"]
            .iter()
            .map(|key| (key.to_string(), if *key == "a7" { "70".into() } else { key[1..].to_string() }))
            .collect();
        assert_eq!(scan_all(&mut storage, "a", 3), expected);
        assert!(storage.take_failure().is_none());
    }

    #[test]
    fn a_scan_finds_the_empty_key_and_keys_past_the_last_character() {
        let top = "\u{10FFFF}";
        let keys = ["", "a", &format!("a{top}"), &format!("a{top}z"), "b", &format!("{top}{top}x")];
        let (_location, mut storage) = storage_with(keys.iter().map(|k| write(k, "1")).collect(), LIMITS);
        fn scanned(storage: &mut PluginStorage, prefix: &str) -> Vec<String> {
            scan_all(storage, prefix, 2).into_iter().map(|(key, _)| key).collect()
        }
        assert_eq!(scanned(&mut storage, ""), keys.map(String::from));
        assert_eq!(scanned(&mut storage, "a"), keys[1..4].iter().map(|k| k.to_string()).collect::<Vec<_>>());
        assert_eq!(scanned(&mut storage, &format!("a{top}")), [keys[2], keys[3]]);
        assert_eq!(scanned(&mut storage, &format!("{top}{top}")), [keys[5]]);
    }

    #[test]
    fn a_scan_returns_at_most_a_page_of_bytes_and_pages_through_the_rest() {
        let big = format!("\"{}\"", "x".repeat(400));
        let limits = StorageLimits { page_bytes: 1000, ..LIMITS };
        let (_location, mut storage) = storage_with((0..10).map(|i| write(&format!("k{i}"), &big)).collect(), limits);
        let page = storage.scan("c", "", None, 1000);
        assert_eq!(page.len(), 2, "two entries of 403 bytes fit in 1000");
        assert_eq!(scan_all(&mut storage, "", 1000).len(), 10);
        let tiny = StorageLimits { page_bytes: 10, ..LIMITS };
        let (_location, mut storage) = storage_with(vec![write("k", &big)], tiny);
        assert_eq!(storage.scan("c", "", None, 10).len(), 1, "one entry, however large");
    }

    #[test]
    fn writes_stop_at_the_quota_and_at_the_memory_room() {
        let value = format!("\"{}\"", "x".repeat(998)); // 1000 bytes; with "c" and a 3-byte key, 1004
        let limits = StorageLimits { quota: 2500, ..LIMITS };
        let (_location, mut storage) = storage_with(vec![write("old", &value)], limits);
        storage.begin_writes();
        storage.put("c".into(), "new".into(), Some(value.clone()), usize::MAX).unwrap();
        let error = storage.put("c".into(), "big".into(), Some(value.clone()), usize::MAX).unwrap_err();
        assert!(error.contains("quota"), "{error}");
        // Replacing or removing is always possible; what a removal frees is room again.
        storage.put("c".into(), "new".into(), Some(value.clone()), usize::MAX).unwrap();
        storage.put("c".into(), "old".into(), None, usize::MAX).unwrap();
        storage.put("c".into(), "big".into(), Some(value.clone()), usize::MAX).unwrap();
        let (writes, delta) = storage.take_writes();
        assert_eq!((writes.len(), delta), (3, 1004));

        let (_location, mut storage) = storage_with(Vec::new(), LIMITS);
        storage.begin_writes();
        storage.put("c".into(), "a".into(), Some(value.clone()), 1500).unwrap();
        let error = storage.put("c".into(), "b".into(), Some(value), 1500).unwrap_err();
        assert!(error.contains("memory_mib"), "{error}");
    }
}
