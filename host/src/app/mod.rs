//! `sluice run`: wire source → store → plugins → bus → api together and run until stopped;
//! `sluice serve` (`serve.rs`): the API alone, over a store another instance writes.

mod endpoints;
mod serve;

pub use serve::serve;

use crate::api::Role;
use crate::backfill;
use crate::config::Config;
use crate::pipeline::{Committed, IngestStats, Pipeline};
use crate::plugins::{HostServices, Plugins, ReloadStatus, runtime};
use crate::source::{self, NodeStatus};
use crate::store::{Location, Writer};
use crate::watch::Watch;
use anyhow::Context;
use endpoints::{Api, bind, twin};
use serve::Follower;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Deliveries that may wait for the pipeline before node connections pause.
const DELIVERY_QUEUE: usize = 4096;

/// Run Sluice with `config` until `shutdown` completes; with `config_path`, plugins are reloaded
/// when that file or a plugin's code changes.
pub async fn run(
    config: Config,
    config_path: Option<&Path>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    crate::install_tls_provider();
    let access_keys = config
        .cspr_cloud
        .iter()
        .map(|cloud| {
            std::env::var(&cloud.access_key_env).with_context(|| {
                format!("cspr_cloud {:?}: set the access key in ${}", cloud.name.get_ref(), cloud.access_key_env)
            })
        })
        .collect::<anyhow::Result<Vec<String>>>()?;
    let (public, standby_public) = twin(bind(config.http.listen, "http.listen")?)?;
    let (admin, standby_admin) = twin(bind(config.admin.listen, "admin.listen")?)?;

    let location = Location::of(&config.storage)?;
    // Off the async workers: on PostgreSQL a standby waits here until it leads, and meanwhile
    // serves the API as a `serve` instance does.
    let mut standby = None;
    let (mut writer, cursors) = tokio::task::block_in_place(|| -> anyhow::Result<_> {
        let mut listeners = Some((standby_public, standby_admin));
        let mut serve_while_waiting = || {
            let Some((public, admin)) = listeners.take() else { return };
            match Follower::start(&config, [&location, &location], Role::Standby, public, admin) {
                Ok(follower) => standby = Some(follower),
                Err(error) => tracing::warn!("standby: not serving the API while waiting: {error:#}"),
            }
        };
        let mut writer = Writer::open_or_wait(&location, &mut serve_while_waiting)?;
        let cursors = writer.cursors()?;
        Ok((writer, cursors))
    })?;
    if let Some(standby) = standby {
        // Its streams end and their clients reconnect (to this instance or another); its
        // connections finish meanwhile, not delaying the takeover.
        tokio::spawn(async {
            if let Err(error) = standby.stop().await {
                tracing::warn!("stopping the standby's API: {error:#}");
            }
        });
    }
    let engine = runtime::engine(&plugin_cache(&config, &location))?;
    let services = HostServices::from_config(&config, location.clone())?;
    // Off the async workers: a plugin's `init` may block (reading its granted files, a node query).
    let plugins = tokio::task::block_in_place(|| -> anyhow::Result<_> {
        let mut plugins = Plugins::load(&engine, &config.plugins, &services)?;
        plugins.prepare_storage(&mut writer)?;
        Ok(plugins)
    })?;
    let (reload_sender, reloads) = mpsc::unbounded_channel();
    let reload_status = Arc::new(ReloadStatus::default());
    if let Some(config_path) = config_path {
        let watch = Watch {
            config_path: config_path.to_path_buf(),
            engine: engine.clone(),
            services,
            versions: plugins.versions(),
            order: config.plugins.iter().map(|p| p.name.get_ref().clone()).collect(),
            out: reload_sender,
            status: reload_status.clone(),
        };
        watch.start(&config)?;
    }

    let ingest = Arc::new(IngestStats::default());
    let nodes = config.source_names().map(|name| Arc::new(NodeStatus::new(name))).collect();
    let api = Api::new(&config, &location, Role::Run, nodes, ingest.clone(), &plugins, reload_status.clone());
    let (state, bus) = (api.state.clone(), api.state.bus.clone());
    let (deliveries, receiver) = mpsc::channel(DELIVERY_QUEUE);
    let log = tokio::task::block_in_place(|| crate::store::open_read(&location))?;
    let (committed, committed_receiver) = tokio::sync::watch::channel(Committed::default());
    let history_syncing = state.history.as_ref().map(|history| history.syncing());
    let pipeline = Pipeline {
        writer,
        plugins,
        bus: bus.clone(),
        stats: ingest,
        log,
        reloads,
        reload_status,
        committed,
        history_syncing,
    }
    .spawn(receiver);
    let mut followers = Vec::new();
    let mut statuses = state.nodes.iter().cloned();
    for (node, status) in config.nodes.iter().zip(statuses.by_ref()) {
        followers.push(tokio::spawn(source::follow(node.clone(), cursors.clone(), status.clone(), deliveries.clone())));
    }
    let node_statuses = &state.nodes[..config.nodes.len()];
    let history = state.history.clone();
    followers.extend(backfill::spawn(&config, node_statuses, &state.store, &deliveries, &committed_receiver, history)?);
    for ((cloud, key), status) in config.cspr_cloud.iter().zip(access_keys).zip(statuses.by_ref()) {
        followers.push(tokio::spawn(source::follow_cspr_cloud(cloud.clone(), key, status, deliveries.clone())));
    }
    for (node, status) in config.f1r3fly.iter().zip(statuses) {
        followers.push(tokio::spawn(source::follow_f1r3fly(node.clone(), status, deliveries.clone())));
    }
    drop(deliveries);

    tracing::info!(
        "serving http://{} (admin http://{}), storing in {}",
        public.local_addr()?,
        admin.local_addr()?,
        location
    );
    let api = api.start(public, admin, &config.http);

    // The pipeline ends on its own only when it has no node to follow (then keep serving the
    // store) or when it panicked (then stop rather than serve a frozen store).
    tokio::pin!(shutdown);
    let mut pipeline = tokio::task::spawn_blocking(move || joined(pipeline.join()));
    let finished_early = tokio::select! {
        () = &mut shutdown => None,
        result = &mut pipeline => Some(result.map_err(anyhow::Error::from).and_then(|r| r)),
    };
    if let Some(Ok(())) = finished_early {
        shutdown.await;
    }
    tracing::info!("shutting down");
    followers.iter().for_each(|f| f.abort());
    for follower in followers {
        _ = follower.await;
    }
    api.stop().await?;
    // The pipeline finishes the batches already queued (or abandons one it cannot store), then
    // stops; only then are errors reported.
    match finished_early {
        Some(result) => result?,
        None => pipeline.await??,
    }
    drop(location);
    Ok(())
}

/// Where compiled plugins are cached: as configured, else beside the database.
fn plugin_cache(config: &Config, location: &Location) -> std::path::PathBuf {
    config.storage.plugin_cache.clone().unwrap_or_else(|| location.default_plugin_cache())
}

fn joined(result: std::thread::Result<()>) -> anyhow::Result<()> {
    result.map_err(|_| anyhow::anyhow!("the pipeline thread panicked"))
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM (what service managers send).
pub async fn stop_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
