//! `sluice plugin test PLUGIN.wasm --events FILE`: the harness for plugins built outside Rust
//! (a TypeScript component, say) and for tests that have only the `sluice` binary. It feeds the
//! events, asks the routes, and prints what happened as one JSON document.

use super::{Harness, Upstream};
use anyhow::Context;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What to run.
#[derive(Debug, Clone, clap::Args)]
pub struct TestRun {
    /// The plugin's component (`.wasm`).
    pub wasm: PathBuf,
    /// Node events, one JSON object a line (`{"BlockAdded":{…}}`, as a node sends them); a
    /// blank line ends a batch. `-` reads them from standard input.
    #[arg(long)]
    pub events: PathBuf,
    /// The plugin's `[plugins.config]` table as TOML text, or `@FILE` to read it from a file.
    #[arg(long, default_value = "")]
    pub config: String,
    /// A plugin that runs before it (a decoder whose events it indexes): `NAME=PATH.wasm`;
    /// repeatable, in order.
    #[arg(long = "upstream", value_name = "NAME=WASM")]
    pub upstream: Vec<String>,
    /// An upstream plugin's config: `NAME=TOML` or `NAME=@FILE`.
    #[arg(long = "upstream-config", value_name = "NAME=TOML")]
    pub upstream_config: Vec<String>,
    /// After the events, ask the plugin's routes: `"GET /path?query"`; repeatable, in order.
    #[arg(long = "request", value_name = "METHOD PATH")]
    pub requests: Vec<String>,
}

/// Run it and return the report: `{"events": [{sequence, kind, node, dropped, annotations,
/// json (derived events only)}], "error": last error | null, "responses": [{request, status,
/// body}]}` (a body that is JSON as JSON, else as text).
pub fn run(test: &TestRun) -> anyhow::Result<Value> {
    let configs = test.upstream_config.iter().map(|entry| {
        let (name, config) = named(entry)?;
        Ok((name, toml_text(config)?))
    });
    let configs: HashMap<&str, String> = configs.collect::<anyhow::Result<_>>()?;
    let paths = test.upstream.iter().map(|entry| named(entry).map(|(name, wasm)| (name, Path::new(wasm))));
    let paths: Vec<(&str, &Path)> = paths.collect::<anyhow::Result<_>>()?;
    let upstream: Vec<Upstream> = paths
        .iter()
        .map(|(name, wasm)| Upstream { name, wasm, config_toml: configs.get(name).map_or("", String::as_str) })
        .collect();
    let mut harness = Harness::load_after(&upstream, &test.wasm, &toml_text(&test.config)?)?;
    let mut events = Vec::new();
    for batch in batches(&read_events(&test.events)?) {
        for fed in harness.feed(&batch)? {
            let mut event = json!({
                "sequence": fed.event.seq, "kind": fed.event.kind, "node": fed.event.node,
                "dropped": fed.dropped, "annotations": fed.annotations,
            });
            // What a decoder derived, in full (the fed events are in the file).
            if fed.event.node.starts_with("plugin:") {
                event["json"] = serde_json::from_str(&fed.event.raw)?;
            }
            events.push(event);
        }
    }
    let mut responses = Vec::new();
    for request in &test.requests {
        let (method, path) = request.trim().split_once(' ').context("a request is \"METHOD PATH\"")?;
        let (status, body) = harness.request(method, path.trim(), "")?;
        let body = serde_json::from_str::<Value>(&body).unwrap_or(Value::String(body));
        responses.push(json!({"request": request, "status": status, "body": body}));
    }
    Ok(json!({"events": events, "error": harness.last_error(), "responses": responses}))
}

/// `NAME=VALUE`.
fn named(entry: &str) -> anyhow::Result<(&str, &str)> {
    entry.split_once('=').with_context(|| format!("{entry:?} is not NAME=VALUE"))
}

/// TOML text, or the text of the file after `@`.
fn toml_text(value: &str) -> anyhow::Result<String> {
    match value.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file).with_context(|| format!("reading {file}")),
        None => Ok(value.to_owned()),
    }
}

fn read_events(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        return std::io::read_to_string(std::io::stdin()).context("reading events from standard input");
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// The events' lines in batches (a blank line ends one).
fn batches(text: &str) -> Vec<Vec<&str>> {
    let mut batches = vec![Vec::new()];
    for line in text.lines().map(str::trim) {
        match (line.is_empty(), batches.last_mut()) {
            (false, Some(batch)) => batch.push(line),
            (true, Some(batch)) if !batch.is_empty() => batches.push(Vec::new()),
            _ => {}
        }
    }
    batches.retain(|batch| !batch.is_empty());
    batches
}

#[cfg(test)]
mod tests {
    use super::batches;

    #[test]
    fn blank_lines_end_batches() {
        assert_eq!(batches("a\nb\n\n\nc\n"), vec![vec!["a", "b"], vec!["c"]]);
        assert_eq!(batches("a\r\nb\r\n"), vec![vec!["a", "b"]]);
        assert_eq!(batches("a\r\n\r\nb\r\n"), vec![vec!["a"], vec!["b"]]);
        assert!(batches("\n").is_empty());
    }
}
