//! Webhooks: the list with an add form, and each webhook's page with its
//! settings, a test event and the delivery log.

#[cfg(feature = "ssr")]
use crate::apps::{webhook_flash_subject, FlashKind};
use crate::apps::{Flash, FlashPanel};
use crate::components::{form_error, FieldMessage, FormMessage, FormSaved, RelTime};
use crate::error::AppError;
use crate::layout::{loaded, Frame};
use keygate::{AdminView, DeliveryState, DeliveryView, WebhookView};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_router::hooks::use_params_map;
use serde::{Deserialize, Serialize};

/// The choices offered as boxes: the alerts, then whole families.
pub const EVENT_CHOICES: &[(&str, &str)] = &[
    ("token.expiring", "A named token expires within 7 days (alert)"),
    ("secret.expiring", "A previous secret stops working within 24 hours (alert)"),
    ("application.dormant", "An application has gone unused (alert)"),
    ("application", "Every application event (created, changed, secret regenerated, …)"),
    ("token", "Every token event (minted, revoked, refused)"),
    ("client", "Failed client authentications"),
    ("admin", "Administrator events (sign-ins, roles)"),
    ("scope", "Scope catalogue changes"),
    ("resource_server", "Resource server changes"),
    ("signing_key", "Signing key rotations"),
    ("webhook", "Webhook changes"),
];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhooksData {
    pub me: AdminView,
    pub webhooks: Vec<WebhookView>,
}

#[server(prefix = "/console/fn", endpoint = "webhooks")]
pub async fn webhooks() -> Result<WebhooksData, AppError> {
    let me = crate::server::require_admin().await?;
    let webhooks = crate::server::context()?.store.list_webhooks().await?;
    Ok(WebhooksData { me, webhooks })
}

/// Boxes ticked plus actions typed, as one list.
#[cfg(feature = "ssr")]
fn event_list(events: Option<Vec<String>>, other_events: &str) -> Vec<String> {
    let mut all = events.unwrap_or_default();
    all.extend(other_events.split([' ', ',', '\n']).map(str::trim).filter(|e| !e.is_empty()).map(str::to_owned));
    all
}

#[server(prefix = "/console/fn", endpoint = "create_webhook")]
pub async fn create_webhook(
    url: String,
    description: String,
    events: Option<Vec<String>>,
    other_events: String,
) -> Result<(), AppError> {
    use keygate::usecase::webhooks::{create_webhook, WebhookSettings};
    let caller = crate::server::caller().await?;
    let ctx = crate::server::context()?;
    let settings = WebhookSettings { url, events: event_list(events, &other_events), description };
    let (hook, secret) = create_webhook(&ctx.store, &caller, &ctx.kek, settings).await?;
    crate::apps::put_flash(Flash {
        application_id: webhook_flash_subject(hook.id.0),
        kind: FlashKind::WebhookSecret,
        value: secret.expose().to_owned(),
        note: "The webhook was added. Verify every delivery's webhook-signature header with this secret (Standard Webhooks)."
            .into(),
    })
    .await?;
    leptos_axum::redirect(&format!("/webhooks/{}", hook.id));
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookDetail {
    pub me: AdminView,
    pub webhook: WebhookView,
    pub deliveries: Vec<DeliveryView>,
    pub flash: Option<Flash>,
}

#[server(prefix = "/console/fn", endpoint = "webhook_detail")]
pub async fn load_webhook(id: i64) -> Result<WebhookDetail, AppError> {
    let me = crate::server::require_admin().await?;
    let store = &crate::server::context()?.store;
    let webhook = store.require_webhook(keygate::WebhookId(id)).await?;
    let deliveries = store.deliveries(webhook.id, 50).await?;
    let flash = crate::apps::take_flash(webhook_flash_subject(id)).await?;
    Ok(WebhookDetail { me, webhook, deliveries, flash })
}

#[server(prefix = "/console/fn", endpoint = "update_webhook")]
pub async fn update_webhook(
    id: i64,
    url: String,
    description: String,
    events: Option<Vec<String>>,
    other_events: String,
    enabled: Option<String>,
) -> Result<(), AppError> {
    use keygate::usecase::webhooks::{update_webhook, WebhookChange};
    let caller = crate::server::caller().await?;
    let ctx = crate::server::context()?;
    let change = WebhookChange {
        url: Some(url),
        events: Some(event_list(events, &other_events)),
        description: Some(description),
        enabled: Some(enabled.is_some()),
    };
    update_webhook(&ctx.store, &caller, keygate::WebhookId(id), change).await?;
    Ok(())
}

#[server(prefix = "/console/fn", endpoint = "test_webhook")]
pub async fn test_webhook(id: i64) -> Result<(), AppError> {
    let caller = crate::server::caller().await?;
    let ctx = crate::server::context()?;
    keygate::usecase::webhooks::send_test_event(&ctx.store, &caller, keygate::WebhookId(id)).await?;
    // Give the sender a moment, so the page shows the outcome.
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    Ok(())
}

#[server(prefix = "/console/fn", endpoint = "retry_delivery")]
pub async fn retry_delivery(id: i64, delivery_id: i64) -> Result<(), AppError> {
    let caller = crate::server::caller().await?;
    let ctx = crate::server::context()?;
    keygate::usecase::webhooks::retry_delivery(
        &ctx.store,
        &caller,
        keygate::WebhookId(id),
        keygate::DeliveryId(delivery_id),
    )
    .await?;
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    Ok(())
}

#[server(prefix = "/console/fn", endpoint = "delete_webhook")]
pub async fn delete_webhook(id: i64, confirm: Option<String>) -> Result<(), AppError> {
    let caller = crate::server::caller().await?;
    if confirm.is_none() {
        return Err(AppError::invalid("confirm", "tick the box to confirm removing the webhook and its delivery log"));
    }
    let ctx = crate::server::context()?;
    keygate::usecase::webhooks::delete_webhook(&ctx.store, &caller, keygate::WebhookId(id)).await?;
    leptos_axum::redirect("/webhooks");
    Ok(())
}

// ------------------------------------------------------------------- views

/// The event boxes (ticked as `selected` says) and a field for the rest.
#[component]
fn EventFields(error: Signal<Option<AppError>>, selected: Vec<String>, prefix: &'static str) -> impl IntoView {
    let other: Vec<String> = selected.iter().filter(|e| !EVENT_CHOICES.iter().any(|(v, _)| v == *e)).cloned().collect();
    let other_id = format!("{prefix}-other-events");
    view! {
        <fieldset>
            <legend>"Events"</legend>
            {EVENT_CHOICES.iter().map(|(value, label)| {
                let id = format!("{prefix}-event-{}", value.replace(['.', '_'], "-"));
                let checked = selected.iter().any(|s| s == value);
                view! {
                    <div class="check">
                        <input type="checkbox" id=id.clone() name="events[]" value=*value checked=checked/>
                        <label for=id><code>{*value}</code>" — "{*label}</label>
                    </div>
                }
            }).collect_view()}
            <label for=other_id.clone()>"Other audit actions (space-separated, such as token.revoked)"</label>
            <input id=other_id type="text" name="other_events" value=other.join(" ")/>
        </fieldset>
        <FieldMessage error=error field="events"/>
    }
}

#[component]
pub fn WebhooksPage() -> impl IntoView {
    let create = ServerAction::<CreateWebhook>::new();
    let data = Resource::new(move || create.version().get(), |_| webhooks());
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || data.get().map(|r| loaded(r, move |d| view! { <WebhooksView d=d create=create/> }.into_any()))}
        </Suspense>
    }
}

fn state_badge(state: DeliveryState) -> AnyView {
    match state {
        DeliveryState::Delivered => view! { <span class="badge ok">"delivered"</span> }.into_any(),
        DeliveryState::Pending => view! { <span class="badge warn">"pending"</span> }.into_any(),
        DeliveryState::Failed => view! { <span class="badge off">"failed"</span> }.into_any(),
    }
}

#[component]
fn WebhooksView(d: WebhooksData, create: ServerAction<CreateWebhook>) -> impl IntoView {
    let error = form_error(create.value(), <CreateWebhook as ServerFn>::PATH);
    let can_write = d.me.role.can_write();
    view! {
        <Frame me=d.me.clone()>
            <h1>"Webhooks"</h1>
            <FormSaved path={<DeleteWebhook as ServerFn>::PATH} message="Webhook removed; its pending deliveries were dropped."/>
            <p class="muted">"Keygate posts audit events and lifecycle alerts to these URLs, signed as the Standard Webhooks specification says (webhook-id, webhook-timestamp, webhook-signature). A delivery that fails is retried with a growing delay for about 27 hours; deliveries never carry a secret or a token."</p>
            {if d.webhooks.is_empty() {
                view! { <p class="empty">"No webhooks yet."</p> }.into_any()
            } else {
                view! {
                    <div class="table-wrap">
                        <table data-testid="webhooks">
                            <caption class="sr-only">"Webhooks"</caption>
                            <thead><tr>
                                <th scope="col">"URL"</th><th scope="col">"Events"</th><th scope="col">"Status"</th>
                                <th scope="col">"Pending"</th><th scope="col">"Failed"</th><th scope="col">"Last delivered"</th>
                            </tr></thead>
                            <tbody>
                                {d.webhooks.into_iter().map(|w| view! {
                                    <tr>
                                        <td data-label="URL"><a href=format!("/webhooks/{}", w.id)>{w.url.clone()}</a>
                                            {(!w.description.is_empty()).then(|| view! { <div class="muted small">{w.description.clone()}</div> })}</td>
                                        <td data-label="Events">{w.events.iter().map(|e| view! { <code class="scope">{e.clone()}</code>" " }).collect_view()}</td>
                                        <td data-label="Status">{if w.enabled { view! { <span class="badge ok">"enabled"</span> }.into_any() } else { view! { <span class="badge off">"disabled"</span> }.into_any() }}</td>
                                        <td data-label="Pending">{w.pending}</td>
                                        <td data-label="Failed">{w.failed}</td>
                                        <td data-label="Last delivered">{match w.last_delivered_at { Some(at) => view! { <RelTime at=at/> }.into_any(), None => view! { <span class="muted">"never"</span> }.into_any() }}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }.into_any()
            }}
            {can_write.then(|| view! {
                <h2>"Add a webhook"</h2>
                <ActionForm action=create attr:class="card form wide">
                    <label for="webhook-url">"URL"</label>
                    <input id="webhook-url" name="url" type="url" required maxlength="2000" placeholder="https://hooks.internal/keygate"/>
                    <FieldMessage error=error field="url"/>
                    <label for="webhook-description">"Description"</label>
                    <input id="webhook-description" name="description" type="text" maxlength="500"/>
                    <FieldMessage error=error field="description"/>
                    <EventFields error=error selected=vec!["token.expiring".into(), "secret.expiring".into(), "application.dormant".into()] prefix="new"/>
                    <FormMessage error=error/>
                    <button type="submit">"Add webhook"</button>
                </ActionForm>
            })}
        </Frame>
    }
}

#[component]
pub fn WebhookDetailPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.with(|p| p.get("id").and_then(|s| s.parse::<i64>().ok()).unwrap_or(0));
    let update = ServerAction::<UpdateWebhook>::new();
    let test = ServerAction::<TestWebhook>::new();
    let retry = ServerAction::<RetryDelivery>::new();
    let delete = ServerAction::<DeleteWebhook>::new();
    let data = Resource::new(
        move || (id(), update.version().get(), test.version().get(), retry.version().get()),
        |(id, ..)| load_webhook(id),
    );
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || data.get().map(|r| loaded(r, move |d| view! {
                <WebhookDetailView d=d update=update test=test retry=retry delete=delete/>
            }.into_any()))}
        </Suspense>
    }
}

#[component]
fn WebhookDetailView(
    d: WebhookDetail,
    update: ServerAction<UpdateWebhook>,
    test: ServerAction<TestWebhook>,
    retry: ServerAction<RetryDelivery>,
    delete: ServerAction<DeleteWebhook>,
) -> impl IntoView {
    let update_error = form_error(update.value(), <UpdateWebhook as ServerFn>::PATH);
    let test_error = form_error(test.value(), <TestWebhook as ServerFn>::PATH);
    let retry_error = form_error(retry.value(), <RetryDelivery as ServerFn>::PATH);
    let delete_error = form_error(delete.value(), <DeleteWebhook as ServerFn>::PATH);
    let w = d.webhook.clone();
    let can_write = d.me.role.can_write();
    let id = w.id.0.to_string();
    let test_id = id.clone();
    let update_id = id.clone();
    view! {
        <Frame me=d.me.clone() title=w.url.clone()>
            <p><a href="/webhooks">"← Webhooks"</a></p>
            <h1 data-testid="webhook-url">{w.url.clone()}</h1>
            {d.flash.clone().map(|f| view! { <FlashPanel flash=f/> })}
            <section class="card">
                <dl class="facts">
                    <dt>"Events"</dt><dd>{w.events.iter().map(|e| view! { <code class="scope">{e.clone()}</code>" " }).collect_view()}</dd>
                    <dt>"Status"</dt><dd>{if w.enabled { "enabled" } else { "disabled: nothing is sent, the queue waits" }}</dd>
                    <dt>"Pending deliveries"</dt><dd>{w.pending}</dd>
                    <dt>"Failed deliveries"</dt><dd>{w.failed}</dd>
                    <dt>"Added"</dt><dd><RelTime at=w.created_at/></dd>
                    <dt>"Description"</dt><dd>{if w.description.is_empty() { "—".to_string() } else { w.description.clone() }}</dd>
                </dl>
                {can_write.then(|| view! {
                    <ActionForm action=test attr:class="inline-form">
                        <input type="hidden" name="id" value=test_id/>
                        <button type="submit" class="secondary">"Send a test event"</button>
                    </ActionForm>
                    <FormMessage error=test_error/>
                    <FormSaved path={<TestWebhook as ServerFn>::PATH} message="Test event sent: its outcome is in the delivery log below."/>
                })}
            </section>

            <h2>"Delivery log"</h2>
            <FormMessage error=retry_error/>
            <FormSaved path={<RetryDelivery as ServerFn>::PATH} message="Delivery sent again: its outcome is in the log."/>
            {if d.deliveries.is_empty() {
                view! { <p class="empty">"Nothing sent yet."</p> }.into_any()
            } else {
                view! {
                    <div class="table-wrap">
                        <table data-testid="deliveries">
                            <caption class="sr-only">"Deliveries, newest first"</caption>
                            <thead><tr>
                                <th scope="col">"Event"</th><th scope="col">"Queued"</th><th scope="col">"State"</th>
                                <th scope="col">"Attempts"</th>
                                {can_write.then(|| view! { <th scope="col"><span class="sr-only">"Actions"</span></th> })}
                            </tr></thead>
                            <tbody>
                                {d.deliveries.into_iter().map(|dl| {
                                    let label = format!("Retry delivery {} ({})", dl.id, dl.event_type);
                                    view! {
                                        <tr data-delivery=dl.id.0.to_string() data-state=dl.state.as_str()>
                                            <td data-label="Event"><code>{dl.event_type.clone()}</code><div class="muted small">{dl.message_id.clone()}</div></td>
                                            <td data-label="Queued"><RelTime at=dl.created_at/></td>
                                            <td data-label="State">{state_badge(dl.state)}
                                                {dl.next_attempt_at.filter(|_| dl.state == DeliveryState::Pending).map(|at| view! { <div class="muted small">"next attempt "<RelTime at=at/></div> })}
                                            </td>
                                            <td data-label="Attempts">
                                                {if dl.attempts.is_empty() {
                                                    view! { <span class="muted">"none yet"</span> }.into_any()
                                                } else {
                                                    view! {
                                                        <ol class="attempts">
                                                            {dl.attempts.iter().map(|a| view! {
                                                                <li>
                                                                    <RelTime at=a.at/>" · "
                                                                    {match (a.status, &a.error) {
                                                                        (Some(s), _) => format!("HTTP {s}"),
                                                                        (None, Some(e)) => e.clone(),
                                                                        (None, None) => "no answer".into(),
                                                                    }}
                                                                    {format!(" · {} ms", a.duration_ms)}
                                                                    {(!a.response_excerpt.is_empty()).then(|| view! { <div><code class="excerpt">{a.response_excerpt.clone()}</code></div> })}
                                                                </li>
                                                            }).collect_view()}
                                                        </ol>
                                                    }.into_any()
                                                }}
                                            </td>
                                            {can_write.then(|| view! {
                                                <td>
                                                    <ActionForm action=retry attr:class="inline-form">
                                                        <input type="hidden" name="id" value=dl.webhook_id.0.to_string()/>
                                                        <input type="hidden" name="delivery_id" value=dl.id.0.to_string()/>
                                                        <button type="submit" class="secondary" aria-label=label>"Retry now"</button>
                                                    </ActionForm>
                                                </td>
                                            })}
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }.into_any()
            }}

            {can_write.then(move || view! {
                <h2>"Settings"</h2>
                <ActionForm action=update attr:class="card form wide">
                    <input type="hidden" name="id" value=update_id/>
                    <label for="webhook-url">"URL"</label>
                    <input id="webhook-url" name="url" type="url" required maxlength="2000" value=w.url.clone()/>
                    <FieldMessage error=update_error field="url"/>
                    <label for="webhook-description">"Description"</label>
                    <input id="webhook-description" name="description" type="text" maxlength="500" value=w.description.clone()/>
                    <FieldMessage error=update_error field="description"/>
                    <EventFields error=update_error selected=w.events.clone() prefix="edit"/>
                    <div class="check">
                        <input type="checkbox" id="webhook-enabled" name="enabled" value="yes" checked=w.enabled/>
                        <label for="webhook-enabled">"Enabled"</label>
                    </div>
                    <FormMessage error=update_error/>
                    <FormSaved path={<UpdateWebhook as ServerFn>::PATH} message="Webhook saved."/>
                    <button type="submit">"Save webhook"</button>
                </ActionForm>
                <h2>"Danger zone"</h2>
                <ActionForm action=delete attr:class="card danger form">
                    <input type="hidden" name="id" value=id/>
                    <p>"Removing the webhook drops its pending deliveries and its log. The receiver gets nothing more."</p>
                    <div class="check">
                        <input type="checkbox" id="confirm-delete-webhook" name="confirm" value="yes" required/>
                        <label for="confirm-delete-webhook">"Yes, remove this webhook"</label>
                    </div>
                    <FieldMessage error=delete_error field="confirm"/>
                    <FormMessage error=delete_error/>
                    <button type="submit" class="danger">"Remove webhook"</button>
                </ActionForm>
            })}
        </Frame>
    }
}
