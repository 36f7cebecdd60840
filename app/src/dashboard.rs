//! The signed-in landing page: counts of applications and active tokens,
//! and the latest audit events.

use crate::components::RelTime;
use crate::error::AppError;
use crate::layout::Frame;
use keygate::{AdminView, AuditEventView, DashboardStats};
use leptos::prelude::*;
use leptos_router::components::Redirect;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DashboardData {
    pub admin: AdminView,
    pub stats: DashboardStats,
    pub recent: Vec<AuditEventView>,
}

#[server(prefix = "/console/fn", endpoint = "dashboard")]
pub async fn dashboard() -> Result<DashboardData, AppError> {
    let admin = crate::server::require_admin().await?;
    let ctx = crate::server::context()?;
    let now = crate::server::now();
    let stats = ctx.store.dashboard_stats(now).await?;
    let recent = ctx.store.recent_audit_events(10).await?;
    Ok(DashboardData { admin, stats, recent })
}

#[component]
pub fn DashboardPage() -> impl IntoView {
    let data = Resource::new(|| (), |_| dashboard());
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || {
                data.get()
                    .map(|r| match r {
                        Ok(d) => view! { <DashboardView d=d/> }.into_any(),
                        Err(AppError::Unauthenticated) => view! { <Redirect path="/login"/> }.into_any(),
                        Err(e) => view! { <p class="form-error" role="alert">{e.to_string()}</p> }.into_any(),
                    })
            }}
        </Suspense>
    }
}

#[component]
fn DashboardView(d: DashboardData) -> impl IntoView {
    let DashboardData { admin, stats, recent } = d;
    view! {
        <Frame me=admin>
            <h1>"Overview"</h1>
            <section class="stats" aria-label="Counts">
                <div class="stat">
                    <span class="figure" data-testid="application-count">{stats.applications}</span>
                    <span class="label">"API applications"</span>
                    <span class="sub">{format!("{} enabled", stats.enabled_applications)}</span>
                </div>
                <div class="stat">
                    <span class="figure" data-testid="active-token-count">{stats.active_tokens}</span>
                    <span class="label">"active tokens"</span>
                </div>
                <div class="stat">
                    <span class="figure">{stats.audit_events_24h}</span>
                    <span class="label">"audit events in 24 h"</span>
                </div>
            </section>
            <h2>"Latest activity"</h2>
            {if recent.is_empty() {
                view! { <p class="muted">"Nothing has happened yet."</p> }.into_any()
            } else {
                view! {
                    <ul class="events">
                        {recent
                            .into_iter()
                            .map(|e| {
                                view! {
                                    <li>
                                        <RelTime at=e.at/>
                                        " "
                                        <span class="sentence">{keygate::audit_text::describe(&e)}</span>
                                        " "
                                        <code class="action">{e.action.clone()}</code>
                                    </li>
                                }
                            })
                            .collect_view()}
                    </ul>
                }
                    .into_any()
            }}
            <p><a href="/audit">"The whole audit log →"</a></p>
        </Frame>
    }
}
