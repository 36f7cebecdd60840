//! Administrators (everyone sees them, owners manage them) and the scope
//! catalogue.

use crate::components::{form_error, FieldMessage, FormMessage, FormSaved, RelTime};
use crate::error::AppError;
use crate::layout::{loaded, Frame};
use keygate::{AdminView, ResourceServerView, Role, ScopeView};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminsData {
    pub me: AdminView,
    pub admins: Vec<AdminView>,
}

/// Every administrator sees the list (viewers see everything); only
/// owners change it.
#[server(prefix = "/console/fn", endpoint = "admins")]
pub async fn admins() -> Result<AdminsData, AppError> {
    let me = crate::server::require_admin().await?;
    let admins = crate::server::context()?.store.list_admins().await?;
    Ok(AdminsData { me, admins })
}

#[cfg(feature = "ssr")]
fn parse_role(role: &str) -> Result<Role, AppError> {
    Role::parse(role).ok_or_else(|| AppError::invalid("role", "the role is owner, admin or viewer"))
}

#[server(prefix = "/console/fn", endpoint = "add_admin")]
pub async fn add_admin(username: String, password: String, role: String) -> Result<(), AppError> {
    let caller = crate::server::caller().await?;
    let ctx = crate::server::context()?;
    let role = parse_role(&role)?;
    keygate::usecase::admins::add_admin(&ctx.store, &ctx.password_work, &caller, &username, &password, role).await?;
    Ok(())
}

#[server(prefix = "/console/fn", endpoint = "change_role")]
pub async fn change_role(id: i64, role: String) -> Result<(), AppError> {
    let caller = crate::server::caller().await?;
    let ctx = crate::server::context()?;
    keygate::usecase::admins::set_admin_role(&ctx.store, &caller, keygate::AdminId(id), parse_role(&role)?).await?;
    Ok(())
}

#[server(prefix = "/console/fn", endpoint = "remove_admin")]
pub async fn remove_admin(id: i64) -> Result<(), AppError> {
    let caller = crate::server::caller().await?;
    let ctx = crate::server::context()?;
    keygate::usecase::admins::remove_admin(&ctx.store, &caller, keygate::AdminId(id)).await?;
    Ok(())
}

#[server(prefix = "/console/fn", endpoint = "reset_password")]
pub async fn reset_password(id: i64, password: String) -> Result<(), AppError> {
    let caller = crate::server::caller().await?;
    let ctx = crate::server::context()?;
    keygate::usecase::admins::reset_password(&ctx.store, &ctx.password_work, &caller, keygate::AdminId(id), &password)
        .await?;
    // The page says it was done (a plain form post lands here).
    leptos_axum::redirect("/admins?reset=done");
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountData {
    pub me: AdminView,
}

#[server(prefix = "/console/fn", endpoint = "account")]
pub async fn account() -> Result<AccountData, AppError> {
    Ok(AccountData { me: crate::server::require_signed_in().await? })
}

/// Every administrator changes their own password here, and must after
/// signing in with one someone else chose. Their other sessions end; this
/// one goes on.
#[server(prefix = "/console/fn", endpoint = "change_password")]
pub async fn change_password(
    current_password: String,
    new_password: String,
    confirm_password: String,
) -> Result<(), AppError> {
    use crate::server::{client_ip, context, now, require_signed_in, sign_in_session};
    if new_password != confirm_password {
        return Err(AppError::invalid("confirm_password", "the two new passwords differ"));
    }
    let me = require_signed_in().await?;
    let ctx = context()?;
    let caller = keygate::usecase::Caller::administrator(me, now(), client_ip().await);
    let (admin, binding) = keygate::usecase::admins::change_own_password(
        &ctx.store,
        &ctx.password_work,
        &caller,
        &current_password,
        &new_password,
    )
    .await?;
    sign_in_session(&admin, &binding).await?;
    leptos_axum::redirect("/account?changed=1");
    Ok(())
}

#[component]
pub fn AccountPage() -> impl IntoView {
    let change = ServerAction::<ChangePassword>::new();
    let data = Resource::new(move || change.version().get(), |_| account());
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || data.get().map(|r| loaded(r, move |d| view! { <AccountView d=d change=change/> }.into_any()))}
        </Suspense>
    }
}

#[component]
fn AccountView(d: AccountData, change: ServerAction<ChangePassword>) -> impl IntoView {
    let error = form_error(change.value(), <ChangePassword as ServerFn>::PATH);
    let query = leptos_router::hooks::use_query_map();
    // Confirmed in place; a later refusal replaces the confirmation.
    let changed = move || query.with(|q| q.get("changed").as_deref() == Some("1")) && error.get().is_none();
    let forced = d.me.must_change_password;
    view! {
        <Frame me=d.me.clone() title="Your account">
            <h1>"Your account"</h1>
            <dl class="facts">
                <dt>"Username"</dt><dd>{d.me.username.clone()}</dd>
                <dt>"Role"</dt><dd>{d.me.role.to_string()}</dd>
                <dt>"Last sign-in"</dt><dd>{match d.me.last_sign_in_at { Some(t) => view! { <RelTime at=t/> }.into_any(), None => view! { <span class="muted">"never"</span> }.into_any() }}</dd>
            </dl>
            {forced.then(|| view! {
                <p class="notice" role="alert" data-testid="must-change">"Your password was set by someone else. Choose your own before using the console: until then every other page brings you back here."</p>
            })}
            <Show when=changed>
                <p class="notice" role="status" data-testid="password-changed">"Your password was changed. Your other sessions have ended; this one goes on."</p>
            </Show>
            <h2>"Change your password"</h2>
            <ActionForm action=change attr:class="card form">
                <label for="current-password">"Current password"</label>
                <input id="current-password" name="current_password" type="password" autocomplete="current-password" required/>
                <FieldMessage error=error field="current_password"/>
                <label for="new-password">"New password (at least 12 characters)"</label>
                <input id="new-password" name="new_password" type="password" autocomplete="new-password" minlength="12" required/>
                <FieldMessage error=error field="new_password"/>
                <label for="confirm-password">"New password again"</label>
                <input id="confirm-password" name="confirm_password" type="password" autocomplete="new-password" minlength="12" required/>
                <FieldMessage error=error field="confirm_password"/>
                <FormMessage error=error/>
                <button type="submit">"Change password"</button>
            </ActionForm>
        </Frame>
    }
}

#[component]
pub fn AdminsPage() -> impl IntoView {
    let add = ServerAction::<AddAdmin>::new();
    let change = ServerAction::<ChangeRole>::new();
    let remove = ServerAction::<RemoveAdmin>::new();
    let reset = ServerAction::<ResetPassword>::new();
    let data = Resource::new(
        move || (add.version().get(), change.version().get(), remove.version().get(), reset.version().get()),
        |_| admins(),
    );
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || data.get().map(|r| loaded(r, move |d| view! { <AdminsView d=d add=add change=change remove=remove reset=reset/> }.into_any()))}
        </Suspense>
    }
}

#[component]
fn AdminsView(
    d: AdminsData,
    add: ServerAction<AddAdmin>,
    change: ServerAction<ChangeRole>,
    remove: ServerAction<RemoveAdmin>,
    reset: ServerAction<ResetPassword>,
) -> impl IntoView {
    let add_error = form_error(add.value(), <AddAdmin as ServerFn>::PATH);
    let change_error = form_error(change.value(), <ChangeRole as ServerFn>::PATH);
    let remove_error = form_error(remove.value(), <RemoveAdmin as ServerFn>::PATH);
    let reset_error = form_error(reset.value(), <ResetPassword as ServerFn>::PATH);
    let query = leptos_router::hooks::use_query_map();
    let reset_done = move || query.with(|q| q.get("reset").as_deref() == Some("done"));
    let owner = d.me.role == Role::Owner;
    view! {
        <Frame me=d.me.clone()>
            <h1>"Administrators"</h1>
            {(!owner).then(|| view! { <p class="notice" data-testid="read-only">"Only owners add, change or remove administrators; you see the list."</p> })}
            <FormMessage error=change_error/>
            <FormMessage error=remove_error/>
            <FormMessage error=reset_error/>
            <FormSaved path={<ChangeRole as ServerFn>::PATH} message="Role changed; it applies to their next request."/>
            <FormSaved path={<RemoveAdmin as ServerFn>::PATH} message="Administrator removed; their sessions ended."/>
            <FormSaved path={<AddAdmin as ServerFn>::PATH} message="Administrator added. They choose their own password when they first sign in."/>
            <Show when=reset_done>
                <p class="notice" role="status">"The password was changed and their sessions ended. Give it to its owner over a channel you trust: they sign in with it once, and choose their own before anything else."</p>
            </Show>
            <div class="table-wrap">
                <table>
                    <caption class="sr-only">"Administrators"</caption>
                    <thead><tr><th scope="col">"Username"</th><th scope="col">"Role"</th><th scope="col">"Last sign-in"</th>{owner.then(|| view! { <th scope="col"><span class="sr-only">"Actions"</span></th> })}</tr></thead>
                    <tbody>
                        {d.admins.into_iter().map(|a| {
                            let role_id = format!("role-{}", a.id);
                            let role_label = format!("Role of {}", a.username);
                            let remove_label = format!("Confirm removing {}", a.username);
                            let (reset_of, set_of) = (format!(" of {}", a.username), format!(" of {}", a.username));
                            let reset_id = format!("reset-{}", a.id);
                            let reset_label = format!("New password for {} (at least 12 characters)", a.username);
                            let change_label = format!("Change the role of {}", a.username);
                            if !owner {
                                return view! {
                                    <tr>
                                        <td data-label="Username">{a.username.clone()}</td>
                                        <td data-label="Role">{a.role.to_string()}</td>
                                        <td data-label="Last sign-in">{match a.last_sign_in_at { Some(t) => view! { <RelTime at=t/> }.into_any(), None => view! { <span class="muted">"never"</span> }.into_any() }}</td>
                                    </tr>
                                }.into_any();
                            }
                            view! {
                                <tr>
                                    <td data-label="Username">{a.username.clone()}</td>
                                    <td data-label="Role">
                                        <ActionForm action=change attr:class="inline-form">
                                            <input type="hidden" name="id" value=a.id.0.to_string()/>
                                            <label for=role_id.clone() class="sr-only">{role_label}</label>
                                            <select id=role_id name="role">
                                                {["owner", "admin", "viewer"].into_iter().map(|r| view! { <option value=r selected=a.role.as_str() == r>{r}</option> }).collect_view()}
                                            </select>
                                            <button type="submit" class="secondary" aria-label=change_label>"Change"</button>
                                        </ActionForm>
                                    </td>
                                    <td data-label="Last sign-in">{match a.last_sign_in_at { Some(t) => view! { <RelTime at=t/> }.into_any(), None => view! { <span class="muted">"never"</span> }.into_any() }}</td>
                                    <td>
                                        <details class="confirm">
                                            <summary>"Reset password"<span class="sr-only">{reset_of}</span></summary>
                                            <ActionForm action=reset attr:class="inline-form">
                                                <input type="hidden" name="id" value=a.id.0.to_string()/>
                                                <label for=reset_id.clone()>{reset_label}</label>
                                                <input id=reset_id name="password" type="password" required minlength="12" autocomplete="new-password"/>
                                                <button type="submit" class="secondary">"Set the new password"<span class="sr-only">{set_of}</span></button>
                                            </ActionForm>
                                        </details>
                                        <details class="confirm">
                                            <summary>"Remove"<span class="sr-only">{format!(" {}", a.username)}</span></summary>
                                            <ActionForm action=remove attr:class="inline-form">
                                                <input type="hidden" name="id" value=a.id.0.to_string()/>
                                                <button type="submit" class="danger">{remove_label}</button>
                                            </ActionForm>
                                        </details>
                                    </td>
                                </tr>
                            }.into_any()
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
            {owner.then(|| view! {
            <h2>"Add an administrator"</h2>
            <ActionForm action=add attr:class="card form">
                <label for="new-username">"Username"</label>
                <input id="new-username" name="username" type="text" required autocomplete="off"/>
                <FieldMessage error=add_error field="username"/>
                <label for="new-password">"Initial password (at least 12 characters)"</label>
                <input id="new-password" name="password" type="password" required minlength="12" autocomplete="new-password"/>
                <FieldMessage error=add_error field="password"/>
                <label for="new-role">"Role"</label>
                <select id="new-role" name="role">
                    <option value="viewer">"viewer — sees everything, changes nothing"</option>
                    <option value="admin" selected=true>"admin — manages applications and tokens"</option>
                    <option value="owner">"owner — also manages administrators"</option>
                </select>
                <FormMessage error=add_error/>
                <button type="submit">"Add administrator"</button>
            </ActionForm>
            })}
        </Frame>
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScopesData {
    pub me: AdminView,
    pub scopes: Vec<ScopeView>,
    pub servers: Vec<ResourceServerView>,
}

#[server(prefix = "/console/fn", endpoint = "scopes")]
pub async fn scopes() -> Result<ScopesData, AppError> {
    let me = crate::server::require_admin().await?;
    let store = &crate::server::context()?.store;
    let scopes = store.list_scopes().await?;
    let servers = store.list_resource_servers().await?;
    Ok(ScopesData { me, scopes, servers })
}

#[server(prefix = "/console/fn", endpoint = "add_scope")]
pub async fn add_scope(name: String, description: String, resource_server: Option<String>) -> Result<(), AppError> {
    let caller = crate::server::caller().await?;
    let ctx = crate::server::context()?;
    let server = resource_server.filter(|s| !s.is_empty());
    keygate::usecase::scopes::add_scope(&ctx.store, &caller, &name, &description, server.as_deref()).await?;
    Ok(())
}

#[server(prefix = "/console/fn", endpoint = "delete_scope")]
pub async fn delete_scope(name: String) -> Result<(), AppError> {
    let caller = crate::server::caller().await?;
    let ctx = crate::server::context()?;
    keygate::usecase::scopes::delete_scope(&ctx.store, &caller, &name).await?;
    Ok(())
}

#[server(prefix = "/console/fn", endpoint = "attach_scope")]
pub async fn attach_scope(name: String, resource_server: Option<String>) -> Result<(), AppError> {
    let caller = crate::server::caller().await?;
    let ctx = crate::server::context()?;
    let server = resource_server.filter(|s| !s.is_empty());
    keygate::usecase::resource_servers::attach_scope(&ctx.store, &caller, &name, server.as_deref()).await?;
    Ok(())
}

#[server(prefix = "/console/fn", endpoint = "add_resource_server")]
pub async fn add_resource_server(name: String, identifier: String) -> Result<(), AppError> {
    let caller = crate::server::caller().await?;
    let ctx = crate::server::context()?;
    keygate::usecase::resource_servers::add_resource_server(&ctx.store, &caller, &name, &identifier).await?;
    Ok(())
}

#[server(prefix = "/console/fn", endpoint = "delete_resource_server")]
pub async fn delete_resource_server(id: i64) -> Result<(), AppError> {
    let caller = crate::server::caller().await?;
    let ctx = crate::server::context()?;
    let id = keygate::ResourceServerId(id);
    keygate::usecase::resource_servers::delete_resource_server(&ctx.store, &caller, id).await?;
    Ok(())
}

/// The choices of a "resource server" select.
fn server_options(servers: &[ResourceServerView], selected: Option<String>) -> impl IntoView {
    let servers = servers.to_vec();
    view! {
        <option value="" selected=selected.is_none()>"No resource server"</option>
        {servers.into_iter().map(|r| {
            let is = selected.as_deref() == Some(r.identifier.as_str());
            view! { <option value=r.identifier.clone() selected=is>{format!("{} ({})", r.name, r.identifier)}</option> }
        }).collect_view()}
    }
}

#[derive(Clone, Copy)]
struct ScopeActions {
    add: ServerAction<AddScope>,
    delete: ServerAction<DeleteScope>,
    attach: ServerAction<AttachScope>,
    add_server: ServerAction<AddResourceServer>,
    delete_server: ServerAction<DeleteResourceServer>,
}

#[component]
pub fn ScopesPage() -> impl IntoView {
    let actions = ScopeActions {
        add: ServerAction::<AddScope>::new(),
        delete: ServerAction::<DeleteScope>::new(),
        attach: ServerAction::<AttachScope>::new(),
        add_server: ServerAction::<AddResourceServer>::new(),
        delete_server: ServerAction::<DeleteResourceServer>::new(),
    };
    let data = Resource::new(
        move || {
            (
                actions.add.version().get(),
                actions.delete.version().get(),
                actions.attach.version().get(),
                actions.add_server.version().get(),
                actions.delete_server.version().get(),
            )
        },
        |_| scopes(),
    );
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || data.get().map(|r| loaded(r, move |d| view! { <ScopesView d=d actions=actions/> }.into_any()))}
        </Suspense>
    }
}

#[component]
fn ScopesView(d: ScopesData, actions: ScopeActions) -> impl IntoView {
    let ScopeActions { add, delete, attach, add_server, delete_server } = actions;
    let error = form_error(add.value(), <AddScope as ServerFn>::PATH);
    let delete_error = form_error(delete.value(), <DeleteScope as ServerFn>::PATH);
    let attach_error = form_error(attach.value(), <AttachScope as ServerFn>::PATH);
    let server_error = form_error(add_server.value(), <AddResourceServer as ServerFn>::PATH);
    let delete_server_error = form_error(delete_server.value(), <DeleteResourceServer as ServerFn>::PATH);
    let can_write = d.me.role.can_write();
    let servers = d.servers.clone();
    let server_name = {
        let servers = d.servers.clone();
        move |identifier: &str| {
            servers
                .iter()
                .find(|r| r.identifier == identifier)
                .map(|r| r.name.clone())
                .unwrap_or_else(|| identifier.to_owned())
        }
    };
    view! {
        <Frame me=d.me.clone()>
            <h1>"Scopes and resource servers"</h1>
            <p class="muted">"A resource server is an API that accepts Keygate tokens; its identifier is the audience (aud) of the tokens meant for it. Each scope belongs to at most one resource server. Keygate's own API is built in."</p>
            <h2>"Resource servers"</h2>
            <FormMessage error=delete_server_error/>
            <FormSaved path={<DeleteResourceServer as ServerFn>::PATH} message="Resource server deleted."/>
            <FormSaved path={<AddResourceServer as ServerFn>::PATH} message="Resource server added."/>
            <div class="table-wrap">
                <table>
                    <thead><tr><th scope="col">"Name"</th><th scope="col">"Identifier (audience)"</th><th scope="col">"Scopes"</th><th scope="col">"Introspection clients"</th><th scope="col"><span class="sr-only">"Actions"</span></th></tr></thead>
                    <tbody>
                        {d.servers.clone().into_iter().map(|r| {
                            let deletable = can_write && !r.builtin;
                            let confirm = format!("Confirm deleting {}", r.name);
                            let clients = if r.introspection_clients.is_empty() { "—".to_string() } else { r.introspection_clients.join(", ") };
                            view! {
                                <tr>
                                    <td data-label="Name">{r.name.clone()}{r.builtin.then(|| view! { " " <span class="badge">"built-in"</span> })}</td>
                                    <td data-label="Identifier"><code class="scope">{r.identifier.clone()}</code></td>
                                    <td data-label="Scopes">{if r.scopes.is_empty() { view! { <span class="muted">"none yet"</span> }.into_any() } else { r.scopes.iter().map(|s| view! { <code>{s.clone()}</code>" " }).collect_view().into_any() }}</td>
                                    <td data-label="Introspection clients">{clients}</td>
                                    <td>
                                        {deletable.then(|| view! {
                                            <details class="confirm">
                                                <summary>"Delete"<span class="sr-only">{format!(" resource server {}", r.name)}</span></summary>
                                                <p class="muted">"Keygate refuses while scopes belong to it; its introspection clients lose the right to introspect its tokens. Tokens issued for it stop reaching it through Keygate's checks."</p>
                                                <ActionForm action=delete_server attr:class="inline-form">
                                                    <input type="hidden" name="id" value=r.id.0.to_string()/>
                                                    <button type="submit" class="danger">{confirm}</button>
                                                </ActionForm>
                                            </details>
                                        })}
                                    </td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
            {can_write.then(|| view! {
                <details class="card" open=server_error.get_untracked().is_some()>
                    <summary>"Add a resource server"</summary>
                    <ActionForm action=add_server attr:class="form">
                        <label for="server-name">"Name"</label>
                        <input id="server-name" name="name" type="text" required maxlength="100" placeholder="Billing API"/>
                        <FieldMessage error=server_error field="name"/>
                        <label for="server-identifier">"Identifier (an absolute URI; it cannot change later)"</label>
                        <input id="server-identifier" name="identifier" type="text" required maxlength="200" placeholder="https://billing.internal/"/>
                        <FieldMessage error=server_error field="identifier"/>
                        <FormMessage error=server_error/>
                        <button type="submit">"Add resource server"</button>
                    </ActionForm>
                </details>
            })}
            <h2>"Scopes"</h2>
            <p class="muted">"Applications are allowed scopes from this catalogue; their tokens carry a subset."</p>
            <FormMessage error=delete_error/>
            <FormMessage error=attach_error/>
            <FormSaved path={<DeleteScope as ServerFn>::PATH} message="Scope deleted."/>
            <FormSaved path={<AttachScope as ServerFn>::PATH} message="Resource server of the scope saved."/>
            <FormSaved path={<AddScope as ServerFn>::PATH} message="Scope added."/>
            <div class="table-wrap">
                <table>
                    <thead><tr><th scope="col">"Scope"</th><th scope="col">"Description"</th><th scope="col">"Resource server"</th><th scope="col">"Kind"</th><th scope="col"><span class="sr-only">"Actions"</span></th></tr></thead>
                    <tbody>
                        {d.scopes.into_iter().map(|s| {
                            let deletable = can_write && !s.builtin;
                            let confirm = format!("Confirm deleting {}", s.name);
                            let name = s.name.clone();
                            let select_id = format!("attach-{}", s.name.replace([':', '.'], "-"));
                            let save_label = format!(" the resource server of {}", s.name);
                            let delete_summary = format!(" scope {}", s.name);
                            let shown_server = s.resource_server.as_deref().map(&server_name);
                            let options = server_options(&servers, s.resource_server.clone());
                            view! {
                                <tr>
                                    <td data-label="Scope"><code>{s.name.clone()}</code></td>
                                    <td data-label="Description">{s.description.clone()}</td>
                                    <td data-label="Resource server">
                                        {if deletable {
                                            view! {
                                                <ActionForm action=attach attr:class="inline-form">
                                                    <input type="hidden" name="name" value=s.name.clone()/>
                                                    <label for=select_id.clone() class="sr-only">{format!("Resource server of {}", s.name)}</label>
                                                    <select id=select_id name="resource_server">{options}</select>
                                                    <button type="submit" class="secondary">"Save"<span class="sr-only">{save_label}</span></button>
                                                </ActionForm>
                                            }.into_any()
                                        } else {
                                            view! { <span>{shown_server.unwrap_or_else(|| "—".into())}</span> }.into_any()
                                        }}
                                    </td>
                                    <td data-label="Kind">{if s.builtin { "built-in" } else { "custom" }}</td>
                                    <td>
                                        {deletable.then(|| view! {
                                            <details class="confirm">
                                                <summary>"Delete"<span class="sr-only">{delete_summary}</span></summary>
                                                <p class="muted">"Keygate refuses while an application is allowed this scope (it names them); take it from those applications first."</p>
                                                <ActionForm action=delete attr:class="inline-form">
                                                    <input type="hidden" name="name" value=name/>
                                                    <button type="submit" class="danger">{confirm}</button>
                                                </ActionForm>
                                            </details>
                                        })}
                                    </td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
            {can_write.then(|| view! {
                <h2>"Add a scope"</h2>
                <ActionForm action=add attr:class="card form">
                    <label for="scope-name">"Name"</label>
                    <input id="scope-name" name="name" type="text" required placeholder="billing:read"/>
                    <FieldMessage error=error field="name"/>
                    <label for="scope-description">"Description"</label>
                    <input id="scope-description" name="description" type="text" required/>
                    <FieldMessage error=error field="description"/>
                    <label for="scope-server">"Resource server"</label>
                    <select id="scope-server" name="resource_server">{server_options(&d.servers, None)}</select>
                    <FieldMessage error=error field="resource_server"/>
                    <FormMessage error=error/>
                    <button type="submit">"Add scope"</button>
                </ActionForm>
            })}
        </Frame>
    }
}
