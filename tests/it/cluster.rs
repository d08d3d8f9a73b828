//! Several Sluice instances on one PostgreSQL database: a leader that writes, a standby that
//! takes over when it dies, and connections that are lost. These tests always use PostgreSQL
//! (`cargo xtask test` starts a server).

use crate::support;

use crate::support::{Process, Rig, TestDatabase, free_port, get_json, read_sse_until};
use std::thread::JoinHandle;

/// Another instance (`sluice run` or `sluice serve`, `command`) on the rig's config and
/// database, on ports of its own, logging to `{name}.log`; its URL.
fn another_instance(rig: &Rig, command: &str, name: &str) -> (Process, String) {
    another_instance_with(rig, command, name, "")
}

/// [`another_instance`], with more `[storage]` keys.
fn another_instance_with(rig: &Rig, command: &str, name: &str, storage_toml: &str) -> (Process, String) {
    let (http, admin) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let config = std::fs::read_to_string(rig.config_path())
        .unwrap()
        .replace(rig.http.trim_start_matches("http://"), &http)
        .replace(rig.admin.trim_start_matches("http://"), &admin)
        .replace("[storage]\n", &format!("[storage]\n{storage_toml}\n"));
    let path = rig.dir.path().join(format!("{name}.toml"));
    std::fs::write(&path, config).unwrap();
    let mut instance = support::host_binary();
    instance.args([command, "--config"]).arg(&path).current_dir(support::root());
    (Process::spawn(instance, rig.dir.path().join(format!("{name}.log"))), format!("http://{http}"))
}

/// Nothing lost, nothing stored twice, no hole in the sequence, and the node's order: the
/// store a clean run of the mock's 3,007 events leaves.
fn assert_clean_run(rig: &Rig) {
    let count = |sql: &str| rig.number(sql).unwrap();
    assert_eq!(count("SELECT count(*) FROM events"), 3007);
    assert_eq!(count("SELECT count(DISTINCT node_event_id) FROM events"), 3007);
    assert_eq!(count("SELECT max(seq) FROM events"), 3007);
    assert_eq!(count("SELECT count(*) FROM events WHERE seq != node_event_id + 1"), 0);
}

#[test]
fn cluster_a_standby_takes_over_from_a_killed_leader_and_the_store_is_a_clean_runs() {
    let mut rig = Rig::start_on(TestDatabase::new_postgres, &["--rate", "600", "--count", "3000"], "");
    let (standby, standby_http) = another_instance(&rig, "run", "standby");
    rig.wait_for_stored(800);
    // The standby waits: only one instance ever writes. Meanwhile it serves the API.
    rig.wait_for("the standby to wait", || standby.log().contains("standby: another instance writes"));
    let health = || get_json(&format!("{standby_http}/health")).unwrap_or_default();
    rig.wait_for("the standby to serve", || health()["role"] == "standby");
    let block = |url: &str| get_json(&format!("{url}/block/1000002"));
    assert_eq!(block(&standby_http), block(&rig.http));
    assert!(block(&standby_http).is_some());
    // Every session but the leader's writer (which holds the lock) is ended, as a network
    // fault would: the standby connects again and goes on waiting.
    let cut = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'
               AND pid NOT IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory')";
    rig.database.execute_as_admin(&cut.replace("{}", rig.database.name()));
    rig.wait_for("the standby to ask again", || standby.log().contains("asking for the leader lock"));
    std::thread::sleep(std::time::Duration::from_millis(500));
    drop(rig.host.take()); // kill -9
    let stored = || health()["store"]["events"].as_u64();
    rig.wait_for("the standby to take over and store every event", || stored() >= Some(3007));
    assert_eq!(health()["role"], "run");
    assert!(standby.log().contains("taking over as the writing instance"), "{}", standby.log());
    assert_clean_run(&rig);
}

/// The `(id, data)` frames of `{url}/events{query}` up to the event with sequence `last`, read
/// on a thread of its own.
fn subscribe(url: &str, query: &str, last: u64) -> JoinHandle<Vec<(u64, String)>> {
    let url = format!("{url}/events{query}");
    std::thread::spawn(move || read_sse_until(&url, |frames| frames.last().is_some_and(|(id, _)| *id >= last)))
}

#[test]
fn cluster_serve_instances_give_every_subscriber_every_event_once_in_order() {
    let tally = support::plugin_toml("tally", "tally", "", "");
    let rig = Rig::start_on(TestDatabase::new_postgres, &["--rate", "300", "--count", "3000"], &tally);
    let up = |url: &str| get_json(&format!("{url}/health")).is_some_and(|h| h["role"] == "serve");
    let (_first, first) = another_instance(&rig, "serve", "serve-1");
    rig.wait_for("the first serve instance", || up(&first));
    let mut whole = vec![subscribe(&rig.http, "?start_from=0", 3007), subscribe(&first, "?start_from=0", 3007)];
    let mut live = vec![subscribe(&first, "", 3007)];
    // The second starts while events flow.
    rig.wait_for_stored(800);
    let (_second, second) = another_instance(&rig, "serve", "serve-2");
    rig.wait_for("the second serve instance", || up(&second));
    let stored = get_json(&format!("{}/health", rig.http)).unwrap()["store"]["events"].as_u64().unwrap();
    assert!(stored < 2500, "the second instance started after the stream ({stored} stored)");
    whole.push(subscribe(&second, "?start_from=0", 3007));
    live.push(subscribe(&second, "", 3007));

    let leaders = whole.remove(0).join().unwrap();
    let ids: Vec<u64> = leaders.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, (1..=3007).collect::<Vec<u64>>(), "the leader's own subscriber");
    for subscriber in whole {
        assert_eq!(subscriber.join().unwrap(), leaders, "a serve instance's replay-then-live subscriber");
    }
    for subscriber in live {
        let frames = subscriber.join().unwrap();
        let from = frames.first().expect("live events").0 as usize;
        assert_eq!(frames, leaders[from - 1..], "a live subscriber: every event from its first, once, in order");
    }

    // Plugin routes answer from the shared storage, and only read.
    let count =
        |url: &str| get_json(&format!("{url}/plugins/tally/counts/BlockAdded")).map(|body| body["count"].clone());
    rig.wait_for("the indexer", || rig.number("SELECT max(last_seq) FROM plugin_cursors") == Some(3007));
    let blocks = rig.number("SELECT count(*) FROM events WHERE kind = 'BlockAdded'").unwrap();
    for url in [&rig.http, &first, &second] {
        assert_eq!(count(url), Some(blocks.into()), "{url}");
    }
    let post =
        support::runtime().block_on(reqwest::Client::new().post(format!("{second}/plugins/tally/counts/x")).send());
    assert_eq!(post.unwrap().status(), 403);
}

#[test]
fn cluster_a_serve_instance_reads_a_streaming_replica_and_misses_nothing() {
    let rig = Rig::start_on(TestDatabase::new_postgres, &["--rate", "300", "--count", "1500"], "");
    let replica =
        std::env::var("SLUICE_TEST_POSTGRES_REPLICA").expect("SLUICE_TEST_POSTGRES_REPLICA: run `cargo xtask test`");
    let replica = format!("{replica}/{}", rig.database.name());
    // A serve instance on a replica that has not replayed the store's creation yet stops with
    // an error: started once the replica holds events.
    let replayed = || {
        let client = postgres::Client::connect(&replica, postgres::NoTls);
        client
            .and_then(|mut client| client.query_one("SELECT count(*) FROM events", &[]))
            .is_ok_and(|row| row.get::<_, i64>(0) > 0)
    };
    rig.wait_for("the replica to replay the first events", replayed);
    let (serve, url) = another_instance_with(&rig, "serve", "serve", &format!("read_url = \"{replica}\""));
    let up = || get_json(&format!("{url}/health")).is_some_and(|h| h["role"] == "serve");
    rig.wait_for("the serve instance", || up() || !serve.log().is_empty() && serve.log().contains("error"));
    assert!(up(), "{}", serve.log());
    let shown = replica.replacen(":sluice-test@", "@", 1);
    assert!(serve.log().contains(&format!("from {shown}")), "it reads the replica: {}", serve.log());
    let on_replica = subscribe(&url, "?start_from=0", 1507);
    let on_leader = subscribe(&rig.http, "?start_from=0", 1507);
    let leaders = on_leader.join().unwrap();
    assert_eq!(leaders.iter().map(|(id, _)| *id).collect::<Vec<u64>>(), (1..=1507).collect::<Vec<u64>>());
    assert_eq!(on_replica.join().unwrap(), leaders);
    // Its reads went to the replica: sessions there (the primary's are the leader's, and one
    // listening for its notifications).
    let sessions = format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{}'", rig.database.name());
    let count = postgres::Client::connect(&replica, postgres::NoTls).unwrap().query_one(&sessions, &[]).unwrap();
    assert!(count.get::<_, i64>(0) >= 2, "the serve instance reads the replica");
}

#[test]
fn cluster_a_lost_database_connection_is_opened_again_and_nothing_is_lost() {
    let rig = Rig::start_on(TestDatabase::new_postgres, &["--rate", "600", "--count", "3000"], "");
    // Every connection of the host is ended, as a database restart or a network fault would.
    let cut = || {
        let sql = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'";
        rig.database.execute_as_admin(&sql.replace("{}", rig.database.name()));
    };
    rig.wait_for_stored(500);
    cut();
    rig.wait_for_stored(1500);
    cut();
    rig.wait_for_stored(3007);
    assert_clean_run(&rig);
    let health = get_json(&format!("{}/health", rig.http)).unwrap();
    assert_eq!(health["status"], "ok", "{health}");
}

#[test]
fn cluster_a_wrong_password_or_an_unreachable_server_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::new_postgres(dir.path());
    let wrong = database.url().replacen(":sluice-test@", ":not-the-password@", 1);
    assert_ne!(wrong, database.url(), "the test server's URL holds its password");
    let closed = format!("postgresql://sluice:secret@127.0.0.1:{}/sluice", free_port());
    for (url, expected, password) in
        [(wrong, "password authentication failed", "not-the-password"), (closed, "Connection refused", "secret")]
    {
        let config = dir.path().join("sluice.toml");
        let listen = |port: u16| format!("listen = \"127.0.0.1:{port}\"");
        std::fs::write(
            &config,
            format!(
                "[[nodes]]\nname = \"n\"\nurl = \"http://127.0.0.1:{}\"\n\n[storage]\nurl = \"{url}\"\n\n\
                 [http]\n{}\n\n[admin]\n{}\n",
                free_port(),
                listen(free_port()),
                listen(free_port())
            ),
        )
        .unwrap();
        let output = support::sluice().args(["run", "--config"]).arg(&config).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|line| line.contains("error")).collect();
        assert_eq!(errors.len(), 1, "one error: {stderr}");
        assert!(errors[0].contains(expected) && errors[0].contains("postgresql://sluice@127.0.0.1"), "{stderr}");
        assert!(!stderr.contains(password), "the password is never shown: {stderr}");
    }
}

#[test]
fn cluster_migrate_copies_a_sqlite_store_and_a_leader_resumes_from_the_copy() {
    let tally = support::plugin_toml("tally", "tally", "", "");
    let sqlite = |dir: &std::path::Path| TestDatabase::Sqlite(dir.join("sluice.db"));
    let mut rig = Rig::start_on(sqlite, &["--rate", "0", "--count", "2000"], &tally);
    rig.wait_for_stored(2007);
    rig.wait_for("the indexer", || rig.number("SELECT max(last_seq) FROM plugin_cursors") == Some(2007));
    let counts = |rig: &Rig| get_json(&format!("{}/plugins/tally/counts", rig.http)).unwrap();
    let before = counts(&rig);
    rig.stop_host();

    let sqlite = std::mem::replace(&mut rig.database, TestDatabase::new_postgres(rig.dir.path()));
    let migrate = |sqlite: &TestDatabase, to: &TestDatabase| {
        let mut command = support::sluice();
        command.args(["migrate", "--from"]).arg(sqlite.path().unwrap()).args(["--to", &to.url()]).output().unwrap()
    };
    let output = migrate(&sqlite, &rig.database);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("events 2007"), "{stdout}");
    let tables = ["events", "sightings", "rejected_frames", "gaps", "contract_events", "node_cursors", "plugin_data"];
    for table in tables.into_iter().chain(["plugin_cursors", "plugin_failures"]) {
        let columns = rig.database.rows(&format!(
            "SELECT column_name FROM information_schema.columns WHERE table_name = '{table}' ORDER BY ordinal_position"
        ));
        let columns: Vec<&str> = columns.iter().map(|row| row[0].as_str().unwrap()).collect();
        let select = format!("SELECT {} FROM {table} ORDER BY 1, 2, 3", columns.join(", "));
        assert_eq!(rig.database.rows(&select), sqlite.rows(&select), "{table}");
    }
    // Into a database that holds a store already: refused, nothing changed.
    let again = migrate(&sqlite, &rig.database);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a store"), "{again:?}");

    // A leader on the copy resumes where the SQLite one stopped: nothing stored again.
    rig.write_config(&tally);
    rig.start_host();
    assert_eq!(counts(&rig), before);
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(rig.number("SELECT count(*) FROM events"), Some(2007));
    let health = get_json(&format!("{}/health", rig.http)).unwrap();
    assert_eq!(health["nodes"][0]["state"], "connected", "{health}");
}

#[test]
fn cluster_tls_to_the_database_is_verified_against_the_given_authority() {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::new_postgres(dir.path());
    let ca = std::env::var("SLUICE_TEST_POSTGRES_CA").expect("SLUICE_TEST_POSTGRES_CA: run `cargo xtask test`");
    let config = dir.path().join("sluice.toml");
    let (http, admin) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    std::fs::write(
        &config,
        format!(
            "[[nodes]]\nname = \"n\"\nurl = \"http://127.0.0.1:{}\"\n\n[storage]\nurl = \"{}?sslmode=require\"\n\n\
             [http]\nlisten = \"{http}\"\n\n[admin]\nlisten = \"{admin}\"\n",
            free_port(),
            database.url()
        ),
    )
    .unwrap();
    let run = || {
        let mut run = support::sluice();
        run.args(["run", "--config"]).arg(&config);
        run
    };
    // Trusting the test server's authority: connected, over TLS only.
    let mut trusting = run();
    trusting.env("PGSSLROOTCERT", &ca);
    let host = Process::spawn(trusting, dir.path().join("host.log"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while get_json(&format!("http://{http}/health")).is_none() {
        assert!(std::time::Instant::now() < deadline, "the host did not start: {}", host.log());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let sessions = |ssl: bool| {
        let sql = format!(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.datname = '{}' AND s.ssl = {ssl} AND a.pid <> pg_backend_pid()",
            database.name()
        );
        database.rows(&sql)[0][0].as_i64().unwrap()
    };
    assert!(sessions(true) > 0, "sessions over TLS");
    assert_eq!(sessions(false), 0, "no session in plain text");
    drop(host);
    // The Mozilla roots do not include the test authority: one clear error.
    let output = run().env_remove("PGSSLROOTCERT").output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("error: connecting to postgresql://sluice@127.0.0.1") && stderr.contains("certificate"),
        "{stderr}"
    );
}
