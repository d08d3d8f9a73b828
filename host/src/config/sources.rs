//! The `[[nodes]]`, `[[cspr_cloud]]` and `[[f1r3fly]]` entries and `[history]`: where events
//! come from.

use super::{Config, defaults};
use serde::Deserialize;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

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

/// `[history]`: the chain's past, fetched over the nodes' JSON-RPC.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryConfig {
    /// The first block height to store.
    pub from_height: Spanned<u64>,
    /// The last one; default: the highest block the nodes have when Sluice starts (the live
    /// stream brings the rest).
    pub to_height: Option<u64>,
    /// JSON-RPC requests in flight at once, over all nodes with an `rpc_url`.
    #[serde(default = "defaults::history_max_requests")]
    pub max_requests: u32,
    /// Longest wait for one answer, in milliseconds; a request that takes longer is tried again
    /// (on the next node).
    #[serde(default = "defaults::history_request_timeout_ms")]
    pub request_timeout_ms: u64,
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

impl Config {
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

    /// Check what every source needs; `at` names the line and key of a problem.
    pub(super) fn validate_sources(&self, at: impl Fn(Range<usize>, String, String) -> String) -> Result<(), String> {
        let mut names: Vec<&str> = Vec::new();
        for source in self.sources() {
            let (list, i, name) = (source.list, source.index, source.name);
            if name.get_ref().is_empty() || name.get_ref().contains(['/', ':']) {
                let problem = "a source name must be non-empty and without `/` or `:` (1.x streams are `name/main`, \
                               derived events come from `plugin:name`)";
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
        if let Some(history) = &self.history {
            let from = *history.from_height.get_ref();
            let problem = if !self.nodes.iter().any(|node| node.rpc_url.is_some()) {
                Some(("from_height", "no [[nodes]] entry has an rpc_url to fetch the history from"))
            } else if history.to_height.is_some_and(|to| to < from) {
                Some(("to_height", "below from_height"))
            } else if !(1..=1024).contains(&history.max_requests) {
                Some(("max_requests", "must be between 1 and 1024"))
            } else if !(1..=600_000).contains(&history.request_timeout_ms) {
                Some(("request_timeout_ms", "must be between 1 and 600000"))
            } else {
                None
            };
            if let Some((key, problem)) = problem {
                return Err(at(history.from_height.span(), format!("history.{key}"), problem.into()));
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
        Ok(())
    }
}
