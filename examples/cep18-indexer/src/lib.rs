//! Example dApp indexer: a CEP-18 token's holder balances, allowances, total supply and
//! transfer history, built on the `ContractEvent`s of the stock CES decoder (or of a CSPR.cloud
//! source). Copy it to start an indexer for your own contract; the README walks through it.
//!
//! ```toml
//! [[plugins]]
//! name = "cep18"
//! path = "target/wasm32-wasip2/release/cep18_indexer.wasm"
//! [plugins.config]
//! package_hash = "…"    # the token (or contract_hash, one version of it)
//! ```
//!
//! Routes (under `/plugins/cep18`): `GET /balances/{account}`, `GET /balances` (holders,
//! paged), `GET /transfers?account=&limit=&cursor=` (newest first), `GET /supply`,
//! `GET /allowances/{owner}/{spender}`.

mod event;

use event::ContractEvent;
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_plugin_sdk::casper::{account_hash, bare_hash};
use sluice_plugin_sdk::{Event, Manifest, Plugin, Request, Response, log, storage};

uint::construct_uint! {
    /// A token amount.
    pub struct U256(4);
}

/// Storage collections.
const BALANCES: &str = "balances";
const ALLOWANCES: &str = "allowances";
const SUPPLY: &str = "supply";
/// Every movement, newest first: key `{newest-first sequence}.{index}`.
const TRANSFERS: &str = "transfers";
/// The same, per account: key `{account}.{newest-first sequence}.{index}`.
const BY_ACCOUNT: &str = "by_account";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The token's contract package hash (hex).
    package_hash: Option<String>,
    /// Or one contract version's hash (hex).
    contract_hash: Option<String>,
}

struct Cep18(Config);

impl Plugin for Cep18 {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        let bare = |hash: Option<String>| hash.map(|h| bare_hash(&h).to_lowercase());
        if config.package_hash.is_none() && config.contract_hash.is_none() {
            return Err("set package_hash (or contract_hash): the token whose events to index".into());
        }
        Ok(Cep18(Config { package_hash: bare(config.package_hash), contract_hash: bare(config.contract_hash) }))
    }

    fn manifest(&self) -> Manifest {
        Manifest {
            decode: false,
            filter: false,
            index_kinds: vec!["ContractEvent".into()],
            routes: true,
            indexes: Vec::new(),
        }
    }

    fn index(&mut self, events: &[Event]) -> Result<(), String> {
        for event in events {
            let Some(contract_event) = ContractEvent::parse(&event.json) else { continue };
            if self.is_token(&contract_event) {
                apply(event.sequence, &contract_event)?;
            }
        }
        Ok(())
    }

    fn handle(&mut self, request: Request) -> Response {
        let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
        match (request.method.as_str(), segments.as_slice()) {
            ("GET", ["balances", account]) => match holder(account) {
                Ok(holder) => Response::json(200, &json!({"account": holder, "balance": balance(&holder).to_string()})),
                Err(response) => response,
            },
            ("GET", ["balances"]) => paged(&request, BALANCES, String::new()),
            ("GET", ["transfers"]) => match request.query_param("account") {
                Some(account) => match holder(&account) {
                    Ok(holder) => paged(&request, BY_ACCOUNT, format!("{holder}.")),
                    Err(response) => response,
                },
                None => paged(&request, TRANSFERS, String::new()),
            },
            ("GET", ["supply"]) => {
                Response::json(200, &json!({"total_supply": amount(SUPPLY, "total", "total_supply").to_string()}))
            }
            ("GET", ["allowances", owner, spender]) => match (holder(owner), holder(spender)) {
                (Ok(owner), Ok(spender)) => {
                    let allowance = amount(ALLOWANCES, &format!("{owner}.{spender}"), "allowance");
                    Response::json(
                        200,
                        &json!({"owner": owner, "spender": spender, "allowance": allowance.to_string()}),
                    )
                }
                (Err(response), _) | (_, Err(response)) => response,
            },
            _ => Response::error(404, "not_found", "no such route"),
        }
    }
}

impl Cep18 {
    /// Whether the event comes from the configured token.
    fn is_token(&self, event: &ContractEvent) -> bool {
        let matches = |wanted: &Option<String>, actual: &Option<String>| wanted.is_none() || wanted == actual;
        matches(&self.0.package_hash, &event.package) && matches(&self.0.contract_hash, &event.contract)
    }
}

/// Apply one token event to balances, supply, allowances and history.
fn apply(sequence: u64, event: &ContractEvent) -> Result<(), String> {
    let field = |name: &str| event.data[name].as_str().unwrap_or_default().to_owned();
    let value =
        |name: &str| U256::from_dec_str(event.data[name].as_str().unwrap_or("0")).map_err(|e| format!("{name}: {e:?}"));
    let (from, to, moved) = match event.name.as_str() {
        "Mint" => (None, Some(field("recipient")), value("amount")?),
        "Burn" => (Some(field("owner")), None, value("amount")?),
        "Transfer" => (Some(field("sender")), Some(field("recipient")), value("amount")?),
        "TransferFrom" => (Some(field("owner")), Some(field("recipient")), value("amount")?),
        "SetAllowance" | "IncreaseAllowance" | "DecreaseAllowance" => {
            let key = format!("{}.{}", field("owner"), field("spender"));
            return set_amount(ALLOWANCES, &key, json!({"allowance": value("allowance")?.to_string()}));
        }
        _ => return Ok(()),
    };
    if let Some(from) = &from {
        let had = balance(from);
        if had < moved {
            log::warn(&format!("{from} moves {moved} but holds {had} here (indexing began after its mint?)"));
        }
        set_amount(BALANCES, from, json!({"account": from, "balance": had.saturating_sub(moved).to_string()}))?;
    }
    if let Some(to) = &to {
        let balance = balance(to).saturating_add(moved);
        set_amount(BALANCES, to, json!({"account": to, "balance": balance.to_string()}))?;
    }
    match (&from, &to) {
        (None, Some(_)) => add_supply(moved, true)?,
        (Some(_), None) => add_supply(moved, false)?,
        _ => {}
    }
    let record = json!({
        "kind": event.name, "from": from, "to": to, "amount": moved.to_string(),
        "transaction_hash": event.transaction, "block_height": event.block_height, "timestamp": event.timestamp,
        "sequence": sequence,
    })
    .to_string();
    let newest_first = format!("{:020}.{:04}", u64::MAX - sequence, event.index);
    storage::set(TRANSFERS, &newest_first, &record)?;
    for account in from.iter().chain(to.iter().filter(|to| Some(*to) != from.as_ref())) {
        storage::set(BY_ACCOUNT, &format!("{account}.{newest_first}"), &record)?;
    }
    Ok(())
}

fn add_supply(moved: U256, mint: bool) -> Result<(), String> {
    let total = amount(SUPPLY, "total", "total_supply");
    let total = if mint { total.saturating_add(moved) } else { total.saturating_sub(moved) };
    set_amount(SUPPLY, "total", json!({"total_supply": total.to_string()}))
}

fn balance(account: &str) -> U256 {
    amount(BALANCES, account, "balance")
}

/// The decimal amount in field `field` of the value under `key` (0 when absent).
fn amount(collection: &str, key: &str, field: &str) -> U256 {
    let value: Option<Value> = storage::get_json(collection, key);
    let text = value.as_ref().and_then(|v| v[field].as_str());
    text.and_then(|t| U256::from_dec_str(t).ok()).unwrap_or_default()
}

fn set_amount(collection: &str, key: &str, value: Value) -> Result<(), String> {
    storage::set(collection, key, &value.to_string())
}

/// A holder as stored: `account-hash-…` (from a public key or an account hash) or `hash-…`.
fn holder(text: &str) -> Result<String, Response> {
    if text.starts_with("hash-") && text.len() == 69 {
        return Ok(text.to_lowercase());
    }
    account_hash(text)
        .map(|hash| format!("account-hash-{hash}"))
        .map_err(|m| Response::error(400, "invalid_account", m))
}

fn paged(request: &Request, collection: &str, prefix: String) -> Response {
    match request.page_params(50) {
        Ok((cursor, limit)) => storage::page(collection, &prefix, cursor.as_deref(), limit),
        Err(response) => response,
    }
}

sluice_plugin_sdk::export!(Cep18);
