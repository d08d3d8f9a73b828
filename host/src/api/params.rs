//! Reading requests: the query extractor with JSON errors, and the checks every handler shares
//! (hashes, accounts, the Event Store's `page` and `limit`).

use super::error::ApiError;
use axum::extract::{FromRequestParts, Query};
use axum::http::Uri;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// `Query` whose rejection is an [`ApiError`] (`invalid_query`), so bad parameters get JSON.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(ApiError::bad_request("invalid_query", rejection.body_text())),
        }
    }
}

impl<T: DeserializeOwned> ApiQuery<T> {
    /// Read a query string (without `?`), as the extractor does.
    pub fn from_query(query: &str) -> Result<ApiQuery<T>, ApiError> {
        let uri: Uri =
            format!("/?{query}").parse().map_err(|_| ApiError::bad_request("invalid_query", "not a query"))?;
        match Query::<T>::try_from_uri(&uri) {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(ApiError::bad_request("invalid_query", rejection.body_text())),
        }
    }
}

/// Deserialize a number that SQLite can hold (at most `i64::MAX`, as the OpenAPI document's
/// `int64` says), for a `#[serde(deserialize_with)]` on an `Option<u64>` parameter.
pub fn int64<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let value = <Option<u64> as serde::Deserialize>::deserialize(deserializer)?;
    match value {
        Some(number) if number > i64::MAX as u64 => {
            Err(serde::de::Error::custom(format!("{number} is above the largest number, {}", i64::MAX)))
        }
        other => Ok(other),
    }
}

/// True for a 32-byte hash in hex.
pub fn is_hash(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A hash parameter as stored: 64 lowercase hex digits, from bare hex or a formatted hash
/// (`hash-…`, `contract-package-…`); 400 otherwise.
pub fn hash_param(name: &str, text: &str) -> Result<String, ApiError> {
    let hex = text.rsplit('-').next().unwrap_or(text);
    match is_hash(hex) {
        true => Ok(hex.to_lowercase()),
        false => Err(ApiError::bad_request("invalid_hash", format!("{name} {text:?} is not a 32-byte hash in hex"))),
    }
}

/// An account parameter (a public key or an account hash) as stored: its account hash; 400
/// otherwise.
pub fn account_param(text: &str) -> Result<String, ApiError> {
    crate::account::account_hash(text).map_err(|message| ApiError::bad_request("invalid_account", message))
}

/// A `limit` parameter: `default` when absent, 400 outside 1 to `max`.
pub fn limit_param(limit: Option<u64>, default: u64, max: u64) -> Result<u64, ApiError> {
    match limit.unwrap_or(default) {
        limit if (1..=max).contains(&limit) => Ok(limit),
        _ => Err(ApiError::bad_request("invalid_limit", format!("limit must be 1 to {max}"))),
    }
}

/// The Event Store's numbered pages: `page` from 1 (default 1), `limit` 1 to 100 (default 10).
#[derive(Debug, Clone, Copy)]
pub struct Pages {
    /// The page asked for, from 1.
    pub page: u64,
    /// Items per page.
    pub limit: u64,
}

impl Pages {
    /// Check the parameters (400 for page 0 or a limit outside 1 to 100).
    pub fn new(page: Option<u64>, limit: Option<u64>) -> Result<Pages, ApiError> {
        let page = page.unwrap_or(1);
        if page == 0 {
            return Err(ApiError::bad_request("invalid_page", "pages count from 1"));
        }
        Ok(Pages { page, limit: limit_param(limit, 10, 100)? })
    }

    /// The Event Store's page body around `data`: `{"data", "pageCount", "itemCount", "pages":
    /// [{"number", "url"}]}`, the URLs being `path` with `page` and `limit` (and `extra`, a
    /// query string to keep); `pages` lists up to 5 pages each side of this one, not all of
    /// them (a million blocks make 100,000 pages). Past the end, `data` is empty.
    pub fn body<T: serde::Serialize>(&self, data: T, items: u64, path: &str, extra: &str) -> PageBody<T> {
        let page_count = items.div_ceil(self.limit);
        let window = self.page.saturating_sub(5).max(1)..=self.page.saturating_add(5).min(page_count);
        let pages = window
            .map(|number| PageLink { number, url: format!("{path}?page={number}&limit={}{extra}", self.limit) })
            .collect();
        PageBody { data, page_count, item_count: items, pages }
    }
}

/// A page in the Event Store's shape (see [`Pages::body`]); serialized as it is, so events'
/// JSON goes out as stored.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PageBody<T> {
    data: T,
    page_count: u64,
    item_count: u64,
    pages: Vec<PageLink>,
}

/// One entry of [`PageBody::pages`].
#[derive(serde::Serialize)]
struct PageLink {
    number: u64,
    url: String,
}
