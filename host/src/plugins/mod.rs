//! WASM plugins, in config order. What each does is declared by its manifest (`init`'s answer):
//!
//! - **filters** (`on-event`) keep, drop or annotate every new event, inside the batch's
//!   transaction (the first `drop` ends the chain);
//! - **indexers** (`index`) get the batch's new events of the kinds they list, after the filters,
//!   and write to their own storage; their writes, their cursor and any dead letters commit with
//!   the batch ([`Processor::finish`]);
//! - **routes** (`handle`) answer HTTP requests through their own warm instances ([`Routes`]).
//!
//! A call that traps, runs past its time limit, exhausts its memory or returns too much is
//! counted, logged and its instance recycled; a filter's event passes as if it said `keep`, an
//! indexer's batch is recorded as a dead letter. With `on_error = "halt"`, after
//! `max_consecutive_failures` failures in a row, or when failures take too large a share of its
//! recent calls or time (`max_failure_percent`, `suspension.rs`), the plugin is suspended.

mod bindings;
mod capabilities;
mod files;
mod instance;
mod node;
mod reload;
mod replay;
mod routes;
pub mod runtime;
mod slot;
mod storage;
mod suspension;
mod text;

pub use bindings::{Request, Response};
pub use node::NodeQueries;
pub use reload::{Reload, ReloadStatus};
pub use replay::CatchUp;
pub use routes::{PendingAnswer, RouteError, RouteLimits, Routes, ServedCollections};

use crate::config::PluginConfig;
use crate::store::plugin_data::PluginBatch;
use crate::store::{Location, Outcome, Processor, Read, StoredEvent, Writer};
use anyhow::Context;
use bindings::{Event, Verdict};
use instance::{CallError, Instance, Template};
use serde::Serialize;
use slot::{Replay, Slot};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use wasmtime::Engine;

/// What the host offers plugins besides running them: the database their storage lives in,
/// the nodes they may be granted queries to (by node name), and the chain it stores.
#[derive(Clone)]
pub struct HostServices {
    /// The database.
    pub location: Location,
    /// Nodes with a JSON-RPC URL, by name.
    pub nodes: std::collections::HashMap<String, Arc<NodeQueries>>,
    /// The `[history]` range, if any: part of every indexer's storage id, so adding one
    /// rebuilds the indexers from the chain's past.
    pub history: Option<String>,
}

impl HostServices {
    /// Storage in the database at `location`; no node to query.
    pub fn new(location: Location) -> HostServices {
        HostServices { location, nodes: Default::default(), history: None }
    }

    /// Storage at `location`, queries to every configured node with an `rpc_url`, the history.
    pub fn from_config(config: &crate::config::Config, location: Location) -> anyhow::Result<HostServices> {
        let mut services = HostServices::new(location);
        services.history =
            config.history.as_ref().map(|h| format!("history {}..={:?}", h.from_height.get_ref(), h.to_height));
        for node in &config.nodes {
            if let Some(rpc_url) = &node.rpc_url {
                let runtime = tokio::runtime::Handle::try_current().context("node queries need a tokio runtime")?;
                let queries = NodeQueries::new(rpc_url.get_ref(), runtime)?;
                services.nodes.insert(node.name.get_ref().clone(), Arc::new(queries));
            }
        }
        Ok(services)
    }
}

/// The source name of derived events: `plugin:{name}`.
pub const DERIVED_BY: &str = "plugin:";

/// Every plugin's counters, live ones and catching-up ones, in config order; shared with the
/// API and kept current as plugins are promoted or reloaded.
pub type Registry = Arc<RwLock<Vec<Arc<PluginStats>>>>;

/// The loaded plugins, in the order they run.
pub struct Plugins {
    registry: Registry,
    /// Live plugins, in config order.
    slots: Vec<Slot>,
    /// Indexers and decoders replaying the stored log (new, or a new version); each joins
    /// `slots`, replacing its older version, when it reaches the head.
    catching_up: Vec<Slot>,
    routes: Routes,
    /// Storage ids of older versions to remove, not yet handed to the writer.
    retired: Vec<String>,
    /// Whether a history sync is still storing the chain's past: indexers wait to replay.
    history_syncing: bool,
}

/// Live counters of one plugin, shared with the admin API.
#[derive(Debug, Default, Serialize)]
pub struct PluginStats {
    /// Plugin name from the config.
    pub name: String,
    /// Calls into the plugin (`on-event`, `index`, `handle`).
    pub calls: AtomicU64,
    /// Time spent in those calls, nanoseconds.
    pub busy_ns: AtomicU64,
    /// Events it kept.
    pub kept: AtomicU64,
    /// Events it dropped.
    pub dropped: AtomicU64,
    /// Events it annotated.
    pub annotated: AtomicU64,
    /// Events handed to `index`.
    pub indexed: AtomicU64,
    /// Events `decode` derived (and stored, unless already stored).
    pub derived: AtomicU64,
    /// Highest sequence it has processed (filters and indexers).
    pub last_seq: AtomicU64,
    /// Calls that trapped (panics, out of memory, ...).
    pub traps: AtomicU64,
    /// Calls stopped at the time limit.
    pub timeouts: AtomicU64,
    /// Calls that returned an error or too much output.
    pub errors: AtomicU64,
    /// True once the plugin failed too often in a row (or once, with `on_error = "halt"`);
    /// events pass it by.
    pub suspended: AtomicBool,
    /// True while it replays the stored log (a new indexer or decoder, or a new version).
    pub catching_up: AtomicBool,
    /// True while, before its replay, it waits for the history sync or decoders' replays.
    pub waiting: AtomicBool,
    /// An attached filter (`?filter=` may name it).
    pub attached: bool,
    /// The most recent failure.
    pub last_error: Mutex<Option<String>>,
}

impl Plugins {
    /// Compile (or load from the cache), link and initialise every configured plugin, whose
    /// storage is in the database at `location`. A plugin that fails to load stops start-up
    /// with an error naming it.
    pub fn load(engine: &Engine, configs: &[PluginConfig], services: &HostServices) -> anyhow::Result<Plugins> {
        let mut log = crate::store::open_read(&services.location)?;
        let head = log.last_seq()?;
        let mut plugins = Plugins {
            registry: Registry::default(),
            slots: Vec::new(),
            catching_up: Vec::new(),
            routes: Routes::default(),
            retired: Vec::new(),
            history_syncing: false,
        };
        let mut retired = Vec::new();
        for (position, config) in configs.iter().enumerate() {
            let mut slot = Slot::load(engine, config, services)?;
            slot.position = position;
            retired.extend(plugins.place(slot, head, log.as_mut())?);
        }
        if !retired.is_empty() {
            tracing::info!(?retired, "older plugin versions' storage will be removed");
        }
        plugins.retired = retired;
        plugins.sync_registry();
        Ok(plugins)
    }

    /// Put a newly loaded plugin to work: an indexer or decoder behind the head replays the
    /// log first (its older version, if any, stays live meanwhile); anything else replaces its
    /// older version at once. Returns the storage ids to remove (older versions of one that
    /// went live directly).
    fn place(&mut self, mut slot: Slot, head: u64, log: &mut dyn Read) -> anyhow::Result<Vec<String>> {
        let name = slot.stats.name.clone();
        self.catching_up.retain(|pending| pending.stats.name != name);
        if slot.replays() {
            // Where it stands; a new one replays from `replay_from` in chain order.
            (slot.cursor, slot.replay) = match log.plugin_cursor(slot.template.storage_id())? {
                None => (slot.replay_from.saturating_sub(1).min(head), Replay::Pending),
                Some(cursor) => match cursor.chain {
                    Some(chain) => (cursor.last_seq, Replay::Chain(chain)),
                    None => (cursor.last_seq.min(head), Replay::Sequence),
                },
            };
            if !slot.reached(head) {
                tracing::info!(plugin = %name, from = slot.cursor + 1, head, "replaying the stored log");
                slot.stats.catching_up.store(true, Relaxed);
                if slot.serves_http() {
                    self.routes.set_pending(std::iter::once(name));
                }
                self.catching_up.push(slot);
                return Ok(Vec::new());
            }
        }
        let retired = match slot.replays() {
            true => log.plugin_versions(&name, slot.template.storage_id())?,
            false => Vec::new(),
        };
        self.go_live(slot);
        Ok(retired)
    }

    /// Make `slot` the live version of its plugin, in config order.
    fn go_live(&mut self, slot: Slot) {
        slot.stats.catching_up.store(false, Relaxed);
        self.routes.serve(&slot.stats.name, slot.serving());
        match self.slots.iter().position(|live| live.stats.name == slot.stats.name) {
            Some(old) => self.slots[old] = slot,
            None => {
                let at = self.slots.iter().position(|live| live.position > slot.position).unwrap_or(self.slots.len());
                self.slots.insert(at, slot);
            }
        }
    }

    /// Prepare the store for the loaded plugins: create the indexes they declared and remove
    /// the storage of older versions that live ones replaced.
    pub fn prepare_storage(&mut self, writer: &mut Writer) -> anyhow::Result<()> {
        writer.create_plugin_indexes(&self.declared_indexes())?;
        writer.commit_plugins(&[], &std::mem::take(&mut self.retired))
    }

    /// The storage id of plugin `name` (`None` when there is no such plugin).
    pub fn storage_id(&self, name: &str) -> Option<String> {
        self.find(name).map(|slot| slot.template.storage_id().to_owned())
    }

    /// Whether plugin `name` is an indexer.
    pub fn is_indexer(&self, name: &str) -> bool {
        self.find(name).is_some_and(Slot::indexes)
    }

    fn find(&self, name: &str) -> Option<&Slot> {
        self.slots.iter().chain(&self.catching_up).find(|slot| slot.stats.name == name)
    }

    /// Every plugin's counters, for the API (it follows reloads and promotions).
    pub fn registry(&self) -> Registry {
        self.registry.clone()
    }

    /// Every plugin's counters now.
    pub fn stats(&self) -> Vec<Arc<PluginStats>> {
        self.registry.read().expect("registry lock").clone()
    }

    /// After the set of plugins changed: the registry follows, and an indexer catching up with
    /// no live version stands in for its own filtering and decoding.
    fn sync_registry(&mut self) {
        for pending in &mut self.catching_up {
            pending.standing_in = !self.slots.iter().any(|live| live.stats.name == pending.stats.name);
        }
        let mut all: Vec<&Slot> = self.slots.iter().chain(&self.catching_up).collect();
        all.sort_by_key(|slot| slot.position);
        *self.registry.write().expect("registry lock") = all.into_iter().map(|slot| slot.stats.clone()).collect();
    }

    /// The JSON fields the plugins declared storage indexes on.
    pub fn declared_indexes(&self) -> Vec<String> {
        declared_fields(self.slots.iter().chain(&self.catching_up))
    }

    /// The plugins that serve HTTP, with their own instances (shared: it follows the plugins
    /// as indexers catch up).
    pub fn routes(&self) -> Routes {
        self.routes.clone()
    }

    fn active(&mut self) -> impl Iterator<Item = &mut Slot> {
        self.slots.iter_mut().filter(|slot| !slot.stats.suspended.load(Relaxed))
    }
}

impl PluginStats {
    /// Call `op` on `template`'s warm instance in `slot` (made first when there is none), and
    /// count it: time, and the failure by kind. A failed call drops the instance (a trapped one
    /// cannot be entered again); the failure is logged and kept as `last_error` with `context`.
    fn call<T>(
        &self,
        template: &Template,
        slot: &mut Option<Instance>,
        context: impl Fn() -> String,
        op: impl FnOnce(&mut Instance) -> Result<T, CallError>,
    ) -> Result<T, String> {
        let started = std::time::Instant::now();
        self.calls.fetch_add(1, Relaxed);
        let result = match slot.take() {
            Some(instance) => Ok(instance),
            None => template.instantiate().map_err(CallError::Trap),
        }
        .and_then(|mut instance| {
            let value = op(&mut instance)?;
            *slot = Some(instance);
            Ok(value)
        });
        self.busy_ns.fetch_add(started.elapsed().as_nanos() as u64, Relaxed);
        result.map_err(|error| {
            let counter = match &error {
                CallError::Timeout => &self.timeouts,
                CallError::Trap(_) => &self.traps,
                CallError::TooLarge(_) | CallError::Failed(_) => &self.errors,
            };
            counter.fetch_add(1, Relaxed);
            // The error may hold the plugin's own text: bounded and on one line.
            let message = text::bounded(&format!("{}: {error}", context())).into_owned();
            tracing::warn!(plugin = %self.name, "plugin failed on {message}");
            *self.last_error.lock().expect("stats lock") = Some(message.clone());
            message
        })
    }
}

fn declared_fields<'a>(slots: impl Iterator<Item = &'a Slot>) -> Vec<String> {
    let mut fields: Vec<String> =
        slots.flat_map(|slot| slot.manifest.indexes.iter().map(|spec| spec.field.clone())).collect();
    fields.sort();
    fields.dedup();
    fields
}

impl Processor for Plugins {
    /// Run one event through the filters. The first `drop` ends the chain.
    fn decide(&mut self, event: &StoredEvent) -> Outcome {
        if self.slots.is_empty() && self.catching_up.is_empty() {
            return Outcome::default();
        }
        // Decoders see what sources delivered, not what decoders derived.
        let decodable = !event.node.starts_with(DERIVED_BY);
        let event = Event::of(event);
        let context = || format!("event {} ({})", event.sequence, event.kind);
        let mut annotations = serde_json::Map::new();
        let (mut dropped, mut derived, mut hidden_by) = (false, Vec::new(), Vec::new());
        // Live plugins, then any new indexer still catching up, which filters and decodes live
        // events meanwhile (its index gets them through the replay).
        let standing_in = self.catching_up.iter_mut().filter(|slot| slot.standing_in);
        let chain = self.slots.iter_mut().chain(standing_in).filter(|slot| !slot.stats.suspended.load(Relaxed));
        for slot in chain.filter(|slot| slot.manifest.filter || (decodable && slot.manifest.decode)) {
            slot.stats.last_seq.store(event.sequence, Relaxed);
            if decodable && slot.manifest.decode {
                let decoded = slot.call(context, |i| i.decode(&event)).unwrap_or_default();
                derived.extend(decoded.into_iter().filter_map(|d| slot.derived(d)));
            }
            // After a drop, the filters after it are skipped (attached ones still decide where
            // they are attached); decoders still see the event.
            if !slot.manifest.filter || (dropped && !slot.attached) {
                continue;
            }
            let verdict = slot.call(context, |i| i.on_event(&event));
            let stats = &slot.stats;
            match verdict {
                Some(Verdict::Keep) => _ = stats.kept.fetch_add(1, Relaxed),
                None => {}
                Some(Verdict::Drop) => {
                    stats.dropped.fetch_add(1, Relaxed);
                    match slot.attached {
                        true => hidden_by.push(stats.name.as_str()),
                        false => dropped = true,
                    }
                }
                Some(Verdict::Annotate(json)) => {
                    stats.annotated.fetch_add(1, Relaxed);
                    let value = serde_json::from_str(&json).unwrap_or(serde_json::Value::String(json));
                    annotations.insert(stats.name.clone(), value);
                }
            }
        }
        let annotations = (!annotations.is_empty()).then(|| serde_json::Value::Object(annotations).to_string());
        let hidden_by = (!hidden_by.is_empty()).then(|| hidden_by.join(","));
        Outcome { dropped, annotations, hidden_by, derived }
    }

    /// Hand the batch's new events to the indexers; what each wrote, its cursor and its dead
    /// letters (a decoder's cursor), to commit with the batch.
    fn finish(&mut self, stored: &[(StoredEvent, Outcome)], last_seq: u64) -> Vec<PluginBatch> {
        let events: Vec<&StoredEvent> = stored.iter().map(|(event, _)| event).collect();
        let live = self.active().filter(|slot| slot.replays());
        live.map(|slot| slot.index(&events, last_seq).logging(&slot.manifest.served_collections)).collect()
    }
}
