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
//! indexer's batch is recorded as a dead letter. With `on_error = "halt"`, or after
//! `max_consecutive_failures` failures in a row, the plugin is suspended.

mod capabilities;
mod instance;
mod routes;
pub mod runtime;
mod storage;

pub use instance::{Request, Response};
pub use routes::{RouteError, Routes};

use crate::config::{OnError, PluginConfig};
use crate::store::plugin_data;
use crate::store::plugin_data::PluginBatch;
use crate::store::{Location, Outcome, Processor, StoredEvent, reader};
use anyhow::Context;
use instance::{CallError, Event, Instance, Limits, Manifest, Template, Verdict};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::Engine;

/// The loaded plugins, in the order they run.
pub struct Plugins {
    /// Live plugins, in config order.
    slots: Vec<Slot>,
    /// Indexers replaying the stored log (new, or a new version); each joins `slots`, replacing
    /// its older version, when it reaches the head.
    catching_up: Vec<Slot>,
    routes: Routes,
}

struct Slot {
    template: Template,
    instance: Option<Instance>,
    manifest: Manifest,
    /// Position in the config.
    position: usize,
    /// Indexers: the last sequence processed.
    cursor: u64,
    consecutive_failures: u32,
    max_consecutive_failures: u32,
    on_error: OnError,
    stats: Arc<PluginStats>,
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
    /// True while it replays the stored log (a new indexer or a new version of one).
    pub catching_up: AtomicBool,
    /// The most recent failure.
    pub last_error: Mutex<Option<String>>,
}

impl Plugins {
    /// Compile (or load from the cache), link and initialise every configured plugin, whose
    /// storage is in the database at `location`. A plugin that fails to load stops start-up
    /// with an error naming it.
    pub fn load(engine: &Engine, configs: &[PluginConfig], location: &Location) -> anyhow::Result<Plugins> {
        let conn = reader::open_read_only(location)?;
        let head = reader::last_seq(&conn)?;
        let mut plugins = Plugins { slots: Vec::new(), catching_up: Vec::new(), routes: Routes::default() };
        for (position, config) in configs.iter().enumerate() {
            let mut slot = Slot::load(engine, config, location)?;
            slot.position = position;
            if slot.indexes() {
                // Where its storage stands; a new one starts at `replay_from`.
                let stored = plugin_data::cursor(&conn, slot.template.storage_id())?;
                slot.cursor = stored.unwrap_or(config.replay_from.saturating_sub(1)).min(head);
                if slot.cursor < head {
                    tracing::info!(plugin = %slot.stats.name, from = slot.cursor + 1, head, "replaying the stored log");
                    slot.stats.catching_up.store(true, Relaxed);
                    plugins.catching_up.push(slot);
                    continue;
                }
            }
            plugins.slots.push(slot);
        }
        plugins.routes = Routes::new(plugins.slots.iter().filter(|s| s.manifest.routes).map(Slot::route));
        plugins
            .routes
            .set_pending(plugins.catching_up.iter().filter(|s| s.manifest.routes).map(|s| s.stats.name.clone()));
        Ok(plugins)
    }

    /// The storage id of indexer `name` (`None` when there is no such indexer).
    pub fn storage_id(&self, name: &str) -> Option<String> {
        let all = self.slots.iter().chain(&self.catching_up);
        all.filter(|slot| slot.indexes()).find(|slot| slot.stats.name == name).map(|s| s.template.storage_id().to_owned())
    }

    /// Whether some indexers are replaying the stored log.
    pub fn catching_up(&self) -> bool {
        self.catching_up.iter().any(|slot| !slot.stats.suspended.load(Relaxed))
    }

    /// Replay up to `max` stored events (read through `log`, up to `head`) into each indexer
    /// that is catching up. Returns what to commit and the storage ids to remove (older
    /// versions of the indexers that reached the head, which take their place now).
    pub fn catch_up(
        &mut self,
        log: &rusqlite::Connection,
        head: u64,
        max: usize,
    ) -> anyhow::Result<(Vec<PluginBatch>, Vec<String>)> {
        let mut batches = Vec::new();
        for slot in self.catching_up.iter_mut().filter(|slot| !slot.stats.suspended.load(Relaxed)) {
            let mut events = reader::log_after(log, slot.cursor, max)?;
            events.retain(|event| event.seq <= head);
            let last_seq = events.last().map_or(head, |event| event.seq);
            batches.push(slot.index(&events, last_seq));
        }
        let mut retired = Vec::new();
        while let Some(at) = self.catching_up.iter().position(|slot| slot.cursor >= head) {
            let slot = self.catching_up.remove(at);
            retired.extend(plugin_data::other_versions(log, &slot.stats.name, slot.template.storage_id())?);
            tracing::info!(plugin = %slot.stats.name, head, "caught up with the stored log; now live");
            slot.stats.catching_up.store(false, Relaxed);
            if slot.manifest.routes {
                self.routes.replace(slot.route());
            }
            match self.slots.iter().position(|live| live.stats.name == slot.stats.name) {
                Some(old) => self.slots[old] = slot,
                None => {
                    let at =
                        self.slots.iter().position(|live| live.position > slot.position).unwrap_or(self.slots.len());
                    self.slots.insert(at, slot);
                }
            }
        }
        Ok((batches, retired))
    }

    /// Counters of every plugin, for the API.
    pub fn stats(&self) -> Vec<Arc<PluginStats>> {
        self.slots.iter().map(|slot| slot.stats.clone()).collect()
    }

    /// The storage indexes the plugins declared: (plugin, collection, field).
    pub fn declared_indexes(&self) -> Vec<(String, String, String)> {
        let declared = self.slots.iter().flat_map(|slot| {
            slot.manifest
                .indexes
                .iter()
                .map(|spec| (slot.stats.name.clone(), spec.collection.clone(), spec.field.clone()))
        });
        declared.collect()
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

impl Processor for Plugins {
    /// Run one event through the filters. The first `drop` ends the chain.
    fn decide(&mut self, event: &StoredEvent) -> Outcome {
        if self.slots.is_empty() {
            return Outcome::default();
        }
        let event = Event::of(event);
        let mut annotations = serde_json::Map::new();
        let mut dropped = false;
        for slot in self.active().filter(|slot| slot.manifest.filter) {
            slot.stats.last_seq.store(event.sequence, Relaxed);
            let verdict = slot.call(&format!("event {} ({})", event.sequence, event.kind), |i| i.on_event(&event));
            let stats = &slot.stats;
            match verdict {
                Some(Verdict::Keep) => _ = stats.kept.fetch_add(1, Relaxed),
                None => {}
                Some(Verdict::Drop) => {
                    stats.dropped.fetch_add(1, Relaxed);
                    dropped = true;
                    break;
                }
                Some(Verdict::Annotate(json)) => {
                    stats.annotated.fetch_add(1, Relaxed);
                    let value = serde_json::from_str(&json).unwrap_or(serde_json::Value::String(json));
                    annotations.insert(stats.name.clone(), value);
                }
            }
        }
        let annotations = (!annotations.is_empty()).then(|| serde_json::Value::Object(annotations).to_string());
        Outcome { dropped, annotations }
    }

    /// Hand the batch's new events to the indexers; what each wrote, its cursor and its dead
    /// letters, to commit with the batch.
    fn finish(&mut self, stored: &[(StoredEvent, Outcome)], last_seq: u64) -> Vec<PluginBatch> {
        let events: Vec<&StoredEvent> = stored.iter().map(|(event, _)| event).collect();
        self.active().filter(|slot| slot.indexes()).map(|slot| slot.index(&events, last_seq)).collect()
    }
}

impl Slot {
    /// Whether it is an indexer.
    fn indexes(&self) -> bool {
        !self.manifest.index_kinds.is_empty()
    }

    /// What the route table needs of it.
    fn route(&self) -> (Template, Arc<PluginStats>) {
        (self.template.clone(), self.stats.clone())
    }

    /// Index the `events` of its kinds; the batch to commit, with its cursor at `last_seq`
    /// (before the failed events for a plugin that halts).
    fn index<E: std::borrow::Borrow<StoredEvent>>(&mut self, events: &[E], last_seq: u64) -> PluginBatch {
        let kinds = &self.manifest.index_kinds;
        let events: Vec<Event> = events
            .iter()
            .map(|event| event.borrow())
            .filter(|event| kinds.iter().any(|kind| kind == "*" || *kind == event.kind))
            .map(Event::of)
            .collect();
        let mut batch =
            PluginBatch { plugin: self.template.storage_id().to_owned(), last_seq, ..PluginBatch::default() };
        if let (Some(first), Some(last)) = (events.first(), events.last()) {
            let range = (first.sequence, last.sequence);
            let context = format!("events {}..={}", range.0, range.1);
            self.stats.indexed.fetch_add(events.len() as u64, Relaxed);
            match self.call(&context, |instance| instance.index(&events)) {
                Some(Ok(writes)) => batch.writes = writes,
                Some(Err(message)) => {
                    self.fail(&context, CallError::Failed(message.clone()));
                    batch.failures.push((range.0, range.1, message));
                }
                None => {
                    let error = self.stats.last_error.lock().expect("stats lock").clone().unwrap_or_default();
                    batch.failures.push((range.0, range.1, error));
                }
            }
            // A halted plugin's cursor stays before the batch it failed on.
            if !batch.failures.is_empty() && self.on_error == OnError::Halt {
                batch.last_seq = range.0 - 1;
            }
        }
        self.cursor = batch.last_seq;
        self.stats.last_seq.store(batch.last_seq, Relaxed);
        batch
    }

    fn load(engine: &Engine, config: &PluginConfig, location: &Location) -> anyhow::Result<Slot> {
        let name = config.name.get_ref();
        let failed = |e: anyhow::Error| e.context(format!("plugin {name:?}"));
        let component = runtime::compile(engine, config.path.get_ref()).map_err(failed)?;
        let limits = Limits {
            deadline_ticks: runtime::ticks(Duration::from_millis(config.timeout_ms)),
            memory_bytes: usize::try_from(config.memory_mib << 20).unwrap_or(usize::MAX),
            output_bytes: usize::try_from(config.max_output_kib << 10).unwrap_or(usize::MAX),
        };
        let config_json = serde_json::to_string(&config.config)?;
        let code =
            std::fs::read(config.path.get_ref()).with_context(|| format!("plugin {name:?}: reading its code"))?;
        let version = blake3::Hasher::new().update(&code).update(config_json.as_bytes()).finalize().to_hex();
        let storage_id = Arc::from(format!("{name}@{}", &version[..16]));
        let template = Template::new(
            Arc::from(name.as_str()),
            storage_id,
            engine,
            &component,
            config_json,
            limits,
            location.clone(),
        )
        .map_err(failed)?;
        let instance = template.instantiate().map_err(failed)?;
        let manifest = instance.manifest.clone();
        tracing::info!(plugin = %name, path = %config.path.get_ref().display(), ?manifest, "plugin loaded");
        Ok(Slot {
            template,
            instance: Some(instance),
            manifest,
            position: 0,
            cursor: 0,
            consecutive_failures: 0,
            max_consecutive_failures: config.max_consecutive_failures,
            on_error: config.on_error,
            stats: Arc::new(PluginStats { name: name.clone(), ..PluginStats::default() }),
        })
    }

    /// Call the plugin on its warm instance (a fresh one after a failure); `None` when the call
    /// failed (already counted and logged, with `context`).
    fn call<T>(&mut self, context: &str, op: impl FnOnce(&mut Instance) -> Result<T, CallError>) -> Option<T> {
        let started = Instant::now();
        self.stats.calls.fetch_add(1, Relaxed);
        let result = match self.instance.take() {
            Some(instance) => Ok(instance),
            None => self.template.instantiate().map_err(CallError::Trap),
        }
        .and_then(|mut instance| {
            let value = op(&mut instance)?;
            self.instance = Some(instance);
            Ok(value)
        });
        self.stats.busy_ns.fetch_add(started.elapsed().as_nanos() as u64, Relaxed);
        match result {
            Ok(value) => {
                self.consecutive_failures = 0;
                Some(value)
            }
            Err(error) => {
                self.fail(context, error);
                None
            }
        }
    }

    /// Count and log a failure; suspend the plugin when its policy says so.
    fn fail(&mut self, context: &str, error: CallError) {
        let stats = &self.stats;
        match error {
            CallError::Timeout => stats.timeouts.fetch_add(1, Relaxed),
            CallError::Trap(_) => stats.traps.fetch_add(1, Relaxed),
            CallError::TooLarge(_) | CallError::Failed(_) => stats.errors.fetch_add(1, Relaxed),
        };
        let message = format!("{context}: {error}");
        tracing::warn!(plugin = %stats.name, "plugin failed on {message}");
        *stats.last_error.lock().expect("stats lock") = Some(message);
        self.consecutive_failures += 1;
        if self.on_error == OnError::Halt || self.consecutive_failures >= self.max_consecutive_failures {
            stats.suspended.store(true, Relaxed);
            tracing::error!(
                plugin = %stats.name,
                failures = self.consecutive_failures,
                "plugin suspended; events now pass it by"
            );
        }
    }
}
