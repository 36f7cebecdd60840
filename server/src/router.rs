//! Router wiring: the console (with sessions), the OAuth endpoints and the
//! API (without), static files, security headers and request logs.

use crate::state::AppState;
use crate::{api, oauth};
use app::{shell, App};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use leptos_axum::{generate_route_list, LeptosRoutes};
use serde_json::json;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::compression::{CompressionLayer, CompressionLevel};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

/// Builds the whole application.
pub async fn build_router(state: AppState) -> Result<Router, keygate::CoreError> {
    let sessions = SessionManagerLayer::new(crate::sessions::ConsoleSessions::new(state.store.clone()))
        .with_name("keygate_session")
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_secure(state.is_https())
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(time::Duration::hours(8)));

    let console_context = state.console.clone();
    // Once per process: generating the list sets Leptos' process-wide
    // "suppress resource loading" flag (leptos #4773), so a page rendering
    // meanwhile in another router of the same process (tests build one
    // each) would wait forever for its data.
    static ROUTES: std::sync::OnceLock<Vec<leptos_axum::AxumRouteListing>> = std::sync::OnceLock::new();
    let routes = ROUTES.get_or_init(|| generate_route_list(App)).clone();
    let leptos_options = state.leptos_options.clone();
    let console = Router::new()
        .leptos_routes_with_context(
            &state,
            routes,
            move || leptos::prelude::provide_context(console_context.clone()),
            move || shell(leptos_options.clone()),
        )
        .fallback(console_fallback)
        .layer(sessions)
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::console_guard::guard));

    // Routes below are merged after the session layer, so they never read
    // or set the console's cookie.
    let machine = Router::new()
        .route("/.well-known/oauth-authorization-server", get(oauth::metadata))
        .route("/oauth2/token", post(oauth::token))
        .route("/oauth2/introspect", post(oauth::introspect))
        .route("/oauth2/revoke", post(oauth::revoke))
        .route("/oauth2/jwks", get(oauth::jwks))
        .route("/oauth2/forward-auth", any(crate::forward_auth::forward_auth))
        .route("/healthz", get(healthz))
        .route("/pkg/{*file}", get(crate::assets::serve))
        .merge(api::routes(&state))
        .route("/api/v1/{*rest}", any(api_not_found));

    let hsts = state.is_https().then(|| {
        SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        )
    });
    let body_deadline = crate::serve::body_read_timeout();
    let resolver = state.clone();
    Ok(machine
        .merge(console)
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(resolver, resolve_client_address))
        .layer(axum::middleware::map_request(move |req: Request<Body>| async move {
            req.map(|b| Body::new(crate::idle_io::DeadlineBody::new(b, body_deadline)))
        }))
        .layer(tower::util::option_layer(hsts))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        // Pages and API answers of 1 KiB or more, brotli or gzip as the
        // client accepts (static files arrive precompressed and pass).
        .layer(
            CompressionLayer::new()
                .quality(CompressionLevel::Precise(4))
                .compress_when(SizeAbove::new(1024).and(NotForContentType::IMAGES).and(NotForContentType::SSE)),
        )
        .layer(axum::middleware::from_fn(crate::metrics::track))
        .layer(
            // Log the path only: query strings can carry the setup code.
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<Body>| {
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
                })
                // Refusals (including server functions' validation errors,
                // which Leptos answers with 500) are not failures of the
                // server; real internal errors are logged where they occur.
                .on_failure(()),
        ))
}

/// Resolves the client's address once for every route: the peer's, or
/// the one a trusted proxy names in `X-Forwarded-For` (`--trusted-proxy`).
async fn resolve_client_address(
    State(state): State<AppState>,
    mut req: Request<Body>,
    next: axum::middleware::Next,
) -> Response {
    let peer = req.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    let address = crate::forward_auth::client_address(peer, req.headers(), &state.trusted_proxies);
    req.extensions_mut().insert(keygate::network::ClientAddress(address));
    next.run(req).await
}

/// What no route of the console matches: a page's address with a trailing
/// slash (a bookmark, a typed address) redirects to the page, query kept;
/// anything else is a static file or the "Not found" page. (Leptos' router
/// matches `/applications/` where axum does not, and rendered the page
/// outside the console's routes: "Cannot show this page".)
async fn console_fallback(State(state): State<AppState>, req: Request<Body>) -> Response {
    if matches!(*req.method(), axum::http::Method::GET | axum::http::Method::HEAD) {
        if let Some(to) = without_trailing_slash(req.uri()) {
            return axum::response::Redirect::permanent(&to).into_response();
        }
    }
    let console = state.console.clone();
    let files = leptos_axum::file_and_error_handler_with_context::<AppState, _>(
        move || leptos::prelude::provide_context(console.clone()),
        shell,
    );
    files(req.uri().clone(), State(state), req).await
}

/// `/applications/?page=2` → `/applications?page=2`; `None` for `/`, for a
/// path without one, and for what would leave this site (`//host`).
fn without_trailing_slash(uri: &axum::http::Uri) -> Option<String> {
    let path = uri.path();
    let trimmed = path.trim_end_matches('/');
    if trimmed.len() == path.len() || trimmed.is_empty() || trimmed.starts_with("//") || trimmed.starts_with("/\\") {
        return None;
    }
    Some(match uri.query() {
        Some(q) => format!("{trimmed}?{q}"),
        None => trimmed.to_owned(),
    })
}

async fn healthz(State(state): State<AppState>) -> Response {
    if state.store.healthy().await {
        (StatusCode::OK, Json(json!({ "status": "ok" }))).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "database unavailable" }))).into_response()
    }
}

async fn api_not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({ "error": "not_found", "error_description": "no such API route" })))
        .into_response()
}
