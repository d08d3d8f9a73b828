//! `sluice replay --plugin NAME`: rebuild one indexer's storage from the stored log, on demand,
//! with a progress bar. Run it while `sluice run` is stopped (it writes the same database).

use crate::config::Config;
use crate::plugins::{HostServices, Plugins, runtime};
use crate::store::{Location, Writer, reader};
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
    let location = Location::resolve(&config.storage.path).context("storage.path")?;
    let mut writer = Writer::open(&location)?;
    let cache_dir =
        config.storage.plugin_cache.clone().unwrap_or_else(|| location.path().with_file_name("plugin-cache"));
    let engine = runtime::engine(&cache_dir)?;
    // Start from empty storage: load once to learn its storage id, clear it, load again.
    let services = HostServices::new(location.clone());
    let loaded = Plugins::load(&engine, std::slice::from_ref(&plugin), &services)?;
    anyhow::ensure!(loaded.is_indexer(name), "plugin {name:?} does not index events: nothing to replay");
    let storage_id = loaded.storage_id(name).context("the plugin did not load")?;
    writer.commit_plugins(&[], &[storage_id])?;
    let mut plugins = Plugins::load(&engine, std::slice::from_ref(&plugin), &services)?;
    writer.create_plugin_indexes(&plugins.declared_indexes())?;
    let log = reader::open_read_only(&location)?;
    let head = writer.last_seq()?;
    let first = plugin.replay_from.min(head + 1);
    let progress = indicatif::ProgressBar::new(head + 1 - first).with_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} events, {per_sec}, {eta} left")
            .expect("a valid template"),
    );
    progress.set_message(format!("replaying into {name}"));
    while plugins.catching_up() {
        let (batches, retired) = plugins.catch_up(&log, head, SLICE)?;
        writer.commit_plugins(&batches, &retired)?;
        if let Some(batch) = batches.first() {
            progress.set_position(batch.last_seq + 1 - first);
        }
    }
    progress.finish();
    let failures = plugins.stats().iter().map(|s| s.errors.load(std::sync::atomic::Ordering::Relaxed)).sum::<u64>();
    println!("{name}: replayed events {first}..={head}; {failures} failed calls (see plugin_failures)");
    Ok(())
}
