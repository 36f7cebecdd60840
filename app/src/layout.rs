//! The frame of every signed-in page: navigation, who is signed in, sign-out.

use crate::auth::SignOutButton;
use crate::components::{CopyButton, PageScripts};
use crate::error::AppError;
use keygate::AdminView;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;

/// The console's sections: the navigation, and the second part of every
/// page's title.
const SECTIONS: &[(&str, &str)] = &[
    ("/applications", "Applications"),
    ("/audit", "Audit log"),
    ("/scopes", "Scopes"),
    ("/webhooks", "Webhooks"),
    ("/admins", "Administrators"),
];

/// `title` names what the page shows (an application, a webhook); the
/// section comes from the path. The current section is marked for screen
/// readers (`aria-current`) and visibly.
#[component]
pub fn Frame(me: AdminView, #[prop(optional, into)] title: Option<String>, children: Children) -> impl IntoView {
    let path = leptos_router::hooks::use_location().pathname.get_untracked();
    let section = SECTIONS.iter().find(|(p, _)| path == *p || path.starts_with(&format!("{p}/")));
    let page_title = match (title, section) {
        (Some(t), Some((_, s))) => format!("{t} · {s} · Keygate"),
        (Some(t), None) => format!("{t} · Keygate"),
        (None, Some((_, s))) => format!("{s} · Keygate"),
        (None, None) => "Overview · Keygate".to_owned(),
    };
    let current = section.map(|(p, _)| *p);
    view! {
        <Title text=page_title/>
        <a class="skip-link" href="#main">"Skip to content"</a>
        <header class="topbar">
            <a class="brand" href="/" aria-current=(path == "/").then_some("page")>"Keygate"</a>
            <nav aria-label="Main">
                {SECTIONS
                    .iter()
                    .map(|(href, label)| view! {
                        <a href=*href aria-current=(current == Some(*href)).then_some("page")>{*label}</a>
                    })
                    .collect_view()}
            </nav>
            <span class="who">
                <a href="/account" title="Your account: change your password"
                    aria-current=(path == "/account").then_some("page") data-testid="signed-in-as">{me.username.clone()}</a>
                " · "
                <span class="role">{me.role.to_string()}</span>
            </span>
            <SignOutButton/>
        </header>
        <main id="main" tabindex="-1">{children()}</main>
        <PageScripts/>
    }
}

/// Renders a loaded page, or sends an expired session to sign-in, or says
/// what went wrong.
pub fn loaded<T>(result: Result<T, AppError>, render: impl FnOnce(T) -> AnyView) -> AnyView {
    match result {
        Ok(data) => finished_html(render(data)),
        Err(AppError::Unauthenticated) => {
            // Back to this page after signing in.
            let location = leptos_router::hooks::use_location();
            let search = location.search.get_untracked();
            let here = if search.is_empty() {
                location.pathname.get_untracked()
            } else {
                format!("{}?{search}", location.pathname.get_untracked())
            };
            let path = if here == "/" {
                "/login".to_owned()
            } else {
                format!("/login?next={}", crate::components::url_encode(&here))
            };
            view! { <Redirect path=path/> }.into_any()
        }
        Err(AppError::PasswordChangeRequired) => view! { <Redirect path="/account"/> }.into_any(),
        Err(e) => view! {
            <main class="narrow">
                <h1>"Cannot show this page"</h1>
                <p class="form-error" role="alert">{e.to_string()}</p>
                <p><a href="/">"Back to the overview"</a></p>
            </main>
        }
        .into_any(),
    }
}

/// A field for a secret or token, with a one-click copy button (shown
/// with JavaScript; without it the read-only value is selected by hand: an
/// inline `onfocus` would be refused by the nonce-based CSP).
#[component]
pub fn CopyField(label: &'static str, value: String, id: &'static str) -> impl IntoView {
    view! {
        <div class="copy-field">
            <label for=id>{label}</label>
            <div class="copy-row">
                <input id=id type="text" readonly value=value data-testid=id/>
                <CopyButton target=id.to_string() label=format!("Copy {label}")/>
            </div>
        </div>
    }
}

/// A loaded page as finished HTML, rendered in one synchronous pass. The
/// console hydrates only its islands (they render the same either way), so
/// nothing else of a page is ever touched in the browser; the async
/// renderer would otherwise build and move a future for every element,
/// which was most of the cost of a list page.
fn finished_html(view: AnyView) -> AnyView {
    #[cfg(feature = "ssr")]
    {
        leptos::tachys::html::InertElement::new(view.to_html()).into_any()
    }
    #[cfg(not(feature = "ssr"))]
    {
        view
    }
}
