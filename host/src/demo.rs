//! `sluice demo`: a built-in mock node feeding Sluice with the stock plugins. With `--cluster`,
//! on a PostgreSQL database: a leader, a standby and two `serve` instances, each a process of
//! its own, to watch the standby take over when the leader is killed.

use crate::config::Config;
use crate::mock_node::{self, MockOptions};
use anyhow::Context;
use std::future::Future;
use std::path::{Path, PathBuf};

/// The mock node on the first configured node's address, then Sluice in this process.
pub async fn single(path: &Path, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    let address = start_mock_node(&config).await?;
    let api = format!("http://{}", config.http.listen);
    println!(
        "\nSluice demo: a mock Casper node at http://{address} feeding Sluice at {api}\n\n\
         Try:\n  curl -N '{api}/events?start_from=0'     # SSE firehose, replayed then live\n  \
         curl {api}/block                        # latest block\n  \
         curl {api}/block/1000010                # block by height (or hash)\n  \
         curl '{api}/contract-events?name=Transfer&limit=5'   # the token's decoded CES events\n  \
         curl '{api}/events?types=ContractEvent&name=Mint'    # ... as a filtered SSE stream\n  \
         curl {api}/plugins/cep18/balances/account-hash-{holder}\n  \
         curl {api}/plugins/cep18/supply\n  \
         curl {api}/health                       # nodes, ingest counters, store totals\n  \
         curl http://{}/plugins                  # plugin counters (admin)\n\nCtrl-C stops.\n",
        config.admin.listen,
        holder = "a1".repeat(32),
    );
    crate::app::run(config, Some(path), shutdown).await
}

/// The mock node, then four instances on the PostgreSQL database at `database`, configured as
/// `path` says but for their storage and ports; until `shutdown`, then they are stopped.
pub async fn cluster(
    path: &Path,
    database: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    let text = std::fs::read_to_string(path)?;
    let address = start_mock_node(&config).await?;
    let dir = tempfile::Builder::new().prefix("sluice-cluster-").tempdir()?;
    let (http, admin) = (config.http.listen, config.admin.listen);
    let mut instances = Vec::new();
    for (n, (name, command)) in
        [("leader", "run"), ("standby", "run"), ("serve-1", "serve"), ("serve-2", "serve")].into_iter().enumerate()
    {
        let ports = (http.port() + 10 * n as u16, admin.port() + 10 * n as u16);
        let instance = Instance::start(&text, database, dir.path(), name, command, ports)?;
        // The leader first, so that it is the one that leads.
        instance.wait_until_it_answers().await?;
        instances.push(instance);
    }
    println!("\nSluice cluster demo: a mock Casper node at http://{address}, PostgreSQL, and\n");
    for instance in &instances {
        println!(
            "  {:<8} sluice {:<5} pid {:<7} {}  (log: {})",
            instance.name,
            instance.command,
            instance.process.id(),
            instance.url,
            instance.log.display()
        );
    }
    let [leader, standby, serve, _] = &instances[..] else { unreachable!("four instances") };
    println!(
        "\nTry:\n  curl -N '{serve}/events?start_from=0'   # SSE from a serve instance: replayed, then live\n  \
         curl {serve}/health                     # \"role\": \"serve\"\n  \
         curl {standby}/health                   # \"role\": \"standby\": it serves too, and waits\n  \
         kill -9 {pid}                            # the leader dies: within a second the standby says \"run\" and stores\n\n\
         Ctrl-C stops them all.\n",
        serve = serve.url,
        standby = standby.url,
        pid = leader.process.id(),
    );
    shutdown.await;
    // Each is stopped when dropped, the serve instances first.
    instances.reverse();
    Ok(())
}

/// Serve the mock node on the first configured node's address; that address.
async fn start_mock_node(config: &Config) -> anyhow::Result<String> {
    let node = config.nodes.first().context("the demo config needs one [[nodes]] entry")?;
    let url = reqwest::Url::parse(node.url.get_ref())?;
    let address = format!("{}:{}", url.host_str().unwrap_or("127.0.0.1"), url.port_or_known_default().unwrap_or(80));
    let listener =
        tokio::net::TcpListener::bind(&address).await.with_context(|| format!("mock node: listen on {address}"))?;
    let options = MockOptions { rate: 100.0, buffer: 100_000, mix: mock_node::Mix::Cep18, ..MockOptions::default() };
    tokio::spawn(mock_node::serve(listener, options));
    Ok(address)
}

/// One instance of the cluster: a `sluice` process.
struct Instance {
    name: &'static str,
    command: &'static str,
    url: String,
    log: PathBuf,
    process: std::process::Child,
}

impl Instance {
    /// Start `sluice {command}` on the demo config `text`, storing in `database`, listening on
    /// `ports` (public, admin), its config and log in `dir`.
    fn start(
        text: &str,
        database: &str,
        dir: &Path,
        name: &'static str,
        command: &'static str,
        (http, admin): (u16, u16),
    ) -> anyhow::Result<Instance> {
        // The demo config with its `[storage]` naming the database and its own ports.
        let mut section = "";
        let config = text
            .lines()
            .map(|line| {
                if line.starts_with('[') {
                    section = line.trim();
                }
                match (section, line.split_once('=').map(|(key, _)| key.trim())) {
                    ("[storage]", Some("path")) => format!("url = {database:?}"),
                    ("[http]", Some("listen")) => format!("listen = \"127.0.0.1:{http}\""),
                    ("[admin]", Some("listen")) => format!("listen = \"127.0.0.1:{admin}\""),
                    _ => line.to_owned(),
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let (config_path, log) = (dir.join(format!("{name}.toml")), dir.join(format!("{name}.log")));
        std::fs::write(&config_path, config)?;
        let process = std::process::Command::new(std::env::current_exe()?)
            .args([command, "--config"])
            .arg(&config_path)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting the {name}"))?;
        Ok(Instance { name, command, url: format!("http://127.0.0.1:{http}"), log, process })
    }

    /// Wait until it answers `/health`, or, for a standby, until it logs that it waits.
    async fn wait_until_it_answers(&self) -> anyhow::Result<()> {
        // Until it answers, a request may wait on its listening socket: not for long.
        let client = reqwest::Client::builder().timeout(std::time::Duration::from_millis(500)).build()?;
        for _ in 0..600 {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if log.contains("standby:") || client.get(format!("{}/health", self.url)).send().await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        anyhow::bail!("the {} did not start: see {}", self.name, self.log.display())
    }
}

impl Drop for Instance {
    /// Stop it as a service manager would (SIGTERM), and wait.
    fn drop(&mut self) {
        // SAFETY: sending a signal to a child process this one started.
        unsafe { libc::kill(self.process.id() as i32, libc::SIGTERM) };
        _ = self.process.wait();
    }
}
