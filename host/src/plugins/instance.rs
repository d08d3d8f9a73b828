//! One warm plugin instance: its store (with limits and a deadline per call) and its exports.
//!
//! A trapped instance cannot be entered again, so after a trap the instance is rebuilt from the
//! pre-linked component and re-initialised with the same config.

use super::capabilities::{self, HostState};
use crate::store::StoredEvent;
use anyhow::Context;
use std::sync::Arc;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store, StoreLimitsBuilder, Trap};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
});

/// Limits applied to every call into a plugin.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Epoch ticks a call may run (see [`super::runtime::EPOCH_TICK`]).
    pub deadline_ticks: u64,
    /// Linear memory ceiling in bytes.
    pub memory_bytes: usize,
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
}

/// Everything needed to build fresh instances of one plugin.
pub struct Template {
    name: Arc<str>,
    pre: PluginPre<HostState>,
    engine: Engine,
    config_json: String,
    limits: Limits,
}

/// A live, initialised instance.
pub struct Instance {
    store: Store<HostState>,
    bindings: Plugin,
    deadline_ticks: u64,
}

impl Template {
    /// Link a compiled component with the capabilities every plugin gets.
    pub fn new(
        name: Arc<str>,
        engine: &Engine,
        component: &Component,
        config_json: String,
        limits: Limits,
    ) -> anyhow::Result<Template> {
        let mut linker = Linker::<HostState>::new(engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        capabilities::forbid_blocking(&mut linker)?;
        Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        let pre = PluginPre::new(linker.instantiate_pre(component)?)?;
        Ok(Template { name, pre, engine: engine.clone(), config_json, limits })
    }

    /// Instantiate and call `init` with the plugin's config.
    pub fn instantiate(&self) -> anyhow::Result<Instance> {
        let limiter =
            StoreLimitsBuilder::new().memory_size(self.limits.memory_bytes).trap_on_grow_failure(true).build();
        let mut store = Store::new(&self.engine, HostState::new(self.name.clone(), limiter));
        store.limiter(|state| &mut state.limits);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(self.limits.deadline_ticks);
        let bindings = self.pre.instantiate(&mut store).map_err(anyhow::Error::from).context("instantiating")?;
        store.set_epoch_deadline(self.limits.deadline_ticks);
        bindings
            .call_init(&mut store, &self.config_json)
            .map_err(classify)
            .context("calling init")?
            .map_err(|message| anyhow::anyhow!("init rejected its config: {message}"))?;
        Ok(Instance { store, bindings, deadline_ticks: self.limits.deadline_ticks })
    }
}

impl Instance {
    /// Hand one event to the plugin, within the time limit.
    pub fn on_event(&mut self, event: &Event) -> Result<Verdict, CallError> {
        self.store.set_epoch_deadline(self.deadline_ticks);
        self.bindings.call_on_event(&mut self.store, event).map_err(classify)
    }
}

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
