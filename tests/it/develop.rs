//! The plugin developer's loop: `sluice plugin new`, and the test harness that runs a plugin
//! inside the real host runtime.

use crate::support::{plugin, root, sluice};
use sluice::harness::Harness;

const TRANSACTION_PROCESSED: &str =
    include_str!("../../host/fixtures/casper2/transaction_processed_event_with_messages.json");
const BLOCK_ADDED: &str = include_str!("../../host/fixtures/casper2/block_added_event_v2.json");

#[test]
fn the_harness_feeds_a_plugin_and_shows_its_storage_routes_and_derived_events() {
    let wasm = std::path::PathBuf::from(plugin("tally"));
    let mut tally = Harness::load(&wasm, "derive = true\nlabel = \"x\"").unwrap();
    let fed = tally.feed(&[BLOCK_ADDED, TRANSACTION_PROCESSED]).unwrap();
    let kinds: Vec<&str> = fed.iter().map(|f| f.event.kind.as_str()).collect();
    assert_eq!(kinds, ["BlockAdded", "TransactionProcessed", "TallyDerived"]);
    assert_eq!(fed[2].event.node, "plugin:plugin");
    assert_eq!(fed[0].annotations.as_ref().unwrap()["plugin"]["label"], "x");
    assert_eq!(tally.get("counts", "BlockAdded").unwrap().unwrap()["count"], 1);
    assert_eq!(tally.get("counts", "TallyDerived").unwrap().unwrap()["count"], 1, "indexers see derived events");
    let (status, body) = tally.request("GET", "/blocks?era=", "").unwrap();
    assert_eq!(status, 400, "{body}");
    let (status, body) = tally.request("GET", "/counts?limit=2", "").unwrap();
    assert_eq!((status, body.as_str()), (200, r#"{"kinds":["BlockAdded","TallyDerived"]}"#));
    // Fed again: stored once, so counted once.
    assert!(tally.feed(&[BLOCK_ADDED]).unwrap().is_empty());
    assert_eq!(tally.get("counts", "BlockAdded").unwrap().unwrap()["count"], 1);
}

/// `sluice plugin new` with nothing but the binary: a crate in an empty folder, away from this
/// repository, whose own `cargo test` builds it and runs it in that binary.
#[test]
fn plugin_new_creates_a_crate_that_builds_and_tests_with_only_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("bin/sluice");
    std::fs::create_dir_all(binary.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_sluice"), &binary).unwrap();
    let new =
        |name: &str| std::process::Command::new(&binary).args(["plugin", "new", name]).current_dir(dir.path()).output();
    let output = new("my-counter").unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let crate_dir = dir.path().join("my-counter");
    let files = walk(&crate_dir);
    for file in ["Cargo.toml", "src/lib.rs", "tests/plugin.rs", "README.md", "sluice-sdk/wit/sluice.wit"] {
        assert!(files.iter().any(|f| f.ends_with(file)), "{file} in {files:?}");
    }
    let repository = root().canonicalize().unwrap().display().to_string();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(!text.contains(&repository), "{} names this repository", file.display());
    }
    // Its own test, offline (the registry's crates are cached), sharing this workspace's target
    // folder for speed; it runs the copied binary, named in the crate's `.cargo/config.toml`.
    let test = std::process::Command::new(env!("CARGO"))
        .args(["test", "--release", "--offline"])
        .env("CARGO_TARGET_DIR", root().join("target"))
        .env_remove("SLUICE")
        .env("PATH", std::env::var("PATH").unwrap_or_default().replace(&repository, "/nonexistent"))
        .current_dir(&crate_dir)
        .output()
        .unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&test.stdout), String::from_utf8_lossy(&test.stderr));
    assert!(test.status.success(), "{log}");
    assert!(log.contains("test counts_events_and_serves_them ... ok"), "{log}");
    assert!(!new("my-counter").unwrap().status.success(), "an existing crate is not overwritten");
}

/// `sluice plugin test` reports a plugin's failure by its exit status, with the report.
#[test]
fn plugin_test_reports_what_the_plugin_did_and_fails_when_it_failed() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let one_line = |json: &str| serde_json::from_str::<serde_json::Value>(json).unwrap().to_string();
    std::fs::write(&events, format!("{}\n\n{}\n", one_line(BLOCK_ADDED), one_line(TRANSACTION_PROCESSED))).unwrap();
    let run = |wasm: &str, config: &str, requests: &[&str]| {
        let mut command = sluice();
        command.args(["plugin", "test", wasm, "--config", config, "--events"]).arg(&events);
        for request in requests {
            command.args(["--request", request]);
        }
        let output = command.output().unwrap();
        (output.status.code(), serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap())
    };
    let (status, report) = run(&plugin("tally"), "derive = true", &["GET /counts?limit=2"]);
    assert_eq!(status, Some(0), "{report}");
    let kinds: Vec<&str> = report["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["BlockAdded", "TransactionProcessed", "TallyDerived"]);
    assert_eq!(report["events"][2]["json"]["TallyDerived"]["succeeded"], true, "derived events in full");
    assert_eq!(report["responses"][0]["status"], 200);
    assert_eq!(report["responses"][0]["body"]["kinds"], serde_json::json!(["BlockAdded", "TallyDerived"]));
    let (status, report) = run(&plugin("chaos"), "trap_on = \"TransactionProcessed\"", &[]);
    assert_eq!(status, Some(2), "{report}");
    assert!(report["error"].as_str().unwrap().contains("trapped"), "{report}");
}

/// The TypeScript CEP-18 indexer (`examples/cep18-indexer-ts`, built by `cargo xtask plugins`)
/// gives the Rust one's answers, byte for byte, on the same events: every route, pages and
/// their cursors, accounts named every way (the account rules come from the host), errors.
#[test]
fn the_typescript_cep18_indexer_answers_as_the_rust_one() {
    let example = root().join("examples/cep18-indexer/tests");
    let account = |n: u8| format!("account-hash-{}", format!("{n:02x}").repeat(32));
    let (a, b, spender) = (account(1), account(2), account(4));
    let (bare, contract) = (a.trim_start_matches("account-hash-").to_owned(), format!("hash-{}", "cc".repeat(32)));
    let mut requests: Vec<String> = [&a, &b, &spender, &bare, &contract, &"not-an-account".to_owned()]
        .iter()
        .map(|holder| format!("GET /balances/{holder}"))
        .collect();
    requests.extend(
        [
            "GET /balances",
            "GET /balances?limit=1",
            "GET /balances?limit=0",
            "GET /supply",
            "GET /transfers",
            "GET /transfers?limit=2",
            "GET /transfers?limit=2&cursor=x",
            "GET /nowhere",
            "POST /supply",
            "GET /collections/balances",
            "GET /collections/by_account?count=true",
        ]
        .map(String::from),
    );
    requests.push(format!("GET /transfers?account={b}"));
    requests.push(format!("GET /allowances/{b}/{spender}"));
    requests.push(format!("GET /allowances/{b}/nobody"));
    // The voting fixture's deployer, by its public key.
    requests.push("GET /balances/0184f6d260f4ee6869ddb36affe15456de6ae045278fa2f467bb677561ce0dad55".into());
    let run = |wasm: &str| {
        let mut command = sluice();
        command.args(["plugin", "test", wasm, "--config", &format!("contract_hash = \"{}\"", "aa".repeat(32))]);
        command.arg("--events").arg(example.join("events.jsonl"));
        command.args(["--upstream", &format!("ces={}", plugin("ces_decoder"))]);
        command.args(["--upstream-config", &format!("ces=@{}", example.join("decoder.toml").display())]);
        for request in &requests {
            command.args(["--request", request]);
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{wasm}: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    let typescript = root().join("examples/cep18-indexer-ts/dist/cep18_indexer.wasm");
    assert!(typescript.is_file(), "{} is missing: run the tests with `cargo xtask test`", typescript.display());
    let (rust, typescript) = (run(&plugin("cep18_indexer")), run(&typescript.display().to_string()));
    let (rust, typescript) = (rust["responses"].as_array().unwrap(), typescript["responses"].as_array().unwrap());
    assert_eq!(rust.len(), requests.len());
    for (rust, typescript) in rust.iter().zip(typescript) {
        assert_eq!(rust, typescript, "{}", rust["request"]);
    }
    let statuses: Vec<u64> = rust.iter().map(|reply| reply["status"].as_u64().unwrap()).collect();
    assert!(statuses.contains(&200) && statuses.contains(&400) && statuses.contains(&404) && statuses.contains(&405));
    assert_eq!(rust[0]["body"]["balance"], "500", "{}", rust[0]);
}

/// `sluice plugin new --lang typescript` with nothing but the binary: a project in an empty
/// folder whose `npm install`, `npm run build` and `npm test` run it in that binary.
#[test]
fn plugin_new_typescript_builds_and_tests_with_only_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("bin/sluice");
    std::fs::create_dir_all(binary.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_sluice"), &binary).unwrap();
    let new = std::process::Command::new(&binary)
        .args(["plugin", "new", "my-ts-counter", "--lang", "typescript"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(new.status.success(), "{}", String::from_utf8_lossy(&new.stderr));
    let project = dir.path().join("my-ts-counter");
    let repository = root().canonicalize().unwrap().display().to_string();
    for file in walk(&project) {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.contains(&repository), "{} names this repository", file.display());
    }
    let npm = |args: &[&str]| {
        let output = std::process::Command::new("npm")
            .args(args)
            .current_dir(&project)
            .env_remove("SLUICE")
            .env("PATH", std::env::var("PATH").unwrap_or_default().replace(&repository, "/nonexistent"))
            .output()
            .unwrap();
        let log = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "npm {args:?}: {log}");
        log
    };
    npm(&["install", "--prefer-offline", "--no-audit", "--no-fund"]);
    npm(&["run", "build"]);
    assert!(project.join("dist/my_ts_counter.wasm").is_file());
    let log = npm(&["test"]);
    assert!(log.contains("# pass 1") && log.contains("# fail 0"), "{log}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let entries = std::fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().path());
    entries.flat_map(|path| if path.is_dir() { walk(&path) } else { vec![path] }).collect()
}

#[test]
fn the_sdk_reads_2x_and_1x_events_alike() {
    let fixture = |path: &str| std::fs::read_to_string(root().join("host/fixtures").join(path)).unwrap();
    let json = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
    let mut tally = Harness::load(&std::path::PathBuf::from(plugin("tally")), "derive = true").unwrap();
    let fed = tally
        .feed(&[
            &fixture("casper2/block_added_event_v2.json"),
            &fixture("casper2/transaction_processed_event_with_messages.json"),
            &fixture("casper1/block_added_event.json"),
            &fixture("casper1/deploy_processed_event.json"),
        ])
        .unwrap();
    let derived: Vec<serde_json::Value> = fed
        .iter()
        .filter(|f| f.event.kind == "TallyDerived")
        .map(|f| json(&f.event.raw)["TallyDerived"].clone())
        .collect();
    let v2 = json(&fixture("casper2/transaction_processed_event_with_messages.json"))["TransactionProcessed"].clone();
    let v1 = json(&fixture("casper1/deploy_processed_event.json"))["DeployProcessed"].clone();
    assert_eq!(derived[0]["effects"], v2["execution_result"]["Version2"]["effects"].as_array().unwrap().len());
    assert_eq!(derived[0]["messages"], v2["messages"].as_array().unwrap().len());
    assert_eq!(
        derived[1]["effects"],
        v1["execution_result"]["Success"]["effect"]["transforms"].as_array().unwrap().len()
    );
    assert_eq!(
        (&derived[0]["succeeded"], &derived[1]["succeeded"]),
        (&serde_json::json!(true), &serde_json::json!(true))
    );
    assert_eq!(derived[1]["transaction"], v1["deploy_hash"]);
    let b2 = tally.get("blocks", &format!("{:020}", 89049)).unwrap().unwrap();
    assert_eq!(b2["proposer"], "0140afe8f752e5ff100e0189c080bc207e8805b3e5e82f792ec608de2f11f39f6c");
    let b1 = tally.get("blocks", &format!("{:020}", 97)).unwrap().unwrap();
    assert_eq!(b1["proposer"], "01601bda04ea125e2ca1881e817c46403b32862eb053370e0b93adad220378578a");
}

/// The CEP-18 example's events (the Rust and TypeScript indexers' tests feed them): CES events
/// as a node streams them, written by `sluice::harness::ces`. `SLUICE_BLESS=1` rewrites them.
#[test]
fn the_cep18_example_events_are_ces_events_as_a_node_streams_them() {
    use sluice::harness::ces::{CesEvent, transaction_processed};
    let account = |n: u8| format!("account-hash-{}", format!("{n:02x}").repeat(32));
    let (a, b, c, spender) = (account(1), account(2), account(3), account(4));
    // The token's `__events` dictionary (its seed URef address).
    let seed = "bb".repeat(32);
    let events = [
        transaction_processed(
            &"01".repeat(32),
            &"f1".repeat(32),
            &seed,
            0,
            &[CesEvent::new("Mint").key(&a).u256(1000), CesEvent::new("Transfer").key(&a).key(&b).u256(300)],
        ),
        transaction_processed(
            &"02".repeat(32),
            &"f2".repeat(32),
            &seed,
            2,
            &[
                CesEvent::new("Transfer").key(&b).key(&c).u256(100),
                CesEvent::new("Burn").key(&a).u256(200),
                CesEvent::new("SetAllowance").key(&b).key(&spender).u256(500),
                CesEvent::new("TransferFrom").key(&spender).key(&b).key(&c).u256(50),
            ],
        ),
        // Another contract's events are not the token's.
        transaction_processed(
            &"03".repeat(32),
            &"f3".repeat(32),
            &"cc".repeat(32),
            0,
            &[CesEvent::new("Mint").key(&a).u256(7)],
        ),
    ];
    let events: String = events.iter().map(|event| format!("{event}\n")).collect();
    let schema = std::fs::read_to_string(root().join("host/fixtures/ces/cep18_schema.hex")).unwrap();
    let decoder = format!(
        "# The stock CES decoder's config for the example token (tests/events.jsonl).\n[[contracts]]\n\
         contract_hash = \"{}\"\nevents_uref = \"uref-{seed}-007\"\nschema_hex = \"{}\"\n",
        "aa".repeat(32),
        schema.trim()
    );
    let dir = root().join("examples/cep18-indexer/tests");
    for (file, expected) in [("events.jsonl", events), ("decoder.toml", decoder)] {
        if std::env::var_os("SLUICE_BLESS").is_some() {
            std::fs::write(dir.join(file), &expected).unwrap();
        }
        let actual = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        assert!(actual == expected, "{file} is out of date: run this test with SLUICE_BLESS=1");
    }
}
