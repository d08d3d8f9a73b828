//! One loaded plugin: its template, warm instance, manifest, cursor and failure policy.

use super::bindings::{DerivedEvent, Event, Manifest};
use super::instance::{CallError, Grants, Instance, Limits, Template};
use super::replay::CatchUp;
use super::routes::{RouteLimits, ServedCollections, Serving};
use super::suspension::FailurePolicy;
use super::{HostServices, PluginStats, runtime};
use crate::config::{OnError, PluginConfig};
use crate::event::NodeEvent;
use crate::store::plugin_data::{ChainCursor, PluginBatch};
use crate::store::{Derived, Read, StoredEvent};
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
    /// Indexers and decoders: where a new version starts replaying.
    pub replay_from: u64,
    /// Position in the config.
    pub position: usize,
    /// Indexers and decoders: every event up to this sequence is processed (while replaying in
    /// chain order: where that replay began).
    pub cursor: u64,
    /// Indexers and decoders: how it goes through the stored log.
    pub replay: Replay,
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

/// How a plugin that indexes or decodes goes through the stored log: a new version first in
/// chain order (the events stored when it begins, by `(chain_height, seq)`), then by sequence
/// (what was stored meanwhile) up to the head, where it goes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Replay {
    /// The replay in chain order has not begun (an indexer waits for the history sync and the
    /// decoders' replays: their events belong before the live ones).
    Pending,
    /// Replaying in chain order.
    Chain(ChainCursor),
    /// By sequence, after `cursor`.
    Sequence,
}

impl Slot {
    /// Whether it is an indexer.
    pub fn indexes(&self) -> bool {
        !self.manifest.index_kinds.is_empty()
    }

    /// Whether it goes through the stored log before it is live: an indexer or a decoder.
    pub fn replays(&self) -> bool {
        self.indexes() || self.manifest.decode
    }

    /// Whether its replay in chain order waits for the events others bring into the past (the
    /// history sync, decoders replaying): an indexer that does not decode.
    pub fn waits(&self) -> bool {
        !self.manifest.decode
    }

    /// Whether it has processed every event up to `head`.
    pub fn reached(&self, head: u64) -> bool {
        self.replay == Replay::Sequence && self.cursor >= head
    }

    /// Replay up to `max` events of the stored log (read through `log`, up to `head`): decode
    /// them (a decoder) and index them (an indexer). What to commit goes into `slice`: its
    /// batch, and the events it derived with their chain positions. A pending replay in chain
    /// order begins here.
    pub fn replay_slice(
        &mut self,
        log: &mut dyn Read,
        head: u64,
        max: usize,
        slice: &mut CatchUp,
    ) -> anyhow::Result<()> {
        if self.replay == Replay::Pending {
            self.replay = Replay::Chain(ChainCursor { bound: head, after: (0, 0) });
        }
        let Replay::Chain(chain) = self.replay else {
            let mut events = log.log_after(self.cursor, max)?;
            events.retain(|event| event.seq <= head);
            self.decode_replayed(&events, &mut slice.derived);
            let last_seq = events.last().map_or(head, |event| event.seq);
            slice.batches.push(self.index(&events, last_seq));
            slice.replayed = slice.replayed.max(events.len());
            return Ok(());
        };
        let events = log.log_in_chain_order(self.cursor, chain, max)?;
        self.decode_replayed(&events, &mut slice.derived);
        let mut batch = self.index_events(&events);
        let halted = !batch.failures.is_empty() && self.on_error == OnError::Halt;
        match events.last() {
            // A halted plugin stays before the events it failed on.
            _ if halted => {}
            Some(last) if events.len() == max => {
                self.replay = Replay::Chain(ChainCursor { after: (last.chain_height, last.seq), ..chain });
            }
            _ => (self.replay, self.cursor) = (Replay::Sequence, chain.bound),
        }
        batch.last_seq = self.cursor;
        batch.chain = match self.replay {
            Replay::Chain(chain) => Some(chain),
            _ => None,
        };
        // Shown: the last event replayed, then the sequence it reached.
        self.stats.last_seq.store(batch.chain.map_or(self.cursor, |chain| chain.after.1), Relaxed);
        slice.batches.push(batch);
        slice.replayed = slice.replayed.max(events.len());
        Ok(())
    }

    /// The events a decoder derives from replayed `events` (not from derived ones), each with
    /// its source's chain position, into `derived`.
    fn decode_replayed(&mut self, events: &[StoredEvent], derived: &mut Vec<(u64, Derived)>) {
        if !self.manifest.decode {
            return;
        }
        for event in events.iter().filter(|event| !event.node.starts_with(super::DERIVED_BY)) {
            // Suspended within the slice: the rest passes it by, as live events do.
            if self.stats.suspended.load(Relaxed) {
                break;
            }
            let input = Event::of(event);
            let context = || format!("event {} ({})", input.sequence, input.kind);
            let decoded = self.call(context, |instance| instance.decode(&input)).unwrap_or_default();
            derived.extend(decoded.into_iter().filter_map(|d| self.derived(d)).map(|d| (event.chain_height, d)));
        }
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

    /// What it serves over HTTP, for the route table.
    pub fn serving(&self) -> Serving {
        let pool = self.manifest.routes.then(|| (self.template.clone(), self.stats.clone(), self.route_limits));
        let collections = (!self.manifest.served_collections.is_empty()).then(|| ServedCollections {
            storage_id: self.template.storage_id().to_owned(),
            collections: self.manifest.served_collections.clone(),
            indexed: self.manifest.indexes.iter().map(|spec| (spec.collection.clone(), spec.field.clone())).collect(),
        });
        (pool, collections)
    }

    /// Whether it serves anything over HTTP (its routes, or collections the host serves).
    pub fn serves_http(&self) -> bool {
        self.manifest.routes || !self.manifest.served_collections.is_empty()
    }

    /// Index the `events` of its kinds; the batch to commit, with its cursor at `last_seq`
    /// (before the failed events for a plugin that halts).
    pub fn index<E: std::borrow::Borrow<StoredEvent>>(&mut self, events: &[E], last_seq: u64) -> PluginBatch {
        let mut batch = self.index_events(events);
        batch.last_seq = last_seq;
        // A halted plugin's cursor stays before the batch it failed on.
        if let Some((first, _, _)) = batch.failures.first()
            && self.on_error == OnError::Halt
        {
            batch.last_seq = first.saturating_sub(1);
        }
        self.cursor = batch.last_seq;
        self.stats.last_seq.store(batch.last_seq, Relaxed);
        batch
    }

    /// Index the `events` of its kinds: its writes, or the failure (no cursor yet).
    fn index_events<E: std::borrow::Borrow<StoredEvent>>(&mut self, events: &[E]) -> PluginBatch {
        let kinds = &self.manifest.index_kinds;
        let events: Vec<Event> = events
            .iter()
            .map(|event| event.borrow())
            .filter(|event| kinds.iter().any(|kind| kind == "*" || *kind == event.kind))
            .filter(|event| self.input.as_ref().is_none_or(|input| !event.hidden_by(input)))
            .map(Event::of)
            .collect();
        let mut batch = PluginBatch { plugin: self.template.storage_id().to_owned(), ..PluginBatch::default() };
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
        }
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
        let mut template = Template::new(
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
        let mut instance = Some(template.instantiate().map_err(failed)?);
        let manifest = instance.as_ref().expect("just made").manifest.clone();
        // An indexer's data is the chain from the history's first block: another range is
        // another storage (its first instance, bound to the other, is dropped).
        let indexer = !manifest.index_kinds.is_empty() && !manifest.decode;
        if let (true, Some(history)) = (indexer, &services.history) {
            let id = blake3::hash(format!("{} {history}", template.storage_id()).as_bytes()).to_hex();
            template = template.with_storage_id(format!("{name}@{}", &id[..16]));
            instance = None;
        }
        if config.attached && !manifest.filter {
            return Err(failed(anyhow::anyhow!(
                "`attached = true` is for filters, and its manifest says `filter: false`"
            )));
        }
        tracing::info!(plugin = %name, path = %config.path.get_ref().display(), ?manifest, "plugin loaded");
        Ok(Slot {
            template,
            instance,
            manifest,
            version,
            replay_from: config.replay_from,
            position: 0,
            cursor: 0,
            replay: Replay::Sequence,
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
