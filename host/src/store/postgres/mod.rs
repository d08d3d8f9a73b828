//! The server backend: PostgreSQL, shared by a leader that writes (holding an advisory lock),
//! standbys waiting for that lock, and any number of read-only API instances.

mod plugin_data;
mod read;
mod rows;
mod schema;
mod write;

pub use write::Postgres;

use postgres::Row;
use postgres::types::ToSql;
use std::collections::HashMap;
use std::mem::ManuallyDrop;
use std::time::Duration;

/// The advisory lock the writing instance holds for as long as its session lives: the leader.
const LEADER_LOCK: i64 = 0x534C_4345_0001;

/// A connection to the database, and how errors name it (the URL without its password).
pub struct Connection {
    /// Dropped by [`Connection`]'s `Drop`, off any async worker.
    client: ManuallyDrop<postgres::Client>,
    name: String,
    /// Statements prepared on this connection, by their SQL: a query then takes one round trip
    /// instead of two (plugins' storage reads are many small queries).
    prepared: HashMap<String, postgres::Statement>,
}

impl Drop for Connection {
    /// The blocking client closes by running its own runtime, which an async worker may not
    /// do: there, it is closed on a thread of its own.
    fn drop(&mut self) {
        // SAFETY: `client` is taken once, here, and not used again.
        let client = unsafe { ManuallyDrop::take(&mut self.client) };
        if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::spawn(move || drop(client));
        }
    }
}

impl Connection {
    /// Connect to `url` (`postgresql://user:password@host:port/db`; a password missing there
    /// may come from `SLUICE_DATABASE_PASSWORD`); errors say which server refused and why,
    /// never the password.
    pub fn open(url: &str) -> anyhow::Result<Connection> {
        let mut config = parse(url)?;
        let name = name_of(&config);
        if config.get_password().is_none() {
            if let Ok(password) = std::env::var("SLUICE_DATABASE_PASSWORD") {
                config.password(password);
            }
        }
        // A server that accepts TCP and never answers, or a half-open connection, is found out.
        config.connect_timeout(Duration::from_secs(10)).keepalives_idle(Duration::from_secs(10));
        // `CREATE … IF NOT EXISTS` notices are not worth a log line each.
        config.options("-c client_min_messages=warning");
        let client = config.connect(postgres::NoTls).map_err(|e| anyhow::anyhow!("connecting to {name}: {e}"))?;
        Ok(Connection { client: ManuallyDrop::new(client), name, prepared: HashMap::new() })
    }
}

impl Connection {
    /// `sql`, prepared once per connection.
    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, postgres::Error> {
        if let Some(statement) = self.prepared.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.prepared.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// The rows `sql` selects with `params`.
    fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.query(&statement, params)
    }

    /// The one row `sql` selects.
    fn query_one(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.query_one(&statement, params)
    }

    /// The row `sql` selects, if any.
    fn query_opt(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.query_opt(&statement, params)
    }
}

/// How to show the database at `url`: without its password.
pub fn describe(url: &str) -> anyhow::Result<String> {
    Ok(name_of(&parse(url)?))
}

/// Bytes the database at `url` takes (0 when it cannot be asked).
pub fn disk_bytes(url: &str) -> u64 {
    let size = || -> anyhow::Result<i64> {
        Ok(Connection::open(url)?.client.query_one("SELECT pg_database_size(current_database())", &[])?.get(0))
    };
    size().map_or(0, |bytes| bytes.max(0) as u64)
}

fn parse(url: &str) -> anyhow::Result<postgres::Config> {
    // The parser's error may quote the URL, password included: not passed on.
    url.parse()
        .map_err(|_| anyhow::anyhow!("storage.url is not a valid PostgreSQL URL (postgresql://user@host:port/db)"))
}

/// `postgresql://user@host:port/db`: what logs and errors may show of a connection.
fn name_of(config: &postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(host)) => host.clone(),
        Some(postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    format!("postgresql://{user}@{host}:{port}/{}", config.get_dbname().unwrap_or(user))
}
