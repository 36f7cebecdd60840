//! What stands in front of the console's pages and server functions:
//!
//! - **CSRF**: a state-changing request must come from this server's own
//!   origin (`Sec-Fetch-Site`, else `Origin`), as a url-encoded form. A
//!   page on another port of the same host is another origin and is
//!   refused, although `SameSite` would let its cookie through.
//! - **Redirects** after a no-JavaScript form post go only to paths of this
//!   server, never to whatever `Referer` named.
//! - **Error messages in URLs** (`?__err=`, how Leptos reports a failed
//!   form post without JavaScript) are signed with a key that lives in this
//!   process; a page opened with an unsigned or altered one is redirected to
//!   the same page without it, so nobody can put text of their choosing
//!   into the console.
//! - **Statuses**: a refused server function answers 400/401/403/404/409/429
//!   (with `Retry-After`) instead of Leptos' blanket 500.
//! - **Caching**: console pages and answers are `no-store`; some carry a
//!   secret shown once.

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

    fn mac(&self, path: &str, err: &str) -> Hmac<Sha256> {
        // The key is 32 bytes, which HMAC always accepts.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(path.as_bytes());
        mac.update(b"\n");
        mac.update(err.as_bytes());
        mac
    }

    pub fn sign(&self, path: &str, err: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.mac(path, err).finalize().into_bytes())
    }

    pub fn verify(&self, path: &str, err: &str, signature: &str) -> bool {
        let Ok(sig) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature) else { return false };
        self.mac(path, err).verify_slice(&sig).is_ok()
    }
}

/// `scheme://host[:port]` of a URL, as browsers write `Origin`.
pub fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let origin = parsed.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// Whether a browser-sent `Origin` is this server: the public URL's origin,
/// or the origin the browser itself addressed (the `Host` it sent), which a
/// page of another origin cannot produce.
fn is_own_origin(origin: &str, issuer_origin: Option<&str>, host: Option<&str>) -> bool {
    if issuer_origin.is_some_and(|o| o.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let Some(host) = host else { return false };
    [format!("http://{host}"), format!("https://{host}")].iter().any(|o| o.eq_ignore_ascii_case(origin))
}

/// Why a state-changing console request is refused, if it is.
pub fn csrf_refusal(headers: &HeaderMap, issuer: &str) -> Option<&'static str> {
    let get = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(site) = get(header::HeaderName::from_static("sec-fetch-site")) {
        if !matches!(site, "same-origin" | "none") {
            return Some("the request came from another site or origin");
        }
    }
    if let Some(origin) = get(header::ORIGIN) {
        let issuer_origin = origin_of(issuer);
        if !is_own_origin(origin, issuer_origin.as_deref(), get(header::HOST)) {
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
        AppError::Forbidden(_) => StatusCode::FORBIDDEN,
        AppError::Invalid { .. } | AppError::Transport(_) => StatusCode::BAD_REQUEST,
        AppError::Refused(_) => StatusCode::CONFLICT,
        AppError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
        AppError::NotFound(_) => StatusCode::NOT_FOUND,
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
fn rewrite_location(location: &str, signer: &FormErrorSigner) -> String {
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
        let sig = signer.sign(&fn_path, &err);
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
fn unsigned_error_redirect(path: &str, query: Option<&str>, signer: &FormErrorSigner) -> Option<String> {
    let query = query?;
    let pairs: Vec<(String, String)> =
        form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let find = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let has_error_params = pairs.iter().any(|(k, _)| matches!(k.as_str(), "__err" | "__path" | "__sig"));
    if !has_error_params {
        return None;
    }
    if let (Some(p), Some(e), Some(s)) = (find("__path"), find("__err"), find("__sig")) {
        if signer.verify(p, e, s) {
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
        if let Some(to) = unsigned_error_redirect(&path, req.uri().query(), &state.form_errors) {
            let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
            no_store(&mut r);
            return r;
        }
        let mut r = next.run(req).await;
        no_store(&mut r);
        return r;
    }

    if req.method() != Method::POST {
        return refuse(StatusCode::METHOD_NOT_ALLOWED, AppError::Refused("console functions take POST".into()));
    }
    if let Some(why) = csrf_refusal(req.headers(), &state.issuer) {
        tracing::warn!(path = ?path, reason = why, "console request refused (CSRF check)");
        return refuse(StatusCode::FORBIDDEN, AppError::Forbidden(format!("refused: {why}")));
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_CONSOLE_BODY_BYTES).await else {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Invalid {
                field: String::new(),
                message: format!("the form is larger than {} KiB", MAX_CONSOLE_BODY_BYTES / 1024),
            },
        );
    };
    let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    finish_server_fn_response(response, &state.form_errors).await
}

async fn finish_server_fn_response(response: Response, signer: &FormErrorSigner) -> Response {
    let (mut parts, body) = response.into_parts();
    if let Some(location) = parts.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) {
        let rewritten = rewrite_location(location, signer);
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
            Ok(bytes) => {
                if let Ok(error) = serde_json::from_slice::<AppError>(&bytes) {
                    parts.status = status_of(&error);
                    if let AppError::Throttled { retry_after, .. } = &error {
                        parts.headers.insert(header::RETRY_AFTER, HeaderValue::from((*retry_after).max(1)));
                    }
                }
                Response::from_parts(parts, Body::from(bytes))
            }
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

    #[test]
    fn redirects_stay_on_this_server() {
        let s = FormErrorSigner::new();
        assert_eq!(rewrite_location("http://evil.example/x?a=1", &s), "/x?a=1");
        assert_eq!(rewrite_location("http://evil.example//evil.example/x", &s), "/");
        assert_eq!(rewrite_location("/applications/3", &s), "/applications/3");
        assert_eq!(rewrite_location("http://h/a?__path=%2Fp&__sig=zzz", &s), "/a");
        let signed = rewrite_location("http://h/login?__path=%2Fconsole%2Ffn%2Fsign_in&__err=abc", &s);
        assert!(signed.starts_with("/login?__path=%2Fconsole%2Ffn%2Fsign_in&__err=abc&__sig="), "{signed}");
        let q = signed.split_once('?').unwrap().1;
        assert_eq!(unsigned_error_redirect("/login", Some(q), &s), None);
    }

    #[test]
    fn unsigned_or_altered_errors_are_dropped() {
        let s = FormErrorSigner::new();
        assert_eq!(unsigned_error_redirect("/login", Some("__path=%2Fx&__err=abc"), &s), Some("/login".into()));
        let sig = s.sign("/x", "abc");
        let altered = format!("next=1&__path=%2Fx&__err=abd&__sig={sig}");
        assert_eq!(unsigned_error_redirect("/login", Some(&altered), &s), Some("/login?next=1".into()));
        assert_eq!(unsigned_error_redirect("/login", Some("page=2"), &s), None);
        assert_eq!(unsigned_error_redirect("//evil.example", Some("__err=x"), &s), Some("/".into()));
        let other_key = FormErrorSigner::new();
        let good = format!("__path=%2Fx&__err=abc&__sig={}", other_key.sign("/x", "abc"));
        assert!(unsigned_error_redirect("/", Some(&good), &s).is_some());
    }

    #[test]
    fn csrf_checks_origin_site_and_content_type() {
        let issuer = "http://127.0.0.1:3000";
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, "application/x-www-form-urlencoded".parse().unwrap());
        assert_eq!(csrf_refusal(&h, issuer), None, "no browser headers: not a browser");
        h.insert(header::ORIGIN, "http://127.0.0.1:3000".parse().unwrap());
        assert_eq!(csrf_refusal(&h, issuer), None);
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(csrf_refusal(&h, issuer).is_some());
        h.insert(header::HOST, "keygate.internal:3000".parse().unwrap());
        h.insert(header::ORIGIN, "http://keygate.internal:3000".parse().unwrap());
        assert_eq!(csrf_refusal(&h, issuer), None, "the origin the browser addressed");
        h.insert("sec-fetch-site", "same-site".parse().unwrap());
        assert!(csrf_refusal(&h, issuer).is_some());
        h.insert("sec-fetch-site", "same-origin".parse().unwrap());
        h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(csrf_refusal(&h, issuer).is_some());
        h.insert(header::ORIGIN, "null".parse().unwrap());
        h.insert(header::CONTENT_TYPE, "application/x-www-form-urlencoded".parse().unwrap());
        assert!(csrf_refusal(&h, issuer).is_some());
    }
}
