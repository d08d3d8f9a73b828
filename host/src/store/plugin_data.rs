//! Plugins' own storage, whatever the backend: entries `(plugin, collection, key) → JSON value`.
//! Every query is bound to one plugin's name, so a plugin reaches only its entries; it never
//! sees SQL or another table.

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
    /// While it replays the log in chain order: how far.
    pub chain: Option<ChainCursor>,
    /// Collections whose writes also go to the change log (`plugin_changes`), which clients
    /// follow: those the host serves, of a live plugin.
    pub logged: Vec<String>,
}

/// Changes kept in the change log (the newest; older ones are removed as new ones come).
pub const CHANGES_KEPT: u64 = 100_000;

/// One logged change of a served collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Its place in the change log (increasing in commit order).
    pub id: u64,
    /// The entry's key.
    pub key: String,
    /// Its new value (JSON), `None` when it was removed.
    pub value: Option<String>,
    /// The sequence of the last event of the batch that made it.
    pub seq: u64,
}

impl PluginBatch {
    /// The same, its writes to `collections` logged.
    pub fn logging(mut self, collections: &[String]) -> PluginBatch {
        self.logged = collections.to_vec();
        self
    }

    /// The writes that go to the change log.
    pub fn logged_writes(&self) -> impl Iterator<Item = &Write> {
        self.writes.iter().filter(|write| self.logged.contains(&write.collection))
    }
}

/// How far a replay in chain order went: the events stored up to sequence `bound` (fixed when
/// the replay began), read by `(chain_height, seq)`, up to and including `after`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ChainCursor {
    /// The last sequence the replay reads.
    pub bound: u64,
    /// The chain position `(chain_height, seq)` of the last event replayed.
    pub after: (u64, u64),
}

/// Where a plugin's stored cursor stands.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PluginCursor {
    /// Every event up to this sequence is processed (before a replay in chain order: where it
    /// began).
    pub last_seq: u64,
    /// A replay in chain order under way.
    pub chain: Option<ChainCursor>,
}

/// Reads of plugins' storage ([`super::Read`] includes them).
pub trait PluginRead {
    /// The value under `key`.
    fn plugin_value(&mut self, plugin: &str, collection: &str, key: &str) -> anyhow::Result<Option<String>>;

    /// Bytes the entry under `key` takes (see [`entry_size`]), if there is one.
    fn plugin_entry_size(&mut self, plugin: &str, collection: &str, key: &str) -> anyhow::Result<Option<u64>>;

    /// Bytes `plugin`'s storage holds (its keys and values).
    fn plugin_bytes(&mut self, plugin: &str) -> anyhow::Result<u64>;

    /// Entries whose key starts with `prefix`, after `after` (from the first, the empty key
    /// included, when `None`), in key order, within `bound`.
    fn plugin_scan(
        &mut self,
        plugin: &str,
        collection: &str,
        prefix: &str,
        after: Option<&str>,
        bound: Bound,
    ) -> anyhow::Result<Page>;

    /// Entries whose top-level JSON field `field` equals `value`, after `after`, in key order,
    /// within `bound`. `field` must be one the plugin declared (checked by the caller, see
    /// [`valid_field`]): it is part of the SQL, matching the index created for it.
    #[allow(clippy::too_many_arguments)]
    fn plugin_find(
        &mut self,
        plugin: &str,
        collection: &str,
        field: &str,
        value: &serde_json::Value,
        after: Option<&str>,
        bound: Bound,
    ) -> anyhow::Result<Page>;

    /// Up to `limit` logged changes of `collection` after change `after`, oldest first, matching
    /// (a field filter matches no removal).
    fn plugin_changes(
        &mut self,
        plugin: &str,
        collection: &str,
        matching: Matching,
        after: u64,
        limit: u32,
    ) -> anyhow::Result<Vec<Change>>;

    /// The oldest and newest change the log holds (`(0, 0)` when empty).
    fn plugin_change_span(&mut self) -> anyhow::Result<(u64, u64)>;

    /// How many entries match, counting no further than `cap`.
    fn plugin_count(&mut self, plugin: &str, collection: &str, matching: Matching, cap: u64) -> anyhow::Result<u64>;

    /// Where `plugin` stands, if it ever ran.
    fn plugin_cursor(&mut self, plugin: &str) -> anyhow::Result<Option<PluginCursor>>;

    /// The storage ids of other versions of plugin `name` (`name@…` but not `current`).
    fn plugin_versions(&mut self, name: &str, current: &str) -> anyhow::Result<Vec<String>>;
}

/// Which entries of a collection a count covers.
#[derive(Debug, Clone, Copy)]
pub enum Matching<'a> {
    /// This key.
    Key(&'a str),
    /// Keys starting with this prefix.
    Prefix(&'a str),
    /// Top-level JSON field (one the plugin declared an index on: see [`valid_field`]) equal to
    /// this value.
    Field(&'a str, &'a serde_json::Value),
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

impl Bound {
    /// Whether a page of `entries` entries cannot take one more that brings it to `bytes`.
    fn full(self, entries: usize, bytes: usize) -> bool {
        entries as u32 >= self.entries || (bytes > self.bytes && entries > 0)
    }

    /// How many of entries of these sizes (key and value bytes, in order) a page takes, and
    /// whether it stops before the last (is cut).
    pub fn fit(self, sizes: impl IntoIterator<Item = usize>) -> (usize, bool) {
        let mut bytes = 0;
        for (taken, size) in sizes.into_iter().enumerate() {
            bytes += size;
            if self.full(taken, bytes) {
                return (taken, true);
            }
        }
        (usize::MAX, false)
    }
}

impl Page {
    /// Take (key, value) rows until `bound`; the rest are not read.
    pub fn within<E>(rows: impl Iterator<Item = Result<(String, String), E>>, bound: Bound) -> Result<Page, E> {
        let mut page = Page::default();
        let mut bytes = 0;
        for row in rows {
            let (key, value) = row?;
            bytes += key.len() + value.len();
            if bound.full(page.entries.len(), bytes) {
                page.cut = true;
                break;
            }
            page.entries.push((key, value));
        }
        Ok(page)
    }
}

/// The keys a scan reads: from `from` (past it when `above`) to before `end` (to the last when
/// `None`). Keys with a prefix are a range of the primary key: from the prefix (or past
/// `after`) to the least string above all of them (none when the prefix is empty or only
/// U+10FFFF).
pub struct KeyRange<'a> {
    /// Where it starts.
    pub from: &'a str,
    /// Whether `from` itself is left out.
    pub above: bool,
    /// The first key past it, if any.
    pub end: Option<String>,
}

impl<'a> KeyRange<'a> {
    /// Keys starting with `prefix`, after `after` (from the first, the empty key included, when
    /// `None`).
    pub fn scan(prefix: &'a str, after: Option<&'a str>) -> KeyRange<'a> {
        let (from, above) = match after {
            Some(after) if after >= prefix => (after, true),
            _ => (prefix, false),
        };
        KeyRange { from, above, end: prefix_end(prefix) }
    }

    /// The comparison that starts the range in SQL.
    pub fn start_operator(&self) -> &'static str {
        if self.above { ">" } else { ">=" }
    }
}

/// The least string greater than every string starting with `prefix`, if any: its last
/// character that is not U+10FFFF, incremented, with what follows removed. (Keys compare byte by
/// byte, which for UTF-8 is code-point order.)
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

/// Whether `field` may name an index: letters, digits and `_` only (it becomes part of SQL).
pub fn valid_field(field: &str) -> bool {
    !field.is_empty() && field.len() <= 64 && field.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
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
