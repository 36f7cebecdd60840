//! What stands in front of the console's pages and server functions:
//!
//! - **CSRF**: a state-changing request must come from this server's own
//!   origin (`Sec-Fetch-Site`, else `Origin`), as a url-encoded form. A
//!   page on another port of the same host is another origin and is
//!   refused, although `SameSite` would let its cookie through.
//! - **Redirects** after a no-JavaScript form post go only to paths of this
//!   server, never to whatever `Referer` named.
//! - **Form outcomes never travel in the URL.** Leptos reports a failed
//!   no-JavaScript form post as `?__err=` (base64 of the error); we take it
//!   out of the redirect and hand the outcome (refusal or success) to the
//!   next page in a short-lived `HttpOnly` cookie, signed with one random
//!   key per database (`server_keys`, shared by every instance), shown once.
//!   A page never reads error text from its URL, so nobody can put words
//!   of their choosing into the console with a link.
//! - **Statuses**: a refused server function answers 400/401/403/404/409/429
//!   (with `Retry-After`) instead of Leptos' blanket 500.
//! - **Caching**: console pages are `private, no-cache`, those showing a
//!   secret once (or the setup code) `no-store`, as are server functions'
//!   answers.

use crate::state::AppState;
use app::components::FormOutcome;
use app::AppError;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Largest body a console server function accepts.
pub const MAX_CONSOLE_BODY_BYTES: usize = 64 * 1024;
const SERVER_FN_PREFIX: &str = "/console/fn/";

/// Signs the outcome of a form post, which the browser carries back to
/// the page it was sent from in a short-lived cookie (never in the URL).
#[derive(Clone)]
pub struct FormOutcomeSigner {
    key: [u8; 32],
}

impl std::fmt::Debug for FormOutcomeSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FormOutcomeSigner(<key redacted>)")
    }
}

impl Default for FormOutcomeSigner {
    fn default() -> Self {
        Self::new()
    }
}

/// The cookie that carries a form's outcome to the next page, once.
pub const FORM_OUTCOME_COOKIE: &str = "keygate_form";

impl FormOutcomeSigner {
    pub fn new() -> Self {
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        FormOutcomeSigner { key }
    }

    /// The signer every instance on `store`'s database uses, so an outcome
    /// signed by one is shown by another; its key is stored sealed under
    /// the key-encryption key.
    pub async fn shared(
        store: &keygate::store::Store,
        kek: &keygate::jwt::KeyEncryptionKey,
    ) -> Result<Self, keygate::CoreError> {
        let key = keygate::usecase::keys::shared_secret(store, kek, "form_error_signing", crate::now()).await?;
        Ok(FormOutcomeSigner { key })
    }

    fn mac(&self, payload: &str, binding: &str, issued_at: i64) -> Hmac<Sha256> {
        // The key is 32 bytes, which HMAC always accepts.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        for part in [payload, binding, &issued_at.to_string()] {
            mac.update(part.as_bytes());
            mac.update(b"\n");
        }
        mac
    }

    /// The cookie value for `outcome`, for the browser whose session
    /// cookie is `binding` (or none), made at `issued_at`:
    /// `payload.issued_at.mac`, the payload base64 of JSON.
    pub fn seal(&self, outcome: &FormOutcome, binding: &str, issued_at: i64) -> Option<String> {
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut json = serde_json::to_vec(outcome).ok()?;
        if json.len() > MAX_OUTCOME_JSON_BYTES {
            // A browser drops a cookie past about 4 KB: say less, not nothing.
            let shorter = FormOutcome {
                path: outcome.path.clone(),
                error: Some(AppError::Refused(
                    "the change was refused; the reason is too long to show here (the API gives it in full)".into(),
                )),
            };
            json = serde_json::to_vec(&shorter).ok()?;
        }
        let payload = engine.encode(json);
        let mac = engine.encode(self.mac(&payload, binding, issued_at).finalize().into_bytes());
        Some(format!("{payload}.{issued_at}.{mac}"))
    }

    /// The outcome in a cookie value, if we made it for this browser at
    /// most [`FORM_OUTCOME_LIFETIME`] seconds ago.
    pub fn open(&self, value: &str, binding: &str, now: i64) -> Option<FormOutcome> {
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut parts = value.split('.');
        let (payload, at, mac) = (parts.next()?, parts.next()?, parts.next()?);
        let at = at.parse::<i64>().ok()?;
        if parts.next().is_some() || !(now - FORM_OUTCOME_LIFETIME..=now + 5).contains(&at) {
            return None;
        }
        self.mac(payload, binding, at).verify_slice(&engine.decode(mac).ok()?).ok()?;
        serde_json::from_slice(&engine.decode(payload).ok()?).ok()
    }
}

/// The largest outcome (as JSON) a cookie carries whole: base64 and the
/// signature keep the cookie under browsers' 4 KB.
const MAX_OUTCOME_JSON_BYTES: usize = 2_800;

/// How long a form's outcome may wait for the page that shows it.
pub const FORM_OUTCOME_LIFETIME: i64 = 120;

/// A cookie's value in a request, by name.
fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(name)?.strip_prefix('='))
}

fn outcome_cookie(value: &str, max_age: i64, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{FORM_OUTCOME_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .ok()
}

/// Errors that repeat what the request sent (a form that did not parse
/// names its fields) are replaced by a fixed text, so a crafted post cannot
/// make the console show words of someone's choosing.
fn without_echo(error: AppError) -> AppError {
    match error {
        AppError::Transport(_) => {
            AppError::Transport("the form could not be read; reload the page and try again".into())
        }
        other => other,
    }
}

/// `scheme://host[:port]` of a URL, as browsers write `Origin`.
pub fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let origin = parsed.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// Whether a browser-sent `Origin` is this server: the public URL's origin;
/// or, when no public URL was configured, the origin the browser itself
/// addressed (its `Host`, with the issuer's scheme), which a page of another
/// origin cannot produce. With a public URL set, only that origin counts, so
/// a DNS-rebinding page (whose `Host` is its own name) is refused too.
fn is_own_origin(origin: &str, issuer: &str, host: Option<&str>, trust_host: bool) -> bool {
    if origin_of(issuer).is_some_and(|o| o.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let (Some(host), true) = (host, trust_host) else { return false };
    let scheme = if issuer.starts_with("https://") { "https" } else { "http" };
    format!("{scheme}://{host}").eq_ignore_ascii_case(origin)
}

/// Why a state-changing console request is refused, if it is.
/// `trust_host`: accept the origin the `Host` header names (no public URL set).
pub fn csrf_refusal(headers: &HeaderMap, issuer: &str, trust_host: bool) -> Option<&'static str> {
    let get = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(site) = get(header::HeaderName::from_static("sec-fetch-site")) {
        if !matches!(site, "same-origin" | "none") {
            return Some("the request came from another site or origin");
        }
    }
    if let Some(origin) = get(header::ORIGIN) {
        if !is_own_origin(origin, issuer, get(header::HOST), trust_host) {
            return Some("the request came from another origin");
        }
    }
    let content_type = get(header::CONTENT_TYPE).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Some("console forms are sent as application/x-www-form-urlencoded");
    }
    None
}

/// The status a server function's refusal deserves.
pub fn status_of(error: &AppError) -> StatusCode {
    match error {
        AppError::Unauthenticated => StatusCode::UNAUTHORIZED,
        AppError::Forbidden(_) | AppError::PasswordChangeRequired => StatusCode::FORBIDDEN,
        AppError::Invalid { .. } | AppError::Transport(_) => StatusCode::BAD_REQUEST,
        AppError::Refused(_) => StatusCode::CONFLICT,
        AppError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
        AppError::NotFound(_) => StatusCode::NOT_FOUND,
        AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        AppError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn refuse(status: StatusCode, error: AppError) -> Response {
    let body = serde_json::to_string(&error).unwrap_or_else(|_| "\"Internal\"".into());
    let mut r = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    no_store(&mut r);
    r
}

fn no_store(r: &mut Response) {
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// A path of this server (never `//host` or `/\host`, which browsers read
/// as another host), from a Location a server function produced.
fn local_path(location: &str) -> String {
    let (path, query) = match url::Url::parse(location) {
        Ok(u) => (u.path().to_owned(), u.query().map(str::to_owned)),
        Err(_) => {
            let (p, q) = location.split_once('?').map_or((location, None), |(p, q)| (p, Some(q.to_owned())));
            (p.to_owned(), q)
        }
    };
    let safe = path.starts_with('/') && !path.starts_with("//") && !path.contains('\\');
    let path = if safe { path } else { "/".to_owned() };
    match query.filter(|q| !q.is_empty()) {
        Some(q) => format!("{path}?{q}"),
        None => path,
    }
}

/// A redirect after a form post: a local path, without Leptos' error
/// parameters (the outcome travels in a cookie instead).
fn local_location(location: &str) -> String {
    let local = local_path(location);
    let (path, query) = local.split_once('?').map_or((local.as_str(), ""), |(p, q)| (p, q));
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(query.as_bytes()).filter(|(k, _)| !is_error_param(k)) {
        out.append_pair(&k, &v);
    }
    let query = out.finish();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

fn is_error_param(key: &str) -> bool {
    matches!(key, "__err" | "__path" | "__sig")
}

/// For a page request whose URL carries Leptos' error parameters (which
/// Leptos would show as the outcome of a form): the same path without
/// them. We never put them there, so they are someone's link.
fn without_error_params(path: &str, query: Option<&str>) -> Option<String> {
    let query = query?;
    if !form_urlencoded::parse(query.as_bytes()).any(|(k, _)| is_error_param(&k)) {
        return None;
    }
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(query.as_bytes()).filter(|(k, _)| !is_error_param(k)) {
        out.append_pair(&k, &v);
    }
    let rest = out.finish();
    let path = local_path(path);
    Some(if rest.is_empty() { path } else { format!("{path}?{rest}") })
}

/// The middleware around every console route (pages and server functions).
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if path.starts_with("/pkg/") {
        return next.run(req).await;
    }
    if !path.starts_with(SERVER_FN_PREFIX) {
        // A form's outcome is shown by the next page, once: the cookie is
        // cleared whatever it held.
        if let Some(to) = without_error_params(&path, req.uri().query()) {
            let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
            no_store(&mut r);
            return r;
        }
        let mut req = req;
        let outcome_sent = cookie_value(req.headers(), FORM_OUTCOME_COOKIE).map(str::to_owned);
        let binding = session_binding(req.headers());
        let outcome = outcome_sent.as_deref().and_then(|v| state.form_outcomes.open(v, &binding, crate::now()));
        let shows_outcome = outcome.is_some();
        if let Some(outcome) = outcome {
            req.extensions_mut().insert(outcome);
        }
        let mut r = next.run(req).await;
        // Taken by a page that was shown (not by a redirect to sign in).
        if outcome_sent.is_some() && r.status().is_success() {
            if let Some(clear) = outcome_cookie("", 0, state.is_https()) {
                r.headers_mut().append(header::SET_COOKIE, clear);
            }
            // Back and forward must not show the outcome again.
            if shows_outcome {
                no_store(&mut r);
            }
        }
        // Signed-in pages are revalidated every time and never kept by a
        // shared cache; a page showing a secret (or the setup code) said
        // `no-store` itself.
        if !r.headers().contains_key(header::CACHE_CONTROL) {
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
        }
        return r;
    }

    if req.method() != Method::POST {
        return refuse(StatusCode::METHOD_NOT_ALLOWED, AppError::Refused("console functions take POST".into()));
    }
    if let Some(why) = csrf_refusal(req.headers(), &state.issuer, !state.public_url_configured) {
        tracing::warn!(path = ?path, reason = why, "console request refused (CSRF check)");
        return refuse(StatusCode::FORBIDDEN, AppError::Forbidden(format!("refused: {why}")));
    }
    let binding = session_binding(req.headers());
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_CONSOLE_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(e) => {
            let status = crate::idle_io::body_read_failure(&e);
            let message = if status == StatusCode::REQUEST_TIMEOUT {
                "the form did not arrive in time".to_owned()
            } else {
                format!("the form is larger than {} KiB", MAX_CONSOLE_BODY_BYTES / 1024)
            };
            return refuse(status, AppError::Invalid { field: String::new(), message });
        }
    };
    let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    finish_server_fn_response(response, &state.form_outcomes, &path, &binding, state.is_https()).await
}

/// How server_fn marks a refusal (its body is then the error), whatever
/// status a form redirect gave the response afterwards.
const SERVER_FN_ERROR_HEADER: &str = "serverfnerror";

async fn finish_server_fn_response(
    response: Response,
    signer: &FormOutcomeSigner,
    fn_path: &str,
    request_binding: &str,
    secure: bool,
) -> Response {
    let (mut parts, body) = response.into_parts();
    let marked_refusal = parts.headers.contains_key(SERVER_FN_ERROR_HEADER);
    let (body, error) = if marked_refusal {
        // Refusals are small JSON values of `AppError`.
        match axum::body::to_bytes(body, 64 * 1024).await {
            Ok(bytes) => {
                let error = serde_json::from_slice::<AppError>(&bytes).ok().map(without_echo);
                (Body::from(bytes), error.or(Some(AppError::Internal)))
            }
            Err(_) => (Body::empty(), Some(AppError::Internal)),
        }
    } else {
        (body, None)
    };
    // A form posted without JavaScript is answered with a redirect (302,
    // success or refusal); a script's call keeps its own status, and a
    // `leptos_axum::redirect` it asked for stays a header for the script.
    let form_redirect = parts.status.is_redirection().then(|| parts.headers.get(header::LOCATION)).flatten();
    let mut response = if let Some(location) = form_redirect.and_then(|v| v.to_str().ok()) {
        // A form posted without JavaScript: back to a page of this server,
        // with the outcome in a cookie for that page to show. The outcome
        // is the function's own (never error text from the URL, which a
        // crafted `next` could carry).
        let to = local_location(location);
        parts.headers.insert(header::LOCATION, HeaderValue::from_str(&to).unwrap_or(HeaderValue::from_static("/")));
        // A session begun or renewed by this post binds the outcome to
        // the cookie the browser will send next.
        let binding = set_session_cookie(&parts.headers).unwrap_or_else(|| request_binding.to_owned());
        let outcome = FormOutcome { path: fn_path.to_owned(), error: if marked_refusal { error } else { None } };
        if let Some(cookie) = signer
            .seal(&outcome, &binding, crate::now())
            .and_then(|v| outcome_cookie(&v, FORM_OUTCOME_LIFETIME, secure))
        {
            parts.headers.append(header::SET_COOKIE, cookie);
        }
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.remove(SERVER_FN_ERROR_HEADER);
        Response::from_parts(parts, Body::empty())
    } else if let Some(error) = error {
        // Called by script: each refusal gets its status, and goes nowhere.
        parts.status = status_of(&error);
        parts.headers.remove(header::LOCATION);
        if let AppError::Throttled { retry_after, .. } = &error {
            parts.headers.insert(header::RETRY_AFTER, HeaderValue::from((*retry_after).max(1)));
        }
        parts.headers.remove(header::CONTENT_LENGTH);
        let body = serde_json::to_vec(&error).unwrap_or_default();
        Response::from_parts(parts, Body::from(body))
    } else {
        Response::from_parts(parts, body)
    };
    no_store(&mut response);
    response
}

/// The console session cookie's value in a request: what binds a form's
/// outcome to the browser that sent the form.
fn session_binding(headers: &HeaderMap) -> String {
    cookie_value(headers, SESSION_COOKIE).unwrap_or("").to_owned()
}

/// The session cookie a response sets, if it sets one (sign-in, or a
/// session renewed after a password change).
fn set_session_cookie(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        let value = v.strip_prefix(SESSION_COOKIE)?.strip_prefix('=')?.split(';').next()?;
        Some(value.to_owned())
    })
}

const SESSION_COOKIE: &str = "keygate_session";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_stay_on_this_server_and_lose_error_parameters() {
        assert_eq!(local_location("http://evil.example/x?a=1"), "/x?a=1");
        assert_eq!(local_location("http://evil.example//evil.example/x"), "/");
        assert_eq!(local_location("/applications/3"), "/applications/3");
        assert_eq!(local_location("http://h/a?__path=%2Fp&__sig=zzz"), "/a");
        assert_eq!(
            local_location("http://h/login?next=%2Fx&__path=%2Fconsole%2Ffn%2Fsign_in&__err=abc"),
            "/login?next=%2Fx"
        );
    }

    #[test]
    fn errors_that_echo_the_request_are_replaced() {
        let echo = AppError::Transport("Multiple values for one key: \"Call 0800\"".into());
        assert!(!without_echo(echo).to_string().contains("0800"));
    }

    #[test]
    fn outcomes_open_only_when_ours_and_recent() {
        let s = FormOutcomeSigner::new();
        let outcome = FormOutcome { path: "/console/fn/x".into(), error: Some(AppError::Refused("no".into())) };
        let sealed = s.seal(&outcome, "session-a", 100).unwrap();
        assert_eq!(s.open(&sealed, "session-a", 150), Some(outcome.clone()));
        assert_eq!(s.open(&sealed, "session-b", 150), None, "another browser");
        assert_eq!(s.open(&sealed, "", 150), None, "no session");
        assert_eq!(s.open(&sealed, "session-a", 100 + FORM_OUTCOME_LIFETIME + 1), None, "too late");
        let (payload, rest) = sealed.split_once('.').unwrap();
        let forged = FormOutcome { path: "/console/fn/x".into(), error: Some(AppError::Refused("Call 0800".into())) };
        let forged_payload =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_ne!(payload, forged_payload);
        assert_eq!(s.open(&format!("{forged_payload}.{rest}"), "session-a", 150), None, "altered");
        assert_eq!(FormOutcomeSigner::new().open(&sealed, "session-a", 150), None, "another key");
        assert_eq!(s.open("garbage", "session-a", 150), None);
        // Too long for a cookie: a shorter refusal, never a success.
        let long = FormOutcome { path: "/console/fn/x".into(), error: Some(AppError::Refused("x".repeat(5_000))) };
        let sealed = s.seal(&long, "session-a", 100).unwrap();
        assert!(sealed.len() < 4_000, "{}", sealed.len());
        let opened = s.open(&sealed, "session-a", 100).unwrap();
        assert!(opened.error.unwrap().to_string().contains("too long to show here"));
        assert_eq!(s.open(&format!("{sealed}.x"), "session-a", 150), None);
    }

    #[test]
    fn error_parameters_in_a_page_url_are_dropped() {
        assert_eq!(without_error_params("/login", Some("__path=%2Fx&__err=abc")), Some("/login".into()));
        assert_eq!(without_error_params("/login", Some("next=1&__err=abd&__sig=1")), Some("/login?next=1".into()));
        assert_eq!(without_error_params("/login", Some("page=2")), None);
        assert_eq!(without_error_params("/login", None), None);
        assert_eq!(without_error_params("//evil.example", Some("__err=x")), Some("/".into()));
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "keygate_formx=1; keygate_form=abc; other=2".parse().unwrap());
        assert_eq!(cookie_value(&h, FORM_OUTCOME_COOKIE), Some("abc"));
        assert_eq!(cookie_value(&h, "missing"), None);
    }

    #[test]
    fn csrf_checks_origin_site_and_content_type() {
        let issuer = "http://127.0.0.1:3000";
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, "application/x-www-form-urlencoded".parse().unwrap());
        assert_eq!(csrf_refusal(&h, issuer, true), None, "no browser headers: not a browser");
        h.insert(header::ORIGIN, "http://127.0.0.1:3000".parse().unwrap());
        assert_eq!(csrf_refusal(&h, issuer, true), None);
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(csrf_refusal(&h, issuer, true).is_some());
        h.insert(header::HOST, "keygate.internal:3000".parse().unwrap());
        h.insert(header::ORIGIN, "http://keygate.internal:3000".parse().unwrap());
        assert_eq!(csrf_refusal(&h, issuer, true), None, "the origin the browser addressed");
        assert!(csrf_refusal(&h, issuer, false).is_some(), "not once a public URL is set");
        h.insert(header::ORIGIN, "https://keygate.internal:3000".parse().unwrap());
        assert!(csrf_refusal(&h, issuer, true).is_some(), "nor with another scheme");
        h.insert(header::ORIGIN, "http://keygate.internal:3000".parse().unwrap());
        h.insert("sec-fetch-site", "same-site".parse().unwrap());
        assert!(csrf_refusal(&h, issuer, true).is_some());
        h.insert("sec-fetch-site", "same-origin".parse().unwrap());
        h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(csrf_refusal(&h, issuer, true).is_some());
        h.insert(header::ORIGIN, "null".parse().unwrap());
        h.insert(header::CONTENT_TYPE, "application/x-www-form-urlencoded".parse().unwrap());
        assert!(csrf_refusal(&h, issuer, true).is_some());
    }
}
