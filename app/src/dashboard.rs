//! The signed-in landing page: counts of applications and active tokens,
//! and the latest audit events.

use crate::charts::{ActivityCharts, RangeTabs};
use crate::components::RelTime;
use crate::error::AppError;
use crate::layout::Frame;
use keygate::{AdminView, AuditEventView, DashboardStats, NeedsAttention};
use leptos::prelude::*;
use leptos_router::components::Redirect;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DashboardData {
    pub admin: AdminView,
    pub stats: DashboardStats,
    pub recent: Vec<AuditEventView>,
    pub attention: NeedsAttention,
    pub activity: keygate::activity::ActivityOverview,
}

#[server(prefix = "/console/fn", endpoint = "dashboard")]
pub async fn dashboard(range: Option<String>) -> Result<DashboardData, AppError> {
    let admin = crate::server::require_admin().await?;
    let ctx = crate::server::context()?;
    let now = crate::server::now();
    let stats = ctx.store.dashboard_stats(now).await?;
    let recent = ctx.store.recent_audit_events(10).await?;
    let attention = ctx.store.needs_attention(now, ctx.dormant_after_days, PANEL_LINES).await?;
    let range = range.as_deref().and_then(keygate::activity::ActivityRange::parse).unwrap_or_default();
    let activity = keygate::usecase::activity::overview(&ctx.store, range, now).await?;
    Ok(DashboardData { admin, stats, recent, attention, activity })
}

#[component]
pub fn DashboardPage() -> impl IntoView {
    let query = leptos_router::hooks::use_query_map();
    let data = Resource::new(move || query.with(|q| q.get("range")), dashboard);
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
    let DashboardData { admin, stats, recent, attention, activity } = d;
    let admin_can_write = admin.role.can_write();
    view! {
        <Frame me=admin>
            <h1>"Overview"</h1>
            {(stats.applications == 0).then(|| view! { <crate::apps::GettingStarted can_write=admin_can_write/> })}
            <section class="stats" aria-label="Counts">
                <a class="stat" href="/applications">
                    <span class="figure" data-testid="application-count">{stats.applications}</span>
                    <span class="label">"API applications"</span>
                    <span class="sub">{format!("{} enabled", stats.enabled_applications)}</span>
                </a>
                <a class="stat" href="/applications?sort=active_tokens">
                    <span class="figure" data-testid="active-token-count">{stats.active_tokens}</span>
                    <span class="label">"active tokens"</span>
                    <span class="sub">"by application"</span>
                </a>
                <a class="stat" href="/audit">
                    <span class="figure">{stats.audit_events_24h}</span>
                    <span class="label">"audit events in 24 h"</span>
                    <span class="sub">"the audit log"</span>
                </a>
            </section>
            <AttentionPanel a=attention/>
            <section class="activity" id="activity" aria-labelledby="activity-title">
                <h2 id="activity-title">"Activity of all applications"</h2>
                <RangeTabs href="/".to_string() current=activity.series.range/>
                <ActivityCharts series=activity.series.clone() subject="All applications"/>
                <div class="leaders">
                    <Leaders title="Busiest applications" testid="busiest" rows=activity.busiest.clone() refused=false/>
                    <Leaders title="Most refused applications" testid="most-refused" rows=activity.most_refused.clone() refused=true/>
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
                                        <crate::audit::Sentence event=e.clone()/>
                                        " "
                                        <crate::components::ActionCode action=e.action.clone()/>
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

/// The five busiest (or most refused) applications of the range.
#[component]
fn Leaders(
    title: &'static str,
    testid: &'static str,
    rows: Vec<keygate::activity::ApplicationActivity>,
    refused: bool,
) -> impl IntoView {
    view! {
        <section class="card" data-testid=testid>
            <h3>{title}</h3>
            {if rows.is_empty() {
                view! { <p class="muted">{if refused { "No refusals in this range." } else { "No activity in this range." }}</p> }.into_any()
            } else {
                view! {
                    <table>
                        <caption class="sr-only">{title}</caption>
                        <thead><tr>
                            <th scope="col">"Application"</th>
                            {if refused {
                                view! { <th scope="col" class="num">"Refusals"</th> }.into_any()
                            } else {
                                view! { <th scope="col" class="num">"Uses"</th><th scope="col" class="num">"Issued"</th> }.into_any()
                            }}
                        </tr></thead>
                        <tbody>
                            {rows.into_iter().map(|r| view! {
                                <tr>
                                    <td><a href=format!("/applications/{}#activity", r.application_id)>{r.application_name}</a></td>
                                    {if refused {
                                        view! { <td class="num">{r.refused}</td> }.into_any()
                                    } else {
                                        view! { <td class="num">{r.used}</td><td class="num">{r.issued}</td> }.into_any()
                                    }}
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}

/// Lines of one kind the panel shows; a count stands for the rest (an
/// installation with thousands of dormant applications gets a panel, not
/// a page of thousands of lines).
const PANEL_LINES: usize = 20;

/// "The first 20 of 4980 dormant applications", before a kind's lines
/// when there are more than the panel shows, with where to see them all:
/// a console page if one lists them, else the API.
fn more(total: i64, what: &'static str, listed_at: Option<&'static str>) -> Option<impl IntoView> {
    (total > PANEL_LINES as i64).then(|| {
        let whole = match listed_at {
            Some(href) => view! { "the "<a href=href>"Applications page lists all of them"</a>"." }.into_any(),
            None => view! { <code>"GET /api/v1/attention?limit=10000"</code>" lists up to 10,000." }.into_any(),
        };
        view! {
            <li class="muted" data-kind="more">
                {format!("The first {PANEL_LINES} of {total} {what} are below; ")}
                {whole}
            </li>
        }
    })
}

/// Named tokens about to expire, overlaps about to end, dormant
/// applications and disabled ones still holding tokens: each line links
/// to the page where it is dealt with.
#[component]
fn AttentionPanel(a: NeedsAttention) -> impl IntoView {
    if a.is_empty() {
        return view! {
            <section class="card attention" aria-labelledby="attention-title" data-testid="attention">
                <h2 id="attention-title">"Needs attention"</h2>
                <p class="muted">"Nothing needs attention: no token expires within 7 days, no overlap ends within 24 hours, every application was used in the last "{a.dormant_after_days}" days."</p>
            </section>
        }
        .into_any();
    }
    let app_link = |id: keygate::ApplicationId| format!("/applications/{id}");
    view! {
        <section class="card attention" aria-labelledby="attention-title" data-testid="attention">
            <h2 id="attention-title">"Needs attention"</h2>
            <ul>
                {more(a.totals.expiring_tokens, "named tokens expiring", None)}
                {a.expiring_tokens.into_iter().map(|t| view! {
                    <li data-kind="token-expiring">"Token "<strong>{format!("\"{}\"", t.name)}</strong>" of "
                        <a href=app_link(t.application_id)>{t.application_name}</a>" expires "<RelTime at=t.expires_at/>
                        " — mint a replacement and hand it over before then."</li>
                }).collect_view()}
                {more(a.totals.ending_overlaps, "overlaps ending", None)}
                {a.ending_overlaps.into_iter().map(|s| view! {
                    <li data-kind="overlap-ending">"The previous secret of "<a href=app_link(s.application_id)>{s.application_name}</a>
                        " stops working "<RelTime at=s.expires_at/>" — make sure every client has the new one."</li>
                }).collect_view()}
                {more(a.totals.dormant_applications, "dormant applications", Some("/applications?status=dormant"))}
                {a.dormant_applications.into_iter().map(|d| view! {
                    <li data-kind="dormant"><a href=app_link(d.application_id)>{d.application_name}</a>" has not been used "
                        {match d.last_used_at {
                            Some(at) => view! { "since "<RelTime at=at/> }.into_any(),
                            None => view! { "since it was created "<RelTime at=d.created_at/> }.into_any(),
                        }}
                        {format!(" (more than {} days) — disable it if nobody needs it.", a.dormant_after_days)}</li>
                }).collect_view()}
                {more(a.totals.disabled_with_tokens, "disabled applications holding tokens", None)}
                {a.disabled_with_tokens.into_iter().map(|d| view! {
                    <li data-kind="disabled-with-tokens"><a href=app_link(d.application_id)>{d.application_name}</a>
                        {format!(" is disabled but holds {} valid token(s) — revoke them on its page.", d.active_tokens)}</li>
                }).collect_view()}
            </ul>
        </section>
    }
    .into_any()
}
