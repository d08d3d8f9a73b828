//! `sluice serve`, and a standby while it waits: the API over a database another instance
//! writes (store → tail → bus → api), with plugin routes read-only.

use super::endpoints::{Api, Serving, bind};
use crate::api::Role;
use crate::config::Config;
use crate::pipeline::IngestStats;
use crate::plugins::{HostServices, Plugins, ReloadStatus, runtime};
use crate::store::Location;
use crate::tail::Tail;
use anyhow::Context;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use tokio::net::TcpListener;

/// How often a follower looks whether indexers that were catching up reached the head.
const INDEXER_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// `sluice serve`: the API only, over the database another instance (`sluice run`) writes,
/// perhaps through a streaming replica (`storage.read_url`), until `shutdown` completes.
pub async fn serve(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    crate::install_tls_provider();
    let public = bind(config.http.listen, "http.listen")?;
    let admin = bind(config.admin.listen, "admin.listen")?;
    let (location, primary) = (Location::for_reading(&config.storage)?, Location::of(&config.storage)?);
    tracing::info!(
        "serving http://{} (admin http://{}) from {}, which another instance writes",
        public.local_addr()?,
        admin.local_addr()?,
        location
    );
    // Off the async workers: the database clients block.
    let follower =
        tokio::task::block_in_place(|| Follower::start(&config, [&location, &primary], Role::Serve, public, admin))?;
    shutdown.await;
    tracing::info!("shutting down");
    follower.stop().await
}

/// An API that follows the log another instance writes.
pub struct Follower {
    api: Serving,
    stop: Arc<AtomicBool>,
}

impl Follower {
    /// Serve the API on `public` and `admin` from the database at `location`, publishing what the
    /// writing instance appends to `primary` (the same database, or the primary of a replica
    /// `location`: it announces its commits). Blocks (run it off the async workers, inside the
    /// runtime).
    pub fn start(
        config: &Config,
        [location, primary]: [&Location; 2],
        role: Role,
        public: TcpListener,
        admin: TcpListener,
    ) -> anyhow::Result<Follower> {
        let mut log = crate::store::open_read(location)?;
        // Read before the API opens: the tail starts after it.
        let head = log
            .last_seq()
            .with_context(|| format!("reading the event log in {location} (has `sluice run` created it?)"))?;
        let (tail_log, appends) = (crate::store::open_read(location)?, crate::store::appends::watch(primary)?);
        let engine = runtime::engine(&super::plugin_cache(config, location))?;
        let services = HostServices::from_config(config, location.clone())?;
        let mut plugins = Plugins::load(&engine, &config.plugins, &services)?;

        let ingest = Arc::new(IngestStats::default());
        let reload_status = Arc::new(ReloadStatus::default());
        let api = Api::new(config, location, role, Arc::new([]), ingest.clone(), &plugins, reload_status);
        let stop = Arc::new(AtomicBool::new(false));
        let tail = Tail { log: tail_log, appends, bus: api.state.bus.clone(), stats: ingest, from: head + 1 };
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
        Ok(Follower { api: api.start(public, admin, &config.http), stop })
    }

    /// Stop following and serving.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.store(true, Relaxed);
        self.api.stop().await
    }
}
