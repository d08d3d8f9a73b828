//! The database a test's host stores in: a SQLite file in the test's directory, or, when
//! `SLUICE_TEST_BACKEND=postgres`, a fresh database on the PostgreSQL server whose
//! administrator URL `SLUICE_TEST_POSTGRES` gives (`cargo xtask test` starts one and runs the
//! suite on both). Tests read it with plain SQL that both backends understand.

use serde_json::Value;
use std::path::{Path, PathBuf};

/// Where a test's host stores.
pub enum TestDatabase {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A database created for the test on the test server, dropped with it.
    Postgres {
        /// The server's administrator URL (without a database).
        admin: String,
        /// The test's database.
        name: String,
    },
}

/// Which backend the suite runs on: `SLUICE_TEST_BACKEND`, SQLite by default.
pub fn postgres_wanted() -> bool {
    std::env::var("SLUICE_TEST_BACKEND").is_ok_and(|backend| backend == "postgres")
}

/// The test server's administrator URL; fails with instructions when there is none.
pub fn postgres_admin_url() -> String {
    std::env::var("SLUICE_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!(
            "SLUICE_TEST_POSTGRES is not set: run the tests with `cargo xtask test`, which starts a PostgreSQL server"
        )
    })
}

impl TestDatabase {
    /// A new database for a test whose files live in `dir`.
    pub fn new(dir: &Path) -> TestDatabase {
        if !postgres_wanted() {
            return TestDatabase::Sqlite(dir.join("sluice.db"));
        }
        TestDatabase::new_postgres(dir)
    }

    /// A fresh database on the test server, whatever the suite's backend (the directory is
    /// not used: the signature is [`TestDatabase::new`]'s).
    pub fn new_postgres(_dir: &Path) -> TestDatabase {
        let admin = postgres_admin_url();
        let name = format!("test_{}", std::process::id()) + &format!("_{:x}", rand_suffix());
        admin_client(&admin).batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        TestDatabase::Postgres { admin, name }
    }

    /// The `[storage]` keys naming it.
    pub fn storage_toml(&self) -> String {
        match self {
            TestDatabase::Sqlite(path) => format!("path = \"{}\"", path.display()),
            TestDatabase::Postgres { .. } => format!("url = \"{}\"", self.url()),
        }
    }

    /// The PostgreSQL URL of the test's database.
    pub fn url(&self) -> String {
        match self {
            TestDatabase::Sqlite(path) => panic!("{} is a SQLite file", path.display()),
            TestDatabase::Postgres { admin, name } => format!("{}/{name}", admin.trim_end_matches('/')),
        }
    }

    /// The PostgreSQL database's name.
    pub fn name(&self) -> &str {
        match self {
            TestDatabase::Sqlite(path) => panic!("{} is a SQLite file", path.display()),
            TestDatabase::Postgres { name, .. } => name,
        }
    }

    /// Run `sql` as the server's administrator (in its default database).
    pub fn execute_as_admin(&self, sql: &str) {
        let TestDatabase::Postgres { admin, .. } = self else { panic!("not a PostgreSQL database") };
        admin_client(admin).batch_execute(sql).unwrap();
    }

    /// The SQLite file, when it is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            TestDatabase::Sqlite(path) => Some(path),
            TestDatabase::Postgres { .. } => None,
        }
    }

    /// SQL for the text at `path` (`a.b`) in the JSON of `column`, in this backend's dialect.
    pub fn json_text(&self, column: &str, path: &str) -> String {
        match self {
            TestDatabase::Sqlite(_) => format!("json_extract({column}, '$.{path}')"),
            TestDatabase::Postgres { .. } => format!("({column}::jsonb #>> '{{{}}}')", path.replace('.', ",")),
        }
    }

    /// Every row `sql` selects, each column as JSON (integers, text, null); empty while the
    /// query cannot run yet (no tables).
    pub fn rows(&self, sql: &str) -> Vec<Vec<Value>> {
        match self {
            TestDatabase::Sqlite(path) => sqlite_rows(path, sql).unwrap_or_default(),
            TestDatabase::Postgres { .. } => postgres_rows(&self.url(), sql).unwrap_or_else(|e| {
                eprintln!("{sql}: {e:?}");
                Vec::new()
            }),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let TestDatabase::Postgres { admin, name } = self {
            _ = admin_client(admin).batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// A connection to the server's own database, `postgres`.
fn admin_client(admin: &str) -> postgres::Client {
    let url = format!("{}/postgres", admin.trim_end_matches('/'));
    postgres::Client::connect(&url, postgres::NoTls).unwrap_or_else(|e| panic!("the test server answers: {e}"))
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    hasher.finish()
}

fn sqlite_rows(path: &Path, sql: &str) -> rusqlite::Result<Vec<Vec<Value>>> {
    let db = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut statement = db.prepare(sql)?;
    let columns = statement.column_count();
    let rows = statement.query_map([], |row| {
        (0..columns)
            .map(|i| {
                Ok(match row.get_ref(i)? {
                    rusqlite::types::ValueRef::Null => Value::Null,
                    rusqlite::types::ValueRef::Integer(n) => n.into(),
                    rusqlite::types::ValueRef::Real(x) => x.into(),
                    rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into(),
                    rusqlite::types::ValueRef::Blob(b) => hex(b).into(),
                })
            })
            .collect()
    })?;
    rows.collect()
}

fn postgres_rows(url: &str, sql: &str) -> Result<Vec<Vec<Value>>, postgres::Error> {
    use postgres::types::Type;
    let mut client = postgres::Client::connect(url, postgres::NoTls)?;
    let rows = client.query(sql, &[])?;
    rows.iter()
        .map(|row| {
            (0..row.len())
                .map(|i| {
                    let column = &row.columns()[i];
                    Ok(match *column.type_() {
                        Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map_or(Value::Null, Value::from),
                        Type::INT4 => row.try_get::<_, Option<i32>>(i)?.map_or(Value::Null, Value::from),
                        Type::INT2 => row.try_get::<_, Option<i16>>(i)?.map_or(Value::Null, Value::from),
                        Type::BOOL => row.try_get::<_, Option<bool>>(i)?.map_or(Value::Null, |b| i64::from(b).into()),
                        Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i)?.map_or(Value::Null, |b| hex(&b).into()),
                        Type::FLOAT8 => row.try_get::<_, Option<f64>>(i)?.map_or(Value::Null, Value::from),
                        _ => row.try_get::<_, Option<String>>(i)?.map_or(Value::Null, Value::from),
                    })
                })
                .collect()
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
