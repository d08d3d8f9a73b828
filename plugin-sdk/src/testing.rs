//! Test a plugin inside the real Sluice host runtime from `cargo test`, with nothing but the
//! `sluice` binary (`SLUICE`, else `sluice` on `PATH`): it runs `sluice plugin test`.
//!
//! ```ignore
//! use sluice_plugin_sdk::testing::PluginTest;
//!
//! let report = PluginTest::build(env!("CARGO_MANIFEST_DIR"))
//!     .config(r#"kinds = ["Step"]"#)
//!     .run(&[STEP], &["GET /counts/Step"]);
//! assert_eq!(report.response("GET /counts/Step").body["count"], 1);
//! ```

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A built plugin and how to run it.
pub struct PluginTest {
    wasm: PathBuf,
    config: String,
    /// Plugins that run before it: name, component, config.
    upstream: Vec<(String, PathBuf, String)>,
}

/// What `sluice plugin test` reported.
#[derive(Debug, Clone)]
pub struct Report {
    /// Every stored event, derived ones included: `{sequence, kind, node, dropped,
    /// annotations}`, and `json` for derived ones.
    pub events: Vec<Value>,
    /// The plugin's last failure (a trap, a timeout, an error it returned), if any.
    pub error: Option<String>,
    /// The answers to the requests, in order.
    pub responses: Vec<Reply>,
}

/// One route's answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The request as given (`"GET /counts"`).
    pub request: String,
    /// HTTP status.
    pub status: u16,
    /// The body: JSON, or a JSON string of the text.
    pub body: Value,
}

impl PluginTest {
    /// Build the plugin crate at `crate_dir` for `wasm32-wasip2` (release); panics with cargo's
    /// error when it does not build.
    pub fn build(crate_dir: impl AsRef<Path>) -> PluginTest {
        PluginTest::load(build_component(crate_dir.as_ref()))
    }

    /// A component built already.
    pub fn load(wasm: impl Into<PathBuf>) -> PluginTest {
        PluginTest { wasm: wasm.into(), config: String::new(), upstream: Vec::new() }
    }

    /// Its `[plugins.config]` table, as TOML text.
    pub fn config(mut self, toml: &str) -> PluginTest {
        self.config = toml.to_owned();
        self
    }

    /// A plugin that runs before it (a decoder whose events it indexes), with its config.
    pub fn after(mut self, name: &str, wasm: impl Into<PathBuf>, config_toml: &str) -> PluginTest {
        self.upstream.push((name.to_owned(), wasm.into(), config_toml.to_owned()));
        self
    }

    /// Feed `batches` of node events (each the JSON a node sends, `{"BlockAdded":{…}}`), then
    /// ask `requests` (`"GET /path?query"`); panics when the host cannot run it.
    pub fn run(&self, batches: &[&[&str]], requests: &[&str]) -> Report {
        let dir = std::env::temp_dir().join(format!("sluice-plugin-test-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        let lines: Vec<String> = batches.iter().map(|batch| one_per_line(batch)).collect();
        let events = dir.join("events.jsonl");
        std::fs::write(&events, lines.join("\n")).expect("writing the events");
        let mut command = Command::new(sluice());
        if std::env::var_os("SLUICE_LOG").is_none() {
            command.env("SLUICE_LOG", QUIET);
        }
        command.args(["plugin", "test"]).arg(&self.wasm).arg("--events").arg(&events);
        command.arg("--config").arg(&self.config);
        for (name, wasm, config) in &self.upstream {
            command.arg("--upstream").arg(format!("{name}={}", wasm.display()));
            command.arg("--upstream-config").arg(format!("{name}={config}"));
        }
        for request in requests {
            command.arg("--request").arg(request);
        }
        let output = command.stderr(Stdio::inherit()).output();
        let _ = std::fs::remove_dir_all(&dir);
        let output = output.unwrap_or_else(|e| panic!("running {}: {e} (set SLUICE to the sluice binary)", sluice()));
        let report: Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|_| panic!("`sluice plugin test` failed ({}); see its error above", output.status));
        Report::from_json(report)
    }
}

impl Report {
    fn from_json(mut report: Value) -> Report {
        let responses = report["responses"].as_array_mut().map(std::mem::take).unwrap_or_default();
        let responses = responses.into_iter().map(|mut reply| Reply {
            request: reply["request"].as_str().unwrap_or_default().to_owned(),
            status: reply["status"].as_u64().unwrap_or_default() as u16,
            body: reply["body"].take(),
        });
        Report {
            events: report["events"].as_array_mut().map(std::mem::take).unwrap_or_default(),
            error: report["error"].as_str().map(str::to_owned),
            responses: responses.collect(),
        }
    }

    /// The reply to `request`; panics when it was not asked.
    pub fn response(&self, request: &str) -> &Reply {
        let reply = self.responses.iter().find(|reply| reply.request == request);
        reply.unwrap_or_else(|| panic!("{request:?} was not among the requests"))
    }
}

/// The host's log unless `SLUICE_LOG` says otherwise: its warnings, and what the plugin logs.
const QUIET: &str = "warn,sluice::plugins::capabilities=debug";

/// The `sluice` binary: `SLUICE`, else `sluice` on `PATH`.
fn sluice() -> String {
    std::env::var("SLUICE").unwrap_or_else(|_| "sluice".into())
}

/// Node events one a line (a pretty-printed fixture becomes one line).
fn one_per_line(batch: &[&str]) -> String {
    let line =
        |json: &&str| serde_json::from_str::<Value>(json).map_or_else(|_| json.replace('\n', " "), |v| v.to_string());
    batch.iter().map(line).collect::<Vec<_>>().join("\n") + "\n"
}

fn unique() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Build the crate at `crate_dir` for `wasm32-wasip2` and return its component's path.
fn build_component(crate_dir: &Path) -> PathBuf {
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--target", "wasm32-wasip2", "--message-format=json-render-diagnostics"])
        .current_dir(crate_dir)
        .stderr(Stdio::inherit())
        .output()
        .expect("running cargo build");
    assert!(output.status.success(), "cargo build --target wasm32-wasip2 failed in {}", crate_dir.display());
    let manifest = std::fs::canonicalize(crate_dir.join("Cargo.toml")).expect("a Cargo.toml");
    let artifact = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["manifest_path"].as_str().map(Path::new) == Some(manifest.as_path()))
        .flat_map(|message| message["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|file| file.as_str().map(PathBuf::from))
        .find(|file| file.extension().is_some_and(|e| e == "wasm"));
    artifact.expect("cargo built no .wasm: is the crate a `cdylib`?")
}
