//! One loaded plugin: its template, warm instance, manifest, cursor and failure policy.

use super::instance::{CallError, DerivedEvent, Event, Grants, Instance, Limits, Manifest, Template};
use super::routes::RouteLimits;
use super::suspension::FailurePolicy;
use super::{HostServices, PluginStats, runtime};
use crate::config::{OnError, PluginConfig};
use crate::event::NodeEvent;
use crate::store::plugin_data::PluginBatch;
use crate::store::{Derived, StoredEvent};
use anyhow::Context;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use wasmtime::Engine;

/// A loaded plugin.
pub(super) struct Slot {
    pub template: Template,
    instance: Option<Instance>,
    pub manifest: Manifest,
    /// Fingerprint of its code, config and limits.
    pub version: String,
    /// Indexers: where a new version starts replaying.
    pub replay_from: u64,
    /// Position in the config.
    pub position: usize,
    /// Indexers: the last sequence processed.
    pub cursor: u64,
    /// Catching up with no live version: it filters and decodes live events meanwhile.
    pub standing_in: bool,
    /// A filter whose drops only hide events where it is attached.
    pub attached: bool,
    /// Indexers: the attached filter whose kept events it takes.
    input: Option<String>,
    failures: FailurePolicy,
    on_error: OnError,
    route_limits: RouteLimits,
    pub stats: Arc<PluginStats>,
}

impl Slot {
    /// Whether it is an indexer.
    pub fn indexes(&self) -> bool {
        !self.manifest.index_kinds.is_empty()
    }

    /// A decoded event as the store takes it; `None` (counted as an error) when it is not
    /// one: a type that is not a name or that a source emits, JSON that does not parse (or
    /// nests too deep to serve), a height out of range.
    pub fn derived(&self, event: DerivedEvent) -> Option<Derived> {
        let name = &self.stats.name;
        let problem = crate::event::derived_kind_problem(&event.kind)
            .or_else(|| crate::event::json_problem(&event.json))
            .or_else(|| event.block_height.is_some_and(|h| i64::try_from(h).is_err()).then_some("height out of range"));
        if let Some(problem) = problem {
            self.stats.errors.fetch_add(1, Relaxed);
            let kind = super::text::bounded(&event.kind);
            tracing::warn!(plugin = %name, %kind, "a derived event was refused: {problem}");
            *self.stats.last_error.lock().expect("stats lock") = Some(format!("derived a {kind}: {problem}"));
            return None;
        }
        self.stats.derived.fetch_add(1, Relaxed);
        Some(Derived {
            plugin: format!("{}{name}", super::DERIVED_BY),
            event: NodeEvent {
                key: format!("derived:{name}:{}", event.key),
                kind: event.kind,
                block_hash: event.block_hash.map(|h| h.to_lowercase()),
                block_height: event.block_height,
                transaction_hash: event.transaction_hash.map(|h| h.to_lowercase()),
                era_id: None,
                account: None,
                raw: event.json,
            },
        })
    }

    /// What the route table needs of it.
    pub fn route(&self) -> (Template, Arc<PluginStats>, RouteLimits) {
        (self.template.clone(), self.stats.clone(), self.route_limits)
    }

    /// Index the `events` of its kinds; the batch to commit, with its cursor at `last_seq`
    /// (before the failed events for a plugin that halts).
    pub fn index<E: std::borrow::Borrow<StoredEvent>>(&mut self, events: &[E], last_seq: u64) -> PluginBatch {
        let kinds = &self.manifest.index_kinds;
        let events: Vec<Event> = events
            .iter()
            .map(|event| event.borrow())
            .filter(|event| kinds.iter().any(|kind| kind == "*" || *kind == event.kind))
            .filter(|event| self.input.as_ref().is_none_or(|input| !event.hidden_by(input)))
            .map(Event::of)
            .collect();
        let mut batch =
            PluginBatch { plugin: self.template.storage_id().to_owned(), last_seq, ..PluginBatch::default() };
        if let (Some(first), Some(last)) = (events.first(), events.last()) {
            let range = (first.sequence, last.sequence);
            let context = format!("events {}..={}", range.0, range.1);
            self.stats.indexed.fetch_add(events.len() as u64, Relaxed);
            match self.call(|| context.clone(), |instance| instance.index(&events)) {
                Some((writes, bytes_delta)) => (batch.writes, batch.bytes_delta) = (writes, bytes_delta),
                None => {
                    let error = self.stats.last_error.lock().expect("stats lock").clone().unwrap_or_default();
                    batch.failures.push((range.0, range.1, error));
                }
            }
            // A halted plugin's cursor stays before the batch it failed on.
            if !batch.failures.is_empty() && self.on_error == OnError::Halt {
                batch.last_seq = range.0.saturating_sub(1);
            }
        }
        self.cursor = batch.last_seq;
        self.stats.last_seq.store(batch.last_seq, Relaxed);
        batch
    }

    /// Load the plugin `config` names: compile (or take from the cache), link, initialise.
    pub fn load(engine: &Engine, config: &PluginConfig, services: &HostServices) -> anyhow::Result<Slot> {
        Slot::from_build(engine, config, Build::read(config)?, services)
    }

    /// Load a plugin from its `build`.
    pub fn from_build(
        engine: &Engine,
        config: &PluginConfig,
        build: Build,
        services: &HostServices,
    ) -> anyhow::Result<Slot> {
        let name = config.name.get_ref();
        let failed = |e: anyhow::Error| e.context(format!("plugin {name:?}"));
        let component = runtime::compile(engine, &build.code, config.path.get_ref()).map_err(failed)?;
        let Build { config_json, limits, storage_id, version, .. } = build;
        let template = Template::new(
            Arc::from(name.as_str()),
            Arc::from(storage_id),
            engine,
            &component,
            config_json,
            limits,
            services,
            &Grants {
                node: config.node.as_ref().map(|node| node.get_ref().as_str()),
                files: config.files.as_ref().map(|files| files.get_ref().as_path()),
            },
        )
        .map_err(failed)?;
        let instance = template.instantiate().map_err(failed)?;
        let manifest = instance.manifest.clone();
        if config.attached && !manifest.filter {
            return Err(failed(anyhow::anyhow!(
                "`attached = true` is for filters, and its manifest says `filter: false`"
            )));
        }
        tracing::info!(plugin = %name, path = %config.path.get_ref().display(), ?manifest, "plugin loaded");
        Ok(Slot {
            template,
            instance: Some(instance),
            manifest,
            version,
            replay_from: config.replay_from,
            position: 0,
            cursor: 0,
            standing_in: false,
            attached: config.attached,
            input: config.input.as_ref().map(|input| input.get_ref().clone()),
            failures: FailurePolicy::new(config),
            on_error: config.on_error,
            route_limits: RouteLimits { workers: config.route_workers, queue: config.route_queue },
            stats: Arc::new(PluginStats { name: name.clone(), attached: config.attached, ..PluginStats::default() }),
        })
    }

    /// Call the plugin on its warm instance (a fresh one after a failure); `None` when the call
    /// failed (counted and logged, with `context`; the plugin may be suspended).
    pub fn call<T>(
        &mut self,
        context: impl Fn() -> String,
        op: impl FnOnce(&mut Instance) -> Result<T, CallError>,
    ) -> Option<T> {
        let started = std::time::Instant::now();
        let result = self.stats.call(&self.template, &mut self.instance, context, op);
        if let Some(reason) = self.failures.record(result.is_err(), started.elapsed()) {
            self.stats.suspended.store(true, Relaxed);
            tracing::error!(plugin = %self.stats.name, "plugin suspended ({reason}); events now pass it by");
        }
        result.ok()
    }
}

/// A plugin as configured, read but not loaded: its code, config and limits, and the versions
/// they make.
pub struct Build {
    code: Vec<u8>,
    config_json: String,
    limits: Limits,
    /// Whose entries its storage holds: the name and a hash of the code and config.
    storage_id: String,
    /// Fingerprint of everything that changes how it runs: a reload replaces it when this
    /// differs.
    pub version: String,
}

impl Build {
    /// Read the plugin's code and settings.
    pub fn read(config: &PluginConfig) -> anyhow::Result<Build> {
        let name = config.name.get_ref();
        let path = config.path.get_ref();
        let code = std::fs::read(path).with_context(|| format!("plugin {name:?}: reading {}", path.display()))?;
        let limits = Limits {
            deadline_ticks: runtime::ticks(Duration::from_millis(config.timeout_ms)),
            memory_bytes: usize::try_from(config.memory_mib << 20).unwrap_or(usize::MAX),
            output_bytes: usize::try_from(config.max_output_kib << 10).unwrap_or(usize::MAX),
            storage_quota_bytes: config.storage_quota_mib << 20,
            node_queries_per_second: config.node_queries_per_second,
        };
        let config_json = serde_json::to_string(&config.config)?;
        let data = blake3::Hasher::new().update(&code).update(config_json.as_bytes()).finalize().to_hex();
        // What it is fed is part of an indexer's data: another input is another storage.
        let input = config.input.as_ref().map(|i| i.get_ref().as_str()).unwrap_or_default();
        let data = blake3::Hasher::new().update(data.as_bytes()).update(input.as_bytes()).finalize().to_hex();
        let storage_id = format!("{name}@{}", &data[..16]);
        let settings = format!(
            "{data} {limits:?} {:?} {} {} {} {} {} {}",
            config.on_error,
            config.max_consecutive_failures,
            config.max_failure_percent,
            config.replay_from,
            config.attached,
            config.route_workers,
            config.route_queue,
        );
        let version = blake3::hash(settings.as_bytes()).to_hex().to_string();
        Ok(Build { code, config_json, limits, storage_id, version })
    }
}
