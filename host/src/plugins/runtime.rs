//! The shared wasmtime engine: configuration, the epoch clock, and cached compilation.

use anyhow::Context;
use std::path::Path;
use std::time::Duration;
use wasmtime::component::Component;
use wasmtime::{Cache, CacheConfig, Config, Engine};

/// Time between epoch ticks; a plugin's time limit is a whole number of ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Build the engine: epoch interruption on, no async machinery, compiled code cached on disk.
pub fn engine(cache_dir: &Path) -> anyhow::Result<Engine> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.concurrency_support(false);
    if std::env::var_os("SLUICE_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    // wasmtime wants an absolute cache directory.
    let cache_dir = std::path::absolute(cache_dir).context("plugin cache directory")?;
    let mut cache = CacheConfig::new();
    cache.with_directory(cache_dir);
    config.cache(Some(Cache::new(cache).map_err(anyhow::Error::from).context("plugin compilation cache")?));
    let engine = Engine::new(&config)?;
    start_epoch_clock(&engine);
    Ok(engine)
}

/// Advance the engine's epoch every [`EPOCH_TICK`] for as long as the process lives.
fn start_epoch_clock(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("epoch-clock".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch clock");
}

/// Compile a component (read from `path`), or load it from the cache when these exact bytes
/// were compiled before.
pub fn compile(engine: &Engine, code: &[u8], path: &Path) -> anyhow::Result<Component> {
    Component::new(engine, code).map_err(anyhow::Error::from).with_context(|| format!("compiling {}", path.display()))
}

/// Whole ticks covering `timeout` (at least one).
pub fn ticks(timeout: Duration) -> u64 {
    (timeout.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64).max(1)
}
