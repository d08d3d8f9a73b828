//! The TOML configuration: what `sluice run --config FILE` reads and `sluice check` validates.
//!
//! Unknown keys are rejected (a typo must not be silently ignored) and every error names the key
//! and the line. Relative paths are relative to the working directory.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

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

/// One `[[nodes]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Unique name, used in logs, the store and the API.
    pub name: Spanned<String>,
    /// SSE base URL; `/events` is appended.
    pub url: Spanned<String>,
    /// REST base URL (`/status`), optional.
    pub rest_url: Option<String>,
    /// JSON-RPC URL (`http://node:7777/rpc`), optional: gaps are backfilled through it.
    pub rpc_url: Option<Spanned<String>>,
    /// Most blocks fetched over JSON-RPC for one gap.
    #[serde(default = "defaults::max_backfill_blocks")]
    pub max_backfill_blocks: u32,
    /// Which event API the node speaks; `auto` asks `/status` (when `rest_url` is set), else
    /// tries 2.x and falls back to 1.x when `/events` does not exist.
    #[serde(default)]
    pub protocol: Protocol,
    /// Seconds to wait for the TCP/HTTP connection.
    #[serde(default = "defaults::connect_timeout_secs")]
    pub connect_timeout_secs: u64,
    /// Reconnect when nothing at all (not even a keepalive) arrives for this many seconds.
    #[serde(default = "defaults::no_message_timeout_secs")]
    pub no_message_timeout_secs: u64,
    /// Longest SSE line accepted, in MiB (Step events can exceed 30 MB); a longer one is treated
    /// like an unreadable frame, so a hostile node cannot exhaust memory.
    #[serde(default = "defaults::max_frame_mib")]
    pub max_frame_mib: u64,
}

impl NodeConfig {
    /// Longest SSE line accepted, in bytes.
    pub fn max_frame_bytes(&self) -> usize {
        usize::try_from(self.max_frame_mib << 20).unwrap_or(usize::MAX)
    }

    /// How long to wait for the connection.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }

    /// How long a silent connection is trusted.
    pub fn no_message_timeout(&self) -> Duration {
        Duration::from_secs(self.no_message_timeout_secs)
    }
}

/// One `[[cspr_cloud]]` entry: CSPR.cloud's streaming API for contract-level events.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsprCloudConfig {
    /// Unique name among all sources.
    pub name: Spanned<String>,
    /// Streaming base URL (`wss://streaming.testnet.cspr.cloud`); `/contract-events` is appended.
    pub url: Spanned<String>,
    /// Contract packages whose events to follow (hex).
    #[serde(default)]
    pub contract_package_hashes: Vec<String>,
    /// Contracts whose events to follow (hex).
    #[serde(default)]
    pub contract_hashes: Vec<String>,
    /// Environment variable holding the access key (sent as `authorization`, never logged).
    #[serde(default = "defaults::cspr_cloud_key_env")]
    pub access_key_env: String,
    /// `Persistent-Session` name: CSPR.cloud then keeps the events of a disconnection for it.
    pub persistent_session: Option<String>,
    /// Seconds to wait for the connection.
    #[serde(default = "defaults::connect_timeout_secs")]
    pub connect_timeout_secs: u64,
    /// Reconnect when nothing (not even a `Ping`) arrives for this many seconds.
    #[serde(default = "defaults::no_message_timeout_secs")]
    pub no_message_timeout_secs: u64,
}

/// One `[[f1r3fly]]` entry: an F1r3fly node's `/ws/events`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct F1r3flyConfig {
    /// Unique name among all sources.
    pub name: Spanned<String>,
    /// WebSocket URL, `ws://host:port/ws/events`.
    pub url: Spanned<String>,
    /// Seconds to wait for the connection.
    #[serde(default = "defaults::connect_timeout_secs")]
    pub connect_timeout_secs: u64,
    /// Reconnect when nothing arrives for this many seconds.
    #[serde(default = "defaults::no_message_timeout_secs")]
    pub no_message_timeout_secs: u64,
}

/// A node's event API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Protocol {
    /// Find out (see [`NodeConfig::protocol`]).
    #[default]
    #[serde(rename = "auto")]
    Auto,
    /// Casper 1.x: `/events/main`, `/events/deploys`, `/events/sigs`.
    #[serde(rename = "1.x")]
    V1,
    /// Casper 2.x: `/events`.
    #[serde(rename = "2.x")]
    V2,
}

/// `[storage]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// SQLite file; `:memory:` keeps it in a temporary file removed at exit.
    #[serde(default = "defaults::storage_path")]
    pub path: String,
    /// Directory for compiled plugin code; default: `plugin-cache` beside the database.
    pub plugin_cache: Option<PathBuf>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig { path: defaults::storage_path(), plugin_cache: None }
    }
}

/// `[http]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the public API (REST and SSE).
    #[serde(default = "defaults::http_listen")]
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { listen: defaults::http_listen() }
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

/// One `[[plugins]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Unique name; annotations are stored under it.
    pub name: Spanned<String>,
    /// Path of the component (`.wasm`, target `wasm32-wasip2`).
    pub path: Spanned<PathBuf>,
    /// Longest a single call may run, in milliseconds.
    #[serde(default = "defaults::plugin_timeout_ms")]
    pub timeout_ms: u64,
    /// Most linear memory the plugin may use, in MiB.
    #[serde(default = "defaults::plugin_memory_mib")]
    pub memory_mib: u64,
    /// After this many failed calls in a row the plugin is suspended (events pass it by).
    #[serde(default = "defaults::plugin_max_failures")]
    pub max_consecutive_failures: u32,
    /// Handed to the plugin's `init` as a JSON object.
    #[serde(default)]
    pub config: toml::Table,
}

mod defaults {
    use std::net::SocketAddr;

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
    pub fn plugin_timeout_ms() -> u64 {
        100
    }
    pub fn plugin_memory_mib() -> u64 {
        64
    }
    pub fn plugin_max_failures() -> u32 {
        10
    }
}

/// What validation checks alike for every kind of source.
struct SourceView<'a> {
    list: &'static str,
    index: usize,
    name: &'a Spanned<String>,
    urls: Vec<(&'static str, Option<&'a Spanned<String>>)>,
    schemes: &'static [&'static str],
    connect_timeout_secs: u64,
    silence_secs: u64,
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

    /// The names of all sources: nodes, then CSPR.cloud streams, then F1r3fly nodes.
    pub fn source_names(&self) -> impl Iterator<Item = &str> {
        self.sources().map(|source| source.name.get_ref().as_str())
    }

    /// Every source of every kind, as validation sees it.
    fn sources(&self) -> impl Iterator<Item = SourceView<'_>> {
        const HTTP: &[&str] = &["http", "https"];
        const WS: &[&str] = &["ws", "wss"];
        let nodes = self.nodes.iter().enumerate().map(|(index, n)| SourceView {
            list: "nodes",
            index,
            name: &n.name,
            urls: vec![("url", Some(&n.url)), ("rpc_url", n.rpc_url.as_ref())],
            schemes: HTTP,
            connect_timeout_secs: n.connect_timeout_secs,
            silence_secs: n.no_message_timeout_secs,
        });
        let clouds = self.cspr_cloud.iter().enumerate().map(|(index, c)| SourceView {
            list: "cspr_cloud",
            index,
            name: &c.name,
            urls: vec![("url", Some(&c.url))],
            schemes: WS,
            connect_timeout_secs: c.connect_timeout_secs,
            silence_secs: c.no_message_timeout_secs,
        });
        let f1r3fly = self.f1r3fly.iter().enumerate().map(|(index, f)| SourceView {
            list: "f1r3fly",
            index,
            name: &f.name,
            urls: vec![("url", Some(&f.url))],
            schemes: WS,
            connect_timeout_secs: f.connect_timeout_secs,
            silence_secs: f.no_message_timeout_secs,
        });
        nodes.chain(clouds).chain(f1r3fly)
    }

    fn validate(&self, text: &str) -> Result<(), String> {
        let at = |span: std::ops::Range<usize>, key: String, problem: String| {
            let line = text[..span.start].matches('\n').count() + 1;
            format!("line {line}: `{key}`: {problem}")
        };
        let mut names: Vec<&str> = Vec::new();
        for source in self.sources() {
            let (list, i, name) = (source.list, source.index, source.name);
            if name.get_ref().is_empty() || name.get_ref().contains('/') {
                let problem = "a source name must be non-empty and without `/` (1.x streams are `name/main`, ...)";
                return Err(at(name.span(), format!("{list}[{i}].name"), problem.into()));
            }
            if names.contains(&name.get_ref().as_str()) {
                let problem = format!("duplicate source name {:?}", name.get_ref());
                return Err(at(name.span(), format!("{list}[{i}].name"), problem));
            }
            names.push(name.get_ref());
            for (key, secs) in [
                ("connect_timeout_secs", source.connect_timeout_secs),
                ("no_message_timeout_secs", source.silence_secs),
            ] {
                if !(1..=86_400).contains(&secs) {
                    let problem = format!("{key} must be between 1 and 86400 seconds");
                    return Err(at(name.span(), format!("{list}[{i}].{key}"), problem));
                }
            }
            for (key, url) in source.urls {
                let Some(url) = url else { continue };
                let scheme = reqwest::Url::parse(url.get_ref()).map(|u| u.scheme().to_owned());
                let problem = match scheme {
                    Err(e) => format!("not a URL: {e}"),
                    Ok(scheme) if !source.schemes.contains(&scheme.as_str()) => {
                        format!("expected a {} URL", source.schemes.join(" or "))
                    }
                    Ok(_) => continue,
                };
                return Err(at(url.span(), format!("{list}[{i}].{key}"), problem));
            }
        }
        for (i, node) in self.nodes.iter().enumerate() {
            if !(1..=4096).contains(&node.max_frame_mib) {
                let problem = "max_frame_mib must be between 1 and 4096".to_owned();
                return Err(at(node.name.span(), format!("nodes[{i}].max_frame_mib"), problem));
            }
            if !(1..=1_000_000).contains(&node.max_backfill_blocks) {
                let problem = "max_backfill_blocks must be between 1 and 1000000".to_owned();
                return Err(at(node.name.span(), format!("nodes[{i}].max_backfill_blocks"), problem));
            }
        }
        for (i, cloud) in self.cspr_cloud.iter().enumerate() {
            if cloud.contract_package_hashes.is_empty() && cloud.contract_hashes.is_empty() {
                let problem = "give contract_package_hashes or contract_hashes to follow".to_owned();
                return Err(at(cloud.name.span(), format!("cspr_cloud[{i}]"), problem));
            }
            let hashes = cloud.contract_package_hashes.iter().chain(&cloud.contract_hashes);
            if let Some(bad) = hashes.into_iter().find(|h| h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit())) {
                let problem = format!("{bad:?} is not a 32-byte hex hash");
                return Err(at(cloud.name.span(), format!("cspr_cloud[{i}]"), problem));
            }
        }
        for (i, plugin) in self.plugins.iter().enumerate() {
            if self.plugins[..i].iter().any(|p| p.name.get_ref() == plugin.name.get_ref()) {
                let problem = format!("duplicate plugin name {:?}", plugin.name.get_ref());
                return Err(at(plugin.name.span(), format!("plugins[{i}].name"), problem));
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

#[cfg(test)]
mod tests {
    use super::*;

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

        let err = Config::parse("[[plugins]]\nname = \"f\"\npath = \"/no/such.wasm\"\n").unwrap_err();
        assert!(err.starts_with("line 3: `plugins[0].path`: no file at /no/such.wasm"), "{err}");
    }

    #[test]
    fn wrong_type_is_reported() {
        let err = Config::parse("[http]\nlisten = 5\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }
}
