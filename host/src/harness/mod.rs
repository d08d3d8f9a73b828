//! Test a plugin inside the real host runtime with plain `cargo test`: feed it node events,
//! then look at what it decided, derived and stored, and ask its routes.
//!
//! ```no_run
//! use sluice::harness::Harness;
//!
//! let mut plugin = Harness::build(env!("CARGO_MANIFEST_DIR"), "").unwrap();
//! plugin.feed(&[r#"{"Step":{"era_id":1,"execution_effects":[]}}"#]).unwrap();
//! let (status, body) = plugin.request("GET", "/counts/Step", "").unwrap();
//! assert_eq!(status, 200, "{body}");
//! ```

pub mod ces;

use crate::config::Config;
use crate::event::{Delivery, Frame, Payload};
use crate::plugins::{HostServices, Plugins, Request, runtime};
use crate::store::{Location, StoredEvent, Writer};
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One plugin, loaded in the host runtime over a throwaway store.
pub struct Harness {
    /// The compilation cache.
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
    /// Build the plugin crate at `crate_dir` for `wasm32-wasip2` (release), then [`load`] it.
    ///
    /// [`load`]: Harness::load
    pub fn build(crate_dir: impl AsRef<Path>, config_toml: &str) -> anyhow::Result<Harness> {
        Harness::build_after(&[], crate_dir, config_toml)
    }

    /// Like [`build`](Harness::build), with `upstream` plugins running before it, in order.
    pub fn build_after(
        upstream: &[Upstream],
        crate_dir: impl AsRef<Path>,
        config_toml: &str,
    ) -> anyhow::Result<Harness> {
        let wasm = build_component(crate_dir.as_ref())?;
        Harness::load_after(upstream, &wasm, config_toml)
    }

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
        let storage = table(vec![("path", ":memory:".into()), ("plugin_cache", path(&dir.path().join("cache")))]);
        let document = table(vec![("storage", storage), ("plugins", toml::Value::Array(plugins))]);
        let text = toml::to_string(&document)?;
        let config = Config::parse(&text).map_err(anyhow::Error::msg)?;
        let location = Location::resolve(&config.storage.path)?;
        let mut writer = Writer::open(&location)?;
        let engine = runtime::engine(&dir.path().join("cache"))?;
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

    /// Ask the plugin's routes: `method` on `path_and_query` (below `/plugins/plugin`) with
    /// `body`. Returns the status and the body as text.
    pub fn request(&self, method: &str, path_and_query: &str, body: &str) -> anyhow::Result<(u16, String)> {
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
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

/// Build the crate at `crate_dir` for `wasm32-wasip2` and return its component's path.
fn build_component(crate_dir: &Path) -> anyhow::Result<PathBuf> {
    let output = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--target", "wasm32-wasip2", "--message-format=json-render-diagnostics"])
        .current_dir(crate_dir)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo build")?;
    anyhow::ensure!(output.status.success(), "cargo build --target wasm32-wasip2 failed in {}", crate_dir.display());
    let manifest = std::fs::canonicalize(crate_dir.join("Cargo.toml"))?;
    let artifact = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["manifest_path"].as_str().map(Path::new) == Some(manifest.as_path()))
        .flat_map(|message| message["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|file| file.as_str().map(PathBuf::from))
        .find(|file| file.extension().is_some_and(|e| e == "wasm"));
    artifact.context("cargo built no .wasm: is the crate a `cdylib`?")
}
