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

use sluice_plugin_sdk::prelude::*;

/// A holder's balance (`/balances` lists these).
#[derive(Serialize, Deserialize, Default)]
struct Balance {
    account: String,
    balance: U256,
}

const BALANCES: Collection<Balance> = Collection::new("balances");
/// Key `{owner}.{spender}`.
const ALLOWANCES: Collection<U256> = Collection::new("allowances");
/// Key `total`.
const SUPPLY: Collection<U256> = Collection::new("supply");
/// Every movement (mint, burn, transfer), newest first: key `{newest-first sequence}.{index}`.
const TRANSFERS: Collection<serde_json::Value> = Collection::new("transfers");
/// The same, per account: key `{account}.{newest-first sequence}.{index}`.
const BY_ACCOUNT: Collection<serde_json::Value> = Collection::new("by_account");

struct Cep18(ContractConfig);

impl Plugin for Cep18 {
    type Config = ContractConfig;

    fn new(token: ContractConfig) -> Result<Self, String> {
        Ok(Cep18(token))
    }

    fn manifest(&self) -> Manifest {
        Manifest::new().indexing(["ContractEvent"]).with_routes().serving("balances").serving("by_account")
    }

    fn index(&mut self, events: &[Event]) -> Result<(), String> {
        self.0.events_in(events).try_for_each(|(event, token_event)| apply(event.sequence, &token_event))
    }

    fn handle(&mut self, request: Request) -> Response {
        let holder = |text: &str| holder_key(text).map_err(|m| Response::error(400, "invalid_account", m));
        Router::new(&request)
            .get("/balances/{account}", |p| {
                let account = holder(&p["account"])?;
                Ok(json!({"account": account, "balance": BALANCES.get(&account).unwrap_or_default().balance}))
            })
            .get("/balances", |_| Ok(BALANCES.page(&request, "")))
            .get("/transfers", |_| match request.query_param("account") {
                Some(account) => Ok(BY_ACCOUNT.page(&request, &format!("{}.", holder(&account)?))),
                None => Ok(TRANSFERS.page(&request, "")),
            })
            .get("/supply", |_| Ok(json!({"total_supply": SUPPLY.get("total").unwrap_or_default()})))
            .get("/allowances/{owner}/{spender}", |p| {
                let (owner, spender) = (holder(&p["owner"])?, holder(&p["spender"])?);
                let allowance = ALLOWANCES.get(&format!("{owner}.{spender}")).unwrap_or_default();
                Ok(json!({"owner": owner, "spender": spender, "allowance": allowance}))
            })
            .finish()
    }
}

/// Apply one token event to balances, supply, allowances and history.
fn apply(sequence: u64, event: &ContractEvent) -> Result<(), String> {
    let (from, to): (Option<String>, Option<String>) = match event.name.as_str() {
        "Mint" => (None, Some(event.field("recipient")?)),
        "Burn" => (Some(event.field("owner")?), None),
        "Transfer" => (Some(event.field("sender")?), Some(event.field("recipient")?)),
        "TransferFrom" => (Some(event.field("owner")?), Some(event.field("recipient")?)),
        "SetAllowance" | "IncreaseAllowance" | "DecreaseAllowance" => {
            let key = format!("{}.{}", event.field::<String>("owner")?, event.field::<String>("spender")?);
            return ALLOWANCES.set(&key, &event.field("allowance")?);
        }
        _ => return Ok(()),
    };
    let amount: U256 = event.field("amount")?;
    // Saturating: an indexer that began after the mint must not fail on the first transfer.
    if let Some(from) = &from {
        BALANCES.update(from, |b| *b = Balance { account: from.clone(), balance: b.balance.saturating_sub(amount) })?;
    } else {
        SUPPLY.update("total", |supply| *supply = supply.saturating_add(amount))?;
    }
    if let Some(to) = &to {
        BALANCES.update(to, |b| *b = Balance { account: to.clone(), balance: b.balance.saturating_add(amount) })?;
    } else {
        SUPPLY.update("total", |supply| *supply = supply.saturating_sub(amount))?;
    }
    let key = format!("{}.{:04}", newest_first(sequence), event.index);
    let movement = json!({
        "kind": event.name, "from": from, "to": to, "amount": amount, "transaction_hash": event.transaction,
        "block_height": event.block_height, "timestamp": event.timestamp, "sequence": sequence,
    });
    TRANSFERS.set(&key, &movement)?;
    let mut accounts = from.iter().chain(to.iter().filter(|to| Some(*to) != from.as_ref()));
    accounts.try_for_each(|account| BY_ACCOUNT.set(&format!("{account}.{key}"), &movement))
}

sluice_plugin_sdk::export!(Cep18);
