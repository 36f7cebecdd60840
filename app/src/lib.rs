//! Keygate's console: server-rendered Leptos pages, hydrated in the browser,
//! with thin server functions that check the session and role and call the
//! domain core. Every form is an `ActionForm`, so it also works as a plain
//! HTML post without JavaScript.

#![recursion_limit = "256"]

pub mod admins;
pub mod apps;
pub mod audit;
pub mod auth;
pub mod charts;
pub mod components;
pub mod dashboard;
pub mod error;
pub mod layout;
#[cfg(feature = "ssr")]
pub mod server;
pub mod webhooks;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{path, SsrMode};

pub use error::AppError;

/// The page's Content-Security-Policy: scripts only from this server or
/// carrying this response's nonce (Leptos puts it on its inline hydration
/// and resource scripts), wasm compilation allowed, nothing embedded.
pub fn content_security_policy(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

/// The HTML document around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let (Some(nonce), Some(response)) = (leptos::nonce::use_nonce(), use_context::<leptos_axum::ResponseOptions>()) {
        if let Ok(value) = http::HeaderValue::from_str(&content_security_policy(&nonce)) {
            response.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
        }
    }
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <AutoReload options=options.clone()/>
                <link rel="stylesheet" id="keygate" href=format!("/pkg/{}.css", options.output_name)/>
                <HydrationScripts options islands=true/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Title text="Keygate"/>
        <Router>
            <Routes fallback=|| view! { <leptos_meta::Title text="Not found · Keygate"/><main class="narrow"><h1>"Not found"</h1><p><a href="/">"Back to the console"</a></p></main> }>
                <Route path=path!("/") view=dashboard::DashboardPage ssr=SsrMode::Async/>
                <Route path=path!("/login") view=auth::SignInPage ssr=SsrMode::Async/>
                <Route path=path!("/setup") view=auth::SetupPage ssr=SsrMode::Async/>
                <Route path=path!("/applications") view=apps::ApplicationsPage ssr=SsrMode::Async/>
                <Route path=path!("/applications/new") view=apps::NewApplicationPage ssr=SsrMode::Async/>
                <Route path=path!("/applications/:id") view=apps::ApplicationDetailPage ssr=SsrMode::Async/>
                <Route path=path!("/audit") view=audit::AuditLogPage ssr=SsrMode::Async/>
                <Route path=path!("/admins") view=admins::AdminsPage ssr=SsrMode::Async/>
                <Route path=path!("/account") view=admins::AccountPage ssr=SsrMode::Async/>
                <Route path=path!("/scopes") view=admins::ScopesPage ssr=SsrMode::Async/>
                <Route path=path!("/webhooks") view=webhooks::WebhooksPage ssr=SsrMode::Async/>
                <Route path=path!("/webhooks/:id") view=webhooks::WebhookDetailPage ssr=SsrMode::Async/>
            </Routes>
        </Router>
    }
}

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // Islands: pages are rendered on the server and forms post natively;
    // only the islands (copy buttons, live relative times) run here.
    leptos::mount::hydrate_islands();
    // Lets tests (and curious operators) see that the islands are live:
    // the loader hydrates them right after this returns.
    set_timeout(
        || {
            if let Some(body) = document().body() {
                let _ = body.set_attribute("data-hydrated", "true");
            }
        },
        std::time::Duration::ZERO,
    );
}
