//! Typed collections of the plugin's storage: values of one Rust type, stored as JSON by key.

use crate::{Request, Response, storage};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;

/// A collection of `T`s by key, in key order.
///
/// ```ignore
/// const BALANCES: Collection<Balance> = Collection::new("balances");
/// BALANCES.update(&account, |b| b.balance += amount)?;
/// ```
pub struct Collection<T> {
    name: &'static str,
    values: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> Collection<T> {
    /// The collection `name`.
    pub const fn new(name: &'static str) -> Collection<T> {
        Collection { name, values: PhantomData }
    }

    /// Its name, as in the manifest's indexes.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The value under `key`; `None` when absent (or stored as something other than a `T`).
    pub fn get(&self, key: &str) -> Option<T> {
        storage::get_json(self.name, key)
    }

    /// Store `value` under `key`.
    pub fn set(&self, key: &str, value: &T) -> Result<(), String> {
        storage::set_json(self.name, key, value)
    }

    /// Change the value under `key` (the default `T` when absent) and store it; returns it.
    pub fn update(&self, key: &str, change: impl FnOnce(&mut T)) -> Result<T, String>
    where
        T: Default,
    {
        let mut value = self.get(key).unwrap_or_default();
        change(&mut value);
        self.set(key, &value)?;
        Ok(value)
    }

    /// Remove the value under `key`, if any.
    pub fn remove(&self, key: &str) -> Result<(), String> {
        storage::remove(self.name, key)
    }

    /// Entries whose key starts with `prefix`, in key order, after `after`: at most `limit`
    /// (and at most the plugin's `max_output_kib`). Values that are not a `T` are left out.
    pub fn scan(&self, prefix: &str, after: Option<&str>, limit: u32) -> Vec<(String, T)> {
        typed(storage::scan(self.name, prefix, after, limit))
    }

    /// Entries whose field `field` equals `value`, in key order after `after`, through the
    /// index the manifest declared with [`find_by`](crate::Manifest::find_by).
    pub fn find(
        &self,
        field: &str,
        value: &impl Serialize,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, T)>, String> {
        let value = serde_json::to_string(value).map_err(|e| e.to_string())?;
        Ok(typed(storage::find(self.name, field, &value, after, limit)?))
    }

    /// A page of the entries under `prefix` as the answer to `request`'s `cursor` and `limit`
    /// (1 to 1000, default 50): `{"data": [values…], "next_cursor": key | null}`, or a 400.
    pub fn page(&self, request: &Request, prefix: &str) -> Response {
        match request.page_params(50) {
            Ok((cursor, limit)) => storage::page(self.name, prefix, cursor.as_deref(), limit),
            Err(response) => response,
        }
    }
}

fn typed<T: DeserializeOwned>(entries: Vec<crate::Entry>) -> Vec<(String, T)> {
    let typed = entries.into_iter().filter_map(|e| Some((e.key, serde_json::from_str(&e.value).ok()?)));
    typed.collect()
}

/// A key part that sorts newer sequence numbers first (20 digits): prefix keys with it to list
/// a collection newest first.
pub fn newest_first(sequence: u64) -> String {
    format!("{:020}", u64::MAX - sequence)
}
