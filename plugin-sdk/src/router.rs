//! Dispatching [`Plugin::handle`](crate::Plugin::handle)'s requests by method and path.
//!
//! ```ignore
//! Router::new(&request)
//!     .get("/counts/{kind}", |params| match COUNTS.get(&params["kind"]) {
//!         Some(count) => Ok(json!(count)),
//!         None => Err(Response::error(404, "not_found", "no event of that type yet")),
//!     })
//!     .get("/counts", |_| Ok(COUNTS.page(&request, "")))
//!     .finish()
//! ```

use crate::{Request, Response};

/// Routes one request: the first route whose method and pattern match answers it.
pub struct Router<'r> {
    request: &'r Request,
    answer: Option<Response>,
    /// Methods of the routes whose pattern matched but whose method did not.
    allowed: Vec<&'static str>,
}

/// The values of a pattern's `{name}` segments.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

/// What a route's handler returns: its answer, or the response to fail with.
pub type Handled<R> = Result<R, Response>;

/// What a route's handler may answer with.
pub trait IntoResponse {
    /// The response.
    fn into_response(self) -> Response;
}

impl<'r> Router<'r> {
    /// Route `request`.
    pub fn new(request: &'r Request) -> Router<'r> {
        Router { request, answer: None, allowed: Vec::new() }
    }

    /// A `GET` route: `pattern` is a path whose segments are literal or `{name}` (one segment,
    /// as sent). The handler answers with a response or a JSON value (200), or fails with a
    /// response (`?` on a `Result<_, Response>`).
    pub fn get<R: IntoResponse>(self, pattern: &str, handler: impl FnOnce(&Params) -> Handled<R>) -> Router<'r> {
        self.route("GET", pattern, handler)
    }

    /// A `POST` route.
    pub fn post<R: IntoResponse>(self, pattern: &str, handler: impl FnOnce(&Params) -> Handled<R>) -> Router<'r> {
        self.route("POST", pattern, handler)
    }

    /// A route for `method`.
    pub fn route<R: IntoResponse>(
        mut self,
        method: &'static str,
        pattern: &str,
        handler: impl FnOnce(&Params) -> Handled<R>,
    ) -> Router<'r> {
        if self.answer.is_some() {
            return self;
        }
        if let Some(params) = Params::matching(pattern, &self.request.path) {
            if self.request.method.eq_ignore_ascii_case(method) {
                self.answer = Some(handler(&params).into_response());
            } else {
                self.allowed.push(method);
            }
        }
        self
    }

    /// The answer: the matching route's, else 405 (with `allow`) when only the method differs,
    /// else 404.
    pub fn finish(self) -> Response {
        match (self.answer, self.allowed.is_empty()) {
            (Some(answer), _) => answer,
            (None, false) => {
                let mut response =
                    Response::error(405, "method_not_allowed", "this endpoint does not take that method");
                response.headers.push(("allow".into(), self.allowed.join(", ")));
                response
            }
            (None, true) => Response::error(404, "not_found", "no such route"),
        }
    }
}

impl Params {
    /// The parameters of `path` under `pattern`, when it matches (a trailing `/` aside).
    fn matching(pattern: &str, path: &str) -> Option<Params> {
        let (mut wanted, mut given) = (pattern.trim_matches('/').split('/'), path.trim_matches('/').split('/'));
        let mut params = Vec::new();
        loop {
            match (wanted.next(), given.next()) {
                (None, None) => return Some(Params(params)),
                // A parameter first: a segment that is literally `{name}` is a value too.
                (Some(name), Some(segment)) if name.starts_with('{') && name.ends_with('}') => {
                    if segment.is_empty() {
                        return None;
                    }
                    params.push((name[1..name.len() - 1].to_owned(), segment.to_owned()));
                }
                (Some(literal), Some(segment)) if literal == segment => {}
                _ => return None,
            }
        }
    }

    /// The value of `{name}`, if the pattern has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, value)| value.as_str())
    }
}

impl std::ops::Index<&str> for Params {
    type Output = str;

    /// The value of `{name}`; panics when the route's pattern has no such segment.
    fn index(&self, name: &str) -> &str {
        self.get(name).unwrap_or_else(|| panic!("the route's pattern has no {{{name}}}"))
    }
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

/// `200` with the value as JSON.
impl IntoResponse for serde_json::Value {
    fn into_response(self) -> Response {
        Response::json(200, &self)
    }
}

impl<T: IntoResponse> IntoResponse for Handled<T> {
    fn into_response(self) -> Response {
        self.map_or_else(|error| error, IntoResponse::into_response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, path: &str) -> Request {
        Request { method: method.into(), path: path.into(), query: String::new(), headers: vec![], body: vec![] }
    }

    fn answer(request: &Request) -> Response {
        Router::new(request)
            .get("/balances/{account}", |p| Ok(serde_json::json!({"account": p["account"]})))
            .get("/balances", |_| Ok(serde_json::json!("all")))
            .post("/balances/{account}", |_| Err::<Response, _>(Response::error(400, "bad", "no")))
            .finish()
    }

    #[test]
    fn routes_by_method_and_pattern() {
        let body = |r: Response| (r.status, String::from_utf8(r.body).unwrap());
        assert_eq!(body(answer(&request("GET", "/balances/ab/"))), (200, r#"{"account":"ab"}"#.into()));
        assert_eq!(body(answer(&request("GET", "/balances"))), (200, r#""all""#.into()));
        assert_eq!(answer(&request("POST", "/balances/ab")).status, 400);
        let wrong_method = answer(&request("DELETE", "/balances/ab"));
        assert_eq!(wrong_method.status, 405);
        assert!(wrong_method.headers.contains(&("allow".into(), "GET, POST".into())));
        let braces = answer(&request("GET", "/balances/{account}"));
        assert_eq!(body(braces), (200, r#"{"account":"{account}"}"#.into()), "a value, not the pattern");
        for path in ["/balances/ab/cd", "/balance", "/"] {
            assert_eq!(answer(&request("GET", path)).status, 404, "{path}");
        }
    }
}
