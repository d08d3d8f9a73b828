//! `GET /api-doc.json`: the OpenAPI document of the public API (utoipa), with a path for each
//! plugin that serves HTTP right now; `GET /swagger-ui/`: Swagger UI on it, from files built
//! into the binary (nothing is fetched from the network).

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::{blocks, contract_events, deploys, events, gaps, health, lookups, sidecar, transactions, websocket};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use std::sync::{Arc, LazyLock};
use utoipa::OpenApi;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::{ObjectBuilder, Required, ResponseBuilder, Type};

/// Where the document is served.
const DOCUMENT: &str = "/api-doc.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sluice",
        description = "Casper events: REST, SSE and WebSocket. The admin listener (localhost by default) serves `/metrics`, `/plugins`, `/health` and `/ready`."
    ),
    paths(
        events::serve,
        events::channel,
        sidecar::serve,
        websocket::events,
        blocks::latest,
        blocks::by_id,
        blocks::transactions,
        blocks::page,
        deploys::by_hash,
        deploys::of_account,
        transactions::by_hash,
        transactions::by_type_and_hash,
        transactions::one_state,
        lookups::signatures,
        lookups::faults,
        lookups::step,
        contract_events::list,
        gaps::list,
        health::health,
        health::ready,
        health::status,
    ),
    components(schemas(ErrorBody))
)]
struct PublicApi;

/// The document: the built-in routes, then `/plugins/{name}/{path}` for each plugin serving HTTP.
pub async fn document(State(state): State<AppState>) -> Json<utoipa::openapi::OpenApi> {
    let mut document = PublicApi::openapi();
    for name in state.routes.names() {
        let path = ParameterBuilder::new()
            .name("path")
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .description(Some("The plugin's own route; the query string and body are handed on"));
        let operation = OperationBuilder::new()
            .tag("plugins")
            .summary(Some(format!("Routes of plugin `{name}`")))
            .parameter(path)
            .response("200", ResponseBuilder::new().description("As the plugin answers"))
            .response("404", ResponseBuilder::new().description("The plugin has no such route"))
            .response("503", ResponseBuilder::new().description("Its indexer is catching up"))
            .build();
        let mut item = PathItem::new(HttpMethod::Get, operation.clone());
        item.post = Some(operation);
        document.paths.paths.insert(format!("/plugins/{name}/{{path}}"), item);
    }
    for (name, served) in state.routes.all_collections() {
        for collection in &served.collections {
            let (list, entry) = collection_paths(&name, collection, served.filters(collection).collect());
            document.paths.paths.insert(format!("/plugins/{name}/collections/{collection}"), list);
            document.paths.paths.insert(format!("/plugins/{name}/collections/{collection}/{{key}}"), entry);
        }
    }
    Json(document)
}

/// The automatic read API's two paths for one served collection.
fn collection_paths(plugin: &str, collection: &str, filters: Vec<&str>) -> (PathItem, PathItem) {
    let parameter = |name: &str, place: ParameterIn, kind: Type, description: String| {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(place.clone())
            .required(if place == ParameterIn::Path { Required::True } else { Required::False })
            .schema(Some(ObjectBuilder::new().schema_type(kind)))
            .description(Some(description))
    };
    let mut list = OperationBuilder::new()
        .tag("plugins")
        .summary(Some(format!("Entries of `{collection}` (plugin `{plugin}`), in key order")))
        .parameter(parameter("prefix", ParameterIn::Query, Type::String, "Only keys starting with this".into()))
        .parameter(parameter("cursor", ParameterIn::Query, Type::String, "`next_cursor` of the page before".into()))
        .parameter(parameter("limit", ParameterIn::Query, Type::Integer, "1 to 1000 (default 100)".into()))
        .parameter(parameter(
            "count",
            ParameterIn::Query,
            Type::Boolean,
            format!("Add `count` of all matching entries (up to {})", super::plugin_data::COUNT_CAP),
        ));
    for field in filters {
        let description = format!("Only entries whose `{field}` equals this (JSON, or text); instead of `prefix`");
        list = list.parameter(parameter(field, ParameterIn::Query, Type::String, description));
    }
    let list = list
        .response(
            "200",
            ResponseBuilder::new().description("`{\"data\": [{key, value}], \"next_cursor\", \"count\"?}`"),
        )
        .response("400", ResponseBuilder::new().description("An unknown parameter, an invalid limit or cursor"))
        .response("503", ResponseBuilder::new().description("Its indexer is catching up"));
    let entry = OperationBuilder::new()
        .tag("plugins")
        .summary(Some(format!("One entry of `{collection}` (plugin `{plugin}`)")))
        .parameter(parameter("key", ParameterIn::Path, Type::String, "The entry's key".into()))
        .response("200", ResponseBuilder::new().description("`{\"key\", \"value\"}`"))
        .response("404", ResponseBuilder::new().description("No entry under that key"));
    (PathItem::new(HttpMethod::Get, list.build()), PathItem::new(HttpMethod::Get, entry.build()))
}

/// `/swagger-ui` → `/swagger-ui/`.
pub async fn swagger_redirect() -> Redirect {
    Redirect::permanent("/swagger-ui/")
}

/// The Swagger UI's index page.
pub async fn swagger_index() -> Response {
    swagger_file("")
}

/// One of the Swagger UI's files.
pub async fn swagger_asset(Path(file): Path<String>) -> Response {
    swagger_file(&file)
}

fn swagger_file(file: &str) -> Response {
    static CONFIG: LazyLock<Arc<utoipa_swagger_ui::Config<'static>>> =
        LazyLock::new(|| Arc::new(utoipa_swagger_ui::Config::from(DOCUMENT)));
    match utoipa_swagger_ui::serve(file, CONFIG.clone()) {
        Ok(Some(found)) => ([(header::CONTENT_TYPE, found.content_type)], found.bytes.into_owned()).into_response(),
        Ok(None) => ApiError::not_found(format!("no Swagger UI file {file:?}")).into_response(),
        Err(error) => ApiError::from(anyhow::anyhow!("swagger ui: {error}")).into_response(),
    }
}
