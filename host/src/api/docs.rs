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
    Json(document)
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
