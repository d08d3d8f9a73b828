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
pub use routes::Routes;

use crate::config::{OnError, PluginConfig};
use crate::store::plugin_data::PluginBatch;
use crate::store::{Location, Outcome, Processor, StoredEvent};
use instance::{CallError, Event, Instance, Limits, Manifest, Template, Verdict};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::Engine;

/// The loaded plugins, in the order they run.
pub struct Plugins {
    slots: Vec<Slot>,
}

struct Slot {
    template: Template,
    instance: Option<Instance>,
    manifest: Manifest,
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
    /// The most recent failure.
    pub last_error: Mutex<Option<String>>,
}

impl Plugins {
    /// Compile (or load from the cache), link and initialise every configured plugin, whose
    /// storage is in the database at `location`. A plugin that fails to load stops start-up
    /// with an error naming it.
    pub fn load(engine: &Engine, configs: &[PluginConfig], location: &Location) -> anyhow::Result<Plugins> {
        let slots = configs.iter().map(|config| Slot::load(engine, config, location)).collect::<Result<_, _>>()?;
        Ok(Plugins { slots })
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

    /// The plugins that serve HTTP, with their own instances.
    pub fn routes(&self) -> Routes {
        Routes::new(self.slots.iter().filter(|s| s.manifest.routes).map(|s| (s.template.clone(), s.stats.clone())))
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
        let mut batches = Vec::new();
        for slot in self.active().filter(|slot| !slot.manifest.index_kinds.is_empty()) {
            let kinds = &slot.manifest.index_kinds;
            let events: Vec<Event> = stored
                .iter()
                .filter(|(event, _)| kinds.iter().any(|kind| kind == "*" || *kind == event.kind))
                .map(|(event, _)| Event::of(event))
                .collect();
            let mut batch = PluginBatch { plugin: slot.stats.name.clone(), last_seq, ..PluginBatch::default() };
            if let (Some(first), Some(last)) = (events.first(), events.last()) {
                let range = (first.sequence, last.sequence);
                let context = format!("events {}..={}", range.0, range.1);
                slot.stats.indexed.fetch_add(events.len() as u64, Relaxed);
                match slot.call(&context, |instance| instance.index(&events)) {
                    Some(Ok(writes)) => batch.writes = writes,
                    Some(Err(message)) => {
                        slot.fail(&context, CallError::Failed(message.clone()));
                        batch.failures.push((range.0, range.1, message));
                    }
                    None => {
                        let error = slot.stats.last_error.lock().expect("stats lock").clone().unwrap_or_default();
                        batch.failures.push((range.0, range.1, error));
                    }
                }
                // A halted plugin's cursor stays before the batch it failed on.
                if !batch.failures.is_empty() && slot.on_error == OnError::Halt {
                    batch.last_seq = range.0 - 1;
                }
            }
            slot.stats.last_seq.store(batch.last_seq, Relaxed);
            batches.push(batch);
        }
        batches
    }
}

impl Slot {
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
        let template =
            Template::new(Arc::from(name.as_str()), engine, &component, config_json, limits, location.clone())
                .map_err(failed)?;
        let instance = template.instantiate().map_err(failed)?;
        let manifest = instance.manifest.clone();
        tracing::info!(plugin = %name, path = %config.path.get_ref().display(), ?manifest, "plugin loaded");
        Ok(Slot {
            template,
            instance: Some(instance),
            manifest,
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
