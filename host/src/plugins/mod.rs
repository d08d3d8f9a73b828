//! WASM plugins: every stored event goes through the configured plugins, in config order.
//!
//! A plugin keeps, drops or annotates the event. A plugin that traps, runs past its time limit or
//! exhausts its memory is counted, logged and recycled; the event passes as if it had said
//! `keep`. After `max_consecutive_failures` failures in a row the plugin is suspended.

mod capabilities;
mod instance;
pub mod runtime;

use crate::config::PluginConfig;
use crate::store::{Outcome, StoredEvent};
use instance::{CallError, Event, Instance, Limits, Template, Verdict};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::Engine;

/// The loaded plugins, in the order they run.
pub struct Plugins {
    slots: Vec<Slot>,
}

struct Slot {
    template: Template,
    instance: Option<Instance>,
    consecutive_failures: u32,
    max_consecutive_failures: u32,
    stats: Arc<PluginStats>,
}

/// Live counters of one plugin, shared with the admin API.
#[derive(Debug, Default, Serialize)]
pub struct PluginStats {
    /// Plugin name from the config.
    pub name: String,
    /// Calls to `on-event`.
    pub calls: AtomicU64,
    /// Events it kept.
    pub kept: AtomicU64,
    /// Events it dropped.
    pub dropped: AtomicU64,
    /// Events it annotated.
    pub annotated: AtomicU64,
    /// Calls that trapped (panics, out of memory, ...).
    pub traps: AtomicU64,
    /// Calls stopped at the time limit.
    pub timeouts: AtomicU64,
    /// True once the plugin failed too often in a row; events pass it by.
    pub suspended: AtomicBool,
    /// The most recent failure.
    pub last_error: Mutex<Option<String>>,
}

impl Plugins {
    /// Compile (or load from the cache), link and initialise every configured plugin.
    /// A plugin that fails to load stops start-up with an error naming it.
    pub fn load(engine: &Engine, configs: &[PluginConfig]) -> anyhow::Result<Plugins> {
        let slots = configs.iter().map(|config| Slot::load(engine, config)).collect::<Result<_, _>>()?;
        Ok(Plugins { slots })
    }

    /// Counters of every plugin, for the API.
    pub fn stats(&self) -> Vec<Arc<PluginStats>> {
        self.slots.iter().map(|slot| slot.stats.clone()).collect()
    }

    /// Run one event through the chain. The first `drop` ends it.
    pub fn process(&mut self, event: &StoredEvent) -> Outcome {
        if self.slots.is_empty() {
            return Outcome::default();
        }
        let event = Event::of(event);
        let mut annotations = serde_json::Map::new();
        let mut dropped = false;
        for slot in self.slots.iter_mut().filter(|slot| !slot.stats.suspended.load(Relaxed)) {
            match slot.call(&event) {
                Some(Verdict::Keep) | None => {}
                Some(Verdict::Drop) => {
                    dropped = true;
                    break;
                }
                Some(Verdict::Annotate(json)) => {
                    let value = serde_json::from_str(&json).unwrap_or(serde_json::Value::String(json));
                    annotations.insert(slot.stats.name.clone(), value);
                }
            }
        }
        let annotations = (!annotations.is_empty()).then(|| serde_json::Value::Object(annotations).to_string());
        Outcome { dropped, annotations }
    }
}

impl Slot {
    fn load(engine: &Engine, config: &PluginConfig) -> anyhow::Result<Slot> {
        let name = config.name.get_ref();
        let failed = |e: anyhow::Error| e.context(format!("plugin {name:?}"));
        let component = runtime::compile(engine, config.path.get_ref()).map_err(failed)?;
        let limits = Limits {
            deadline_ticks: runtime::ticks(Duration::from_millis(config.timeout_ms)),
            memory_bytes: usize::try_from(config.memory_mib << 20).unwrap_or(usize::MAX),
        };
        let config_json = serde_json::to_string(&config.config)?;
        let template =
            Template::new(Arc::from(name.as_str()), engine, &component, config_json, limits).map_err(failed)?;
        let instance = template.instantiate().map_err(failed)?;
        tracing::info!(plugin = %name, path = %config.path.get_ref().display(), "plugin loaded");
        Ok(Slot {
            template,
            instance: Some(instance),
            consecutive_failures: 0,
            max_consecutive_failures: config.max_consecutive_failures,
            stats: Arc::new(PluginStats { name: name.clone(), ..PluginStats::default() }),
        })
    }

    /// Call the plugin; `None` when it failed (already counted and logged).
    fn call(&mut self, event: &Event) -> Option<Verdict> {
        let stats = &self.stats;
        stats.calls.fetch_add(1, Relaxed);
        let result = match self.instance.take() {
            Some(instance) => Ok(instance),
            None => self.template.instantiate().map_err(CallError::Trap),
        }
        .and_then(|mut instance| {
            let verdict = instance.on_event(event)?;
            self.instance = Some(instance);
            Ok(verdict)
        });
        match result {
            Ok(verdict) => {
                self.consecutive_failures = 0;
                let counter = match verdict {
                    Verdict::Keep => &stats.kept,
                    Verdict::Drop => &stats.dropped,
                    Verdict::Annotate(_) => &stats.annotated,
                };
                counter.fetch_add(1, Relaxed);
                Some(verdict)
            }
            Err(error) => {
                self.fail(event, error);
                None
            }
        }
    }

    /// Count and log a failure; the instance is already discarded and will be rebuilt.
    fn fail(&mut self, event: &Event, error: CallError) {
        let stats = &self.stats;
        match error {
            CallError::Timeout => stats.timeouts.fetch_add(1, Relaxed),
            CallError::Trap(_) => stats.traps.fetch_add(1, Relaxed),
        };
        let message = format!("event {} ({}): {error}", event.sequence, event.kind);
        tracing::warn!(plugin = %stats.name, "plugin failed on {message}");
        *stats.last_error.lock().expect("stats lock") = Some(message);
        self.consecutive_failures += 1;
        if self.consecutive_failures >= self.max_consecutive_failures {
            stats.suspended.store(true, Relaxed);
            tracing::error!(
                plugin = %stats.name,
                failures = self.consecutive_failures,
                "plugin suspended after failing repeatedly; events now pass it by"
            );
        }
    }
}
