//! `sluice run`: wire source → store → plugins → bus → api together and run until stopped.

use crate::api::{self, AppState};
use crate::bus::Bus;
use crate::config::Config;
use crate::pipeline::{IngestStats, Pipeline};
use crate::plugins::{HostServices, Plugins, ReloadStatus, runtime};
use crate::source::{self, NodeStatus};
use crate::store::{Location, Store, Writer};
use crate::watch::Watch;
use anyhow::Context;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;
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
    let public = bind(config.http.listen, "http.listen")?;
    let admin = bind(config.admin.listen, "admin.listen")?;

    let location = Location::of(&config.storage)?;
    // Off the async workers: on PostgreSQL a standby waits here until it leads.
    let (mut writer, cursors) = tokio::task::block_in_place(|| -> anyhow::Result<_> {
        let mut writer = Writer::open(&location)?;
        let cursors = writer.cursors()?;
        Ok((writer, cursors))
    })?;
    let cache_dir = match &config.storage.plugin_cache {
        Some(dir) => dir.clone(),
        None => location.default_plugin_cache(),
    };
    let engine = runtime::engine(&cache_dir)?;
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

    let (stop, stopped) = tokio::sync::watch::channel(());
    let bus = Bus::new();
    let ingest = Arc::new(IngestStats::default());
    let state = AppState {
        store: Store::new(location.clone()),
        bus: bus.clone(),
        nodes: config.source_names().map(|name| Arc::new(NodeStatus::new(name))).collect(),
        ingest: ingest.clone(),
        plugins: plugins.registry(),
        routes: plugins.routes(),
        shutdown: stopped.clone(),
        started: std::time::Instant::now(),
        reload: reload_status.clone(),
        subscribers: Arc::new(crate::api::subscription::Subscribers::new(
            config.http.max_subscribers,
            std::time::Duration::from_millis(config.http.slow_subscriber_timeout_ms),
        )),
        response_times: crate::api::metrics::response_times(),
    };
    let (deliveries, receiver) = mpsc::channel(DELIVERY_QUEUE);
    let log = tokio::task::block_in_place(|| crate::store::open_read(&location))?;
    let pipeline =
        Pipeline { writer, plugins, bus: bus.clone(), stats: ingest, log, reloads, reload_status }.spawn(receiver);
    let mut followers = Vec::new();
    let mut statuses = state.nodes.iter().cloned();
    for (node, status) in config.nodes.iter().zip(statuses.by_ref()) {
        followers.push(tokio::spawn(source::follow(node.clone(), cursors.clone(), status.clone(), deliveries.clone())));
        if let Some(rpc_url) = &node.rpc_url {
            let backfill = source::backfill(
                node.clone(),
                rpc_url.get_ref().clone(),
                status.clone(),
                state.store.clone(),
                deliveries.clone(),
            );
            followers.push(tokio::spawn(backfill));
        }
    }
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
    let write_timeout = std::time::Duration::from_millis(config.http.write_timeout_ms);
    let header_read_timeout = std::time::Duration::from_millis(config.http.header_read_timeout_ms);
    let serve = |listener: TcpListener, router: axum::Router, max_connections: usize| {
        let limits = api::serve::ConnectionLimits { header_read_timeout, max_connections };
        let on_connect = api::limits::on_connect(write_timeout);
        tokio::spawn(api::serve::serve(listener, router, limits, on_connect, stopped.clone()))
    };
    let public_cap = api::serve::connection_cap(config.http.max_connections);
    let servers = [
        serve(public, api::public(state.clone(), &config.http), public_cap),
        serve(admin, api::admin(state), ADMIN_CONNECTIONS),
    ];

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
    drop(stop);
    // Event streams end, so that the servers' graceful shutdown does not wait for them.
    bus.close();
    followers.iter().for_each(|f| f.abort());
    for follower in followers {
        _ = follower.await;
    }
    // Connections get a moment to finish; one whose client reads nothing could hold it forever.
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    for mut server in servers {
        tokio::select! {
            result = &mut server => result?,
            _ = tokio::time::sleep_until(deadline) => {
                let grace = SHUTDOWN_GRACE.as_secs();
                tracing::warn!("connections still open {grace} s after shutdown began: not waiting for them");
                server.abort();
            }
        }
    }
    // The pipeline finishes the batches already queued (or abandons one it cannot store), then
    // stops; only then are errors reported.
    match finished_early {
        Some(result) => result?,
        None => pipeline.await??,
    }
    drop(location);
    Ok(())
}

/// Connections the admin listener takes at once (its clients are operators and scrapers).
const ADMIN_CONNECTIONS: usize = 64;

/// How long open connections may take to finish once shutdown begins.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

fn joined(result: std::thread::Result<()>) -> anyhow::Result<()> {
    result.map_err(|_| anyhow::anyhow!("the pipeline thread panicked"))
}

/// Listen on `address` with a backlog for bursts (thousands of clients reconnecting at once
/// after a restart); the default 128 drops their connection attempts, which wait a second or
/// more to try again.
fn bind(address: std::net::SocketAddr, key: &str) -> anyhow::Result<TcpListener> {
    let listen = || {
        let socket =
            if address.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        socket.bind(address)?;
        socket.listen(4096)
    };
    listen().with_context(|| format!("{key}: cannot listen on {address}"))
}
