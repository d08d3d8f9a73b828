//! `/plugins/{name}/…`: requests handed to the plugin's `handle` export, answered as it says.

use super::AppState;
use super::error::ApiError;
use crate::plugins::{Request as PluginRequest, RouteError};
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// `/plugins/{name}`: the plugin's `/`.
pub async fn root(
    State(state): State<AppState>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    call(state, name, "/".into(), request).await
}

/// `/plugins/{name}/{*path}`.
pub async fn path(
    State(state): State<AppState>,
    Path((name, path)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    call(state, name, format!("/{path}"), request).await
}

/// Hand `request` to plugin `name`'s `handle` as a request for `path`.
pub(super) async fn call(state: AppState, name: String, path: String, request: Request) -> Result<Response, ApiError> {
    let (method, uri, headers) = (request.method().clone(), request.uri().clone(), request.headers().clone());
    let body = Bytes::from_request(request, &state).await.map_err(|rejection| {
        let code = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => "body_too_large", // over `http.max_body_kib`
            _ => "invalid_body",
        };
        ApiError::new(rejection.status(), code, rejection.body_text())
    })?;
    let request = PluginRequest {
        method: method.to_string(),
        path,
        query: uri.query().unwrap_or_default().to_owned(),
        // Credentials are the client's business with Sluice, not the plugin's.
        headers: headers
            .iter()
            .filter(|(key, _)| !matches!(key.as_str(), "authorization" | "cookie" | "proxy-authorization"))
            .filter_map(|(key, value)| Some((key.to_string(), value.to_str().ok()?.to_owned())))
            .collect(),
        body: body.to_vec(),
    };
    // Queued for the plugin's own workers; dropping the wait (the client went away, the
    // request timed out) takes the request out of the queue.
    let answer = match state.routes.submit(&name, request) {
        Ok(pending) => pending.wait().await,
        Err(refused) => Err(refused),
    };
    match answer {
        Ok(response) => Ok(render(response)),
        Err(RouteError::Failed(_)) => Ok(plugin_failed()),
        Err(RouteError::CatchingUp) => Err(catching_up()),
        Err(RouteError::Busy) => Err(ApiError::unavailable(
            "plugin_busy",
            "the plugin is answering as many requests as it may (route_workers, route_queue); retry shortly",
        )),
        Err(RouteError::NoSuchPlugin) => Err(ApiError::not_found("no plugin of that name serves HTTP")),
    }
}

/// 503: the plugin's indexer is replaying the stored log; its data is not complete yet.
pub(super) fn catching_up() -> ApiError {
    ApiError::unavailable(
        "catching_up",
        "the plugin is replaying the stored events; try again shortly (progress in the admin /plugins)",
    )
}

/// The plugin's answer (checked by the route worker: a final status, valid headers).
fn render(response: crate::plugins::Response) -> Response {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut built = Response::builder().status(status);
    // The connection is Sluice's: a plugin sets content headers, not framing or cookies.
    let framing = ["connection", "content-length", "transfer-encoding", "set-cookie", "upgrade"];
    for (key, value) in response.headers.iter().filter(|(key, _)| !framing.contains(&key.to_ascii_lowercase().as_str()))
    {
        built = built.header(key, value);
    }
    built.body(Body::from(response.body)).unwrap_or_else(|_| plugin_failed())
}

/// 502: the plugin failed (trapped, timed out, answered too much, an invalid status or header).
fn plugin_failed() -> Response {
    let body =
        serde_json::json!({"code": "plugin_failed", "message": "the plugin failed to answer; see the admin /plugins"});
    (StatusCode::BAD_GATEWAY, axum::Json(body)).into_response()
}
