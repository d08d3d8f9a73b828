//! Hot reload: watch the config file and every plugin's `.wasm` (their folders, since editors
//! and compilers replace files). On a change, the new config is read and what changed is
//! loaded here, off the pipeline thread; the pipeline then switches between two batches. An
//! invalid config or a plugin that does not load leaves the running plugins as they are, and
//! the error shows in `GET /status`.

use crate::config::Config;
use crate::plugins::{HostServices, Reload, ReloadStatus};
use anyhow::Context;
use notify::{RecursiveMode, Watcher};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use wasmtime::Engine;

/// Quiet time after a change before reloading (a build writes a file in several steps).
const SETTLE: Duration = Duration::from_millis(250);

/// What the watcher needs to load plugins.
pub struct Watch {
    /// The config file.
    pub config_path: PathBuf,
    /// The engine plugins are compiled with.
    pub engine: Engine,
    /// What plugins get from the host.
    pub services: HostServices,
    /// The running plugins' versions.
    pub versions: HashMap<String, String>,
    /// The running plugins' names, in config order.
    pub order: Vec<String>,
    /// Where reloads go (the pipeline).
    pub out: mpsc::UnboundedSender<Reload>,
    /// Reported in `/status`.
    pub status: Arc<ReloadStatus>,
}

impl Watch {
    /// Start watching on a thread of its own, which ends when the pipeline is gone.
    pub fn start(self, config: &Config) -> anyhow::Result<()> {
        let (events, received) = std::sync::mpsc::channel();
        let mut watcher = notify::recommended_watcher(events).context("watching the config for changes")?;
        let mut watched = watched_files(&self.config_path, config);
        for folder in folders(&watched) {
            watcher
                .watch(&folder, RecursiveMode::NonRecursive)
                .with_context(|| format!("watching {}", folder.display()))?;
        }
        std::thread::Builder::new().name("plugin-watch".into()).spawn(move || {
            let mut watch = self;
            // The watcher lives as long as this thread.
            let relevant = |event: &notify::Result<notify::Event>, watched: &HashSet<PathBuf>| {
                event.as_ref().is_ok_and(|event| event.paths.iter().any(|path| watched.contains(path)))
            };
            while let Ok(event) = received.recv() {
                if !relevant(&event, &watched) {
                    continue;
                }
                // Wait until the watched files are quiet (other files in their folders, such
                // as the database, may change all the time).
                let mut quiet_at = Instant::now() + SETTLE;
                loop {
                    match received.recv_timeout(quiet_at.saturating_duration_since(Instant::now())) {
                        Ok(event) if relevant(&event, &watched) => quiet_at = Instant::now() + SETTLE,
                        Ok(_) => {}
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
                let Some(config) = watch.reload() else { continue };
                if watch.out.is_closed() {
                    return;
                }
                watched = watched_files(&watch.config_path, &config);
                for folder in folders(&watched) {
                    if let Err(e) = watcher.watch(&folder, RecursiveMode::NonRecursive) {
                        tracing::warn!("cannot watch {}: {e}", folder.display());
                    }
                }
            }
        })?;
        Ok(())
    }

    /// Read the config and hand what changed to the pipeline; the config read, if valid.
    fn reload(&mut self) -> Option<Config> {
        let config = match Config::load(&self.config_path) {
            Ok(config) => config,
            Err(e) => {
                self.status.refused(e.to_string());
                return None;
            }
        };
        match Reload::prepare(&self.engine, &config.plugins, &self.services, &self.versions) {
            Ok(reload) if reload.is_empty(&self.versions, &self.order) => {
                tracing::debug!("config changed; the plugins did not")
            }
            Ok(reload) => {
                self.versions = reload.versions(&self.versions);
                self.order = reload.order().to_vec();
                _ = self.out.send(reload);
            }
            Err(e) => self.status.refused(format!("{e:#}")),
        }
        Some(config)
    }
}

/// The config file and every plugin's code, as absolute paths.
fn watched_files(config_path: &Path, config: &Config) -> HashSet<PathBuf> {
    let paths =
        std::iter::once(config_path.to_path_buf()).chain(config.plugins.iter().map(|p| p.path.get_ref().clone()));
    paths.filter_map(|path| std::path::absolute(path).ok()).collect()
}

/// The folders holding `files`.
fn folders(files: &HashSet<PathBuf>) -> HashSet<PathBuf> {
    files.iter().filter_map(|file| file.parent().map(Path::to_path_buf)).collect()
}
