//! What a plugin may do to the outside world: per-instance state behind its WIT imports.
//!
//! Every plugin gets WASI p2 with nothing granted (no files, sockets, environment or stdio, and
//! clocks that stand still at the Unix epoch, so a replay computes what live indexing did) so
//! that ordinary Rust guests link, the `sluice:plugin/host` interface (logging, rate-limited),
//! `sluice:plugin/casper` (the account rules) and its own storage (`sluice:plugin/storage`, see
//! [`super::storage`]). Its linear memory and
//! its pending storage writes share one budget ([`MemoryBudget`]). Blocking (`wasi:io/poll`)
//! traps: see [`forbid_blocking`].

use super::bindings::sluice::plugin::{casper, host, node, storage, types};
use super::node::NodeGrant;
use super::storage::PluginStorage;
use super::text;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use wasmtime::ResourceLimiter;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

/// State of one plugin instance's store.
pub struct HostState {
    plugin: Arc<str>,
    wasi: WasiCtx,
    table: ResourceTable,
    /// Memory ceiling: linear memory and pending storage writes together.
    pub memory: MemoryBudget,
    /// The plugin's own storage.
    pub storage: PluginStorage,
    /// The node it may query, if the operator granted one.
    node: Option<NodeGrant>,
    /// Its logging allowance, shared by its instances.
    log: Arc<LogBudget>,
    /// When the call under way must end: a node query waits no longer.
    pub deadline: Instant,
}

impl HostState {
    /// Fresh state for an instance of `plugin`: WASI grants nothing but, when the operator gave
    /// one, the directory `files` to read (as `/files`).
    pub fn new(
        plugin: Arc<str>,
        memory: MemoryBudget,
        storage: PluginStorage,
        node: Option<NodeGrant>,
        log: Arc<LogBudget>,
        files: Option<&std::path::Path>,
    ) -> anyhow::Result<HostState> {
        let mut wasi = WasiCtx::builder();
        wasi.wall_clock(StandingClock).monotonic_clock(StandingClock);
        if let Some(files) = files {
            wasi.preopened_dir(files, "/files", wasmtime_wasi::FsPerms::ReadOnly)?;
        }
        let table = ResourceTable::new();
        Ok(HostState { plugin, wasi: wasi.build(), table, memory, storage, node, log, deadline: Instant::now() })
    }
}

/// Both WASI clocks, standing still at 0 (the Unix epoch): what a plugin computes must not
/// depend on when it runs, since a replay runs it again later.
struct StandingClock;

impl HostWallClock for StandingClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for StandingClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// Host memory a table element takes (a pointer), counted like linear memory.
const TABLE_ELEMENT_BYTES: usize = 8;

/// A plugin's memory ceiling (`memory_mib`), shared by its linear memories, its tables and the
/// storage writes its current batch keeps pending.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    /// Bytes of linear memory and tables, all together.
    wasm: usize,
    /// Bytes of pending storage writes.
    pub pending: usize,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> MemoryBudget {
        MemoryBudget { limit, wasm: 0, pending: 0 }
    }

    /// Bytes pending writes may take, beside the linear memory and tables in use.
    fn room_for_writes(&self) -> usize {
        self.limit.saturating_sub(self.wasm)
    }

    /// Take `bytes` more for `what`, or fail if that would exceed the ceiling.
    fn grow(&mut self, bytes: usize, what: impl FnOnce() -> String) -> wasmtime::Result<bool> {
        let wasm = self.wasm.saturating_add(bytes);
        if wasm.saturating_add(self.pending) > self.limit {
            wasmtime::bail!("memory_mib: {} would exceed the plugin's {} MiB", what(), self.limit >> 20);
        }
        self.wasm = wasm;
        Ok(true)
    }
}

impl ResourceLimiter for MemoryBudget {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.grow(desired.saturating_sub(current), || format!("growing a memory to {desired} bytes"))
    }

    fn table_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let bytes = desired.saturating_sub(current).saturating_mul(TABLE_ELEMENT_BYTES);
        self.grow(bytes, || format!("growing a table to {desired} elements"))
    }
}

/// Log lines a plugin may write per second (a burst of as many); beyond, they are dropped: the
/// first one dropped says so, and the next line written says how many were.
const LOG_LINES_PER_SECOND: u32 = 100;

/// One plugin's logging allowance, shared by its instances.
pub struct LogBudget {
    allowance: DefaultDirectRateLimiter,
    suppressed: AtomicU64,
}

impl Default for LogBudget {
    fn default() -> LogBudget {
        let rate = NonZeroU32::new(LOG_LINES_PER_SECOND).expect("not zero");
        LogBudget { allowance: RateLimiter::direct(Quota::per_second(rate)), suppressed: AtomicU64::new(0) }
    }
}

impl LogBudget {
    /// Whether one more line fits the allowance; says when lines start being dropped and, at
    /// the next line admitted, how many were.
    fn admit(&self, plugin: &str) -> bool {
        if self.allowance.check().is_err() {
            if self.suppressed.fetch_add(1, Relaxed) == 0 {
                tracing::warn!(plugin, "over {LOG_LINES_PER_SECOND} log lines per second: dropping its lines");
            }
            return false;
        }
        let dropped = self.suppressed.swap(0, Relaxed);
        if dropped > 0 {
            tracing::warn!(plugin, "{dropped} of its log lines were dropped");
        }
        true
    }
}

impl node::Host for HostState {
    fn query(&mut self, method: String, params: String) -> Result<String, String> {
        match &self.node {
            Some(node) => node.query(&method, &params, self.deadline),
            None => Err("no node granted: set `node = \"NAME\"` in the plugin's config".into()),
        }
    }
}

/// Longer than any account name: refused without being read or echoed.
const MAX_ACCOUNT_TEXT: usize = 256;

impl casper::Host for HostState {
    fn account_hash(&mut self, account: String) -> Result<String, String> {
        within(&account, MAX_ACCOUNT_TEXT).and_then(sluice_casper::account_hash)
    }

    fn holder_key(&mut self, text: String) -> Result<String, String> {
        within(&text, MAX_ACCOUNT_TEXT).and_then(sluice_casper::holder_key)
    }
}

fn within(text: &str, most: usize) -> Result<&str, String> {
    if text.len() > most { Err(format!("{} bytes: longer than any account name", text.len())) } else { Ok(text) }
}

impl storage::Host for HostState {
    fn get(&mut self, collection: String, key: String) -> Option<String> {
        self.storage.get(&collection, &key)
    }

    fn set(&mut self, collection: String, key: String, value: String) -> Result<(), String> {
        self.put(collection, key, Some(value))
    }

    fn remove(&mut self, collection: String, key: String) -> Result<(), String> {
        self.put(collection, key, None)
    }

    fn scan(&mut self, collection: String, prefix: String, after: Option<String>, limit: u32) -> Vec<types::Entry> {
        let entries = self.storage.scan(&collection, &prefix, after.as_deref(), limit);
        entries.into_iter().map(|(key, value)| types::Entry { key, value }).collect()
    }

    fn find(
        &mut self,
        collection: String,
        field: String,
        value: String,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<types::Entry>, String> {
        let entries = self.storage.find(&collection, &field, &value, after.as_deref(), limit)?;
        Ok(entries.into_iter().map(|(key, value)| types::Entry { key, value }).collect())
    }
}

impl HostState {
    fn put(&mut self, collection: String, key: String, value: Option<String>) -> Result<(), String> {
        self.storage.put(collection, key, value, self.memory.room_for_writes())?;
        self.memory.pending = self.storage.pending_bytes();
        Ok(())
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl types::Host for HostState {}

impl host::Host for HostState {
    fn log(&mut self, level: host::Level, message: String) {
        use tracing::{Level, enabled};
        let plugin = &*self.plugin;
        // Lines no one would see spend nothing: chatter at a hidden level cannot use up the
        // allowance of the warnings.
        let shown = match level {
            host::Level::Trace => enabled!(Level::TRACE),
            host::Level::Debug => enabled!(Level::DEBUG),
            host::Level::Info => enabled!(Level::INFO),
            host::Level::Warn => enabled!(Level::WARN),
            host::Level::Error => enabled!(Level::ERROR),
        };
        if !shown || !self.log.admit(plugin) {
            return;
        }
        let message = text::bounded(&message);
        match level {
            host::Level::Trace => tracing::trace!(plugin, "{message}"),
            host::Level::Debug => tracing::debug!(plugin, "{message}"),
            host::Level::Info => tracing::info!(plugin, "{message}"),
            host::Level::Warn => tracing::warn!(plugin, "{message}"),
            host::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

/// The `wasi:io` version wasmtime-wasi links; the override below must name the same one.
const WASI_IO_POLL: &str = "wasi:io/poll@0.2.12";

/// Make waiting on a pollable (e.g. `std::thread::sleep`) trap. A guest that waits does so in
/// host code, where the epoch deadline cannot interrupt it, so one sleeping plugin would stall
/// the pipeline. Plugins have nothing to wait for: they get no sockets or files.
pub fn forbid_blocking(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut poll = linker.instance(WASI_IO_POLL)?;
    for name in ["poll", "[method]pollable.block"] {
        poll.func_new(name, move |_, _, _, _| {
            Err(wasmtime::format_err!("plugins may not block ({WASI_IO_POLL}.{name})"))
        })?;
    }
    linker.allow_shadowing(false);
    Ok(())
}
