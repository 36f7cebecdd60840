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
    use crate::server::{audit, client_ip, context, now, password_busy, sign_in_session, SignInAttempt};
    use keygate::store::{ActorKind, AuditRecord};
    use keygate::throttle::AttemptOutcome;

    let ctx = context()?;
    let ip = client_ip().await;
    let t = now();
    // Reserved before the password is checked, so parallel attempts count.
    let attempt = SignInAttempt::reserve(&ctx, &username, ip.as_deref(), t)?;
    // No account has a name this long or odd; skip the lookup, not the hash.
    let found = match keygate::validate_username(&username) {
        Ok(name) => ctx.store.admin_credentials(&name).await?,
        Err(_) => None,
    };
    let (admin, stored) = match found {
        Some((admin, hash)) => (Some(admin), Some(hash)),
        None => (None, None),
    };
    let ok = match ctx.password_work.verify(password, stored).await {
        Ok(ok) => ok,
        Err(busy) => {
            attempt.finish(AttemptOutcome::NotChecked);
            return Err(password_busy(busy));
        }
    };
    match (admin, ok) {
        (Some(admin), true) => {
            attempt.finish(AttemptOutcome::Succeeded);
            sign_in_session(&admin).await?;
            ctx.store.record_sign_in(admin.id, t).await?;
            audit(AuditRecord::by_admin(t, &admin, keygate::AuditAction::AdminSignIn).from_ip(ip)).await;
            leptos_axum::redirect("/");
            Ok(())
        }
        _ => {
            attempt.finish(AttemptOutcome::Failed);
            let mut rec =
                AuditRecord::new(t, ActorKind::Anonymous, keygate::AuditAction::AdminSignInFailed).from_ip(ip);
            rec.details =
                serde_json::json!({ "username": keygate::bounded_text(username.trim(), keygate::MAX_AUDIT_TEXT_LEN) });
            audit(rec).await;
            Err(AppError::Refused("the username or password is wrong".into()))
        }
    }
}

#[server(prefix = "/console/fn", endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), AppError> {
    use crate::server::{audit, current_admin, now, session};
    if let Some(admin) = current_admin().await? {
        audit(keygate::store::AuditRecord::by_admin(now(), &admin, keygate::AuditAction::AdminSignOut)).await;
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
    use crate::server::{audit, client_ip, context, now, sign_in_session};
    use keygate::store::AuditRecord;

    let ctx = context()?;
    let code_ok = ctx
        .setup_code
        .lock()
        .map(|c| c.as_deref().is_some_and(|c| keygate::secret::constant_time_eq(c, code.trim())))
        .unwrap_or(false);
    if !code_ok {
        return Err(AppError::Refused(
            "this setup link is not valid (it works once, and only until the first administrator exists)".into(),
        ));
    }
    let username = keygate::validate_username(&username)?;
    keygate::validate_password(&password)?;
    if password != password_confirm {
        return Err(AppError::invalid("password_confirm", "the two passwords differ"));
    }
    let hash = ctx.password_work.hash(password).await.map_err(crate::server::password_busy)??;
    let t = now();
    let Some(owner) = ctx.store.create_first_owner(&username, &hash, t).await? else {
        return Err(AppError::Refused("an administrator already exists; sign in instead".into()));
    };
    if let Ok(mut c) = ctx.setup_code.lock() {
        *c = None;
    }
    sign_in_session(&owner).await?;
    ctx.store.record_sign_in(owner.id, t).await?;
    audit(AuditRecord::by_admin(t, &owner, keygate::AuditAction::AdminOwnerCreated).from_ip(client_ip().await)).await;
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
        <main class="narrow">
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
    let action = ServerAction::<CreateOwner>::new();
    let error = form_error(action.value(), <CreateOwner as ServerFn>::PATH);
    let query = use_query_map();
    let code = move || query.with(|q| q.get("code").unwrap_or_default());
    view! {
        <main class="narrow">
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
