//! The audit log page: newest first, filters, pages, readable sentences.

use crate::components::{url_encode, RelTime};
use crate::error::AppError;
use crate::layout::{loaded, Frame};
use keygate::{AdminView, AuditEventView};
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
const PER_PAGE: i64 = 50;

/// Families and actions offered in the filter.
pub const ACTIONS: &[(&str, &str)] = &[
    ("", "All actions"),
    ("application", "Applications (all)"),
    ("application.secret_regenerated", "Secret regenerated"),
    ("token", "Tokens (all)"),
    ("refusals", "All refusals"),
    ("token.refused", "Refused token uses"),
    ("client.authentication_failed", "Failed client authentication"),
    ("application.rate_limited", "Rate limited"),
    ("application.scope_refused", "Refused scopes"),
    ("token.evicted", "Tokens revoked by the cap"),
    ("admin", "Administrators and sign-ins"),
    ("scope", "Scopes"),
];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditPage {
    pub me: AdminView,
    pub items: Vec<AuditEventView>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
    /// Set when the application filter named no application.
    pub unknown_application: bool,
}

#[server(prefix = "/console/fn", endpoint = "audit_events")]
pub async fn audit_events(
    application: String,
    action: String,
    from: String,
    to: String,
    page: i64,
) -> Result<AuditPage, AppError> {
    use keygate::store::AuditQuery;
    let me = crate::server::require_admin().await?;
    let ctx = crate::server::context()?;
    let day = |raw: &str, field: &str| -> Result<Option<i64>, AppError> {
        if raw.trim().is_empty() {
            return Ok(None);
        }
        let format = time::macros::format_description!("[year]-[month]-[day]");
        time::Date::parse(raw.trim(), &format)
            .map(|d| Some(d.midnight().assume_utc().unix_timestamp()))
            .map_err(|_| AppError::invalid(field, "dates are YYYY-MM-DD"))
    };
    let since = day(&from, "from")?;
    let until = day(&to, "to")?.map(|t| t + 86_400);
    let q = AuditQuery {
        application_id: None,
        application_match: Some(application.clone()).filter(|a| !a.trim().is_empty()),
        action: Some(action).filter(|a| !a.is_empty()),
        since,
        until,
        page,
        per_page: PER_PAGE,
    };
    let p = ctx.store.list_audit_events(&q).await?;
    let unknown_application = p.total == 0 && q.application_match.is_some();
    Ok(AuditPage { me, items: p.items, total: p.total, page: p.page, per_page: p.per_page, unknown_application })
}

#[component]
pub fn AuditLogPage() -> impl IntoView {
    let query = use_query_map();
    let params = move || {
        query.with(|q| {
            (
                q.get("application").unwrap_or_default(),
                q.get("action").unwrap_or_default(),
                q.get("from").unwrap_or_default(),
                q.get("to").unwrap_or_default(),
                q.get("page").and_then(|p| p.parse::<i64>().ok()).unwrap_or(1).max(1),
            )
        })
    };
    let data = Resource::new(params, |(a, act, f, t, p)| audit_events(a, act, f, t, p));
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || data.get().map(|r| loaded(r, |p| view! { <AuditView p=p/> }.into_any()))}
        </Suspense>
    }
}

/// An event's sentence, the application's name in it linking to its page
/// while the application exists.
#[component]
pub fn Sentence(event: keygate::AuditEventView) -> impl IntoView {
    let sentence = keygate::audit_text::describe(&event);
    let linked = match (event.application_id, event.target.as_deref()) {
        (Some(id), Some(name)) if !name.is_empty() => {
            sentence.split_once(name).map(|(before, after)| (id, name.to_owned(), before.to_owned(), after.to_owned()))
        }
        _ => None,
    };
    match linked {
        Some((id, name, before, after)) => view! {
            <span class="sentence">{before}<a href=format!("/applications/{id}")>{name}</a>{after}</span>
        }
        .into_any(),
        None => view! { <span class="sentence">{sentence}</span> }.into_any(),
    }
}

#[component]
fn AuditView(p: AuditPage) -> impl IntoView {
    let query = use_query_map();
    let get = move |k: &str| query.with_untracked(|m| m.get(k).unwrap_or_default());
    let (application, action, from, to) = (get("application"), get("action"), get("from"), get("to"));
    let pages = ((p.total + p.per_page - 1) / p.per_page).max(1);
    let link = {
        let base = format!(
            "/audit?application={}&action={}&from={}&to={}",
            url_encode(&application),
            url_encode(&action),
            url_encode(&from),
            url_encode(&to)
        );
        move |page: i64| format!("{base}&page={page}")
    };
    view! {
        <Frame me=p.me.clone()>
            <h1>"Audit log"</h1>
            <form method="get" action="/audit" class="filters" role="search">
                <span class="field">
                    <label for="f-application">"Application"</label>
                    <input id="f-application" name="application" type="text" placeholder="Part of a name or client ID" value=application.clone()/>
                </span>
                <span class="field">
                    <label for="f-action">"Action"</label>
                    <select id="f-action" name="action">
                        {ACTIONS.iter().map(|(v, l)| view! { <option value=*v selected=action == *v>{*l}</option> }).collect_view()}
                    </select>
                </span>
                <span class="field">
                    <label for="f-from">"From"</label>
                    <input id="f-from" name="from" type="date" value=from.clone()/>
                </span>
                <span class="field">
                    <label for="f-to">"To"</label>
                    <input id="f-to" name="to" type="date" value=to.clone()/>
                </span>
                <button type="submit">"Filter"</button>
            </form>
            {p.unknown_application.then(|| view! { <p class="notice" role="status">{format!("No event concerns an application whose name or client ID contains \"{application}\".")}</p> })}
            <p class="muted">{format!("{} event(s)", p.total)}</p>
            <ul class="events" data-testid="audit-events">
                {p.items.into_iter().map(|e| {
                    view! {
                        <li>
                            <RelTime at=e.at/>
                            " "
                            <Sentence event=e.clone()/>
                            " "
                            <crate::components::ActionCode action=e.action.clone()/>
                            {e.client_ip.clone().map(|ip| view! { <span class="muted small">{format!(" from {ip}")}</span> })}
                        </li>
                    }
                }).collect_view()}
            </ul>
            <nav class="pager" aria-label="Pages">
                {(p.page > 1).then(|| view! { <a href=link(p.page - 1) rel="prev">"← Newer"</a> })}
                <span>{format!("Page {} of {}", p.page, pages)}</span>
                {(p.page < pages).then(|| view! { <a href=link(p.page + 1) rel="next">"Older →"</a> })}
            </nav>
        </Frame>
    }
}
