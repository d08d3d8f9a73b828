//! The server backend: PostgreSQL, shared by a leader that writes (holding an advisory lock)
//! and standbys waiting for that lock.

mod listen;
mod pending;
mod plugin_data;
mod read;
mod rows;
mod schema;
mod write;

pub use listen::Listener;
pub use write::Postgres;

use anyhow::Context;
use postgres::Row;
use postgres::config::SslMode;
use postgres::types::ToSql;
use std::collections::HashMap;
use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::time::Duration;

/// The advisory lock the writing instance holds for as long as its session lives: the leader.
const LEADER_LOCK: i64 = 0x534C_4345_0001;

/// A connection to the database, and how errors name it (the URL without its password).
pub struct Connection {
    /// Dropped by [`Connection`]'s `Drop`, off any async worker.
    client: ManuallyDrop<postgres::Client>,
    name: String,
    /// Where to connect again when the connection is lost (holds the password: never shown).
    url: Arc<str>,
    /// How many times this connection was opened again: a new session (whose locks and
    /// prepared statements are gone).
    generation: u64,
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
        if config.get_password().is_none()
            && let Ok(password) = std::env::var("SLUICE_DATABASE_PASSWORD")
        {
            config.password(password);
        }
        // A server that accepts TCP and never answers, or a half-open connection, is found out.
        config.connect_timeout(Duration::from_secs(10)).keepalives_idle(Duration::from_secs(10));
        // `CREATE … IF NOT EXISTS` notices are not worth a log line each.
        config.options("-c client_min_messages=warning");
        let client = match config.get_ssl_mode() {
            SslMode::Require => config.connect(tls()?),
            _ => config.connect(postgres::NoTls),
        };
        let client = client.with_context(|| format!("connecting to {name}"))?;
        Ok(Connection {
            client: ManuallyDrop::new(client),
            name,
            url: Arc::from(url),
            generation: 0,
            prepared: HashMap::new(),
        })
    }

    /// Connect again if the connection was lost (the server restarted, a network fault, an
    /// administrator ended the session).
    fn reopen_if_lost(&mut self) -> anyhow::Result<()> {
        if self.client.is_closed() {
            let generation = self.generation + 1;
            *self = Connection::open(&self.url)?;
            self.generation = generation;
        }
        Ok(())
    }

    /// `sql`, prepared once per connection.
    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, postgres::Error> {
        if let Some(statement) = self.prepared.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.prepared.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// Run a read (`read` with `sql` prepared) on the connection; one lost while reading is
    /// opened again and the read tried once more (reads change nothing).
    fn read<T>(
        &mut self,
        sql: &str,
        read: impl Fn(&mut postgres::Client, &postgres::Statement) -> Result<T, postgres::Error>,
    ) -> anyhow::Result<T> {
        self.reopen_if_lost()?;
        let statement = self.statement(sql)?;
        match read(&mut self.client, &statement) {
            Err(_) if self.client.is_closed() => {
                self.reopen_if_lost()?;
                let statement = self.statement(sql)?;
                Ok(read(&mut self.client, &statement)?)
            }
            result => Ok(result?),
        }
    }

    /// The rows `sql` selects with `params`.
    fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> anyhow::Result<Vec<Row>> {
        self.read(sql, |client, statement| client.query(statement, params))
    }

    /// The one row `sql` selects.
    fn query_one(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> anyhow::Result<Row> {
        self.read(sql, |client, statement| client.query_one(statement, params))
    }

    /// The row `sql` selects, if any.
    fn query_opt(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> anyhow::Result<Option<Row>> {
        self.read(sql, |client, statement| client.query_opt(statement, params))
    }
}

/// TLS as `sslmode=require` asks for it, and more: the server's certificate is verified (its
/// name or address too) against the authorities in the PEM file `PGSSLROOTCERT` names (libpq's
/// variable), else the Mozilla roots.
fn tls() -> anyhow::Result<tokio_postgres_rustls::MakeRustlsConnect> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    match std::env::var_os("PGSSLROOTCERT") {
        Some(path) => {
            let shown = std::path::Path::new(&path).display().to_string();
            let certificates =
                CertificateDer::pem_file_iter(&path).with_context(|| format!("PGSSLROOTCERT {shown}"))?;
            for certificate in certificates {
                roots.add(certificate.with_context(|| format!("PGSSLROOTCERT {shown}"))?)?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// How to show the database at `url`: without its password.
pub fn describe(url: &str) -> anyhow::Result<String> {
    Ok(name_of(&parse(url)?))
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
