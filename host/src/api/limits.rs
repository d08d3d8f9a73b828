//! The public API's limits, from `[http]`: requests answered at once, requests per second from
//! one address (one /64 for IPv6; behind a trusted proxy, the address it forwarded for), time to
//! respond, body size, which browser origins may call it (CORS), and how long a connection may
//! accept no bytes. Refusals are JSON `{code, message}` like every other error.

use super::error::ApiError;
use crate::config::HttpConfig;
use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

/// Requests between two sweeps of the addresses the rate limit remembers.
const FORGET_EVERY: u64 = 10_000;

/// What every request is checked against.
struct Limits {
    in_flight: Semaphore,
    max_in_flight: usize,
    per_second: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Proxies whose `X-Forwarded-For` names the client.
    trusted_proxies: Vec<IpNet>,
    /// Requests checked against `per_second`.
    checked: AtomicU64,
    timeout: Duration,
}

/// `router` with the limits of `config` around every route.
pub fn apply(router: Router, config: &HttpConfig) -> Router {
    let limits = Arc::new(Limits {
        in_flight: Semaphore::new(config.max_concurrent_requests),
        max_in_flight: config.max_concurrent_requests,
        per_second: NonZeroU32::new(config.requests_per_second).map(|rate| RateLimiter::keyed(Quota::per_second(rate))),
        trusted_proxies: config.trusted_proxies.iter().map(|proxy| proxy.0).collect(),
        checked: AtomicU64::new(0),
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

/// Refuse beyond the address's rate (429) or the concurrency (503), and give up after the
/// timeout (504).
async fn admit(limits: Arc<Limits>, request: Request, next: Next) -> Result<Response, ApiError> {
    if let Some(limiter) = &limits.per_second {
        // Served through `into_make_service_with_connect_info`, every request has its address.
        let client = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| rate_key(client_address(info.0.ip(), request.headers(), &limits.trusted_proxies)));
        // Forget addresses whose allowance is whole again, now and then.
        if limits.checked.fetch_add(1, Ordering::Relaxed) % FORGET_EVERY == 0 {
            limiter.retain_recent();
        }
        if limiter.check_key(&client.unwrap_or(IpAddr::from([0, 0, 0, 0]))).is_err() {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests per second from this address; retry shortly",
            ));
        }
    }
    let Ok(_permit) = limits.in_flight.try_acquire() else {
        let message = format!("{} requests are being answered, the most allowed", limits.max_in_flight);
        return Err(ApiError::unavailable("overloaded", message));
    };
    match tokio::time::timeout(limits.timeout, next.run(request)).await {
        Ok(response) => Ok(response),
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!("no response within {} ms", limits.timeout.as_millis()),
        )),
    }
}

/// The client a request from `peer` is from: `peer` itself, or, when `peer` is a trusted
/// proxy, the last address in `X-Forwarded-For` (read from the right, as each proxy appends the
/// one it heard from) that is not a trusted proxy; the first one if all are. Reading stops at an
/// entry that is not an address: what lies left of it is not vouched for.
fn client_address(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpNet]) -> IpAddr {
    let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|proxy| proxy.contains(ip));
    let entries = headers
        .get_all("x-forwarded-for")
        .iter()
        .rev()
        .flat_map(|value| value.as_bytes().rsplit(|&byte| byte == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|entry| !entry.is_empty());
    // An IPv4 proxy or client may show as an IPv4-mapped IPv6 address on a dual-stack listener.
    let mut client = peer.to_canonical();
    for entry in entries {
        if !trusted(&client) {
            break;
        }
        match std::str::from_utf8(entry).ok().and_then(forwarded_address) {
            Some(ip) => client = ip.to_canonical(),
            None => break,
        }
    }
    client
}

/// An `X-Forwarded-For` entry's address: `203.0.113.7`, `[2001:db8::7]`, or either with a port
/// (`203.0.113.7:4711`, `[2001:db8::7]:4711`).
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let bracketed = || entry.strip_prefix('[')?.strip_suffix(']')?.parse().ok();
    entry.parse().ok().or_else(|| entry.parse::<SocketAddr>().ok().map(|address| address.ip())).or_else(bracketed)
}

/// Whose allowance a request from `ip` spends: the address itself for IPv4 (also when mapped
/// into IPv6), its /64 network for IPv6, since one client usually holds a whole /64.
fn rate_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((v6.to_bits() & !u128::from(u64::MAX)).into()),
        v4 => v4,
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

/// What is set on every accepted connection: no delay before small writes (every SSE frame is
/// one), and closing it when the client accepts no bytes for `write_timeout`.
pub fn on_connect(write_timeout: Duration) -> impl FnMut(&mut TcpStream) + Send + 'static {
    move |stream| {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY on an accepted connection: {e}");
        }
        #[cfg(target_os = "linux")]
        if let Err(e) = socket2::SockRef::from(&*stream).set_tcp_user_timeout(Some(write_timeout)) {
            tracing::debug!("TCP_USER_TIMEOUT on an accepted connection: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use std::future::IntoFuture;

    #[test]
    fn an_ipv6_client_is_limited_by_its_64_and_an_ipv4_one_by_its_address() {
        let key = |ip: &str| rate_key(ip.parse().unwrap()).to_string();
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::9"));
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::");
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
    }

    #[test]
    fn behind_a_trusted_proxy_the_client_is_the_last_untrusted_forwarded_address() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "192.0.2.1/32".parse().unwrap()];
        let client = |peer: &str, forwarded: &[&str]| {
            let mut headers = HeaderMap::new();
            for value in forwarded {
                headers.append("x-forwarded-for", value.parse().unwrap());
            }
            client_address(peer.parse().unwrap(), &headers, &trusted).to_string()
        };
        assert_eq!(client("198.51.100.9", &["203.0.113.7"]), "198.51.100.9", "not from a trusted proxy");
        assert_eq!(client("10.1.2.3", &["203.0.113.7"]), "203.0.113.7");
        assert_eq!(client("10.1.2.3", &["198.51.100.66, 203.0.113.7, 10.9.9.9"]), "203.0.113.7", "the left is forged");
        assert_eq!(client("10.1.2.3", &["203.0.113.7", "192.0.2.1"]), "203.0.113.7", "over several headers");
        assert_eq!(client("10.1.2.3", &["10.0.0.5, 192.0.2.1"]), "10.0.0.5", "proxies all the way: the first");
        assert_eq!(client("10.1.2.3", &["203.0.113.7, unknown, 10.0.0.5"]), "10.0.0.5", "stops at a non-address");
        assert_eq!(client("10.1.2.3", &["[2001:db8::7]:4711"]), "2001:db8::7");
        assert_eq!(client("10.1.2.3", &["[2001:db8::7]"]), "2001:db8::7");
        assert_eq!(client("10.1.2.3", &["203.0.113.7:4711,, "]), "203.0.113.7", "empty entries are skipped");
        assert_eq!(client("::ffff:10.1.2.3", &["::ffff:203.0.113.7"]), "203.0.113.7", "IPv4-mapped addresses");
        assert_eq!(client("10.1.2.3", &[]), "10.1.2.3");
        let mut not_text = HeaderMap::new();
        not_text.append("x-forwarded-for", HeaderValue::from_bytes(b"203.0.113.7, \xff").unwrap());
        assert_eq!(client_address("10.1.2.3".parse().unwrap(), &not_text, &trusted).to_string(), "10.1.2.3");
    }

    /// Serve `routes` within `config`'s limits on 127.0.0.1, with each request's address.
    async fn serve(routes: Router, config: &HttpConfig) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let service = apply(routes, config).into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(axum::serve(listener, service).into_future());
        address
    }

    #[tokio::test]
    async fn the_rate_limit_counts_a_trusted_proxy_s_clients_apart_and_believes_no_one_else() {
        crate::install_tls_provider();
        let http = reqwest::Client::new();
        let status_for = |address: SocketAddr, forwarded_for: &'static str| {
            let request = http.get(format!("http://{address}/")).header("x-forwarded-for", forwarded_for);
            async move { request.send().await.unwrap().status().as_u16() }
        };
        let routes = || Router::new().route("/", get(|| async { "ok" }));
        let limited = |trusted_proxies| HttpConfig { requests_per_second: 1, trusted_proxies, ..HttpConfig::default() };

        let proxy = crate::config::TrustedProxy("127.0.0.1/32".parse().unwrap());
        let address = serve(routes(), &limited(vec![proxy])).await;
        assert_eq!(status_for(address, "203.0.113.7").await, 200);
        assert_eq!(status_for(address, "203.0.113.8").await, 200, "another client behind the same proxy");
        assert_eq!(status_for(address, "203.0.113.7").await, 429, "the first client again");

        let address = serve(routes(), &limited(Vec::new())).await;
        assert_eq!(status_for(address, "203.0.113.7").await, 200);
        assert_eq!(status_for(address, "203.0.113.8").await, 429, "an untrusted peer's header is not believed");
    }

    #[tokio::test]
    async fn a_response_later_than_the_request_timeout_is_a_504_in_json() {
        crate::install_tls_provider();
        let config = HttpConfig { request_timeout_ms: 100, ..HttpConfig::default() };
        let routes = Router::new()
            .route("/slow", get(|| tokio::time::sleep(Duration::from_secs(30))))
            .route("/fast", get(|| async { "fast" }));
        let address = serve(routes, &config).await;

        let started = std::time::Instant::now();
        let slow = reqwest::get(format!("http://{address}/slow")).await.unwrap();
        assert_eq!(slow.status(), 504);
        assert!(started.elapsed() < Duration::from_secs(10), "answered when the handler finished, not at the timeout");
        let body: serde_json::Value = slow.json().await.unwrap();
        assert_eq!(body["code"], "timeout", "{body}");
        assert_eq!(reqwest::get(format!("http://{address}/fast")).await.unwrap().status(), 200);
    }
}
