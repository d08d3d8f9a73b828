//! The sandbox against a hostile plugin (the test-only `hostile` plugin attacks on demand):
//! floods of slow routes, node queries, storage and log text, forged chain events, and the
//! smaller ways out of its limits. Each test fails on a host without the bound it checks.

use crate::support::{Rig, get, get_json, plugin_toml};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// `clients` connections each keeping one request to `url` in flight until `stop`; the
/// statuses they got.
async fn flood(url: String, clients: usize, stop: Instant) -> BTreeMap<u16, u64> {
    let http = reqwest::Client::builder().pool_max_idle_per_host(clients).build().unwrap();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                let mut statuses = BTreeMap::<u16, u64>::new();
                while Instant::now() < stop {
                    let status = match http.get(&url).send().await {
                        Ok(response) => response.status().as_u16(),
                        Err(_) => 0,
                    };
                    *statuses.entry(status).or_default() += 1;
                }
                statuses
            })
        })
        .collect();
    let mut all = BTreeMap::new();
    for task in tasks {
        for (status, count) in task.await.unwrap() {
            *all.entry(status).or_default() += count;
        }
    }
    all
}

/// How long `url` takes to answer, and its status.
async fn timed(http: &reqwest::Client, url: &str) -> (u16, Duration) {
    let started = Instant::now();
    let status = http.get(url).send().await.map_or(0, |r| r.status().as_u16());
    (status, started.elapsed())
}

#[test]
fn a_flood_of_slow_plugin_routes_leaves_the_core_api_and_other_plugins_answering() {
    let plugins = [plugin_toml("hostile", "hostile", "", ""), plugin_toml("tally", "tally", "", "")].concat();
    let rig = Rig::start(&["--rate", "100"], &plugins);
    rig.wait_for_stored(100);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (flooded, worst, stored_during) = runtime.block_on(async {
        // 700 clients, each keeping a request in flight to a route that spins to its limit.
        let stop = Instant::now() + Duration::from_secs(8);
        let flood = tokio::spawn(flood(format!("{}/plugins/hostile/spin", rig.http), 700, stop));
        tokio::time::sleep(Duration::from_secs(2)).await;
        let http = reqwest::Client::new();
        let mut worst: BTreeMap<&str, (u16, Duration)> = BTreeMap::new();
        let mut stored = Vec::new();
        while Instant::now() + Duration::from_secs(1) < stop {
            for path in ["/health", "/block", "/events?from_seq=1&limit=10", "/plugins/tally/counts"] {
                let started = Instant::now();
                let response = http.get(format!("{}{path}", rig.http)).send().await;
                let status = response.as_ref().map_or(0, |r| r.status().as_u16());
                if path == "/health" && status == 200 {
                    let health: Value = response.unwrap().json().await.unwrap();
                    stored.push(health["store"]["events"].as_u64().unwrap());
                }
                let slowest = worst.entry(path).or_insert((status, Duration::ZERO));
                if started.elapsed() >= slowest.1 || status != 200 {
                    *slowest = (status, started.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let stored_during = stored.last().unwrap_or(&0) - stored.first().unwrap_or(&0);
        (flood.await.unwrap(), worst, stored_during)
    });
    assert_eq!(worst.len(), 4, "every endpoint was measured during the flood: {worst:?}");
    for (path, (status, took)) in &worst {
        assert_eq!(*status, 200, "{path} during the flood");
        assert!(*took < Duration::from_secs(1), "{path} took {took:?} during the flood");
    }
    assert!(stored_during > 200, "ingest went on during the flood: {stored_during} events in ≈5 s");
    // The plugin answered what it could (its calls time out: 502) and refused the rest at once.
    assert!(flooded.get(&503).copied().unwrap_or(0) > 1000, "{flooded:?}");
    assert!(flooded.keys().all(|status| [502, 503].contains(status)), "{flooded:?}");
    // Requests whose clients went away are not answered: the plugin's queue is free at once.
    let (status, took) =
        runtime.block_on(timed(&reqwest::Client::new(), &format!("{}/plugins/hostile/fast", rig.http)));
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(1), "a request after the flood waited {took:?}");
    let stopping = Instant::now();
    let mut rig = rig;
    rig.stop_host();
    assert!(stopping.elapsed() < Duration::from_secs(10), "stopping took {:?}", stopping.elapsed());
}

/// The host process's resident memory, in MiB.
fn resident_mib(rig: &Rig) -> u64 {
    let pid = rig.host.as_ref().unwrap().pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
}

#[test]
fn node_queries_are_bounded_in_size_and_rate() {
    // A filter granted the node makes a query per event: 1 MiB of params (refused), or small
    // ones, as fast as it can (20 a second at most).
    let plugins = [
        plugin_toml("huge", "hostile", "node = \"mock\"\ntimeout_ms = 5000", "query_kib = 1024"),
        plugin_toml("eager", "hostile", "node = \"mock\"\ntimeout_ms = 5000", "query_kib = 1"),
    ]
    .concat();
    let rig = Rig::start(&["--rate", "500", "--count", "3000"], &plugins);
    let started = Instant::now();
    rig.wait_for_stored(3007);
    let elapsed = started.elapsed().as_secs() + 2;
    let outcomes = |plugin: &str, outcome: &str| {
        let query = rig.database.json_text("annotations", &format!("{plugin}.query"));
        rig.number(&format!("SELECT count(*) FROM events WHERE {query} LIKE '{outcome}'")).unwrap()
    };
    assert_eq!(outcomes("huge", "params of % bytes are over the limit of 65536"), 3007);
    // Answered by the node: a block, or an error for one the mock node has not produced yet.
    let (blocks, unknown) = (outcomes("eager", "ok"), outcomes("eager", "error -32001: no such block: %"));
    let answered = blocks + unknown;
    assert!(blocks > 0 && answered as u64 <= 20 * (elapsed + 1), "{answered} queries answered in {elapsed} s");
    let refused = outcomes("eager", "over 20 node queries per second%");
    assert_eq!(answered + refused, 3007, "outcomes: {:?}", outcome_counts(&rig, "eager"));
    assert!(resident_mib(&rig) < 400, "{} MiB resident", resident_mib(&rig));
}

/// A plugin's most frequent query outcomes, with their counts (error prefixes only).
fn outcome_counts(rig: &Rig, plugin: &str) -> Vec<(Option<String>, i64)> {
    let outcome = format!("substr({}, 1, 30)", rig.database.json_text("annotations", &format!("{plugin}.query")));
    let sql = format!("SELECT {outcome}, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC LIMIT 10");
    rig.rows(&sql).iter().map(|row| (row[0].as_str().map(str::to_owned), row[1].as_i64().unwrap())).collect()
}

#[test]
fn plugin_storage_stays_within_its_quota_and_memory() {
    // 10 values of 512 KiB per batch, against a quota of 16 MiB: the batches fail once it is
    // used up (dead letters) and the database stops growing.
    let floods = plugin_toml(
        "floods",
        "hostile",
        "storage_quota_mib = 16\nmax_output_kib = 512\nmax_consecutive_failures = 1000000",
        "index = true\nvalues_per_batch = 10\nvalue_kib = 511",
    );
    // 2,000 values of 1 MiB in one batch: more than its 64 MiB of memory.
    let hoards = plugin_toml(
        "hoards",
        "hostile",
        "max_consecutive_failures = 1000000",
        "index = true\nvalues_per_batch = 2000\nvalue_kib = 1000",
    );
    let rig = Rig::start(&["--rate", "300", "--count", "1500"], &[floods, hoards].concat());
    rig.wait_for_stored(1507);
    let stored = |plugin: &str| {
        rig.number(&format!(
            "SELECT sum(octet_length(collection) + octet_length(key) + octet_length(value)) FROM plugin_data WHERE plugin LIKE '{plugin}@%'"
        ))
        .unwrap_or(0)
    };
    assert!(stored("floods") <= 16 << 20, "{} bytes stored", stored("floods"));
    assert!(stored("floods") > 8 << 20, "it stored until the quota: {} bytes", stored("floods"));
    let accounted = rig.number("SELECT bytes FROM plugin_cursors WHERE plugin LIKE 'floods@%'").unwrap();
    assert_eq!(accounted, stored("floods"), "the quota's account matches what is stored");
    let quota_failures = "SELECT count(*) FROM plugin_failures WHERE plugin LIKE 'floods@%' AND error LIKE '%quota%'";
    assert!(rig.number(quota_failures) > Some(0));
    assert_eq!(stored("hoards"), 0);
    let memory_failures =
        "SELECT count(*) FROM plugin_failures WHERE plugin LIKE 'hoards@%' AND error LIKE '%memory_mib%'";
    assert!(rig.number(memory_failures) > Some(0));
    assert!(resident_mib(&rig) < 400, "{} MiB resident", resident_mib(&rig));
    // A route reading all of it gets pages of at most its output limit, and every entry.
    let scan = get_json(&format!("{}/plugins/floods/scan", rig.http)).unwrap();
    let entries = rig.number("SELECT count(*) FROM plugin_data WHERE plugin LIKE 'floods@%'").unwrap();
    assert_eq!(scan["entries"], entries, "{scan}");
    assert!(scan["largest_page"].as_u64().unwrap() <= 512 << 10, "{scan}");
}

#[test]
fn a_decoder_cannot_forge_the_chain() {
    let rig = Rig::start(&["--rate", "0", "--count", "200"], &plugin_toml("forger", "hostile", "", "forge = true"));
    rig.wait_for_stored(207);
    let forged = "SELECT count(*) FROM events WHERE node = 'plugin:forger' AND kind != 'ContractEvent'";
    assert_eq!(rig.number(forged), Some(0), "no derived BlockAdded or TransactionProcessed is stored");
    let block = get_json(&format!("{}/block", rig.http)).unwrap();
    let height = &block["data"]["BlockAdded"]["block"]["Version2"]["header"]["height"];
    assert!(height.as_u64() < Some(2_000_000), "{block}");
    assert_eq!(get(&format!("{}/block/9000000000", rig.http)).unwrap().0, 404);
    let plugins = get_json(&format!("{}/plugins", rig.admin)).unwrap();
    assert!(plugins["plugins"][0]["errors"].as_u64() > Some(0), "refusals are counted: {plugins}");
    assert!(plugins["plugins"][0]["last_error"].as_str().unwrap().contains("may not be derived"), "{plugins}");

    // A transaction with a derived ContractEvent naming it: only its own events are its stages.
    let hash = rig.text("SELECT transaction_hash FROM events WHERE kind = 'ContractEvent' LIMIT 1");
    let view = get_json(&format!("{}/transaction/{hash}", rig.http)).unwrap();
    assert_eq!(view["expired"], Value::Null, "{view}");
    assert_eq!(view["processed"]["kind"], "TransactionProcessed", "{view}");
    assert_eq!(view["processed"]["node"], "mock", "{view}");
    assert_eq!(get(&format!("{}/transaction/expired/version1/{hash}", rig.http)).unwrap().0, 404);
    // The type in the path must be the transaction's.
    assert_eq!(get(&format!("{}/transaction/processed/version1/{hash}", rig.http)).unwrap().0, 200);
    assert_eq!(get(&format!("{}/transaction/processed/deploy/{hash}", rig.http)).unwrap().0, 404);
    assert_eq!(get(&format!("{}/transaction/deploy/{hash}", rig.http)).unwrap().0, 404);
}

#[test]
fn a_plugin_failing_most_calls_is_suspended_even_if_not_all_in_a_row() {
    let rig = Rig::start(
        &["--rate", "0", "--count", "1000"],
        &plugin_toml("flaky", "hostile", "timeout_ms = 20", "spin_unless_tenth = true"),
    );
    rig.wait_for_stored(1007);
    let plugins = get_json(&format!("{}/plugins", rig.admin)).unwrap();
    let flaky = &plugins["plugins"][0];
    assert_eq!(flaky["suspended"], true, "{flaky}");
    assert!(flaky["calls"].as_u64() <= Some(200), "suspended after one window of calls: {flaky}");
}

#[test]
fn plugin_text_is_bounded_escaped_and_rate_limited() {
    let plugins = [
        plugin_toml("shouter", "hostile", "max_consecutive_failures = 1000000", "index = true\nerror_kib = 20480"),
        plugin_toml("chatter", "hostile", "", "log_lines = 50\nlog_text = \"hello\\nINFO sluice: forged line\""),
    ]
    .concat();
    let rig = Rig::start(&["--rate", "0", "--count", "300"], &plugins);
    rig.wait_for_stored(307);
    rig.wait_for("a dead letter", || rig.number("SELECT count(*) FROM plugin_failures") > Some(0));
    let longest = rig.number("SELECT max(length(error)) FROM plugin_failures").unwrap();
    assert!(longest < 2048, "a dead letter of {longest} bytes");
    let (_, admin) = get(&format!("{}/plugins", rig.admin)).unwrap();
    assert!(admin.len() < 16 << 10, "admin /plugins answered {} bytes", admin.len());
    let log = rig.host.as_ref().unwrap().log();
    assert!(log.len() < 4 << 20, "the log grew to {} bytes", log.len());
    assert!(!log.lines().any(|line| line.starts_with("INFO sluice: forged line")), "a forged log line");
    assert!(log.contains("hello\\nINFO sluice: forged line"), "escaped, on one line");
    assert!(!log.contains("ERROR forged log line"), "the error's line breaks are escaped too");
    assert!(log.contains("over 100 log lines per second: dropping its lines"), "logging is rate-limited");
    let lines = log.lines().filter(|line| line.contains("hello")).count();
    assert!(lines < 300 * 50, "{lines} lines logged");
}

#[test]
fn plugin_responses_are_checked_and_counted() {
    let rig = Rig::start(&["--count", "10"], &plugin_toml("hostile", "hostile", "", ""));
    rig.wait_for_stored(17);
    let status = |path: &str| get(&format!("{}/plugins/hostile{path}", rig.http)).unwrap();
    assert_eq!(status("/status/101").0, 502, "a plugin may not switch protocols");
    assert_eq!(status("/status/99").0, 502);
    assert_eq!(status("/bad-header").0, 502);
    assert_eq!(status("/status/204"), (204, String::new()), "no body with 204");
    assert_eq!(status("/status/418"), (418, "a body".into()));
    let plugins = get_json(&format!("{}/plugins", rig.admin)).unwrap();
    assert_eq!(plugins["plugins"][0]["errors"], 3, "the failed responses are counted: {plugins}");
}

#[test]
fn plugins_read_still_clocks_and_only_the_regular_files_they_are_granted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.txt"), "granted").unwrap();
    assert!(std::process::Command::new("mkfifo").arg(dir.path().join("fifo")).status().unwrap().success());
    let files = format!("files = \"{}\"", dir.path().display());
    let mut rig = Rig::start(&["--count", "10"], &plugin_toml("hostile", "hostile", &files, ""));
    rig.wait_for_stored(17);
    // The copy lives in the host's temporary directory, and goes when the host stops.
    let tmp = tempfile::tempdir().unwrap();
    rig.stop_host();
    rig.host_env = vec![("TMPDIR".into(), tmp.path().display().to_string())];
    rig.start_host();
    let copies = || {
        let entries = std::fs::read_dir(tmp.path()).unwrap().map(|entry| entry.unwrap().file_name());
        entries.filter(|name| name.to_string_lossy().starts_with("sluice-files-")).count()
    };
    rig.wait_for("the plugin's copy of its files", || copies() == 1);
    let read = |file: &str| {
        let started = Instant::now();
        let (status, body) = get(&format!("{}/plugins/hostile/read/{file}", rig.http)).unwrap();
        (status, body, started.elapsed())
    };
    let (status, body, _) = read("schema.txt");
    assert_eq!((status, serde_json::from_str::<Value>(&body).unwrap()["text"].as_str()), (200, Some("granted")));
    let (status, _, took) = read("fifo");
    assert_eq!(status, 404, "a FIFO is not granted");
    assert!(took < Duration::from_secs(2), "reading it took {took:?}");
    let clock = get_json(&format!("{}/plugins/hostile/clock", rig.http)).unwrap();
    assert_eq!((clock["wall_secs"].as_u64(), clock["monotonic_ns"].as_u64()), (Some(0), Some(0)), "{clock}");
    rig.stop_host();
    assert_eq!(copies(), 0, "the copy is removed when Sluice stops");
}
