//! Plugins' HTTP routes: each plugin whose manifest says `routes` gets one warm instance of its
//! own for requests (reading its storage, never writing), apart from the pipeline's, behind a
//! lock. Calls block: the API makes them on a blocking thread.

use super::PluginStats;
use super::instance::{Instance, Request, Response, Template};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

/// The plugins that serve HTTP, by name; shared with the pipeline, which swaps a plugin's
/// entry when a new version of it goes live.
#[derive(Clone, Default)]
pub struct Routes {
    live: Arc<RwLock<HashMap<String, Arc<Mutex<RouteSlot>>>>>,
    /// Plugins whose routes wait for their indexer to catch up (503 until then).
    pending: Arc<RwLock<HashSet<String>>>,
}

struct RouteSlot {
    template: Template,
    instance: Option<Instance>,
    stats: Arc<PluginStats>,
}

/// Why a request got no answer from a plugin.
pub enum RouteError {
    /// No plugin of that name serves HTTP.
    NoSuchPlugin,
    /// The plugin's indexer is still replaying the stored log.
    CatchingUp,
    /// The call failed (trap, time limit, output limit).
    Failed(String),
}

impl Routes {
    /// Serve `plugin` (a new version replaces the old one's instance).
    pub fn replace(&self, (template, stats): (Template, Arc<PluginStats>)) {
        let name = template.name().to_owned();
        let slot = Arc::new(Mutex::new(RouteSlot { template, instance: None, stats }));
        self.live.write().expect("routes lock").insert(name.clone(), slot);
        self.pending.write().expect("routes lock").remove(&name);
    }

    /// Stop serving plugin `name`.
    pub fn remove(&self, name: &str) {
        self.live.write().expect("routes lock").remove(name);
        self.pending.write().expect("routes lock").remove(name);
    }

    /// Mark these plugins as coming once their indexer has caught up.
    pub fn set_pending(&self, names: impl Iterator<Item = String>) {
        let live = self.live.read().expect("routes lock");
        let mut pending = self.pending.write().expect("routes lock");
        pending.extend(names.filter(|name| !live.contains_key(name)));
    }

    /// The plugins serving HTTP, or soon to (sorted).
    pub fn names(&self) -> Vec<String> {
        let live = self.live.read().expect("routes lock");
        let pending = self.pending.read().expect("routes lock");
        let mut names: Vec<String> = live.keys().chain(pending.iter()).cloned().collect();
        names.sort();
        names.dedup();
        names
    }

    /// Answer `request` with plugin `name`. Blocks for up to the plugin's time limit.
    pub fn handle(&self, name: &str, request: &Request) -> Result<Response, RouteError> {
        let slot = self.live.read().expect("routes lock").get(name).cloned();
        let Some(slot) = slot else {
            let pending = self.pending.read().expect("routes lock").contains(name);
            return Err(if pending { RouteError::CatchingUp } else { RouteError::NoSuchPlugin });
        };
        let mut slot = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        slot.handle(request).map_err(RouteError::Failed)
    }
}

impl RouteSlot {
    fn handle(&mut self, request: &Request) -> Result<Response, String> {
        let context = || format!("{} {}", request.method, request.path);
        self.stats.call(&self.template, &mut self.instance, context, |instance| instance.handle(request))
    }
}
