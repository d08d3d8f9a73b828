//! One warm plugin instance: its store (with limits and a deadline per call) and its exports.
//!
//! A trapped instance cannot be entered again, so after a trap the instance is rebuilt from the
//! pre-linked component and re-initialised with the same config.

use super::HostServices;
use super::bindings::{DerivedEvent, Event, Manifest, Plugin, PluginPre, Request, Response, Verdict};
use super::capabilities::{self, HostState, LogBudget, MemoryBudget};
use super::node::NodeGrant;
use super::storage::{PluginStorage, StorageLimits};
use crate::store::plugin_data::{self, Write};
use crate::store::{Location, StoredEvent};
use anyhow::Context;
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store, Trap};

/// Most collections a plugin may have served, and the longest name of one.
const MAX_SERVED: usize = 32;
const MAX_NAME: usize = 128;

/// Limits applied to every call into a plugin.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Epoch ticks a call may run (see [`super::runtime::EPOCH_TICK`]).
    pub deadline_ticks: u64,
    /// Memory ceiling in bytes (linear memories, tables, pending storage writes).
    pub memory_bytes: usize,
    /// Largest output accepted: an annotation, a stored value, a response body, a page of
    /// storage read.
    pub output_bytes: usize,
    /// Most bytes its storage may hold.
    pub storage_quota_bytes: u64,
    /// Node queries per second (when granted a node).
    pub node_queries_per_second: u32,
}

impl Limits {
    /// The time limit of one call.
    fn timeout(&self) -> Duration {
        super::runtime::EPOCH_TICK * u32::try_from(self.deadline_ticks).unwrap_or(u32::MAX)
    }
}

/// Why a call did not return a verdict.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The call ran past its time limit.
    #[error("timed out")]
    Timeout,
    /// The plugin trapped (panic, out of memory, bad access, ...).
    #[error("trapped: {0:#}")]
    Trap(anyhow::Error),
    /// The plugin returned more than `output_bytes`.
    #[error("returned {0} bytes, over the output limit")]
    TooLarge(usize),
    /// The plugin returned an error.
    #[error("returned an error: {0}")]
    Failed(String),
}

/// Everything needed to build fresh instances of one plugin.
#[derive(Clone)]
pub struct Template {
    name: Arc<str>,
    storage_id: Arc<str>,
    pre: PluginPre<HostState>,
    engine: Engine,
    config_json: String,
    limits: Limits,
    location: Location,
    node: Option<NodeGrant>,
    /// The private copy of the directory it may read, if granted one.
    files: Option<Arc<tempfile::TempDir>>,
    log: Arc<LogBudget>,
}

/// What the operator granted a plugin beyond its own storage and logging.
#[derive(Default)]
pub struct Grants<'a> {
    /// The `[[nodes]]` entry it may query.
    pub node: Option<&'a str>,
    /// The directory it may read, as `/files`.
    pub files: Option<&'a Path>,
}

/// A live, initialised instance.
pub struct Instance {
    store: Store<HostState>,
    bindings: Plugin,
    limits: Limits,
    /// What `init` said the plugin does.
    pub manifest: Manifest,
}

impl Template {
    /// Link a compiled component with the capabilities every plugin gets.
    pub fn new(
        name: Arc<str>,
        storage_id: Arc<str>,
        engine: &Engine,
        component: &Component,
        config_json: String,
        limits: Limits,
        services: &HostServices,
        grants: &Grants,
    ) -> anyhow::Result<Template> {
        let node = match grants.node {
            Some(node) => {
                let queries =
                    services.nodes.get(node).cloned().with_context(|| format!("no node {node:?} to query"))?;
                Some(NodeGrant::new(queries, limits.node_queries_per_second))
            }
            None => None,
        };
        let location = services.location.clone();
        let mut linker = Linker::<HostState>::new(engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        capabilities::forbid_blocking(&mut linker)?;
        Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        check_contract_version(engine, component)?;
        let pre = PluginPre::new(linker.instantiate_pre(component)?)?;
        let files = grants.files.map(super::files::snapshot).transpose()?.map(Arc::new);
        let engine = engine.clone();
        let log = Arc::default();
        Ok(Template { name, storage_id, pre, engine, config_json, limits, location, node, files, log })
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whose entries its storage holds: the name and a hash of the code and config, so a new
    /// version of an indexer starts from fresh storage.
    pub fn storage_id(&self) -> &str {
        &self.storage_id
    }

    /// The same plugin, its storage under `storage_id`.
    pub fn with_storage_id(mut self, storage_id: String) -> Template {
        self.storage_id = Arc::from(storage_id);
        self
    }

    /// Instantiate and call `init` with the plugin's config.
    pub fn instantiate(&self) -> anyhow::Result<Instance> {
        let conn = crate::store::open_read(&self.location).context("opening the plugin's storage")?;
        let storage_limits =
            StorageLimits { page_bytes: self.limits.output_bytes, quota: self.limits.storage_quota_bytes };
        let storage = PluginStorage::new(self.storage_id.clone(), conn, storage_limits);
        let state = HostState::new(
            self.name.clone(),
            MemoryBudget::new(self.limits.memory_bytes),
            storage,
            self.node.clone(),
            self.log.clone(),
            self.files.as_ref().map(|files| files.path()),
        )?;
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.memory);
        store.data_mut().deadline = Instant::now() + self.limits.timeout();
        // At the deadline, the time storage reads took is excused (within an allowance); then
        // the call is interrupted.
        store.epoch_deadline_callback(|mut store| match store.data_mut().storage.excuse_read_time() {
            waited if waited.is_zero() => Err(Trap::Interrupt.into()),
            waited => Ok(wasmtime::UpdateDeadline::Continue(super::runtime::ticks(waited))),
        });
        store.data_mut().storage.begin_call(self.limits.timeout() * READ_ALLOWANCE);
        store.set_epoch_deadline(self.limits.deadline_ticks);
        let bindings = self.pre.instantiate(&mut store).map_err(anyhow::Error::from).context("instantiating")?;
        store.set_epoch_deadline(self.limits.deadline_ticks);
        let manifest = bindings
            .call_init(&mut store, &self.config_json)
            .map_err(classify)
            .context("calling init")?
            .map_err(|message| anyhow::anyhow!("init rejected its config: {}", super::text::bounded(&message)))?;
        let mut indexes = HashSet::new();
        for spec in &manifest.indexes {
            anyhow::ensure!(
                !spec.collection.is_empty() && plugin_data::valid_field(&spec.field),
                "the manifest declares an index on {:?}.{:?}: a field is letters, digits and `_`",
                spec.collection,
                spec.field
            );
            indexes.insert((spec.collection.clone(), spec.field.clone()));
        }
        anyhow::ensure!(
            manifest.served_collections.len() <= MAX_SERVED
                && manifest.served_collections.iter().all(|c| (1..=MAX_NAME).contains(&c.len())),
            "the manifest serves {} collections: at most {MAX_SERVED}, each named by 1 to {MAX_NAME} bytes",
            manifest.served_collections.len()
        );
        store.data_mut().storage.set_indexes(Arc::new(indexes));
        Ok(Instance { store, bindings, limits: self.limits, manifest })
    }
}

/// The version of the `sluice:plugin` package (`wit/sluice.wit`) this host implements.
pub const CONTRACT_VERSION: &str = "0.3.0";

/// A plugin built against another version of the contract fails with a clear error rather than
/// wasmtime's type mismatch.
fn check_contract_version(engine: &Engine, component: &Component) -> anyhow::Result<()> {
    let imports = component.component_type().imports(engine).map(|(name, _)| name.to_owned()).collect::<Vec<_>>();
    let other = imports
        .iter()
        .filter_map(|name| name.strip_prefix("sluice:plugin/")?.split_once('@'))
        .find(|(_, v)| *v != CONTRACT_VERSION);
    match other {
        Some((_, version)) => anyhow::bail!(
            "it was built for the plugin contract sluice:plugin@{version}; this Sluice implements @{CONTRACT_VERSION}: \
             rebuild it with this version's SDK (`sluice plugin new` writes one)"
        ),
        None => Ok(()),
    }
}

impl Instance {
    /// Hand one event to a decoder, within the time limit.
    pub fn decode(&mut self, event: &Event) -> Result<Vec<DerivedEvent>, CallError> {
        let derived = self.call(|bindings, store| bindings.call_decode(store, event))?;
        if derived.len() > MAX_DERIVED {
            return Err(CallError::Failed(format!(
                "derived {} events from one (at most {MAX_DERIVED})",
                derived.len()
            )));
        }
        let size: usize = derived
            .iter()
            .map(|d| {
                let hashes = [&d.transaction_hash, &d.block_hash]
                    .iter()
                    .filter_map(|h| h.as_ref().map(String::len))
                    .sum::<usize>();
                d.json.len() + d.key.len() + d.kind.len() + hashes
            })
            .sum();
        if size > self.limits.output_bytes {
            return Err(CallError::TooLarge(size));
        }
        Ok(derived)
    }

    /// Hand one event to a filter, within the time limit.
    pub fn on_event(&mut self, event: &Event) -> Result<Verdict, CallError> {
        let verdict = self.call(|bindings, store| bindings.call_on_event(store, event))?;
        match &verdict {
            Verdict::Annotate(json) if json.len() > self.limits.output_bytes => Err(CallError::TooLarge(json.len())),
            _ => Ok(verdict),
        }
    }

    /// Hand a batch of events to an indexer, within the time limit; its storage writes and how
    /// much they grow its storage, in bytes. An error it returns fails the call (its writes are
    /// discarded).
    pub fn index(&mut self, events: &[Event]) -> Result<(Vec<Write>, i64), CallError> {
        self.store.data_mut().storage.begin_writes();
        let result = self.call(|bindings, store| bindings.call_index(store, events));
        let state = self.store.data_mut();
        let writes = state.storage.take_writes();
        state.memory.pending = 0;
        result?.map_err(|message| CallError::Failed(super::text::bounded(&message).into_owned()))?;
        Ok(writes)
    }

    /// Hand an HTTP request to the plugin's routes, within the time limit.
    pub fn handle(&mut self, request: &Request) -> Result<Response, CallError> {
        let response = self.call(|bindings, store| bindings.call_handle(store, request))?;
        // Headers and body together: neither may carry more than one call's output.
        let headers: usize = response.headers.iter().map(|(name, value)| name.len() + value.len()).sum();
        match response.body.len().saturating_add(headers) {
            size if size > self.limits.output_bytes => Err(CallError::TooLarge(size)),
            _ => Ok(response),
        }
    }

    /// Make one call within the time limit; it fails when a storage read failed during it
    /// (the plugin then saw "absent" where there may be data).
    fn call<T>(
        &mut self,
        call: impl FnOnce(&Plugin, &mut Store<HostState>) -> wasmtime::Result<T>,
    ) -> Result<T, CallError> {
        self.store.set_epoch_deadline(self.limits.deadline_ticks);
        self.store.data_mut().storage.begin_call(self.limits.timeout() * READ_ALLOWANCE);
        self.store.data_mut().deadline = Instant::now() + self.limits.timeout();
        let result = call(&self.bindings, &mut self.store).map_err(classify);
        match self.store.data_mut().storage.take_failure() {
            Some(failure) => Err(CallError::Failed(failure)),
            None => result,
        }
    }
}

/// How many times its time limit a call's storage reads may take beyond it.
const READ_ALLOWANCE: u32 = 10;

/// Most events one `decode` call may derive.
const MAX_DERIVED: usize = 1000;

impl Event {
    /// The WIT view of a stored event, built once per event for the whole chain.
    pub fn of(event: &StoredEvent) -> Event {
        Event { sequence: event.seq, kind: event.kind.clone(), node: event.node.clone(), json: event.raw.to_string() }
    }
}

fn classify(error: wasmtime::Error) -> CallError {
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallError::Timeout,
        _ => CallError::Trap(error.into()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_contract_version_is_the_wit_package_version() {
        let wit = include_str!("../../../wit/sluice.wit");
        assert!(wit.contains(&format!("package sluice:plugin@{};", super::CONTRACT_VERSION)));
    }
}
