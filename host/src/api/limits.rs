//! The public API's request limits, from `[http]`: requests answered at once, requests per
//! second, time to respond, body size, and which browser origins may call it (CORS). Refusals
//! are JSON `{code, message}` like every other error.

use super::error::ApiError;
use crate::config::HttpConfig;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

/// What every request is checked against.
struct Limits {
    in_flight: Semaphore,
    max_in_flight: usize,
    per_second: Option<DefaultDirectRateLimiter>,
    timeout: Duration,
}

/// `router` with the limits of `config` around every route.
pub fn apply(router: Router, config: &HttpConfig) -> Router {
    let limits = Arc::new(Limits {
        in_flight: Semaphore::new(config.max_concurrent_requests),
        max_in_flight: config.max_concurrent_requests,
        per_second: NonZeroU32::new(config.requests_per_second)
            .map(|rate| RateLimiter::direct(Quota::per_second(rate))),
        timeout: Duration::from_millis(config.request_timeout_ms),
    });
    let router = router
        .layer(DefaultBodyLimit::max(config.max_body_kib * 1024))
        .layer(middleware::from_fn(move |request, next| admit(limits.clone(), request, next)));
    match cors(&config.cors_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// Refuse beyond the rate (429) or the concurrency (503), and give up after the timeout (503).
async fn admit(limits: Arc<Limits>, request: Request, next: Next) -> Result<Response, ApiError> {
    if limits.per_second.as_ref().is_some_and(|limiter| limiter.check().is_err()) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests per second; retry shortly",
        ));
    }
    let Ok(_permit) = limits.in_flight.try_acquire() else {
        let message = format!("{} requests are being answered, the most allowed", limits.max_in_flight);
        return Err(ApiError::unavailable("overloaded", message));
    };
    match tokio::time::timeout(limits.timeout, next.run(request)).await {
        Ok(response) => Ok(response),
        Err(_) => {
            Err(ApiError::unavailable("timeout", format!("no response within {} ms", limits.timeout.as_millis())))
        }
    }
}

/// CORS for `origins` (`*`: any); none when the list is empty.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = match origins.iter().any(|o| o == "*") {
        true => AllowOrigin::any(),
        // Checked by the config's validation.
        false => AllowOrigin::list(origins.iter().filter_map(|o| o.parse::<HeaderValue>().ok())),
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers(Any),
    )
}
