//! A throwaway PostgreSQL server for the tests, with a streaming replica: installed from
//! Debian's `postgresql` package when missing, initialised in a temporary directory, run as an
//! unprivileged user (PostgreSQL refuses to run as root) on free loopback ports, and stopped
//! and removed when dropped.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The superuser's name and password (the server listens on 127.0.0.1 only, and lives as long
/// as the test run).
const USER: &str = "sluice";
const PASSWORD: &str = "sluice-test";

/// A running test server.
pub struct TestServer {
    bin: PathBuf,
    dir: PathBuf,
    owner: Option<(u32, u32)>,
    /// Its administrator URL, without a database: `postgresql://sluice:…@127.0.0.1:PORT`.
    pub url: String,
    /// The certificate authority that signed the server's certificate (PEM): the server offers
    /// TLS, and a test may connect with `sslmode=require` trusting this authority.
    pub ca: PathBuf,
    /// A streaming replica of it, read-only: its administrator URL.
    pub replica_url: String,
}

impl TestServer {
    /// Install (if needed), initialise and start a server.
    pub fn start() -> Result<TestServer, String> {
        let bin = binaries()?;
        let dir = std::env::temp_dir().join(format!("sluice-test-pg-{}", std::process::id()));
        _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        // As root, the server runs as the package's `postgres` user (or `nobody`).
        let owner = is_root().then(|| user_ids("postgres").or_else(|| user_ids("nobody"))).flatten();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| e.to_string())?;
        let password_file = dir.join("password");
        std::fs::write(&password_file, PASSWORD).map_err(|e| e.to_string())?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&password_file, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
        }
        let port = free_port()?;
        let ca = dir.join("ca.crt");
        let url = format!("postgresql://{USER}:{PASSWORD}@127.0.0.1:{port}");
        let replica_port = free_port()?;
        let replica_url = format!("postgresql://{USER}:{PASSWORD}@127.0.0.1:{replica_port}");
        let server = TestServer { url, ca, replica_url, bin, dir, owner };
        let data = server.dir.join("data");
        server.run(
            "initdb",
            &[
                "--pgdata".as_ref(),
                data.as_os_str(),
                "--username".as_ref(),
                USER.as_ref(),
                "--pwfile".as_ref(),
                password_file.as_os_str(),
                // Passwords over TCP, as production has them: a wrong one must fail.
                "--auth-host=scram-sha-256".as_ref(),
                "--auth-local=trust".as_ref(),
                "--no-sync".as_ref(),
                // Whatever locales the machine has: Sluice compares plugin keys byte by byte anyway.
                "--locale=C".as_ref(),
                "--encoding=UTF8".as_ref(),
            ],
        )?;
        server.certificates()?;
        let options = format!(
            "-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off \
             -c ssl=on -c ssl_cert_file={dir}/server.crt -c ssl_key_file={dir}/server.key",
            dir = server.dir.display()
        );
        server.pg_ctl_start(&data, &options, "server.log")?;
        // The replica: a copy of the running server that follows its log.
        let replica = server.dir.join("replica");
        let primary = ["--host", "127.0.0.1", "--port", &port.to_string(), "--username", USER];
        let backup = ["--write-recovery-conf", "--wal-method=stream", "--no-sync", "--pgdata"];
        let args: Vec<&std::ffi::OsStr> =
            primary.iter().chain(&backup).map(|arg| arg.as_ref()).chain([replica.as_os_str()]).collect();
        server.run("pg_basebackup", &args)?;
        let options = format!(
            "-p {replica_port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off",
            server.dir.display()
        );
        server.pg_ctl_start(&replica, &options, "replica.log")?;
        Ok(server)
    }

    /// Start the server whose data is in `data` with `options`, logging to `log` in its folder.
    fn pg_ctl_start(&self, data: &Path, options: &str, log: &str) -> Result<(), String> {
        let log = self.dir.join(log);
        let args = ["--pgdata".as_ref(), data.as_os_str(), "-o".as_ref(), options.as_ref(), "-l".as_ref()];
        let started = self.run("pg_ctl", &[&args[..], &[log.as_os_str(), "-w".as_ref(), "start".as_ref()]].concat());
        started.map_err(|error| format!("{error}\n{}", std::fs::read_to_string(&log).unwrap_or_default()))
    }

    /// With the `openssl` command: a certificate authority (`ca.crt`) and the server's key and
    /// certificate for 127.0.0.1, signed by it, readable by the server's user only.
    fn certificates(&self) -> Result<(), String> {
        let openssl = |args: &[&str]| {
            let output = Command::new("openssl").args(args).current_dir(&self.dir).output();
            match output {
                Ok(output) if output.status.success() => Ok(()),
                Ok(output) => Err(format!("openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr))),
                Err(e) => Err(format!("openssl (for the test server's TLS certificate): {e}")),
            }
        };
        let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let ca = ["-keyout", "ca.key", "-out", "ca.crt", "-days", "7", "-subj", "/CN=Sluice test CA"];
        let server = ["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"];
        openssl(&[&["req", "-x509"][..], &key, &ca].concat())
            .and_then(|()| openssl(&[&["req"][..], &key, &server].concat()))?;
        std::fs::write(self.dir.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
            .map_err(|e| e.to_string())?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "7",
            "-extfile",
            "san.ext",
        ])?;
        let key = self.dir.join("server.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).map_err(|e| e.to_string())?;
        if let Some((uid, gid)) = self.owner {
            for file in [&key, &self.dir.join("server.crt")] {
                std::os::unix::fs::chown(file, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) -> Result<(), String> {
        let mut command = Command::new(self.bin.join(program));
        command.args(args).current_dir(&self.dir).env_remove("PGDATA").env("PGPASSWORD", PASSWORD);
        if let Some((uid, gid)) = self.owner {
            command.uid(uid).gid(gid).env("HOME", &self.dir);
        }
        let output = command.output().map_err(|e| format!("{program}: {e}"))?;
        if output.status.success() {
            return Ok(());
        }
        Err(format!("{program} failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr)))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        for data in [self.dir.join("replica"), self.dir.join("data")] {
            let stop = ["--pgdata".as_ref(), data.as_os_str(), "-m".as_ref(), "immediate".as_ref(), "stop".as_ref()];
            _ = self.run("pg_ctl", &stop);
        }
        _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The directory holding [`PROGRAMS`]: on `PATH`, else where Debian's packages put them (the
/// newest version); installed with apt when missing and run as root.
fn binaries() -> Result<PathBuf, String> {
    if let Some(found) = find_binaries() {
        return Ok(found);
    }
    if is_root() && Path::new("/usr/bin/apt-get").exists() {
        eprintln!("xtask: installing PostgreSQL (Debian's postgresql package) for the tests");
        let install = |extra: &[&str]| {
            Command::new("apt-get")
                .args(extra)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .is_ok_and(|status| status.success())
        };
        if !install(&["install", "-y", "--no-install-recommends", "postgresql"]) {
            install(&["update"]);
            install(&["install", "-y", "--no-install-recommends", "postgresql"]);
        }
        if let Some(found) = find_binaries() {
            return Ok(found);
        }
    }
    Err("the tests need a PostgreSQL server and found none: install Debian's `postgresql` package \
         (`apt-get install postgresql`) or put `initdb`, `pg_ctl` and `pg_basebackup` on PATH"
        .into())
}

/// The server's programs the tests run.
const PROGRAMS: [&str; 3] = ["initdb", "pg_ctl", "pg_basebackup"];

fn find_binaries() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|dir| PROGRAMS.iter().all(|program| dir.join(program).is_file()));
    on_path.or_else(|| {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .filter_map(|entry| Some((entry.file_name().to_str()?.parse().ok()?, entry.path().join("bin"))))
            .filter(|(_, bin)| PROGRAMS.iter().all(|program| bin.join(program).is_file()))
            .collect();
        versions.sort();
        versions.pop().map(|(_, bin)| bin)
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc_geteuid() == 0 }
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// A user's (uid, gid), from `/etc/passwd`.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&name)).then(|| Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))?
    })
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}
