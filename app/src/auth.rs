//! First-run setup, sign-in and sign-out.

use crate::components::{form_error, FieldMessage, FormMessage};
use crate::error::AppError;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_router::hooks::use_query_map;

#[server(prefix = "/console/fn", endpoint = "setup_needed")]
pub async fn setup_needed() -> Result<bool, AppError> {
    let ctx = crate::server::context()?;
    Ok(ctx.store.admin_count().await? == 0)
}

#[server(prefix = "/console/fn", endpoint = "sign_in")]
pub async fn sign_in(username: String, password: String) -> Result<(), AppError> {
    use crate::server::{client_ip, context, now, sign_in_session};
    use keygate::usecase::admins::{self, SignIn};

    let ctx = context()?;
    match admins::sign_in(&ctx.store, &ctx.password_work, &username, &password, now(), client_ip().await).await? {
        SignIn::SignedIn(admin, binding) => {
            sign_in_session(&admin, &binding).await?;
            leptos_axum::redirect("/");
            Ok(())
        }
        SignIn::Refused => Err(AppError::Refused("the username or password is wrong".into())),
    }
}

#[server(prefix = "/console/fn", endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), AppError> {
    use crate::server::{client_ip, context, current_admin, now, session};
    if let Some(admin) = current_admin().await? {
        let caller = keygate::usecase::Caller::administrator(admin, now(), client_ip().await);
        keygate::usecase::admins::sign_out(&context()?.store, &caller).await?;
    }
    session().await?.flush().await.map_err(|_| AppError::Internal)?;
    leptos_axum::redirect("/login");
    Ok(())
}

#[server(prefix = "/console/fn", endpoint = "create_owner")]
pub async fn create_owner(
    code: String,
    username: String,
    password: String,
    password_confirm: String,
) -> Result<(), AppError> {
    use crate::server::{client_ip, context, now, sign_in_session};

    let ctx = context()?;
    if password != password_confirm {
        keygate::validate_password(&password)?;
        return Err(AppError::invalid("password_confirm", "the two passwords differ"));
    }
    let (owner, binding) = keygate::usecase::admins::create_first_owner(
        &ctx.store,
        &ctx.password_work,
        &code,
        &username,
        &password,
        now(),
        client_ip().await,
    )
    .await?;
    sign_in_session(&owner, &binding).await?;
    tracing::info!(username = ?owner.username, "first owner created through the setup link");
    leptos_axum::redirect("/");
    Ok(())
}

#[component]
pub fn SignInPage() -> impl IntoView {
    let action = ServerAction::<SignIn>::new();
    let error = form_error(action.value(), <SignIn as ServerFn>::PATH);
    let setup = Resource::new(|| (), |_| setup_needed());
    view! {
        <leptos_meta::Title text="Sign in · Keygate"/>
        <main class="narrow" id="main">
            <h1>"Sign in to Keygate"</h1>
            <Suspense fallback=|| ()>
                {move || {
                    setup
                        .get()
                        .and_then(|r| r.ok())
                        .filter(|needed| *needed)
                        .map(|_| {
                            view! {
                                <p class="notice">
                                    "No administrator exists yet. Open the one-time setup link that "
                                    <code>"keygate serve"</code>
                                    " printed when it started."
                                </p>
                            }
                        })
                }}
            </Suspense>
            <ActionForm action=action attr:class="card form">
                <label for="username">"Username"</label>
                <input id="username" name="username" type="text" autocomplete="username" required autofocus/>
                <label for="password">"Password"</label>
                <input id="password" name="password" type="password" autocomplete="current-password" required/>
                <FormMessage error=error/>
                <button type="submit" disabled=move || action.pending().get()>"Sign in"</button>
            </ActionForm>
        </main>
    }
}

#[component]
pub fn SetupPage() -> impl IntoView {
    crate::components::no_store_page();
    let action = ServerAction::<CreateOwner>::new();
    let error = form_error(action.value(), <CreateOwner as ServerFn>::PATH);
    let query = use_query_map();
    let code = move || query.with(|q| q.get("code").unwrap_or_default());
    view! {
        <leptos_meta::Title text="Set up · Keygate"/>
        <main class="narrow" id="main">
            <h1>"Create the owner account"</h1>
            <p>
                "The owner administers Keygate and can add other administrators. Choose a password of at least 12 characters."
            </p>
            <ActionForm action=action attr:class="card form">
                <input type="hidden" name="code" prop:value=code value=code/>
                <label for="username">"Username"</label>
                <input id="username" name="username" type="text" autocomplete="username" required autofocus/>
                <FieldMessage error=error field="username"/>
                <label for="password">"Password"</label>
                <input id="password" name="password" type="password" autocomplete="new-password" minlength="12" required/>
                <FieldMessage error=error field="password"/>
                <label for="password_confirm">"Repeat the password"</label>
                <input id="password_confirm" name="password_confirm" type="password" autocomplete="new-password" minlength="12" required/>
                <FieldMessage error=error field="password_confirm"/>
                <FormMessage error=error/>
                <button type="submit" disabled=move || action.pending().get()>"Create owner and sign in"</button>
            </ActionForm>
        </main>
    }
}

/// The sign-out button, a form so it works without JavaScript.
#[component]
pub fn SignOutButton() -> impl IntoView {
    let action = ServerAction::<SignOut>::new();
    view! {
        <ActionForm action=action attr:class="inline">
            <button type="submit" class="link">"Sign out"</button>
        </ActionForm>
    }
}
