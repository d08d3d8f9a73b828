//! `sluice run`: wire source → store → plugins → bus → api together and run until stopped;
//! `sluice serve`: the API alone, over a store another instance writes (store → tail → bus → api).

use crate::api::subscription::Subscribers;
use crate::api::{self, AppState, Role};
use crate::bus::Bus;
use crate::config::{Config, HttpConfig};
use crate::pipeline::{IngestStats, Pipeline};
use crate::plugins::{HostServices, Plugins, ReloadStatus, runtime};
use crate::source::{self, NodeStatus};
use crate::store::{Location, Store, Writer};
use crate::tail::Tail;
use crate::watch::Watch;
use anyhow::Context;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
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

    let ingest = Arc::new(IngestStats::default());
    let nodes = config.source_names().map(|name| Arc::new(NodeStatus::new(name))).collect();
    let api = Api::new(&config, &location, Role::Run, nodes, ingest.clone(), &plugins, reload_status.clone());
    let (state, bus) = (api.state.clone(), api.state.bus.clone());
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

/// `sluice serve`: the API only, over the database another instance (`sluice run`) writes,
/// perhaps through a streaming replica (`storage.read_url`), with plugin routes read-only, until
/// `shutdown` completes.
pub async fn serve(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    crate::install_tls_provider();
    let public = bind(config.http.listen, "http.listen")?;
    let admin = bind(config.admin.listen, "admin.listen")?;
    let location = Location::for_reading(&config.storage)?;
    // Off the async workers: the database clients block.
    let (mut log, tail_log, appends) = tokio::task::block_in_place(|| -> anyhow::Result<_> {
        let mut log = crate::store::open_read(&location)?;
        log.last_seq().with_context(|| format!("reading the event log in {location} (has `sluice run` created it?)"))?;
        Ok((log, crate::store::open_read(&location)?, crate::store::appends::watch(&location)?))
    })?;
    let cache_dir = config.storage.plugin_cache.clone().unwrap_or_else(|| location.default_plugin_cache());
    let engine = runtime::engine(&cache_dir)?;
    let services = HostServices::from_config(&config, location.clone())?;
    let (mut plugins, head) = tokio::task::block_in_place(|| -> anyhow::Result<_> {
        Ok((Plugins::load(&engine, &config.plugins, &services)?, log.last_seq()?))
    })?;

    let ingest = Arc::new(IngestStats::default());
    let reload_status = Arc::new(ReloadStatus::default());
    let api = Api::new(&config, &location, Role::Serve, Arc::new([]), ingest.clone(), &plugins, reload_status);
    let stop = Arc::new(AtomicBool::new(false));
    let tail = Tail { log: tail_log, appends, bus: api.state.bus.clone(), stats: ingest };
    tail.spawn(stop.clone())?;
    // Indexers the writing instance is still bringing up to date answer 503 until it has.
    let waiting_for_indexers = stop.clone();
    std::thread::Builder::new().name("plugin-cursors".into()).spawn(move || {
        while !waiting_for_indexers.load(Relaxed) && plugins.catching_up() {
            std::thread::sleep(INDEXER_POLL);
            if let Err(error) = plugins.promote_stored(log.as_mut(), head) {
                tracing::warn!("reading plugin cursors: {error:#}");
            }
        }
        // The routes keep serving; what they need is shared.
        drop(plugins);
    })?;

    tracing::info!(
        "serving http://{} (admin http://{}) from {}, which another instance writes",
        public.local_addr()?,
        admin.local_addr()?,
        location
    );
    let api = api.start(public, admin, &config.http);
    shutdown.await;
    tracing::info!("shutting down");
    stop.store(true, Relaxed);
    api.stop().await
}

/// How often a `serve` instance looks whether indexers that were catching up reached the head.
const INDEXER_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// The public and admin APIs, from set-up to shutdown.
struct Api {
    state: AppState,
    stop: tokio::sync::watch::Sender<()>,
}

/// The APIs once serving.
struct Serving {
    state: AppState,
    stop: tokio::sync::watch::Sender<()>,
    servers: [tokio::task::JoinHandle<()>; 2],
}

impl Api {
    /// What the handlers will share.
    fn new(
        config: &Config,
        location: &Location,
        role: Role,
        nodes: Arc<[Arc<NodeStatus>]>,
        ingest: Arc<IngestStats>,
        plugins: &Plugins,
        reload: Arc<ReloadStatus>,
    ) -> Api {
        let (stop, stopped) = tokio::sync::watch::channel(());
        let stall_limit = std::time::Duration::from_millis(config.http.slow_subscriber_timeout_ms);
        let state = AppState {
            store: Store::new(location.clone()),
            bus: Bus::new(),
            role,
            nodes,
            ingest,
            plugins: plugins.registry(),
            routes: plugins.routes(),
            shutdown: stopped,
            started: std::time::Instant::now(),
            reload,
            subscribers: Arc::new(Subscribers::new(config.http.max_subscribers, stall_limit)),
            response_times: api::metrics::response_times(),
        };
        Api { state, stop }
    }

    /// Serve the public API on `public` and the admin API on `admin`.
    fn start(self, public: TcpListener, admin: TcpListener, http: &HttpConfig) -> Serving {
        let write_timeout = std::time::Duration::from_millis(http.write_timeout_ms);
        let header_read_timeout = std::time::Duration::from_millis(http.header_read_timeout_ms);
        let stopped = self.state.shutdown.clone();
        let serve = |listener: TcpListener, router: axum::Router, max_connections: usize| {
            let limits = api::serve::ConnectionLimits { header_read_timeout, max_connections };
            let on_connect = api::limits::on_connect(write_timeout);
            tokio::spawn(api::serve::serve(listener, router, limits, on_connect, stopped.clone()))
        };
        let public_cap = api::serve::connection_cap(http.max_connections);
        let servers = [
            serve(public, api::public(self.state.clone(), http), public_cap),
            serve(admin, api::admin(self.state.clone()), ADMIN_CONNECTIONS),
        ];
        Serving { state: self.state, stop: self.stop, servers }
    }
}

impl Serving {
    /// End the event streams, then give open connections a moment to finish; one whose client
    /// reads nothing could hold them forever.
    async fn stop(self) -> anyhow::Result<()> {
        drop(self.stop);
        self.state.bus.close();
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        for mut server in self.servers {
            tokio::select! {
                result = &mut server => result?,
                _ = tokio::time::sleep_until(deadline) => {
                    let grace = SHUTDOWN_GRACE.as_secs();
                    tracing::warn!("connections still open {grace} s after shutdown began: not waiting for them");
                    server.abort();
                }
            }
        }
        Ok(())
    }
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
