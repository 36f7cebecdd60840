//! Small pieces used across pages.

use crate::error::AppError;
use keygate::time_fmt;
use leptos::prelude::*;
use leptos::server_fn::error::ServerFnUrlError;
use leptos_router::hooks::use_query_map;

/// The current time (Unix seconds) for relative times; ticks in the browser
/// so a page left open stays right.
#[derive(Clone, Copy)]
pub struct Clock(pub RwSignal<i64>);

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

pub fn provide_clock() {
    let now = RwSignal::new(now_seconds());
    provide_context(Clock(now));
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let _ = set_interval_with_handle(move || now.set(now_seconds()), std::time::Duration::from_secs(20));
    });
}

/// "3 minutes ago", with the exact UTC time on hover.
#[component]
pub fn RelTime(at: i64) -> impl IntoView {
    let clock = use_context::<Clock>().map(|c| c.0);
    let text = move || time_fmt::relative(at, clock.map(|c| c.get()).unwrap_or_else(now_seconds));
    view! {
        <time datetime=time_fmt::rfc3339(at) title=time_fmt::exact_utc(at)>{text}</time>
    }
}

/// The error of the last submission of a form: from the action when
/// JavaScript ran it, or from the query string when the browser posted the
/// form itself and was redirected back.
pub fn form_error<T, V>(value: V, server_fn_path: &'static str) -> Signal<Option<AppError>>
where
    T: Send + Sync + Clone + 'static,
    V: Get<Value = Option<Result<T, AppError>>> + Send + Sync + 'static,
{
    let query = use_query_map();
    Signal::derive(move || {
        if let Some(Err(e)) = value.get() {
            return Some(e);
        }
        if value.get().is_some() {
            return None;
        }
        query.with(|q| {
            let path = q.get("__path")?;
            if path != server_fn_path {
                return None;
            }
            q.get("__err").map(|e| ServerFnUrlError::<AppError>::decode_err(&e))
        })
    })
}

/// A message for the whole form (errors not tied to one field).
#[component]
pub fn FormMessage(error: Signal<Option<AppError>>) -> impl IntoView {
    move || {
        error.get().filter(|e| e.field().is_none()).map(|e| {
            view! { <p class="form-error" role="alert">{e.to_string()}</p> }
        })
    }
}

/// An error shown beside the input it concerns.
#[component]
pub fn FieldMessage(error: Signal<Option<AppError>>, field: &'static str) -> impl IntoView {
    move || {
        error.get().filter(|e| e.field() == Some(field)).map(|e| {
            view! { <p class="field-error" id=format!("{field}-error") role="alert">{e.to_string()}</p> }
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
