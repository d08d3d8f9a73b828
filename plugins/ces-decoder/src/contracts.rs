//! What the decoder knows about the contracts it watches: each contract's package, the seed of
//! its `__events` dictionary, the URef of its `__events_schema` and the schema itself.
//!
//! Knowledge comes from the config, from effects seen on chain (an install or upgrade names the
//! keys and writes the schema), from the node (when granted) and from what earlier instances
//! learned and stored.

use crate::ces::{Schemas, parse_hash, parse_schemas};
use serde_json::{Value, json};
use sluice_plugin_sdk::casper::Effect;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;

/// A 32-byte hash or URef address.
pub type Hash = [u8; 32];

/// One contract (one version of a package).
#[derive(Debug, Clone, Default)]
pub struct Contract {
    /// Its contract package.
    pub package: Option<Hash>,
    /// Address of the `__events` dictionary's seed URef.
    pub events_seed: Option<Hash>,
    /// Address of the `__events_schema` URef.
    pub schema_uref: Option<Hash>,
    /// Its events' fields, once known.
    pub schemas: Option<Rc<Schemas>>,
    /// Hex of the schema bytes (what is stored and shown).
    pub schema_hex: Option<String>,
}

/// The contracts the decoder watches and what it knows of them.
#[derive(Default)]
pub struct Registry {
    watched_packages: HashSet<Hash>,
    watched_contracts: HashSet<Hash>,
    contracts: HashMap<Hash, Contract>,
    /// `__events` seed → the contracts using it, the newest last (an upgrade keeps the dictionary).
    by_seed: HashMap<Hash, Vec<Hash>>,
    /// Hex strings, one of which a transaction's JSON holds when it concerns a watched
    /// contract (see [`Registry::needles`]); recomputed after a change.
    needles: Option<Vec<String>>,
}

/// How a contract is watched, from the config.
pub struct Watch {
    /// Every version of this package.
    pub package: Option<Hash>,
    /// This contract.
    pub contract: Option<Hash>,
    /// The contract's `__events` seed, given offline.
    pub events_seed: Option<Hash>,
    /// The contract's schema (hex), given offline.
    pub schema_hex: Option<String>,
}

impl Registry {
    /// A registry watching what the config lists.
    pub fn new(watches: Vec<Watch>) -> Result<Registry, String> {
        let mut registry = Registry::default();
        for watch in watches {
            if let Some(package) = watch.package {
                registry.watched_packages.insert(package);
            }
            let Some(contract) = watch.contract else {
                if watch.events_seed.is_some() || watch.schema_hex.is_some() {
                    return Err("`events_uref` and `schema_hex` need the `contract_hash` they belong to".into());
                }
                continue;
            };
            registry.watched_contracts.insert(contract);
            let known = Contract { package: watch.package, events_seed: watch.events_seed, ..Contract::default() };
            registry.update(contract, known);
            if let Some(schema_hex) = watch.schema_hex {
                registry.set_schema(contract, schema_hex.trim())?;
            }
        }
        Ok(registry)
    }

    /// Whether events of `contract` are wanted.
    pub fn watches(&self, contract: &Hash) -> bool {
        self.watched_contracts.contains(contract)
            || self.contracts.get(contract).and_then(|c| c.package).is_some_and(|p| self.watched_packages.contains(&p))
    }

    /// Whether nothing at all is watched.
    pub fn is_empty(&self) -> bool {
        self.watched_contracts.is_empty() && self.watched_packages.is_empty()
    }

    /// The contract whose `__events` dictionary has this seed (the newest version).
    pub fn by_seed(&self, seed: &Hash) -> Option<(Hash, &Contract)> {
        let hash = *self.by_seed.get(seed)?.last()?;
        Some((hash, self.contracts.get(&hash)?))
    }

    /// What is known of `contract`.
    pub fn get(&self, contract: &Hash) -> Option<&Contract> {
        self.contracts.get(contract)
    }

    /// Watched contracts and packages that still miss their events seed or schema.
    pub fn incomplete(&self) -> (Vec<Hash>, Vec<Hash>) {
        let complete = |c: &Contract| c.events_seed.is_some() && c.schemas.is_some();
        let contracts = self.watched_contracts.iter().filter(|h| !self.contracts.get(*h).is_some_and(complete));
        let resolved_packages: HashSet<Hash> =
            self.contracts.values().filter(|c| complete(c)).filter_map(|c| c.package).collect();
        let packages = self.watched_packages.iter().filter(|p| !resolved_packages.contains(*p));
        (contracts.copied().collect(), packages.copied().collect())
    }

    /// Hex strings one of which the JSON of any transaction concerning a watched contract holds:
    /// the seeds of their `__events` dictionaries (in every CES write's bytes), the contracts
    /// (keys, messages) and the packages (installs, upgrades). `None` while a watched contract's
    /// seed is unknown: then any transaction may be one to learn from.
    pub fn needles(&mut self) -> Option<&[String]> {
        if self.needles.is_none() {
            let (contracts, packages) = self.incomplete();
            if !(contracts.is_empty() && packages.is_empty()) {
                return None;
            }
            let (contracts, packages) = (&self.watched_contracts, &self.watched_packages);
            // Known versions of watched packages (their messages name only them) and the
            // seeds of every watched contract's `__events`.
            let versions =
                self.contracts.iter().filter(|(_, known)| known.package.is_some_and(|p| packages.contains(&p)));
            let known = versions.map(|(hash, _)| *hash);
            let seeds = self.contracts.iter().filter_map(|(hash, known)| {
                let watched = contracts.contains(hash) || known.package.is_some_and(|p| packages.contains(&p));
                known.events_seed.filter(|_| watched)
            });
            let hashes = contracts.iter().chain(packages).copied().chain(known).chain(seeds);
            self.needles = Some(hashes.map(|h| base16::encode_lower(&h)).collect());
        }
        self.needles.as_deref()
    }

    /// Merge what is known of `contract` (fields already known stay unless `known` has them).
    pub fn update(&mut self, contract: Hash, known: Contract) {
        self.needles = None;
        let entry = self.contracts.entry(contract).or_default();
        entry.package = known.package.or(entry.package);
        entry.schema_uref = known.schema_uref.or(entry.schema_uref);
        if known.schemas.is_some() {
            (entry.schemas, entry.schema_hex) = (known.schemas, known.schema_hex);
        }
        if let Some(seed) = known.events_seed {
            entry.events_seed = Some(seed);
            let users = self.by_seed.entry(seed).or_default();
            users.retain(|c| *c != contract);
            users.push(contract);
        }
    }

    /// Set `contract`'s schema from its bytes (hex).
    pub fn set_schema(&mut self, contract: Hash, schema_hex: &str) -> Result<(), String> {
        let bytes = hex::decode(schema_hex).map_err(|e| format!("the schema is not hex: {e}"))?;
        let schemas = parse_schemas(&bytes)?;
        let known = Contract {
            schemas: Some(Rc::new(schemas)),
            schema_hex: Some(schema_hex.to_owned()),
            ..Contract::default()
        };
        self.update(contract, known);
        Ok(())
    }

    /// Learn from one successful transaction's effects: contracts written into watched
    /// packages, the `__events` and `__events_schema` keys they name, and schema writes.
    /// Returns the contracts whose knowledge changed.
    pub fn learn(&mut self, effects: &[Effect]) -> BTreeSet<Hash> {
        let mut changed = BTreeSet::new();
        // Package membership: 2.x writes the contract with its package; 1.x only says that a
        // package and a contract were written, which pairs them when there is one of each.
        let (mut packages, mut contracts) = (Vec::new(), Vec::new());
        for effect in effects {
            let write = effect.kind.get("Write");
            if let Some(contract) = write.and_then(|w| w.get("Contract")) {
                let (Some(hash), Some(package)) =
                    (parse_hash(&effect.key), contract["contract_package_hash"].as_str().and_then(parse_hash))
                else {
                    continue;
                };
                if self.watched_packages.contains(&package) && self.get(&hash).and_then(|c| c.package) != Some(package)
                {
                    self.update(hash, Contract { package: Some(package), ..Contract::default() });
                    changed.insert(hash);
                }
            } else if effect.kind == "WriteContractPackage" {
                packages.extend(parse_hash(&effect.key));
            } else if effect.kind == "WriteContract" {
                contracts.extend(parse_hash(&effect.key));
            }
        }
        if let ([package], [contract]) = (packages.as_slice(), contracts.as_slice()) {
            if self.watched_packages.contains(package) && self.get(contract).and_then(|c| c.package).is_none() {
                self.update(*contract, Contract { package: Some(*package), ..Contract::default() });
                changed.insert(*contract);
            }
        }
        // Named keys first: an install writes the schema's URef before it names it.
        for effect in effects {
            for (contract, name, key) in named_keys(effect) {
                if !self.watches(&contract) {
                    continue;
                }
                let known = match name.as_str() {
                    "__events" => Contract { events_seed: Some(key), ..Contract::default() },
                    "__events_schema" => Contract { schema_uref: Some(key), ..Contract::default() },
                    _ => continue,
                };
                self.update(contract, known);
                changed.insert(contract);
            }
        }
        for effect in effects {
            let Some(value) = effect.written_cl_value() else { continue };
            if !effect.key.starts_with("uref-") {
                continue;
            }
            let Some(uref) = parse_hash(&effect.key) else { continue };
            let owners: Vec<Hash> =
                self.contracts.iter().filter(|(_, c)| c.schema_uref == Some(uref)).map(|(hash, _)| *hash).collect();
            for contract in owners {
                if let Some(bytes) = value["bytes"].as_str() {
                    if self.set_schema(contract, bytes).is_ok() {
                        changed.insert(contract);
                    }
                }
            }
        }
        changed
    }

    /// What is known of `contract`, as stored and shown (`ContractSchema` events).
    pub fn describe(&self, contract: &Hash) -> Value {
        let known = self.contracts.get(contract).cloned().unwrap_or_default();
        json!({
            "contract_hash": base16::encode_lower(contract),
            "contract_package_hash": known.package.map(|h| base16::encode_lower(&h)),
            "events_uref": known.events_seed.map(|h| base16::encode_lower(&h)),
            "schema_uref": known.schema_uref.map(|h| base16::encode_lower(&h)),
            "schema_hex": known.schema_hex,
            "schema": known.schemas.as_deref().map(crate::ces::schemas_json),
        })
    }

    /// Merge a description made by [`describe`](Self::describe).
    pub fn restore(&mut self, description: &Value) {
        let hash = |field: &str| description[field].as_str().and_then(parse_hash);
        let Some(contract) = hash("contract_hash") else { return };
        let known = Contract {
            package: hash("contract_package_hash"),
            events_seed: hash("events_uref"),
            schema_uref: hash("schema_uref"),
            ..Contract::default()
        };
        self.update(contract, known);
        if let Some(schema_hex) = description["schema_hex"].as_str() {
            let _ = self.set_schema(contract, schema_hex);
        }
    }
}

/// The named keys an effect adds: (contract, name, key address). 1.x: `AddKeys` on the
/// contract's `hash-…`; 2.x: a `NamedKey` write under `named-key-entity-contract-…`.
fn named_keys(effect: &Effect) -> Vec<(Hash, String, Hash)> {
    if let Some(added) = effect.kind.get("AddKeys").and_then(Value::as_array) {
        let Some(contract) = parse_hash(&effect.key) else { return Vec::new() };
        let named = added.iter().filter_map(|entry| {
            Some((contract, entry["name"].as_str()?.to_owned(), parse_hash(entry["key"].as_str()?)?))
        });
        return named.collect();
    }
    let Some(named_key) = effect.kind.get("Write").and_then(|w| w.get("NamedKey")) else { return Vec::new() };
    // named-key-entity-contract-{contract}-{hash of the name}
    let contract = effect.key.strip_prefix("named-key-").and_then(|rest| rest.split('-').find(|p| p.len() == 64));
    let name = named_key["name"]["parsed"].as_str();
    let key = named_key["named_key"]["parsed"].as_str().and_then(parse_hash);
    match (contract.and_then(parse_hash), name, key) {
        (Some(contract), Some(name), Some(key)) => vec![(contract, name.to_owned(), key)],
        _ => Vec::new(),
    }
}
