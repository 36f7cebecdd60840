//! The frame of every signed-in page: navigation, who is signed in, sign-out.

use crate::auth::SignOutButton;
use crate::components::{CopyButton, PageScripts};
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
        <PageScripts/>
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
/// is selected on focus for copying by hand without JavaScript).
#[component]
pub fn CopyField(label: &'static str, value: String, id: &'static str) -> impl IntoView {
    view! {
        <div class="copy-field">
            <label for=id>{label}</label>
            <div class="copy-row">
                <input id=id type="text" readonly value=value data-testid=id onfocus="this.select()"/>
                <CopyButton target=id.to_string() label=format!("Copy {label}")/>
            </div>
        </div>
    }
}
