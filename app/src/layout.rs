//! The frame of every signed-in page: navigation, who is signed in, sign-out.

use crate::auth::SignOutButton;
use crate::error::AppError;
use keygate::{AdminView, Role};
use leptos::prelude::*;
use leptos_router::components::Redirect;

#[component]
pub fn Frame(me: AdminView, children: Children) -> impl IntoView {
    let owner = me.role == Role::Owner;
    view! {
        <header class="topbar">
            <a class="brand" href="/">"Keygate"</a>
            <nav aria-label="Main">
                <a href="/applications">"Applications"</a>
                <a href="/audit">"Audit log"</a>
                <a href="/scopes">"Scopes"</a>
                <a href="/webhooks">"Webhooks"</a>
                {owner.then(|| view! { <a href="/admins">"Administrators"</a> })}
            </nav>
            <span class="who">
                <span data-testid="signed-in-as">{me.username.clone()}</span>
                " · "
                <span class="role">{me.role.to_string()}</span>
            </span>
            <SignOutButton/>
        </header>
        <main>{children()}</main>
    }
}

/// Renders a loaded page, or sends an expired session to sign-in, or says
/// what went wrong.
pub fn loaded<T>(result: Result<T, AppError>, render: impl FnOnce(T) -> AnyView) -> AnyView {
    match result {
        Ok(data) => render(data),
        Err(AppError::Unauthenticated) => view! { <Redirect path="/login"/> }.into_any(),
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

/// A field for a secret or token, with a one-click copy button (the value
/// stays selectable without JavaScript).
#[component]
pub fn CopyField(label: &'static str, value: String, id: &'static str) -> impl IntoView {
    let copied = RwSignal::new(false);
    let for_copy = value.clone();
    let copy = move |_| {
        #[cfg(feature = "hydrate")]
        {
            if let Some(w) = web_sys::window() {
                let _ = w.navigator().clipboard().write_text(&for_copy);
                copied.set(true);
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = &for_copy;
    };
    view! {
        <div class="copy-field">
            <label for=id>{label}</label>
            <div class="copy-row">
                <input id=id type="text" readonly value=value.clone() data-testid=id onfocus="this.select()"/>
                <button type="button" class="secondary" on:click=copy aria-label=format!("Copy {label}")>
                    {move || if copied.get() { "Copied" } else { "Copy" }}
                </button>
            </div>
        </div>
    }
}
