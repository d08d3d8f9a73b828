//! Reloading plugins without a restart: what changed in the config is loaded (compiled,
//! linked, initialised) off the pipeline thread into a [`Reload`]; the pipeline applies it
//! between two batches, so no event is lost, repeated or reordered at the switch.

use super::slot::{Build, Slot};
use super::{HostServices, Plugins, declared_fields};
use crate::config::PluginConfig;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use wasmtime::Engine;

/// New or changed plugins, loaded and ready to switch to.
pub struct Reload {
    /// Every configured plugin's name, in the new config order.
    order: Vec<String>,
    /// The plugins that are new or changed.
    changed: Vec<Slot>,
}

impl Reload {
    /// Load the plugins of `configs` whose version differs from `running` (name → version).
    /// Any plugin that fails to load fails the whole reload: the running set stays.
    pub fn prepare(
        engine: &Engine,
        configs: &[PluginConfig],
        services: &HostServices,
        running: &HashMap<String, String>,
    ) -> anyhow::Result<Reload> {
        let mut changed = Vec::new();
        for (position, config) in configs.iter().enumerate() {
            let build = Build::read(config)?;
            if running.get(config.name.get_ref()) != Some(&build.version) {
                let mut slot = Slot::from_build(engine, config, build, services)?;
                slot.position = position;
                changed.push(slot);
            }
        }
        Ok(Reload { order: configs.iter().map(|c| c.name.get_ref().clone()).collect(), changed })
    }

    /// Whether it changes nothing.
    pub fn is_empty(&self, running: &HashMap<String, String>, running_order: &[String]) -> bool {
        self.changed.is_empty() && self.order == running_order && running.len() == running_order.len()
    }

    /// The plugins' names in the new config order.
    pub fn order(&self) -> &[String] {
        &self.order
    }

    /// The versions running once it is applied.
    pub fn versions(&self, running: &HashMap<String, String>) -> HashMap<String, String> {
        let mut versions: HashMap<String, String> =
            running.iter().filter(|(name, _)| self.order.contains(name)).map(|(n, v)| (n.clone(), v.clone())).collect();
        versions.extend(self.changed.iter().map(|slot| (slot.stats.name.clone(), slot.version.clone())));
        versions
    }

    /// The JSON fields its plugins index their storage on.
    pub fn declared_indexes(&self) -> Vec<String> {
        declared_fields(self.changed.iter())
    }
}

impl Plugins {
    /// Each running plugin's version (the newest, for one that is catching up).
    pub fn versions(&self) -> HashMap<String, String> {
        let all = self.slots.iter().chain(&self.catching_up);
        all.map(|slot| (slot.stats.name.clone(), slot.version.clone())).collect()
    }

    /// Switch to `reload`: plugins no longer configured stop; new and changed ones take their
    /// place (an indexer behind `head` first replays the log read through `log`, its older
    /// version running until then); the order follows the new config. Returns the storage ids
    /// to remove.
    pub fn apply(
        &mut self,
        reload: Reload,
        head: u64,
        log: &mut dyn crate::store::Read,
    ) -> anyhow::Result<Vec<String>> {
        let position = |name: &str| reload.order.iter().position(|n| n == name);
        for gone in self.slots.iter().chain(&self.catching_up).filter(|slot| position(&slot.stats.name).is_none()) {
            tracing::info!(plugin = %gone.stats.name, "plugin removed from the config: stopped");
            self.routes.remove(&gone.stats.name);
        }
        self.slots.retain(|slot| position(&slot.stats.name).is_some());
        self.catching_up.retain(|slot| position(&slot.stats.name).is_some());
        for slot in self.slots.iter_mut().chain(&mut self.catching_up) {
            slot.position = position(&slot.stats.name).unwrap_or(usize::MAX);
        }
        self.slots.sort_by_key(|slot| slot.position);
        let mut retired = Vec::new();
        for slot in reload.changed {
            tracing::info!(plugin = %slot.stats.name, version = %&slot.version[..16], "plugin reloaded");
            retired.extend(self.place(slot, head, log)?);
        }
        self.sync_registry();
        Ok(retired)
    }
}

/// How reloading goes, for `/status`.
#[derive(Debug, Default, serde::Serialize)]
pub struct ReloadStatus {
    /// Reloads applied.
    pub reloads: AtomicU64,
    /// Reloads refused (an invalid config, a plugin that does not load): the running plugins
    /// stayed.
    pub failures: AtomicU64,
    /// Why the last reload was refused, until one succeeds.
    pub last_error: Mutex<Option<String>>,
    /// How long the pipeline paused to switch, last time, in microseconds.
    pub last_pause_us: AtomicU64,
}

impl ReloadStatus {
    /// Record a refused reload.
    pub fn refused(&self, error: String) {
        tracing::error!("plugin reload refused, the running plugins stay: {error}");
        self.failures.fetch_add(1, Relaxed);
        *self.last_error.lock().expect("status lock") = Some(error);
    }

    /// Record an applied reload and the pause it took.
    pub fn applied(&self, pause: std::time::Duration) {
        tracing::info!("plugins reloaded; the pipeline paused {pause:.1?}");
        self.reloads.fetch_add(1, Relaxed);
        self.last_pause_us.store(pause.as_micros() as u64, Relaxed);
        *self.last_error.lock().expect("status lock") = None;
    }
}
