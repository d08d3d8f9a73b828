//! Several Sluice instances on one PostgreSQL database: a leader that writes, a standby that
//! takes over when it dies, and connections that are lost. These tests always use PostgreSQL
//! (`cargo xtask test` starts a server).

mod support;

use support::{Process, Rig, TestDatabase, free_port, get_json};

/// A second `sluice run` on the rig's config and database, on ports of its own; its URL.
fn second_instance(rig: &Rig) -> (Process, String) {
    let (http, admin) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let config = std::fs::read_to_string(rig.config_path())
        .unwrap()
        .replace(rig.http.trim_start_matches("http://"), &http)
        .replace(rig.admin.trim_start_matches("http://"), &admin);
    let path = rig.dir.path().join("standby.toml");
    std::fs::write(&path, config).unwrap();
    let mut run = support::host_binary();
    run.args(["run", "--config"]).arg(&path).current_dir(support::root());
    (Process::spawn(run, rig.dir.path().join("standby.log")), format!("http://{http}"))
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
    let (standby, standby_http) = second_instance(&rig);
    rig.wait_for_stored(800);
    // The standby waits: only one instance ever writes.
    rig.wait_for("the standby to wait", || standby.log().contains("standby: another instance writes"));
    drop(rig.host.take()); // kill -9
    let stored = || get_json(&format!("{standby_http}/health")).and_then(|h| h["store"]["events"].as_u64());
    rig.wait_for("the standby to take over and store every event", || stored() >= Some(3007));
    assert!(standby.log().contains("taking over as the writing instance"), "{}", standby.log());
    assert_clean_run(&rig);
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
