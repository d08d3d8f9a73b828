//! What a plugin may do to the outside world: per-instance state behind its WIT imports.
//!
//! Every plugin gets WASI p2 with nothing granted (no files, sockets, environment or stdio) so
//! that ordinary Rust guests link, the `sluice:plugin/host` interface (logging) and its own
//! storage (`sluice:plugin/storage`, see [`super::storage`]). Blocking (`wasi:io/poll`) traps:
//! see [`forbid_blocking`].

use super::instance::sluice::plugin::{host, node, storage, types};
use super::node::NodeQueries;
use super::storage::PluginStorage;
use std::sync::Arc;
use wasmtime::StoreLimits;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// State of one plugin instance's store.
pub struct HostState {
    plugin: Arc<str>,
    wasi: WasiCtx,
    table: ResourceTable,
    /// Memory ceiling, enforced by wasmtime.
    pub limits: StoreLimits,
    /// The plugin's own storage.
    pub storage: PluginStorage,
    /// The node it may query, if the operator granted one.
    node: Option<Arc<NodeQueries>>,
}

impl HostState {
    /// Fresh state for an instance of `plugin`: WASI grants nothing but, when the operator gave
    /// one, the directory `files` to read (as `/files`).
    pub fn new(
        plugin: Arc<str>,
        limits: StoreLimits,
        storage: PluginStorage,
        node: Option<Arc<NodeQueries>>,
        files: Option<&std::path::Path>,
    ) -> anyhow::Result<HostState> {
        let mut wasi = WasiCtx::builder();
        if let Some(files) = files {
            wasi.preopened_dir(files, "/files", wasmtime_wasi::FsPerms::ReadOnly)?;
        }
        Ok(HostState { plugin, wasi: wasi.build(), table: ResourceTable::new(), limits, storage, node })
    }
}

impl node::Host for HostState {
    fn query(&mut self, method: String, params: String) -> Result<String, String> {
        match &self.node {
            Some(node) => node.query(&method, &params),
            None => Err("no node granted: set `node = \"NAME\"` in the plugin's config".into()),
        }
    }
}

impl storage::Host for HostState {
    fn get(&mut self, collection: String, key: String) -> Option<String> {
        self.storage.get(&collection, &key)
    }

    fn set(&mut self, collection: String, key: String, value: String) -> Result<(), String> {
        self.storage.put(collection, key, Some(value))
    }

    fn remove(&mut self, collection: String, key: String) -> Result<(), String> {
        self.storage.put(collection, key, None)
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

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl types::Host for HostState {}

impl host::Host for HostState {
    fn log(&mut self, level: host::Level, message: String) {
        const MAX: usize = 4096;
        let message = match message.char_indices().nth(MAX) {
            Some((cut, _)) => &message[..cut],
            None => &message,
        };
        let plugin = &*self.plugin;
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
