//! Plugins' HTTP routes: each plugin whose manifest says `routes` gets one warm instance of its
//! own for requests (reading its storage, never writing), apart from the pipeline's, behind a
//! lock. Calls block: the API makes them on a blocking thread.

use super::PluginStats;
use super::instance::{CallError, Instance, Request, Response, Template};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The plugins that serve HTTP, by name.
#[derive(Clone, Default)]
pub struct Routes {
    plugins: Arc<HashMap<String, Mutex<RouteSlot>>>,
}

struct RouteSlot {
    template: Template,
    instance: Option<Instance>,
    stats: Arc<PluginStats>,
}

impl Routes {
    /// Routes for these plugins.
    pub fn new(plugins: impl Iterator<Item = (Template, Arc<PluginStats>)>) -> Routes {
        let plugins = plugins
            .map(|(template, stats)| {
                (template.name().to_owned(), Mutex::new(RouteSlot { template, instance: None, stats }))
            })
            .collect();
        Routes { plugins: Arc::new(plugins) }
    }

    /// Whether plugin `name` serves HTTP.
    pub fn serves(&self, name: &str) -> bool {
        self.plugins.contains_key(name)
    }

    /// Names of the plugins that serve HTTP.
    pub fn names(&self) -> Vec<String> {
        self.plugins.keys().cloned().collect()
    }

    /// Answer `request` with plugin `name`; `None` when it does not serve HTTP. Blocks for up
    /// to the plugin's time limit.
    pub fn handle(&self, name: &str, request: &Request) -> Option<Result<Response, String>> {
        let slot = self.plugins.get(name)?;
        let mut slot = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Some(slot.handle(request))
    }
}

impl RouteSlot {
    fn handle(&mut self, request: &Request) -> Result<Response, String> {
        let started = Instant::now();
        self.stats.calls.fetch_add(1, Relaxed);
        let result = match self.instance.take() {
            Some(instance) => Ok(instance),
            None => self.template.instantiate().map_err(CallError::Trap),
        }
        .and_then(|mut instance| {
            let response = instance.handle(request)?;
            self.instance = Some(instance);
            Ok(response)
        });
        self.stats.busy_ns.fetch_add(started.elapsed().as_nanos() as u64, Relaxed);
        result.map_err(|error| {
            let counter = match &error {
                CallError::Timeout => &self.stats.timeouts,
                CallError::Trap(_) => &self.stats.traps,
                CallError::TooLarge(_) | CallError::Failed(_) => &self.stats.errors,
            };
            counter.fetch_add(1, Relaxed);
            let message = format!("{} {}: {error}", request.method, request.path);
            tracing::warn!(plugin = %self.stats.name, "route failed: {message}");
            *self.stats.last_error.lock().expect("stats lock") = Some(message.clone());
            message
        })
    }
}
