//! The TOML configuration: what `sluice run --config FILE` reads and `sluice check` validates.
//!
//! Unknown keys are rejected (a typo must not be silently ignored) and every error names the key
//! and the line. Relative paths are relative to the working directory.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod plugins;
mod sources;

pub use plugins::{OnError, PluginConfig};
pub use sources::{CsprCloudConfig, F1r3flyConfig, HistoryConfig, NodeConfig, Protocol};

/// The whole configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Casper nodes to ingest from.
    #[serde(default)]
    pub nodes: Vec<NodeConfig>,
    /// CSPR.cloud contract-event streams to ingest from.
    #[serde(default)]
    pub cspr_cloud: Vec<CsprCloudConfig>,
    /// F1r3fly nodes to ingest from.
    #[serde(default)]
    pub f1r3fly: Vec<F1r3flyConfig>,
    /// The chain's past to fetch over JSON-RPC, if any.
    pub history: Option<HistoryConfig>,
    /// Where events are stored.
    #[serde(default)]
    pub storage: StorageConfig,
    /// The public API server.
    #[serde(default)]
    pub http: HttpConfig,
    /// The operator API server (plugin statistics); localhost only by default.
    #[serde(default)]
    pub admin: AdminConfig,
    /// WASM plugins, run in this order for every event.
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
}

/// `[storage]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// SQLite file; `:memory:` keeps it in a temporary file removed at exit.
    #[serde(default = "defaults::storage_path")]
    pub path: String,
    /// A PostgreSQL database instead (`postgresql://user@host:5432/db`); see [`Self::url`].
    url: Option<String>,
    /// Where `sluice serve` reads instead (a streaming replica); see [`Self::read_url`].
    read_url: Option<String>,
    /// Directory for compiled plugin code; default: `plugin-cache` beside the database.
    pub plugin_cache: Option<PathBuf>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig { path: defaults::storage_path(), url: None, read_url: None, plugin_cache: None }
    }
}

impl StorageConfig {
    /// The PostgreSQL URL, if one is given: `url`, else the environment's `SLUICE_DATABASE_URL`,
    /// else `DATABASE_URL` (as Ponder and most tools read it). None: the SQLite file at `path`.
    pub fn url(&self) -> Option<String> {
        self.url
            .clone()
            .or_else(|| from_environment("SLUICE_DATABASE_URL"))
            .or_else(|| from_environment("DATABASE_URL"))
    }

    /// Where `sluice serve` reads, if not from [`Self::url`]: `read_url`, else the
    /// environment's `SLUICE_DATABASE_READ_URL` (a streaming replica of the same database).
    pub fn read_url(&self) -> Option<String> {
        self.read_url.clone().or_else(|| from_environment("SLUICE_DATABASE_READ_URL"))
    }
}

/// The environment variable `name`, unless unset or empty.
fn from_environment(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// `[http]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the public API (REST, SSE and WebSocket).
    #[serde(default = "defaults::http_listen")]
    pub listen: SocketAddr,
    /// Open SSE streams and WebSocket subscriptions beyond which new ones are refused (503).
    #[serde(default = "defaults::max_subscribers")]
    pub max_subscribers: usize,
    /// A subscriber that falls further behind the live events than the server keeps in memory
    /// and stays behind this long, in milliseconds, is disconnected (SSE: with a final comment
    /// saying why).
    #[serde(default = "defaults::slow_subscriber_timeout_ms")]
    pub slow_subscriber_timeout_ms: u64,
    /// A connection whose client accepts no bytes this long, in milliseconds, is closed (the
    /// kernel's `TCP_USER_TIMEOUT`): a client that stopped reading gives its slot back.
    #[serde(default = "defaults::write_timeout_ms")]
    pub write_timeout_ms: u64,
    /// A connection that sends no complete request head this long, in milliseconds, is closed;
    /// so is a keep-alive connection idle this long between requests (streams are not cut).
    #[serde(default = "defaults::header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// Connections open at once beyond which new ones are refused (503) and closed; lowered
    /// to what the process's open-file limit allows.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
    /// Requests being answered at once beyond which new ones are refused (503); a stream counts
    /// only until its response starts.
    #[serde(default = "defaults::max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// Requests per second from one client address (IPv6: one /64; a burst of as many) beyond
    /// which its new ones are refused (429); 0: no limit. Behind a proxy, list it in
    /// `trusted_proxies`, or every client has the proxy's address.
    #[serde(default)]
    pub requests_per_second: u32,
    /// Proxies whose `X-Forwarded-For` is believed: a request from one of them counts as from
    /// the address it forwarded for (the last one, from the right, that is not a trusted proxy).
    /// None by default.
    #[serde(default)]
    pub trusted_proxies: Vec<TrustedProxy>,
    /// Longest time to produce a response (a stream's first bytes), in milliseconds (504 after).
    #[serde(default = "defaults::request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Largest request body, in KiB (413 beyond).
    #[serde(default = "defaults::max_body_kib")]
    pub max_body_kib: usize,
    /// Origins browsers may call the API from (CORS): `["*"]` for any; none by default.
    #[serde(default)]
    pub cors_origins: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: defaults::http_listen(),
            max_subscribers: defaults::max_subscribers(),
            slow_subscriber_timeout_ms: defaults::slow_subscriber_timeout_ms(),
            write_timeout_ms: defaults::write_timeout_ms(),
            header_read_timeout_ms: defaults::header_read_timeout_ms(),
            max_connections: defaults::max_connections(),
            max_concurrent_requests: defaults::max_concurrent_requests(),
            requests_per_second: 0,
            trusted_proxies: Vec::new(),
            request_timeout_ms: defaults::request_timeout_ms(),
            max_body_kib: defaults::max_body_kib(),
            cors_origins: Vec::new(),
        }
    }
}

/// An entry of `http.trusted_proxies`: an address (`10.0.0.7`) or a network (`10.0.0.0/8`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub struct TrustedProxy(pub ipnet::IpNet);

impl TryFrom<String> for TrustedProxy {
    type Error = String;

    fn try_from(text: String) -> Result<TrustedProxy, String> {
        let network = text.parse().or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
        network
            .map(TrustedProxy)
            .map_err(|_| format!("{text:?} is neither an IP address nor a network like 10.0.0.0/8"))
    }
}

/// `[admin]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the admin API; `127.0.0.1` unless you mean to expose it.
    #[serde(default = "defaults::admin_listen")]
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig { listen: defaults::admin_listen() }
    }
}

mod defaults {
    use std::net::SocketAddr;

    pub fn max_subscribers() -> usize {
        10_000
    }
    pub fn slow_subscriber_timeout_ms() -> u64 {
        10_000
    }
    pub fn write_timeout_ms() -> u64 {
        30_000
    }
    pub fn max_concurrent_requests() -> usize {
        1024
    }
    pub fn header_read_timeout_ms() -> u64 {
        15_000
    }
    pub fn max_connections() -> usize {
        16_384
    }
    pub fn request_timeout_ms() -> u64 {
        30_000
    }
    pub fn max_body_kib() -> usize {
        1024
    }
    pub fn connect_timeout_secs() -> u64 {
        10
    }
    pub fn no_message_timeout_secs() -> u64 {
        60
    }
    pub fn max_frame_mib() -> u64 {
        256
    }
    pub fn max_backfill_blocks() -> u32 {
        10_000
    }
    pub fn history_max_requests() -> u32 {
        32
    }
    pub fn history_request_timeout_ms() -> u64 {
        10_000
    }
    pub fn cspr_cloud_key_env() -> String {
        "CSPR_CLOUD_ACCESS_KEY".into()
    }
    pub fn storage_path() -> String {
        "./data/sluice.db".into()
    }
    pub fn http_listen() -> SocketAddr {
        ([127, 0, 0, 1], 18888).into()
    }
    pub fn admin_listen() -> SocketAddr {
        ([127, 0, 0, 1], 18887).into()
    }
}

/// A configuration that cannot be used, with the file, line and key at fault.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConfigError {
    file: String,
    message: String,
}

impl Config {
    /// Read, parse and validate a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError { file: file.clone(), message: format!("cannot read: {e}") })?;
        Config::parse(&text).map_err(|message| ConfigError { file, message })
    }

    /// Parse and validate configuration text.
    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
        config.validate(text)?;
        Ok(config)
    }

    fn validate(&self, text: &str) -> Result<(), String> {
        let at = |span: std::ops::Range<usize>, key: String, problem: String| {
            let line = text[..span.start].matches('\n').count() + 1;
            format!("line {line}: `{key}`: {problem}")
        };
        self.validate_sources(at)?;
        self.validate_listeners_and_storage()?;
        let http = &self.http;
        for (key, value) in [
            ("max_concurrent_requests", http.max_concurrent_requests as u64),
            ("request_timeout_ms", http.request_timeout_ms),
            ("slow_subscriber_timeout_ms", http.slow_subscriber_timeout_ms),
            ("write_timeout_ms", http.write_timeout_ms),
            ("header_read_timeout_ms", http.header_read_timeout_ms),
            ("max_connections", http.max_connections as u64),
            ("max_body_kib", http.max_body_kib as u64),
        ] {
            if value == 0 {
                return Err(format!("`http.{key}` must be at least 1"));
            }
        }
        let origin = |o: &String| o == "*" || o.starts_with("http://") || o.starts_with("https://");
        if let Some(bad) =
            http.cors_origins.iter().find(|o| !origin(o) || o.parse::<axum::http::HeaderValue>().is_err())
        {
            return Err(format!("`http.cors_origins`: {bad:?} is neither \"*\" nor an http(s) origin"));
        }
        for (i, plugin) in self.plugins.iter().enumerate() {
            let name = plugin.name.get_ref();
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                let problem = "a plugin name is letters, digits, `-` and `_` (it is part of `/plugins/{name}/`)";
                return Err(at(plugin.name.span(), format!("plugins[{i}].name"), problem.into()));
            }
            if self.plugins[..i].iter().any(|p| p.name.get_ref() == plugin.name.get_ref()) {
                let problem = format!("duplicate plugin name {:?}", plugin.name.get_ref());
                return Err(at(plugin.name.span(), format!("plugins[{i}].name"), problem));
            }
            if let Some(node) = &plugin.node {
                let granted = self.nodes.iter().find(|n| n.name.get_ref() == node.get_ref());
                if granted.is_none_or(|n| n.rpc_url.is_none()) {
                    let problem = format!("no [[nodes]] entry named {:?} with an rpc_url", node.get_ref());
                    return Err(at(node.span(), format!("plugins[{i}].node"), problem));
                }
            }
            if let Some(input) = &plugin.input {
                if !self.plugins.iter().any(|p| p.attached && p.name.get_ref() == input.get_ref()) {
                    let problem = format!("no plugin named {:?} with `attached = true`", input.get_ref());
                    return Err(at(input.span(), format!("plugins[{i}].input"), problem));
                }
            }
            if let Some(files) = plugin.files.as_ref().filter(|files| !files.get_ref().is_dir()) {
                let problem = format!("no directory at {}", files.get_ref().display());
                return Err(at(files.span(), format!("plugins[{i}].files"), problem));
            }
            let path = plugin.path.get_ref();
            if !path.is_file() {
                let hint = "build the plugins first (`cargo xtask plugins`)";
                let problem = format!("no file at {} ({hint})", path.display());
                return Err(at(plugin.path.span(), format!("plugins[{i}].path"), problem));
            }
            let limits = [
                ("timeout_ms", plugin.timeout_ms, 60_000),
                ("memory_mib", plugin.memory_mib, 65_536),
                ("max_consecutive_failures", u64::from(plugin.max_consecutive_failures), u64::from(u32::MAX)),
                ("max_output_kib", plugin.max_output_kib, 1 << 20),
                ("max_failure_percent", u64::from(plugin.max_failure_percent), 100),
                ("route_workers", plugin.route_workers as u64, 64),
                ("route_queue", plugin.route_queue as u64, 100_000),
                ("node_queries_per_second", u64::from(plugin.node_queries_per_second), 100_000),
                ("storage_quota_mib", plugin.storage_quota_mib, 1 << 30),
            ];
            for (key, value, max) in limits {
                if !(1..=max).contains(&value) {
                    let problem = format!("{key} must be between 1 and {max}");
                    return Err(at(plugin.name.span(), format!("plugins[{i}].{key}"), problem));
                }
            }
        }
        Ok(())
    }
}

impl Config {
    /// What `run` would fail on before serving: both listeners on one port, a database path
    /// that cannot be a file.
    fn validate_listeners_and_storage(&self) -> Result<(), String> {
        let (http, admin) = (self.http.listen, self.admin.listen);
        let overlap = http.ip() == admin.ip() || http.ip().is_unspecified() || admin.ip().is_unspecified();
        if http.port() == admin.port() && http.port() != 0 && overlap {
            return Err(format!("`http.listen` ({http}) and `admin.listen` ({admin}) cannot share a port"));
        }
        let path = Path::new(&self.storage.path);
        if self.storage.path != ":memory:" {
            if path.is_dir() {
                return Err(format!("`storage.path`: {} is a directory; name the database file", path.display()));
            }
            // The nearest part of the path that exists must be a directory to hold the file.
            if let Some(existing) = path.ancestors().skip(1).find(|a| !a.as_os_str().is_empty() && a.exists())
                && !existing.is_dir()
            {
                return Err(format!("`storage.path`: {} is not a directory", existing.display()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_run_would_refuse_check_refuses_too() {
        let err =
            Config::parse("[http]\nlisten = \"127.0.0.1:7000\"\n[admin]\nlisten = \"0.0.0.0:7000\"\n").unwrap_err();
        assert!(err.contains("cannot share a port"), "{err}");
        assert!(Config::parse("[http]\nlisten = \"127.0.0.1:7000\"\n[admin]\nlisten = \"127.0.0.2:7000\"\n").is_ok());
        let err = Config::parse("[storage]\npath = \"Cargo.toml/sluice.db\"\n").unwrap_err();
        assert_eq!(err, "`storage.path`: Cargo.toml is not a directory");
        let err = Config::parse("[storage]\npath = \"src\"\n").unwrap_err();
        assert!(err.contains("is a directory"), "{err}");
    }

    #[test]
    fn defaults_fill_an_empty_file() {
        let config = Config::parse("").unwrap();
        assert_eq!(config.http.listen.to_string(), "127.0.0.1:18888");
        assert_eq!(config.admin.listen.ip().to_string(), "127.0.0.1");
        assert_eq!(config.storage.path, "./data/sluice.db");
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = Config::parse("[http]\nlisten = \"127.0.0.1:1\"\n\n[storage]\npaht = \"x\"\n").unwrap_err();
        assert!(err.contains("line 5"), "{err}");
        assert!(err.contains("paht"), "{err}");
    }

    #[test]
    fn semantic_errors_name_key_and_line() {
        let text = "[[nodes]]\nname = \"a\"\nurl = \"http://x\"\n\n[[nodes]]\nname = \"a\"\nurl = \"http://y\"\n";
        let err = Config::parse(text).unwrap_err();
        assert_eq!(err, "line 6: `nodes[1].name`: duplicate source name \"a\"");

        let err = Config::parse("[[nodes]]\nname = \"a/main\"\nurl = \"http://x\"\n").unwrap_err();
        assert!(err.starts_with("line 2: `nodes[0].name`: a source name must be non-empty and without `/`"), "{err}");

        let text = "[[nodes]]\nname = \"a\"\nurl = \"http://x\"\n\n[[f1r3fly]]\nname = \"a\"\nurl = \"ws://y\"\n";
        let err = Config::parse(text).unwrap_err();
        assert_eq!(err, "line 6: `f1r3fly[0].name`: duplicate source name \"a\"");

        let err = Config::parse("[[f1r3fly]]\nname = \"f\"\nurl = \"http://y\"\n").unwrap_err();
        assert_eq!(err, "line 3: `f1r3fly[0].url`: expected a ws or wss URL");

        let err = Config::parse("[[cspr_cloud]]\nname = \"c\"\nurl = \"wss://y\"\n").unwrap_err();
        assert!(err.starts_with("line 2: `cspr_cloud[0]`: give contract_package_hashes"), "{err}");

        let err = Config::parse("[[nodes]]\nname = \"a\"\nurl = \"not a url\"\n").unwrap_err();
        assert!(err.starts_with("line 3: `nodes[0].url`: not a URL"), "{err}");

        let err = Config::parse("[[plugins]]\nname = \"f\"\npath = \"Cargo.toml\"\nnode = \"x\"\n").unwrap_err();
        assert_eq!(err, "line 4: `plugins[0].node`: no [[nodes]] entry named \"x\" with an rpc_url");

        let err = Config::parse("[[plugins]]\nname = \"a b\"\npath = \"Cargo.toml\"\n").unwrap_err();
        assert!(err.starts_with("line 2: `plugins[0].name`: a plugin name is letters"), "{err}");

        let err = Config::parse("[history]\nfrom_height = 5\n").unwrap_err();
        assert_eq!(err, "line 2: `history.from_height`: no [[nodes]] entry has an rpc_url to fetch the history from");
        let node = "[[nodes]]\nname = \"a\"\nurl = \"http://x\"\nrpc_url = \"http://x/rpc\"\n\n";
        let err = Config::parse(&format!("{node}[history]\nfrom_height = 5\nto_height = 4\n")).unwrap_err();
        assert_eq!(err, "line 7: `history.to_height`: below from_height");
        let err = Config::parse(&format!("{node}[history]\nfrom_height = 5\nmax_requests = 0\n")).unwrap_err();
        assert_eq!(err, "line 7: `history.max_requests`: must be between 1 and 1024");

        let err = Config::parse("[[plugins]]\nname = \"f\"\npath = \"/no/such.wasm\"\n").unwrap_err();
        assert!(err.starts_with("line 3: `plugins[0].path`: no file at /no/such.wasm"), "{err}");
    }

    #[test]
    fn trusted_proxies_are_addresses_or_networks() {
        let config = Config::parse("[http]\ntrusted_proxies = [\"10.0.0.7\", \"fd00::/8\"]\n").unwrap();
        let proxies: Vec<String> = config.http.trusted_proxies.iter().map(|p| p.0.to_string()).collect();
        assert_eq!(proxies, ["10.0.0.7/32", "fd00::/8"]);
        let err = Config::parse("[http]\ntrusted_proxies = [\"10.0.0.0/8\", \"proxy.local\"]\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("\"proxy.local\" is neither an IP address nor a network"), "{err}");
    }

    #[test]
    fn wrong_type_is_reported() {
        let err = Config::parse("[http]\nlisten = 5\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }
}
