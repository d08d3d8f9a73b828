//! The public and admin APIs of an instance, from set-up to shutdown, and their listeners.

use crate::api::subscription::Subscribers;
use crate::api::{self, AppState, Role};
use crate::backfill::HistoryStatus;
use crate::bus::Bus;
use crate::config::{Config, HttpConfig};
use crate::pipeline::IngestStats;
use crate::plugins::{Plugins, ReloadStatus};
use crate::source::NodeStatus;
use crate::store::{Location, Store};
use anyhow::Context;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The public and admin APIs, from set-up to shutdown.
pub struct Api {
    /// What the handlers share.
    pub state: AppState,
    stop: tokio::sync::watch::Sender<()>,
}

/// The APIs once serving.
pub struct Serving {
    state: AppState,
    stop: tokio::sync::watch::Sender<()>,
    servers: [tokio::task::JoinHandle<()>; 2],
}

impl Api {
    /// What the handlers will share.
    pub fn new(
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
            history: (role == Role::Run)
                .then_some(config.history.as_ref())
                .flatten()
                .map(|history| Arc::new(HistoryStatus::new(*history.from_height.get_ref()))),
        };
        Api { state, stop }
    }

    /// Serve the public API on `public` and the admin API on `admin`.
    pub fn start(self, public: TcpListener, admin: TcpListener, http: &HttpConfig) -> Serving {
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
    pub async fn stop(self) -> anyhow::Result<()> {
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

/// Listen on `address` with a backlog for bursts (thousands of clients reconnecting at once
/// after a restart); the default 128 drops their connection attempts, which wait a second or
/// more to try again.
pub fn bind(address: std::net::SocketAddr, key: &str) -> anyhow::Result<TcpListener> {
    let listen = || {
        let socket =
            if address.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        socket.bind(address)?;
        socket.listen(4096)
    };
    listen().with_context(|| format!("{key}: cannot listen on {address}"))
}

/// Two handles on `listener`'s socket: both accept from it (a standby's API, then the leader's).
pub fn twin(listener: TcpListener) -> std::io::Result<(TcpListener, TcpListener)> {
    let listener = listener.into_std()?;
    let other = listener.try_clone()?;
    Ok((TcpListener::from_std(listener)?, TcpListener::from_std(other)?))
}
