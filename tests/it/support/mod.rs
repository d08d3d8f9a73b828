//! Test harness: real `sluice` processes (a mock node and the host) on free loopback ports, a
//! real database (a SQLite file in a temporary directory, or a PostgreSQL database: see
//! `database.rs`), and the real plugins built by `cargo xtask`.

#![allow(dead_code)]

mod database;
mod sse;
pub use database::TestDatabase;
// Each test crate uses some of them.
#[allow(unused_imports)]
pub use sse::{parse_sse, read_frames_until, read_sse, read_sse_text, read_sse_until};

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The block of the captured 2.x fixtures.
pub const FIXTURE_BLOCK: &str = "cb64adaae660d227b7d7579039a75e21f1022e2c044a5ed0ce0beefb12b95758";

/// The captured 2.x events (the shared fixtures, without `ApiVersion`), as the mock serves them.
pub fn fixtures() -> Vec<Value> {
    let dir = root().join("../shared/fixtures/casper2");
    let dir = if dir.is_dir() { dir } else { root().join("host/fixtures/casper2") };
    let mut events: Vec<Value> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap())
        .filter(|event: &Value| event.get("ApiVersion").is_none())
        .collect();
    events.sort_by_key(|e| e.to_string());
    assert_eq!(events.len(), 7, "fixtures in {}", dir.display());
    events
}

/// The `sluice` binary under test.
pub fn sluice() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
}

/// The `sluice` that runs as the host: the one under test, or the build `SLUICE_HOST_BIN` names
/// (to run a test's host on an older commit while the mocks stay this build's).
pub fn host_binary() -> Command {
    std::env::var_os("SLUICE_HOST_BIN").map_or_else(sluice, Command::new)
}

/// Workspace root (plugins are referenced relative to it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Path of a plugin built by `cargo xtask plugins`; fails with instructions when missing.
pub fn plugin(name: &str) -> String {
    let path = root().join(format!("target/wasm32-wasip2/release/{name}.wasm"));
    assert!(path.is_file(), "{} is missing: run the tests with `cargo xtask test`", path.display());
    path.display().to_string()
}

/// A `[[plugins]]` entry for plugin `name` built from `wasm`, with more keys (`extra`) and its
/// `[plugins.config]` table.
pub fn plugin_toml(name: &str, wasm: &str, extra: &str, config: &str) -> String {
    format!("[[plugins]]\nname = \"{name}\"\npath = \"{}\"\n{extra}\n[plugins.config]\n{config}\n\n", plugin(wasm))
}

pub use sluice::mock_node::free_port;

/// A child process killed when dropped.
pub struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    pub fn spawn(mut command: Command, log: PathBuf) -> Process {
        let file = std::fs::File::create(&log).unwrap();
        let child = command.stdout(Stdio::null()).stderr(file).spawn().unwrap();
        Process { child, log }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Ask for a graceful stop (SIGTERM, as a service manager would) and wait up to 30 s.
    pub fn interrupt(mut self) -> std::process::ExitStatus {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "no exit 30 s after SIGINT\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Mock nodes plus a Sluice host configured against them.
pub struct Rig {
    pub dir: tempfile::TempDir,
    pub http: String,
    pub admin: String,
    /// Each mock node's port and process.
    pub nodes: Vec<(u16, Process)>,
    /// Whether the config gives the nodes' `rest_url` (Sluice then reads `/status`).
    pub rest_url: bool,
    /// More keys for every `[[nodes]]` entry.
    pub node_toml: String,
    /// The sources' config, when it is not generated from `nodes`.
    pub sources_toml: Option<String>,
    /// Environment variables of the host.
    pub host_env: Vec<(String, String)>,
    /// More keys for `[http]`.
    pub http_toml: String,
    pub host: Option<Process>,
    /// Where the host stores.
    pub database: TestDatabase,
}

impl Rig {
    /// Start a mock node with `mock_args` and a host whose config ends with `plugins_toml`.
    pub fn start(mock_args: &[&str], plugins_toml: &str) -> Rig {
        Rig::start_nodes(1, mock_args, plugins_toml)
    }

    /// Like [`Rig::start`], but without `rest_url`: Sluice must find the node's protocol itself.
    pub fn start_without_status(mock_args: &[&str]) -> Rig {
        Rig::build(1, mock_args, "", false, "")
    }

    /// Like [`Rig::start`], with `node_toml` added to the node's config entry.
    pub fn start_with_node_config(mock_args: &[&str], node_toml: &str) -> Rig {
        Rig::build(1, mock_args, "", true, node_toml)
    }

    /// Start `count` identical mock nodes (named `mock`, `mock1`, ...) and a host following all.
    pub fn start_nodes(count: usize, mock_args: &[&str], plugins_toml: &str) -> Rig {
        Rig::build(count, mock_args, plugins_toml, true, "")
    }

    /// Like [`Rig::start`], storing in `database` whatever the suite's backend.
    pub fn start_on(database: impl FnOnce(&Path) -> TestDatabase, mock_args: &[&str], plugins_toml: &str) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let database = database(dir.path());
        Rig::build_in(dir, database, 1, mock_args, plugins_toml, true, "")
    }

    fn build(count: usize, mock_args: &[&str], plugins_toml: &str, rest_url: bool, node_toml: &str) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let database = TestDatabase::new(dir.path());
        Rig::build_in(dir, database, count, mock_args, plugins_toml, rest_url, node_toml)
    }

    fn build_in(
        dir: tempfile::TempDir,
        database: TestDatabase,
        count: usize,
        mock_args: &[&str],
        plugins_toml: &str,
        rest_url: bool,
        node_toml: &str,
    ) -> Rig {
        let nodes = (0..count)
            .map(|i| {
                let port = free_port();
                let mut mock = sluice();
                mock.args(["mock-node", "--listen", &format!("127.0.0.1:{port}")]).args(mock_args);
                (port, Process::spawn(mock, dir.path().join(format!("mock{i}.log"))))
            })
            .collect();
        let mut rig = Rig {
            http: format!("http://127.0.0.1:{}", free_port()),
            admin: format!("http://127.0.0.1:{}", free_port()),
            nodes,
            rest_url,
            node_toml: node_toml.to_owned(),
            sources_toml: None,
            host_env: Vec::new(),
            http_toml: String::new(),
            host: None,
            database,
            dir,
        };
        std::fs::write(rig.config_path(), rig.config(plugins_toml)).unwrap();
        rig.start_host();
        rig
    }

    /// Start one mock of another kind (`mock_command`, e.g. `mock-f1r3fly`) with `mock_args`, and
    /// a host with the sources `sources_toml(port)` describes and the environment `host_env`.
    pub fn start_source(
        mock_command: &str,
        mock_args: &[&str],
        sources_toml: impl Fn(u16) -> String,
        host_env: &[(&str, &str)],
    ) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut mock = sluice();
        mock.args([mock_command, "--listen", &format!("127.0.0.1:{port}")]).args(mock_args);
        let mock = Process::spawn(mock, dir.path().join("mock0.log"));
        let mut rig = Rig {
            http: format!("http://127.0.0.1:{}", free_port()),
            admin: format!("http://127.0.0.1:{}", free_port()),
            nodes: vec![(port, mock)],
            rest_url: false,
            node_toml: String::new(),
            sources_toml: Some(sources_toml(port)),
            host_env: host_env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            http_toml: String::new(),
            host: None,
            database: TestDatabase::new(dir.path()),
            dir,
        };
        std::fs::write(rig.config_path(), rig.config("")).unwrap();
        rig.start_host();
        rig
    }

    /// Rewrite the host's config with these plugins (the host reads it at its next start).
    pub fn write_config(&self, plugins_toml: &str) {
        std::fs::write(self.config_path(), self.config(plugins_toml)).unwrap();
    }

    fn config(&self, plugins_toml: &str) -> String {
        let mut node_toml = self.node_toml.clone();
        if !node_toml.contains("no_message_timeout_secs") {
            node_toml.push_str("\nno_message_timeout_secs = 10");
        }
        let nodes: String = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, (port, _))| {
                let name = if i == 0 { "mock".to_owned() } else { format!("mock{i}") };
                let rest_urls = match self.rest_url {
                    true => {
                        format!("rest_url = \"http://127.0.0.1:{port}\"\nrpc_url = \"http://127.0.0.1:{port}/rpc\"\n")
                    }
                    false => String::new(),
                };
                format!(
                    "[[nodes]]\nname = \"{name}\"\nurl = \"http://127.0.0.1:{port}\"\n{rest_urls}\
                     {}\n\n",
                    node_toml
                )
            })
            .collect();
        let nodes = self.sources_toml.clone().unwrap_or(nodes);
        format!(
            "{nodes}[storage]\n{db}\nplugin_cache = \"{cache}\"\n\n\
             [http]\nlisten = \"{http}\"\n{http_toml}\n\n[admin]\nlisten = \"{admin}\"\n\n{plugins_toml}",
            http_toml = self.http_toml,
            db = self.database.storage_toml(),
            cache = root().join("target/plugin-cache").display(),
            http = self.http.trim_start_matches("http://"),
            admin = self.admin.trim_start_matches("http://"),
        )
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("sluice.toml")
    }

    /// The SQLite file the host stores in (a SQLite-only test).
    pub fn db_path(&self) -> PathBuf {
        self.database.path().expect("a test of the SQLite backend").to_path_buf()
    }

    /// (Re)start the host on the same config and database.
    pub fn start_host(&mut self) {
        let mut run = host_binary();
        run.args(["run", "--config"]).arg(self.config_path()).current_dir(root()).envs(self.host_env.clone());
        self.host = Some(Process::spawn(run, self.dir.path().join("host.log")));
        self.wait_for("the host to answer /health", || get_json(&format!("{}/health", self.http)).is_some());
    }

    /// Restart the host with these `[http]` keys (and no plugins).
    pub fn restart_with_http(&mut self, http_toml: &str) {
        self.http_toml = http_toml.to_owned();
        self.write_config("");
        self.stop_host();
        self.start_host();
    }

    /// Stop the host gracefully.
    pub fn stop_host(&mut self) {
        let host = self.host.take().unwrap();
        let log = host.log.clone();
        let status = host.interrupt();
        let log = std::fs::read_to_string(log).unwrap_or_default();
        assert!(status.success(), "sluice exited with {status}\n--- host log ---\n{log}");
    }

    /// Poll `ready` until it holds; fail (with the host log) after 60 s.
    pub fn wait_for(&self, what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready() {
            if Instant::now() > deadline {
                let log = self.host.as_ref().map(Process::log).unwrap_or_default();
                panic!("timed out waiting for {what}\n--- host log ---\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until the store holds `events` events (each with its plugin outcome).
    pub fn wait_for_stored(&self, events: u64) {
        self.wait_for(&format!("{events} stored events"), || {
            get_json(&format!("{}/health", self.http)).is_some_and(|h| h["store"]["events"].as_u64() >= Some(events))
        });
    }

    /// Every row `sql` selects from the host's database, each column as JSON.
    pub fn rows(&self, sql: &str) -> Vec<Vec<Value>> {
        self.database.rows(sql)
    }

    /// The first row `sql` selects (fails when there is none).
    pub fn row(&self, sql: &str) -> Vec<Value> {
        self.rows(sql).into_iter().next().unwrap_or_else(|| panic!("no row: {sql}"))
    }

    /// One integer from the host's database (`None` while the query cannot run yet).
    pub fn number(&self, sql: &str) -> Option<i64> {
        self.rows(sql).first()?.first()?.as_i64()
    }

    /// One text from the host's database (fails when there is none).
    pub fn text(&self, sql: &str) -> String {
        self.row(sql)[0].as_str().unwrap_or_else(|| panic!("no text: {sql}")).to_owned()
    }
}

/// GET and parse JSON; `None` when the server is not up.
pub fn get_json(url: &str) -> Option<serde_json::Value> {
    let (_, body) = get(url)?;
    serde_json::from_str(&body).ok()
}

/// GET: status and body; `None` when the connection fails.
pub fn get(url: &str) -> Option<(u16, String)> {
    runtime().block_on(async {
        let response = reqwest::get(url).await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    })
}

pub fn runtime() -> tokio::runtime::Runtime {
    sluice::install_tls_provider();
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Run `sluice check` on config text; returns (success, stderr).
pub fn check(config: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sluice.toml");
    std::fs::write(&path, config).unwrap();
    let output = host_binary().args(["check", "--config"]).arg(&path).current_dir(root()).output().unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// A shared fixture file, or its copy in `host/fixtures` (what the binary embeds).
pub fn fixture_text(path: &str) -> String {
    let shared = root().join("../shared/fixtures").join(path);
    let file = if shared.is_file() { shared } else { root().join("host/fixtures").join(path) };
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// The real voting-contract deploy (`info_get_deploy`) as the `DeployProcessed` event a 1.x
/// node streams for it (`v2`: the `TransactionProcessed` a 2.x node streams for a legacy deploy).
pub fn voting_deploy_event(v2: bool) -> Value {
    let info: Value = serde_json::from_str(&fixture_text("ces/voting_created_deploy_v1.json")).unwrap();
    let (deploy, execution) = (&info["deploy"], &info["execution_results"][0]);
    let header = &deploy["header"];
    if v2 {
        serde_json::json!({"TransactionProcessed": {
            "transaction_hash": {"Deploy": deploy["hash"]},
            "initiator_addr": {"PublicKey": header["account"]},
            "timestamp": header["timestamp"], "ttl": header["ttl"],
            "block_hash": execution["block_hash"],
            "execution_result": {"Version1": execution["result"]},
            "messages": [],
        }})
    } else {
        serde_json::json!({"DeployProcessed": {
            "deploy_hash": deploy["hash"], "account": header["account"],
            "timestamp": header["timestamp"], "ttl": header["ttl"], "dependencies": [],
            "block_hash": execution["block_hash"], "execution_result": execution["result"],
        }})
    }
}

/// The voting contract (the deploy calls it) and its `__events` seed URef, from the fixture's README.
pub const VOTING_CONTRACT: &str = "91e93913fdfc4fb2f542c996a9bb337d64d10332b24167466a830846dc1e6410";
pub const VOTING_EVENTS_UREF: &str = "uref-d2263e86f497f42e405d5d1390aa3c1a8bfc35f3699fdc3be806a5cfe139dac9-007";

/// The two events of the voting deploy, as the fixture's README gives them: (transform, event id,
/// name, fields).
pub fn voting_known_answers() -> [(u64, u64, &'static str, Value); 2] {
    let account = "account-hash-56befc13a6fd62e18f361700a5e08f966901c34df8041b36ec97d54d605c23de";
    [
        (
            99,
            2,
            "BallotCast",
            serde_json::json!({"voter": account, "voting_id": 0, "voting_type": 0, "choice": 1, "stake": "1000"}),
        ),
        (
            115,
            3,
            "SimpleVotingCreated",
            serde_json::json!({
                "document_hash": "\u{0001}", "creator": account, "stake": "1000", "voting_id": 0,
                "config_informal_quorum": 0, "config_informal_voting_time": 432000, "config_formal_quorum": 0,
                "config_formal_voting_time": 432000, "config_total_onboarded": "1",
                "config_double_time_between_votings": false, "config_voting_clearness_delta": "8",
                "config_time_between_informal_and_formal_voting": 86400,
            }),
        ),
    ]
}
