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

/// Where to go after signing in: `next` when it is a path of this
/// console (never another site, `//host`, `/\\host`, or a server function),
/// else the overview.
pub fn return_path(next: Option<&str>) -> &str {
    let Some(next) = next else { return "/" };
    // Browsers read `%2e` as a dot in a path segment too.
    let path = next.split(['?', '#']).next().unwrap_or("").to_ascii_lowercase().replace("%2e", ".");
    let safe = next.starts_with('/')
        // `/./login` is `/login` to a browser.
        && !path.split('/').any(|segment| segment == "." || segment == "..")
        && !next.contains("__err")
        && !next.contains("__path")
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.starts_with("/console/fn/")
        && !next.starts_with("/login")
        && next.len() <= 2000
        && !next.chars().any(|c| c.is_control() || c == '\\');
    if safe {
        next
    } else {
        "/"
    }
}

#[server(prefix = "/console/fn", endpoint = "sign_in")]
pub async fn sign_in(username: String, password: String, next: Option<String>) -> Result<(), AppError> {
    use crate::server::{client_ip, context, now, sign_in_session};
    use keygate::usecase::admins::{self, SignIn};

    let ctx = context()?;
    match admins::sign_in(&ctx.store, &ctx.password_work, &username, &password, now(), client_ip().await).await? {
        SignIn::SignedIn(admin, binding) => {
            sign_in_session(&admin, &binding).await?;
            if admin.must_change_password {
                leptos_axum::redirect("/account");
            } else {
                leptos_axum::redirect(return_path(next.as_deref()));
            }
            Ok(())
        }
        SignIn::Refused => Err(AppError::Refused("the username or password is wrong".into())),
    }
}

/// What a setup link can still do, said before anyone fills in the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SetupLinkState {
    /// It creates the owner.
    Usable,
    /// An owner exists: the link was used (or another one was).
    Used,
    /// No owner yet, but this code is unknown or older than a day.
    Invalid,
}

#[server(prefix = "/console/fn", endpoint = "setup_link")]
pub async fn setup_link(code: String) -> Result<SetupLinkState, AppError> {
    let ctx = crate::server::context()?;
    if ctx.store.admin_count().await? > 0 {
        return Ok(SetupLinkState::Used);
    }
    let not_before = crate::server::now() - keygate::store::SETUP_CODE_TTL_SECONDS;
    let digest = keygate::secret::SecretDigest::of(code.trim());
    Ok(if ctx.store.setup_code_exists(&digest, not_before).await? {
        SetupLinkState::Usable
    } else {
        SetupLinkState::Invalid
    })
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
    let query = use_query_map();
    let next = query.with_untracked(|q| q.get("next")).filter(|n| return_path(Some(n)) != "/");
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
            {next.clone().map(|n| view! { <p class="notice" data-testid="return-to">"After signing in you return to "<code>{n}</code>"."</p> })}
            <ActionForm action=action attr:class="card form">
                {next.map(|n| view! { <input type="hidden" name="next" value=n/> })}
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
    let link = Resource::new(code, setup_link);
    view! {
        <leptos_meta::Title text="Set up · Keygate"/>
        <main class="narrow" id="main">
            <h1>"Create the owner account"</h1>
            <Suspense fallback=|| ()>
                {move || link.get().map(|state| match state {
                    Ok(SetupLinkState::Used) => view! {
                        <p class="notice" role="status" data-testid="setup-link-state">
                            "This setup link has been used: the owner account exists. "
                            <a href="/login">"Sign in"</a>
                            " instead, or ask an owner to add you."
                        </p>
                    }.into_any(),
                    Ok(SetupLinkState::Invalid) => view! {
                        <p class="notice" role="status" data-testid="setup-link-state">
                            "This setup link does not work: it is mistyped or more than a day old. Restart "
                            <code>"keygate serve"</code>
                            " and open the new link it prints."
                        </p>
                    }.into_any(),
                    Ok(SetupLinkState::Usable) | Err(_) => view! { <SetupForm action=action error=error code=code()/> }.into_any(),
                })}
            </Suspense>
        </main>
    }
}

#[component]
fn SetupForm(action: ServerAction<CreateOwner>, error: Signal<Option<AppError>>, code: String) -> impl IntoView {
    view! {
            <p>
                "The owner administers Keygate and can add other administrators. Choose a password of at least 12 characters."
            </p>
            <ActionForm action=action attr:class="card form">
                <input type="hidden" name="code" value=code/>
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

#[cfg(test)]
mod tests {
    use super::return_path;

    #[test]
    fn sign_in_returns_only_to_paths_of_this_console() {
        assert_eq!(return_path(None), "/");
        assert_eq!(return_path(Some("/applications/7?range=7d")), "/applications/7?range=7d");
        assert_eq!(return_path(Some("/audit?application=a%20b")), "/audit?application=a%20b");
        for bad in [
            "https://evil.example/",
            "//evil.example/x",
            "/\\evil.example",
            "/\\/evil.example",
            "evil",
            "",
            "/console/fn/sign_out",
            "/login?next=/x",
            "/a\nb",
            "/a\\b",
            "/./login",
            "/%2e/login",
            "/x/%2E%2e/login",
            "/x/../login?y=1",
            "/applications?__err=abc&__path=%2Fx",
        ] {
            assert_eq!(return_path(Some(bad)), "/", "{bad:?}");
        }
    }
}
