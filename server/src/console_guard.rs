//! What stands in front of the console's pages and server functions:
//!
//! - **CSRF**: a state-changing request must come from this server's own
//!   origin (`Sec-Fetch-Site`, else `Origin`), as a url-encoded form. A
//!   page on another port of the same host is another origin and is
//!   refused, although `SameSite` would let its cookie through.
//! - **Redirects** after a no-JavaScript form post go only to paths of this
//!   server, never to whatever `Referer` named.
//! - **Error messages in URLs** (`?__err=`, how Leptos reports a failed
//!   form post without JavaScript) are signed with one random key per
//!   database (`server_keys`, shared by every instance); a page opened with an unsigned or altered one is redirected to
//!   the same page without it, so nobody can put text of their choosing
//!   into the console.
//! - **Statuses**: a refused server function answers 400/401/403/404/409/429
//!   (with `Retry-After`) instead of Leptos' blanket 500.
//! - **Caching**: console pages are `private, no-cache`, those showing a
//!   secret once (or the setup code) `no-store`, as are server functions'
//!   answers.

use crate::state::AppState;
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

/// Signs the error a no-JavaScript form post carries back in the URL.
#[derive(Clone)]
pub struct FormErrorSigner {
    key: [u8; 32],
}

impl std::fmt::Debug for FormErrorSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FormErrorSigner(<key redacted>)")
    }
}

impl Default for FormErrorSigner {
    fn default() -> Self {
        Self::new()
    }
}

impl FormErrorSigner {
    pub fn new() -> Self {
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        FormErrorSigner { key }
    }

    /// The signer every instance on `store`'s database uses, so a form
    /// error signed by one is shown by another; its key is stored sealed
    /// under the key-encryption key.
    pub async fn shared(
        store: &keygate::store::Store,
        kek: &keygate::jwt::KeyEncryptionKey,
    ) -> Result<Self, keygate::CoreError> {
        let key = keygate::usecase::keys::shared_secret(store, kek, "form_error_signing", crate::now()).await?;
        Ok(FormErrorSigner { key })
    }

    fn mac(&self, path: &str, err: &str, binding: &str, issued_at: i64) -> Hmac<Sha256> {
        // The key is 32 bytes, which HMAC always accepts.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        for part in [path, err, binding, &issued_at.to_string()] {
            mac.update(part.as_bytes());
            mac.update(b"\n");
        }
        mac
    }

    /// `issued_at.mac`: the error, for this function path, for this browser
    /// (its session cookie, or none), made at `issued_at`.
    pub fn sign(&self, path: &str, err: &str, binding: &str, issued_at: i64) -> String {
        let mac = self.mac(path, err, binding, issued_at).finalize().into_bytes();
        format!("{issued_at}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac))
    }

    /// Whether `signature` is ours, for this browser, and at most
    /// [`SIGNED_ERROR_LIFETIME`] seconds old.
    pub fn verify(&self, path: &str, err: &str, binding: &str, signature: &str, now: i64) -> bool {
        let Some((at, mac)) = signature.split_once('.') else { return false };
        let Ok(at) = at.parse::<i64>() else { return false };
        if !(now - SIGNED_ERROR_LIFETIME..=now + 5).contains(&at) {
            return false;
        }
        let Ok(mac) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(mac) else { return false };
        self.mac(path, err, binding, at).verify_slice(&mac).is_ok()
    }
}

/// How long a signed error may be shown after the post that produced it.
pub const SIGNED_ERROR_LIFETIME: i64 = 600;

/// The console session cookie's value, which binds a signed error to the
/// browser that caused it: a link made by someone else shows nothing.
fn session_binding(headers: &HeaderMap) -> String {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix("keygate_session="))
        .next()
        .unwrap_or("")
        .to_owned()
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

/// The same for an error encoded as `__err` carries it (base64 of JSON).
fn encoded_without_echo(err: &str) -> Option<String> {
    let engine = base64::engine::general_purpose::URL_SAFE;
    let error: AppError = serde_json::from_slice(&engine.decode(err).ok()?).ok()?;
    Some(engine.encode(serde_json::to_vec(&without_echo(error)).ok()?))
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

/// Rewrites a redirect after a form post: a local path, and a signature for
/// the error it carries (or none of the error parameters at all).
fn rewrite_location(location: &str, signer: &FormErrorSigner, binding: &str, now: i64) -> String {
    let local = local_path(location);
    let (path, query) = local.split_once('?').map_or((local.as_str(), ""), |(p, q)| (p, q));
    let mut kept: Vec<(String, String)> = Vec::new();
    let (mut fn_path, mut err) = (None, None);
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "__path" => fn_path = Some(v.into_owned()),
            "__err" => err = Some(v.into_owned()),
            "__sig" => {}
            _ => kept.push((k.into_owned(), v.into_owned())),
        }
    }
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in &kept {
        out.append_pair(k, v);
    }
    if let (Some(fn_path), Some(err)) = (fn_path, err) {
        let Some(err) = encoded_without_echo(&err) else {
            return path.to_owned();
        };
        let sig = signer.sign(&fn_path, &err, binding, now);
        out.append_pair("__path", &fn_path).append_pair("__err", &err).append_pair("__sig", &sig);
    }
    let query = out.finish();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

/// For a page request: `None` when its error parameters (if any) are
/// signed by us, else the same path without them.
fn unsigned_error_redirect(
    path: &str,
    query: Option<&str>,
    signer: &FormErrorSigner,
    binding: &str,
    now: i64,
) -> Option<String> {
    let query = query?;
    let pairs: Vec<(String, String)> =
        form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let find = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let has_error_params = pairs.iter().any(|(k, _)| matches!(k.as_str(), "__err" | "__path" | "__sig"));
    if !has_error_params {
        return None;
    }
    if let (Some(p), Some(e), Some(s)) = (find("__path"), find("__err"), find("__sig")) {
        if signer.verify(p, e, binding, s, now) {
            return None;
        }
    }
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(k, _)| !matches!(k.as_str(), "__err" | "__path" | "__sig")) {
        out.append_pair(k, v);
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
        let binding = session_binding(req.headers());
        if let Some(to) = unsigned_error_redirect(&path, req.uri().query(), &state.form_errors, &binding, crate::now())
        {
            let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
            no_store(&mut r);
            return r;
        }
        let mut r = next.run(req).await;
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
    finish_server_fn_response(response, &state.form_errors, &binding).await
}

async fn finish_server_fn_response(response: Response, signer: &FormErrorSigner, binding: &str) -> Response {
    let (mut parts, body) = response.into_parts();
    if let Some(location) = parts.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) {
        let rewritten = rewrite_location(location, signer, binding, crate::now());
        match HeaderValue::from_str(&rewritten) {
            Ok(v) => {
                parts.headers.insert(header::LOCATION, v);
            }
            Err(_) => {
                parts.headers.insert(header::LOCATION, HeaderValue::from_static("/"));
            }
        }
    }
    let mut response = if parts.status.is_client_error() || parts.status.is_server_error() {
        // Refusals are small JSON values of `AppError`; give each its status.
        match axum::body::to_bytes(body, 64 * 1024).await {
            Ok(bytes) => match serde_json::from_slice::<AppError>(&bytes) {
                Ok(error) => {
                    parts.status = status_of(&error);
                    if let AppError::Throttled { retry_after, .. } = &error {
                        parts.headers.insert(header::RETRY_AFTER, HeaderValue::from((*retry_after).max(1)));
                    }
                    let body = serde_json::to_vec(&without_echo(error)).unwrap_or_default();
                    parts.headers.remove(header::CONTENT_LENGTH);
                    Response::from_parts(parts, Body::from(body))
                }
                Err(_) => Response::from_parts(parts, Body::from(bytes)),
            },
            Err(_) => Response::from_parts(parts, Body::empty()),
        }
    } else {
        Response::from_parts(parts, body)
    };
    no_store(&mut response);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(e: &AppError) -> String {
        base64::engine::general_purpose::URL_SAFE.encode(serde_json::to_vec(e).unwrap())
    }

    #[test]
    fn redirects_stay_on_this_server() {
        let s = FormErrorSigner::new();
        assert_eq!(rewrite_location("http://evil.example/x?a=1", &s, "", 100), "/x?a=1");
        assert_eq!(rewrite_location("http://evil.example//evil.example/x", &s, "", 100), "/");
        assert_eq!(rewrite_location("/applications/3", &s, "", 100), "/applications/3");
        assert_eq!(rewrite_location("http://h/a?__path=%2Fp&__sig=zzz", &s, "", 100), "/a");
        let err = encoded(&AppError::Refused("no".into()));
        let signed =
            rewrite_location(&format!("http://h/login?__path=%2Fconsole%2Ffn%2Fsign_in&__err={err}"), &s, "c", 100);
        assert!(signed.starts_with("/login?__path=%2Fconsole%2Ffn%2Fsign_in&__err="), "{signed}");
        let q = signed.split_once('?').unwrap().1;
        assert_eq!(unsigned_error_redirect("/login", Some(q), &s, "c", 200), None);
        // Another browser, or the same link much later, shows nothing.
        assert!(unsigned_error_redirect("/login", Some(q), &s, "other", 200).is_some());
        assert!(unsigned_error_redirect("/login", Some(q), &s, "c", 100 + SIGNED_ERROR_LIFETIME + 1).is_some());
    }

    #[test]
    fn errors_that_echo_the_request_are_replaced() {
        let echo = AppError::Transport("Multiple values for one key: \"Call 0800\"".into());
        let fixed = encoded_without_echo(&encoded(&echo)).unwrap();
        let decoded: AppError =
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE.decode(fixed).unwrap()).unwrap();
        assert!(!decoded.to_string().contains("0800"), "{decoded}");
    }

    #[test]
    fn unsigned_or_altered_errors_are_dropped() {
        let s = FormErrorSigner::new();
        assert_eq!(unsigned_error_redirect("/login", Some("__path=%2Fx&__err=abc"), &s, "", 5), Some("/login".into()));
        let sig = s.sign("/x", "abc", "", 5);
        let altered = format!("next=1&__path=%2Fx&__err=abd&__sig={sig}");
        assert_eq!(unsigned_error_redirect("/login", Some(&altered), &s, "", 5), Some("/login?next=1".into()));
        assert_eq!(unsigned_error_redirect("/login", Some("page=2"), &s, "", 5), None);
        assert_eq!(unsigned_error_redirect("//evil.example", Some("__err=x"), &s, "", 5), Some("/".into()));
        let other_key = FormErrorSigner::new();
        let good = format!("__path=%2Fx&__err=abc&__sig={}", other_key.sign("/x", "abc", "", 5));
        assert!(unsigned_error_redirect("/", Some(&good), &s, "", 5).is_some());
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
