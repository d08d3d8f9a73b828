//! `sluice replay --plugin NAME`: rebuild one indexer's storage from the stored log, on demand,
//! with a progress bar. Run it while `sluice run` is stopped (it writes the same database).

use crate::config::Config;
use crate::plugins::{HostServices, Plugins, runtime};
use crate::store::{Location, Writer};
use anyhow::Context;

/// Events replayed per transaction.
const SLICE: usize = 4096;

/// Replay the stored log, from sequence `from` (default: the plugin's `replay_from`), into a
/// fresh storage of plugin `name` as configured in `config`.
pub fn replay(mut config: Config, name: &str, from: Option<u64>) -> anyhow::Result<()> {
    crate::install_tls_provider();
    let position = config.plugins.iter().position(|p| p.name.get_ref() == name);
    let mut plugin = config.plugins.swap_remove(position.with_context(|| format!("no plugin {name:?} in the config"))?);
    if let Some(from) = from {
        plugin.replay_from = from.max(1);
    }
    let location = Location::of(&config.storage)?;
    let mut writer = Writer::open(&location)?;
    let cache_dir = config.storage.plugin_cache.clone().unwrap_or_else(|| location.default_plugin_cache());
    let engine = runtime::engine(&cache_dir)?;
    // Start from empty storage: load once to learn its storage id, clear it, load again.
    let services = HostServices::from_config(&config, location.clone())?;
    let loaded = Plugins::load(&engine, std::slice::from_ref(&plugin), &services)?;
    anyhow::ensure!(loaded.is_indexer(name), "plugin {name:?} does not index events: nothing to replay");
    let storage_id = loaded.storage_id(name).context("the plugin did not load")?;
    writer.commit_plugins(&[], &[storage_id])?;
    let mut plugins = Plugins::load(&engine, std::slice::from_ref(&plugin), &services)?;
    plugins.prepare_storage(&mut writer)?;
    let mut log = crate::store::open_read(&location)?;
    let head = writer.last_seq()?;
    let first = plugin.replay_from.min(head + 1);
    let progress = indicatif::ProgressBar::new(head + 1 - first).with_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} events, {per_sec}, {eta} left")
            .expect("a valid template"),
    );
    progress.set_message(format!("replaying into {name}"));
    plugins.replay_all(&mut writer, log.as_mut(), SLICE, |slice| progress.inc(slice.replayed as u64))?;
    progress.finish();
    let stats = plugins.stats();
    let stats = stats.first().context("the plugin is gone")?;
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(std::sync::atomic::Ordering::Relaxed);
    let failures = load(&stats.errors) + load(&stats.traps) + load(&stats.timeouts);
    anyhow::ensure!(
        !stats.suspended.load(std::sync::atomic::Ordering::Relaxed),
        "{name} was suspended at {} after {failures} failed calls: {}",
        load(&stats.last_seq),
        stats.last_error.lock().expect("stats lock").clone().unwrap_or_default()
    );
    println!("{name}: replayed events {first}..={head}; {failures} failed calls (see plugin_failures)");
    Ok(())
}
