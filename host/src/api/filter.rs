//! Which events a stream subscriber wants: `?types=`, `?contract=`, `?package=`, `?name=` and
//! `?transaction=`, `?account=`, shared by the SSE and WebSocket streams.

use super::error::ApiError;
use super::params::{account_param, hash_param};
use crate::event::CONTRACT_EVENT;
use crate::store::StoredEvent;
use crate::store::contract_events::Identity;
use serde::Deserialize;
use std::collections::HashSet;

/// Where a stream starts and what it lets through, as a client asks (query string or
/// subscribe message).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StreamParams {
    /// First sequence number wanted (`from` in a subscribe message); without it, the next new event.
    #[serde(alias = "from", default, deserialize_with = "super::params::int64")]
    pub start_from: Option<u64>,
    /// Event types, comma-separated: `BlockAdded,ContractEvent` (empty: every type).
    #[serde(alias = "type")]
    types: Option<String>,
    /// Contract hash: that contract's events, and node events that mention it.
    #[param(pattern = "^(.*-)?[0-9a-fA-F]{64}$")]
    contract: Option<String>,
    /// Contract package hash, likewise.
    #[param(pattern = "^(.*-)?[0-9a-fA-F]{64}$")]
    package: Option<String>,
    /// Contract event name (only contract events have one; empty: any).
    name: Option<String>,
    /// Transaction or deploy hash.
    #[param(pattern = "^(.*-)?[0-9a-fA-F]{64}$")]
    transaction: Option<String>,
    /// The transactions an account sent (a public key or an account hash): their accepted and
    /// processed events.
    #[param(pattern = "^((account-hash-)?[0-9a-fA-F]{64}|01[0-9a-fA-F]{64}|02[0-9a-fA-F]{66})$")]
    account: Option<String>,
    /// An attached filter plugin: only what it keeps (empty: none; one not attached: 404).
    #[param(pattern = "^[A-Za-z0-9_-]*$")]
    filter: Option<String>,
    /// The event types the stream's channel carries, and their names as a client may give them
    /// (set by the channel, not the client).
    #[serde(skip)]
    #[param(ignore)]
    channel: Option<(&'static [&'static str], fn(&str) -> &str)>,
}

/// A checked filter; the default lets everything through.
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    types: Option<HashSet<String>>,
    contract: Option<String>,
    package: Option<String>,
    name: Option<String>,
    transaction: Option<String>,
    account: Option<String>,
    attached: Option<String>,
}

impl StreamParams {
    /// These parameters on a channel carrying only `kinds`: of those `types` names (by their
    /// own name or their `alias`), or all of them (none, when it names only others).
    pub fn within_types(mut self, kinds: &'static [&'static str], alias: fn(&str) -> &str) -> StreamParams {
        self.channel = Some((kinds, alias));
        self
    }
}

impl EventFilter {
    /// Check the parameters: 400 for a malformed hash, 404 for a filter that is not one of the
    /// `attached` filter plugins. An empty `types`, `name` or `filter` is no narrowing.
    pub fn new(params: &StreamParams, attached: &[String]) -> Result<EventFilter, ApiError> {
        let given = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
        let filter = given(&params.filter);
        if let Some(filter) = filter.as_ref().filter(|f| !attached.contains(f)) {
            let message = format!("no attached filter named {filter:?}");
            return Err(ApiError::new(axum::http::StatusCode::NOT_FOUND, "unknown_filter", message));
        }
        let types: Option<HashSet<String>> = params
            .types
            .as_ref()
            .map(|list| list.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect());
        let mut types = types.filter(|types| !types.is_empty());
        if let Some((kinds, alias)) = params.channel {
            let wanted =
                |kind: &str| types.as_ref().is_none_or(|asked| asked.contains(kind) || asked.contains(alias(kind)));
            types = Some(kinds.iter().copied().filter(|kind| wanted(kind)).map(str::to_owned).collect());
        }
        let hash = |name, value: &Option<String>| value.as_deref().map(|v| hash_param(name, v)).transpose();
        Ok(EventFilter {
            types,
            contract: hash("contract", &params.contract)?,
            package: hash("package", &params.package)?,
            name: given(&params.name),
            transaction: hash("transaction", &params.transaction)?,
            account: params.account.as_deref().map(account_param).transpose()?,
            attached: filter,
        })
    }

    /// What an index can narrow a read of the log to: the event types (none: all), the
    /// account and the transaction. The rest of the filter is applied to what is read.
    pub fn indexed(&self) -> (Vec<String>, Option<String>, Option<String>) {
        let mut kinds: Vec<String> = self.types.iter().flatten().cloned().collect();
        kinds.sort();
        (kinds, self.account.clone(), self.transaction.clone())
    }

    /// Whether `event` passes.
    pub fn matches(&self, event: &StoredEvent) -> bool {
        if self.types.as_ref().is_some_and(|types| !types.contains(&event.kind)) {
            return false;
        }
        if self.attached.as_ref().is_some_and(|filter| event.hidden_by(filter)) {
            return false;
        }
        if self.account.is_some() && self.account != event.account {
            return false;
        }
        if self.contract.is_none() && self.package.is_none() && self.name.is_none() && self.transaction.is_none() {
            return true;
        }
        if event.kind == CONTRACT_EVENT {
            return self.matches_contract_event(event);
        }
        // Node events mention contracts in effects, messages and keys: a 64-digit hash found
        // in the JSON is the hash (node JSON writes hex in lowercase).
        let mentions = |hash: &Option<String>| hash.as_ref().is_none_or(|h| event.raw.contains(h.as_str()));
        self.name.is_none() && mentions(&self.contract) && mentions(&self.package) && mentions(&self.transaction)
    }

    fn matches_contract_event(&self, event: &StoredEvent) -> bool {
        let Some(identity) = Identity::of(&event.raw) else { return false };
        let equals = |wanted: &Option<String>, value: &Option<String>| wanted.is_none() || wanted == value;
        equals(&self.contract, &identity.contract_hash)
            && equals(&self.package, &identity.contract_package_hash)
            && equals(&self.name, &identity.name)
            && equals(&self.transaction, &identity.transaction_hash)
    }
}
