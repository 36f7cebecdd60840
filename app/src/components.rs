//! Small pieces used across pages.

use crate::error::AppError;
use keygate::time_fmt;
use leptos::prelude::*;

/// Marks the page being rendered `Cache-Control: no-store`: it shows a
/// secret once (or a one-time code), so no cache may keep it.
pub fn no_store_page() {
    #[cfg(feature = "ssr")]
    if let Some(r) = use_context::<leptos_axum::ResponseOptions>() {
        r.insert_header(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    }
}

pub fn now_seconds() -> i64 {
    #[cfg(feature = "hydrate")]
    {
        (js_sys::Date::now() / 1000.0) as i64
    }
    #[cfg(not(feature = "hydrate"))]
    {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }
}

/// "3 minutes ago", rendered on the server; [`PageScripts`] keeps it
/// current in the browser. The exact UTC time shows on hover (`title`),
/// on keyboard focus (it is a tab stop and the time unfolds in place), and
/// is read by screen readers, for which it is always part of the text.
#[component]
pub fn RelTime(at: i64) -> impl IntoView {
    let exact = time_fmt::exact_utc(at);
    view! {
        <time class="reltime" datetime=time_fmt::rfc3339(at) title=exact.clone() data-at=at.to_string() tabindex="0">
            <span class="rel">{time_fmt::relative(at, now_seconds())}</span>
            <span class="exact">{format!(" ({exact})")}</span>
        </time>
    }
}

/// What every page does in the browser: keeps relative times current
/// (every 20 seconds) and lets each form be sent once (a double click
/// must not create or mint twice). An island: with the copy buttons, the
/// only code of the console that runs in the browser.
#[island]
pub fn PageScripts() -> impl IntoView {
    #[cfg(feature = "hydrate")]
    {
        refresh_times();
        let _ = set_interval_with_handle(refresh_times, std::time::Duration::from_secs(20));
        guard_forms();
        warn_of_namesakes();
        focus_outcome();
    }
}

/// What a name field with `data-namesakes` (names already in use, as a
/// JSON list) says as a name is typed that one of them has (any case).
pub const NAMESAKE_WARNING: &str =
    "An active token already has this name. The new token will sit beside it; to replace \
                                    that token, rotate it in its row instead.";

/// A form's outcome, shown on the page its post returned to, takes the
/// focus: a live region filled before load is not announced, a focused
/// message is (and it is scrolled into view).
#[cfg(feature = "hydrate")]
fn focus_outcome() {
    use wasm_bindgen::JsCast;
    if let Ok(Some(el)) = document().query_selector("[data-outcome]") {
        if let Ok(el) = el.dyn_into::<web_sys::HtmlElement>() {
            let _ = el.focus();
        }
    }
}

#[cfg(feature = "hydrate")]
fn warn_of_namesakes() {
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::JsCast;
    let Ok(inputs) = document().query_selector_all("input[data-namesakes]") else { return };
    for i in 0..inputs.length() {
        let Some(input) = inputs.item(i).and_then(|n| n.dyn_into::<web_sys::HtmlInputElement>().ok()) else { continue };
        let names: Vec<String> = input
            .get_attribute("data-namesakes")
            .and_then(|json| serde_json::from_str::<Vec<String>>(&json).ok())
            .unwrap_or_default()
            .into_iter()
            .map(|n| n.trim().to_lowercase())
            .collect();
        let Ok(Some(warning)) = document().query_selector(&format!("[data-namesake-for=\"{}\"]", input.id())) else {
            continue;
        };
        let field = input.clone();
        let on_input = Closure::<dyn Fn()>::new(move || {
            let typed = field.value().trim().to_lowercase();
            let taken = !typed.is_empty() && names.contains(&typed);
            // The element is a live region: screen readers hear the change.
            warning.set_text_content(taken.then_some(NAMESAKE_WARNING));
        });
        let _ = input.add_event_listener_with_callback("input", on_input.as_ref().unchecked_ref());
        on_input.forget();
    }
}

/// A form being sent is marked; a second submit of it is dropped. A page
/// shown again from the back-forward cache starts unmarked.
#[cfg(feature = "hydrate")]
fn guard_forms() {
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::JsCast;
    let on_submit = Closure::<dyn Fn(web_sys::Event)>::new(|ev: web_sys::Event| {
        let Some(form) = ev.target().and_then(|t| t.dyn_into::<web_sys::Element>().ok()) else { return };
        if form.has_attribute("data-submitting") {
            ev.prevent_default();
        } else {
            let _ = form.set_attribute("data-submitting", "");
        }
    });
    let _ = document().add_event_listener_with_callback("submit", on_submit.as_ref().unchecked_ref());
    on_submit.forget();
    let on_show = Closure::<dyn Fn(web_sys::Event)>::new(|_| {
        if let Ok(forms) = document().query_selector_all("form[data-submitting]") {
            for i in 0..forms.length() {
                if let Some(el) = forms.item(i).and_then(|n| n.dyn_into::<web_sys::Element>().ok()) {
                    let _ = el.remove_attribute("data-submitting");
                }
            }
        }
    });
    if let Some(w) = web_sys::window() {
        let _ = w.add_event_listener_with_callback("pageshow", on_show.as_ref().unchecked_ref());
    }
    on_show.forget();
}

#[cfg(feature = "hydrate")]
fn refresh_times() {
    let Ok(times) = document().query_selector_all("time[data-at]") else { return };
    let now = now_seconds();
    for i in 0..times.length() {
        let Some(node) = times.item(i) else { continue };
        let Ok(el) = wasm_bindgen::JsCast::dyn_into::<web_sys::Element>(node) else { continue };
        let Some(at) = el.get_attribute("data-at").and_then(|a| a.parse::<i64>().ok()) else { continue };
        // Only the relative part: the exact time beside it stays.
        if let Ok(Some(rel)) = el.query_selector(".rel") {
            rel.set_text_content(Some(&time_fmt::relative(at, now)));
        }
    }
}

/// Copies the value of the input (or the text of the element) with id
/// `target`. Shown only once JavaScript runs: without it the read-only
/// value is there to select and copy by hand.
#[island]
pub fn CopyButton(target: String, label: String) -> impl IntoView {
    let copied = RwSignal::new(false);
    let ready = RwSignal::new(false);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| ready.set(true));
    let copy = move |_| {
        #[cfg(feature = "hydrate")]
        {
            let Some(el) = document().get_element_by_id(&target) else { return };
            let text = match wasm_bindgen::JsCast::dyn_ref::<web_sys::HtmlInputElement>(&el) {
                Some(input) => input.value(),
                None => el.text_content().unwrap_or_default(),
            };
            if let Some(w) = web_sys::window() {
                let _ = w.navigator().clipboard().write_text(&text);
                copied.set(true);
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = &target;
    };
    view! {
        <button type="button" class="secondary copy" hidden=move || !ready.get() on:click=copy aria-label=label>
            {move || if copied.get() { "Copied" } else { "Copy" }}
        </button>
    }
}

/// How the last form posted from this browser ended: which server
/// function, and its refusal if it was refused. The server hands it to the
/// next page in a signed cookie that page clears, so it is shown once and
/// never travels in the URL.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FormOutcome {
    pub path: String,
    pub error: Option<AppError>,
}

/// The outcome the page being rendered was given, if it concerns
/// `server_fn_path`.
fn form_outcome(server_fn_path: &str) -> Option<FormOutcome> {
    #[cfg(feature = "ssr")]
    {
        let parts = use_context::<http::request::Parts>()?;
        parts.extensions.get::<FormOutcome>().filter(|o| o.path == server_fn_path).cloned()
    }
    #[cfg(not(feature = "ssr"))]
    {
        let _ = server_fn_path;
        None
    }
}

/// The error of the last submission of a form: from the action when
/// JavaScript ran it, or from the outcome the server handed this page
/// when the browser posted the form itself.
pub fn form_error<T, V>(value: V, server_fn_path: &'static str) -> Signal<Option<AppError>>
where
    T: Send + Sync + Clone + 'static,
    V: Get<Value = Option<Result<T, AppError>>> + Send + Sync + 'static,
{
    let posted = form_outcome(server_fn_path).and_then(|o| o.error);
    Signal::derive(move || match value.get() {
        Some(Err(e)) => Some(e),
        Some(Ok(_)) => None,
        None => posted.clone(),
    })
}

/// Whether the last submission of a form succeeded (the page was rendered
/// right after it).
pub fn form_succeeded(server_fn_path: &'static str) -> bool {
    form_outcome(server_fn_path).is_some_and(|o| o.error.is_none())
}

/// "Settings saved": confirms a form's success in place, beside the form,
/// on the page rendered right after it.
#[component]
pub fn FormSaved(path: &'static str, #[prop(into)] message: String) -> impl IntoView {
    form_succeeded(path).then(|| view! { <p class="saved" role="status" tabindex="-1" data-outcome="">{message}</p> })
}

/// An audit action code (`client.authentication_failed`) that may break
/// after its dots and underscores on a narrow screen, and nowhere else.
#[component]
pub fn ActionCode(action: String) -> impl IntoView {
    let mut parts = Vec::new();
    let mut rest = action.as_str();
    while let Some(at) = rest.find(['.', '_']) {
        parts.push(rest[..=at].to_owned());
        rest = &rest[at + 1..];
    }
    parts.push(rest.to_owned());
    let last = parts.len() - 1;
    view! {
        <code class="action">
            {parts.into_iter().enumerate().map(|(i, p)| view! { {p}{(i < last).then(|| view! { <wbr/> })} }).collect_view()}
        </code>
    }
}

/// A message for the whole form (errors not tied to one field).
#[component]
pub fn FormMessage(error: Signal<Option<AppError>>) -> impl IntoView {
    move || {
        error.get().filter(|e| e.field().is_none()).map(|e| {
            view! { <p class="form-error" role="alert" tabindex="-1" data-outcome="">{e.to_string()}</p> }
        })
    }
}

/// An error shown beside the input it concerns.
#[component]
pub fn FieldMessage(error: Signal<Option<AppError>>, field: &'static str) -> impl IntoView {
    move || {
        error.get().filter(|e| e.field() == Some(field)).map(|e| {
            view! { <p class="field-error" id=format!("{field}-error") role="alert" tabindex="-1" data-outcome="">{e.to_string()}</p> }
        })
    }
}

/// Percent-encodes a query-string value (RFC 3986 unreserved characters stay).
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
