//! Run a plugin inside the real host runtime over a throwaway store: feed it node events, then
//! look at what it decided, derived and stored, and ask its routes. `sluice plugin test`
//! ([`run`]) drives it from the command line, for plugins' own tests (the SDK's `testing`).
//!
//! ```no_run
//! use sluice::harness::Harness;
//!
//! let mut plugin = Harness::load(std::path::Path::new("counter.wasm"), "").unwrap();
//! plugin.feed(&[r#"{"Step":{"era_id":1,"execution_effects":[]}}"#]).unwrap();
//! let (status, body) = plugin.request("GET", "/counts/Step", "").unwrap();
//! assert_eq!(status, 200, "{body}");
//! ```

pub mod ces;
pub mod run;

use crate::api::plugin_data::{self, CollectionRequest};
use crate::config::Config;
use crate::event::{Delivery, Frame, Payload};
use crate::plugins::{HostServices, Plugins, Request, runtime};
use crate::store::{Location, StoredEvent, Writer};
use anyhow::Context;
use std::path::Path;
use std::sync::Arc;

/// One plugin, loaded in the host runtime over a throwaway store.
pub struct Harness {
    /// The store's folder.
    _dir: tempfile::TempDir,
    location: Location,
    writer: Writer,
    plugins: Plugins,
    /// The plugin's `storage_id` (its entries are stored under it).
    storage_id: String,
    /// SSE ids of the fed events.
    next_id: u32,
}

/// What happened to one fed (or derived) event.
#[derive(Debug, Clone)]
pub struct Fed {
    /// The event as stored.
    pub event: StoredEvent,
    /// Whether a filter dropped it.
    pub dropped: bool,
    /// The filters' annotations (plugin name → value), if any.
    pub annotations: Option<serde_json::Value>,
}

/// The name the plugin gets in the harness (its routes are `/plugins/plugin/…`).
pub const NAME: &str = "plugin";

/// A plugin that runs before the one under test (a decoder whose events it indexes, say).
pub struct Upstream<'a> {
    /// Its name (derived events come from `plugin:{name}`).
    pub name: &'a str,
    /// Its component.
    pub wasm: &'a Path,
    /// Its `[plugins.config]` table (TOML).
    pub config_toml: &'a str,
}

impl Harness {
    /// Load the component at `wasm` with `config_toml`, its `[plugins.config]` table (TOML).
    pub fn load(wasm: &Path, config_toml: &str) -> anyhow::Result<Harness> {
        Harness::load_after(&[], wasm, config_toml)
    }

    /// Like [`load`](Harness::load), with `upstream` plugins running before it, in order.
    pub fn load_after(upstream: &[Upstream], wasm: &Path, config_toml: &str) -> anyhow::Result<Harness> {
        crate::install_tls_provider();
        let dir = tempfile::Builder::new().prefix("sluice-harness-").tempdir()?;
        let path = |path: &Path| toml::Value::String(path.display().to_string());
        let table = |entries: Vec<(&str, toml::Value)>| {
            toml::Value::Table(entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
        };
        // Each plugin's table is parsed on its own, so it may hold arrays of tables.
        let plugin = |name: &str, wasm: &Path, config_toml: &str| -> anyhow::Result<toml::Value> {
            let config: toml::Table =
                config_toml.parse().with_context(|| format!("the config of plugin {name} is not TOML"))?;
            Ok(table(vec![("name", name.into()), ("path", path(wasm)), ("config", toml::Value::Table(config))]))
        };
        let mut plugins =
            upstream.iter().map(|u| plugin(u.name, u.wasm, u.config_toml)).collect::<anyhow::Result<Vec<_>>>()?;
        plugins.push(plugin(NAME, wasm, config_toml)?);
        let cache = compilation_cache(dir.path());
        let storage = table(vec![("path", ":memory:".into()), ("plugin_cache", path(&cache))]);
        let document = table(vec![("storage", storage), ("plugins", toml::Value::Array(plugins))]);
        let text = toml::to_string(&document)?;
        let config = Config::parse(&text).map_err(anyhow::Error::msg)?;
        let location = Location::resolve(&config.storage.path)?;
        let mut writer = Writer::open(&location)?;
        let engine = runtime::engine(&cache)?;
        let mut plugins = Plugins::load(&engine, &config.plugins, &HostServices::new(location.clone()))?;
        plugins.prepare_storage(&mut writer)?;
        plugins.replay_all(&mut writer, crate::store::open_read(&location)?.as_mut(), 4096, |_| {})?;
        let storage_id = plugins.storage_id(NAME).context("the plugin did not load")?;
        Ok(Harness { _dir: dir, location, writer, plugins, storage_id, next_id: 0 })
    }

    /// Feed node events (each the JSON a node sends, e.g. `{"BlockAdded":{…}}`) as one batch,
    /// through the plugin as the pipeline would. Returns every stored event, derived ones
    /// included, with what the plugin decided.
    pub fn feed(&mut self, events: &[&str]) -> anyhow::Result<Vec<Fed>> {
        let mut batch = Vec::new();
        for json in events {
            let event = match Frame::parse(json.to_string()) {
                Ok(Frame::Event(event)) => event,
                Ok(other) => anyhow::bail!("not an event: {other:?}"),
                Err(e) => anyhow::bail!("not a node event: {e}"),
            };
            let node: Arc<str> = Arc::from("harness");
            batch.push(Delivery::now(node.clone(), node, Some(self.next_id), Payload::Event(event)));
            self.next_id += 1;
        }
        let stored = self.writer.append(&batch, &mut self.plugins)?;
        let fed = stored.into_iter().map(|(event, outcome)| Fed {
            event,
            dropped: outcome.dropped,
            annotations: outcome.annotations.and_then(|a| serde_json::from_str(&a).ok()),
        });
        Ok(fed.collect())
    }

    /// The plugin's most recent failure (a trap, a timeout, an error it returned), if any.
    pub fn last_error(&self) -> Option<String> {
        let stats = self.plugins.stats();
        let stats = stats.iter().find(|s| s.name == NAME)?;
        stats.last_error.lock().ok()?.clone()
    }

    /// The value under `key` in the plugin's `collection`, as JSON.
    pub fn get(&self, collection: &str, key: &str) -> anyhow::Result<Option<serde_json::Value>> {
        let value = crate::store::open_read(&self.location)?.plugin_value(&self.storage_id, collection, key)?;
        Ok(value.map(|v| serde_json::from_str(&v)).transpose()?)
    }

    /// Ask the plugin's routes, or the collections the host serves for it: `method` on
    /// `path_and_query` (below `/plugins/plugin`) with `body`. Returns the status and the body
    /// as text.
    pub fn request(&self, method: &str, path_and_query: &str, body: &str) -> anyhow::Result<(u16, String)> {
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        let served = self.plugins.routes().collections(NAME).ok();
        let collections =
            CollectionRequest::parse(path).zip(served).filter(|(wanted, served)| wanted.is_served_by(served));
        if let Some((wanted, served)) = collections.filter(|_| method == "GET") {
            let uri: axum::http::Uri = format!("/?{query}").parse().context("an invalid query string")?;
            let axum::extract::Query(params) = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri)?;
            let mut conn = crate::store::open_read(&self.location)?;
            return Ok(match plugin_data::answer(conn.as_mut(), &served, &wanted, &params) {
                Ok(body) => (200, body.to_string()),
                Err(error) => (error.status().as_u16(), error.to_json().to_string()),
            });
        }
        let request = Request {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        };
        match self.plugins.routes().handle(NAME, request) {
            Ok(response) => Ok((response.status, String::from_utf8_lossy(&response.body).into_owned())),
            Err(crate::plugins::RouteError::Failed(e)) => anyhow::bail!("the plugin failed: {e}"),
            Err(_) => anyhow::bail!("the plugin does not serve HTTP (its manifest says `routes: false`)"),
        }
    }
}

/// Where compiled plugins are kept between runs (a JavaScript component takes seconds to
/// compile): `SLUICE_PLUGIN_CACHE`, else the user's cache folder, else inside `scratch`.
fn compilation_cache(scratch: &Path) -> std::path::PathBuf {
    let user_cache = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
        .map(|cache| cache.join("sluice/plugins"));
    let chosen = std::env::var_os("SLUICE_PLUGIN_CACHE").map(std::path::PathBuf::from).or(user_cache);
    chosen.filter(|dir| std::fs::create_dir_all(dir).is_ok()).unwrap_or_else(|| scratch.join("cache"))
}
