//! `/plugins/{name}/collections/…`: the automatic read API. Collections a plugin's manifest
//! lists as served are read straight from its storage (the live version's), without calling
//! the plugin: one entry by key, pages by key prefix or by the value of an indexed field, and
//! counts. A path under a plugin that serves no such collection goes to its own routes.

use super::AppState;
use super::error::ApiError;
use super::plugin_routes;
use crate::plugins::{RouteError, ServedCollections};
use crate::store::Read;
use crate::store::plugin_data::{Bound, MAX_PAGE, Matching};
use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::sync::Arc;

/// Entries a page holds unless `limit` says otherwise.
const DEFAULT_PAGE: u32 = 100;
/// Bytes of keys and values a page holds at most (but at least one entry).
const PAGE_BYTES: usize = 4 << 20;
/// Counts stop here (`"count_complete": false`): a count reads every matching index entry.
pub const COUNT_CAP: u64 = 100_000;

/// One request of the automatic read API.
#[derive(Debug, Clone)]
pub enum CollectionRequest {
    /// `/collections`: which collections are served, and their filters.
    Index,
    /// `/collections/{collection}`: a page of its entries.
    List(String),
    /// `/collections/{collection}/{key}`: one entry.
    Entry(String, String),
}

impl CollectionRequest {
    /// The request for `path` (below `/plugins/{name}`, segments as they are), if it is one.
    pub fn parse(path: &str) -> Option<CollectionRequest> {
        let rest = path.trim_start_matches('/').strip_prefix("collections")?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        match rest.trim_start_matches('/').split_once('/') {
            _ if rest.trim_matches('/').is_empty() => Some(CollectionRequest::Index),
            Some((collection, key)) if !key.is_empty() => {
                Some(CollectionRequest::Entry(collection.to_owned(), key.to_owned()))
            }
            _ => Some(CollectionRequest::List(rest.trim_matches('/').to_owned())),
        }
    }

    /// The path it was asked as (segments decoded), for the plugin's own routes.
    fn path(&self) -> String {
        match self {
            CollectionRequest::Index => "/collections".into(),
            CollectionRequest::List(collection) => format!("/collections/{collection}"),
            CollectionRequest::Entry(collection, key) => format!("/collections/{collection}/{key}"),
        }
    }

    fn collection(&self) -> Option<&str> {
        match self {
            CollectionRequest::Index => None,
            CollectionRequest::List(collection) | CollectionRequest::Entry(collection, _) => Some(collection),
        }
    }

    /// Whether `served` has what it asks for (else the path is the plugin's own).
    pub fn is_served_by(&self, served: &ServedCollections) -> bool {
        self.collection().is_none_or(|wanted| served.collections.iter().any(|c| c == wanted))
    }
}

/// Answer `request` (one `served` has: see [`CollectionRequest::is_served_by`]) with the query
/// string's `params`, reading the plugin's storage through `conn`.
pub fn answer(
    conn: &mut dyn Read,
    served: &ServedCollections,
    request: &CollectionRequest,
    params: &[(String, String)],
) -> Result<Value, ApiError> {
    let storage_id = served.storage_id.as_str();
    match request {
        CollectionRequest::Index => {
            let collections = served.collections.iter().map(
                |collection| json!({"name": collection, "filters": served.filters(collection).collect::<Vec<_>>()}),
            );
            Ok(json!({ "collections": collections.collect::<Vec<_>>() }))
        }
        CollectionRequest::Entry(collection, key) => match conn.plugin_value(storage_id, collection, key)? {
            Some(value) => Ok(json!({"key": key, "value": raw(value)})),
            None => Err(ApiError::not_found(format!("no entry {key:?}"))),
        },
        CollectionRequest::List(collection) => {
            let query = ListQuery::parse(params, served.filters(collection).collect())?;
            let bound = Bound { entries: query.limit, bytes: PAGE_BYTES };
            let (after, matching) = (query.cursor.as_deref(), query.matching());
            let page = match &query.filter {
                Filter::Prefix(prefix) => conn.plugin_scan(storage_id, collection, prefix, after, bound)?,
                Filter::Field(field, value) => conn.plugin_find(storage_id, collection, field, value, after, bound)?,
            };
            let next_cursor = page.entries.last().filter(|_| page.cut).map(|(key, _)| key.clone());
            let data: Vec<Value> =
                page.entries.into_iter().map(|(key, value)| json!({"key": key, "value": raw(value)})).collect();
            let mut body = json!({"data": data, "next_cursor": next_cursor});
            if query.count {
                let count = conn.plugin_count(storage_id, collection, matching, COUNT_CAP + 1)?;
                body["count"] = count.min(COUNT_CAP).into();
                body["count_complete"] = (count <= COUNT_CAP).into();
            }
            Ok(body)
        }
    }
}

/// `/plugins/{name}/collections`.
pub async fn index(
    State(state): State<AppState>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    serve(state, name, CollectionRequest::Index, request).await
}

/// `/plugins/{name}/collections/{collection}`.
pub async fn list(
    State(state): State<AppState>,
    Path((name, collection)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    serve(state, name, CollectionRequest::List(collection), request).await
}

/// `/plugins/{name}/collections/{collection}/{key}`.
pub async fn entry(
    State(state): State<AppState>,
    Path((name, collection, key)): Path<(String, String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    serve(state, name, CollectionRequest::Entry(collection, key), request).await
}

/// Answer from the served collections, or hand the request to the plugin's own routes when
/// they do not have what it asks for.
async fn serve(
    state: AppState,
    name: String,
    wanted: CollectionRequest,
    request: Request,
) -> Result<Response, ApiError> {
    let Some(served) = served_for(&state, &name, &wanted, request.method())? else {
        return plugin_routes::call(state, name, wanted.path(), request).await;
    };
    let params = query_params(request.uri())?;
    let body = state.store.read(move |conn| Ok(answer(conn, &served, &wanted, &params))).await??;
    Ok(Json(body).into_response())
}

/// The served collections of plugin `name` when they have what `wanted` asks for; `None` when
/// they do not (the path is the plugin's own route); 503 while the plugin catches up, 405 for a
/// method other than `GET` or `HEAD`.
pub(super) fn served_for(
    state: &AppState,
    name: &str,
    wanted: &CollectionRequest,
    method: &Method,
) -> Result<Option<Arc<ServedCollections>>, ApiError> {
    match state.routes.collections(name) {
        Ok(served) if wanted.is_served_by(&served) => match method == Method::GET || method == Method::HEAD {
            true => Ok(Some(served)),
            false => Err(super::error::wrong_method_error()),
        },
        Err(RouteError::CatchingUp) => Err(plugin_routes::catching_up()),
        _ => Ok(None),
    }
}

/// The query string's parameters, in order.
pub fn query_params(uri: &Uri) -> Result<Vec<(String, String)>, ApiError> {
    let Query(params) = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    Ok(params)
}

/// A stored value as it is (it is JSON: the host checked it when the plugin wrote it).
pub fn raw(value: String) -> Box<RawValue> {
    RawValue::from_string(value).unwrap_or_else(|_| RawValue::from_string("null".into()).expect("JSON"))
}

/// A field's value in a query: JSON when it parses as a JSON scalar, else the text.
pub fn field_value(text: &str) -> Value {
    let parsed = serde_json::from_str::<Value>(text).ok().filter(|v| !v.is_object() && !v.is_array());
    parsed.unwrap_or_else(|| Value::String(text.to_owned()))
}

/// What a list asks for.
#[derive(Debug, PartialEq)]
struct ListQuery {
    filter: Filter,
    cursor: Option<String>,
    limit: u32,
    count: bool,
}

#[derive(Debug, PartialEq)]
enum Filter {
    Prefix(String),
    /// An indexed field and the value it must have.
    Field(String, Value),
}

impl ListQuery {
    fn matching(&self) -> Matching<'_> {
        match &self.filter {
            Filter::Prefix(prefix) => Matching::Prefix(prefix),
            Filter::Field(field, value) => Matching::Field(field, value),
        }
    }

    /// Read `prefix`, `cursor`, `limit`, `count` and at most one filter on an indexed field
    /// (`field=value`: JSON when it parses as a JSON scalar, else the text).
    fn parse(params: &[(String, String)], filters: Vec<&str>) -> Result<ListQuery, ApiError> {
        let mut query =
            ListQuery { filter: Filter::Prefix(String::new()), cursor: None, limit: DEFAULT_PAGE, count: false };
        let (mut prefix, mut field) = (None, None);
        for (name, value) in params {
            match name.as_str() {
                "prefix" => prefix = Some(value.clone()),
                "cursor" => query.cursor = Some(value.clone()),
                "limit" => {
                    query.limit = value.parse().ok().filter(|l| (1..=MAX_PAGE).contains(l)).ok_or_else(|| {
                        ApiError::bad_request("invalid_limit", format!("limit must be 1 to {MAX_PAGE}"))
                    })?;
                }
                "count" => {
                    query.count =
                        value.parse().map_err(|_| ApiError::bad_request("invalid_count", "count is true or false"))?;
                }
                name if filters.contains(&name) => {
                    if field.is_some() {
                        return Err(ApiError::bad_request("invalid_filter", "filter by one indexed field at a time"));
                    }
                    field = Some(Filter::Field(name.to_owned(), field_value(value)));
                }
                other => {
                    let known = ["prefix", "cursor", "limit", "count"].iter().copied().chain(filters.iter().copied());
                    return Err(ApiError::bad_request(
                        "invalid_parameter",
                        format!("unknown parameter {other:?}: known are {}", known.collect::<Vec<_>>().join(", ")),
                    ));
                }
            }
        }
        query.filter = match (prefix, field) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request("invalid_filter", "give a prefix or an indexed field, not both"));
            }
            (Some(prefix), None) => Filter::Prefix(prefix),
            (None, Some(field)) => field,
            (None, None) => Filter::Prefix(String::new()),
        };
        if let (Filter::Prefix(prefix), Some(cursor)) = (&query.filter, &query.cursor)
            && !cursor.starts_with(prefix.as_str())
        {
            return Err(ApiError::bad_request("invalid_cursor", "not a cursor from next_cursor of this prefix"));
        }
        Ok(query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<ListQuery, String> {
        let params: Vec<(String, String)> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap())
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        ListQuery::parse(&params, vec!["era", "owner"])
            .map_err(|e| e.to_json()["code"].as_str().unwrap_or_default().to_owned())
    }

    #[test]
    fn paths_name_the_index_a_list_or_an_entry() {
        let parsed = |path: &str| CollectionRequest::parse(path).map(|r| format!("{r:?}"));
        assert_eq!(parsed("/collections").as_deref(), Some("Index"));
        assert_eq!(parsed("/collections/").as_deref(), Some("Index"));
        assert_eq!(parsed("/collections/blocks/").as_deref(), Some("List(\"blocks\")"));
        assert_eq!(parsed("/collections/blocks/a/b").as_deref(), Some("Entry(\"blocks\", \"a/b\")"));
        assert_eq!(parsed("/collectionsx"), None);
        assert_eq!(parsed("/counts"), None);
    }

    #[test]
    fn lists_take_a_prefix_or_one_indexed_field() {
        assert_eq!(
            parse("").unwrap(),
            ListQuery { filter: Filter::Prefix("".into()), cursor: None, limit: 100, count: false }
        );
        let by_era = parse("era=7&limit=5&count=true").unwrap();
        assert_eq!((by_era.filter, by_era.limit, by_era.count), (Filter::Field("era".into(), 7.into()), 5, true));
        assert_eq!(
            parse("owner=account-hash-ab").unwrap().filter,
            Filter::Field("owner".into(), "account-hash-ab".into())
        );
        assert_eq!(parse("owner=\"7\"").unwrap().filter, Filter::Field("owner".into(), "7".into()));
        assert_eq!(parse("prefix=ab&cursor=abc").unwrap().cursor.as_deref(), Some("abc"));
        for (query, code) in [
            ("limit=0", "invalid_limit"),
            ("limit=1001", "invalid_limit"),
            ("count=yes", "invalid_count"),
            ("era=1&owner=x", "invalid_filter"),
            ("era=1&prefix=x", "invalid_filter"),
            ("height=1", "invalid_parameter"),
            ("prefix=ab&cursor=zz", "invalid_cursor"),
        ] {
            assert_eq!(parse(query).unwrap_err(), code, "{query}");
        }
    }
}
