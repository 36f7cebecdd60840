//! `GET /oauth2/forward-auth`: nginx (`auth_request`), Traefik
//! (`ForwardAuth`) and Caddy (`forward_auth`) ask it whether a request may
//! reach the service behind them. The route states what it needs in the
//! query (`scope`, all required, space- or comma-separated; `audience`, an
//! identifier the token must carry); the answer is 200 with the caller's
//! identity in headers for the upstream, or an RFC 6750 refusal.

use crate::bearer::{challenge, verify_bearer};
use crate::http_error::HttpError;
use crate::oauth::{count_request, rate_headers, Metered};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use keygate::grant::{OAuthError, OAuthErrorCode};
use keygate::store::TokenContext;
use keygate::AuditAction;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde_json::json;
use std::net::IpAddr;

/// Loopback, trusted to name the client in `X-Forwarded-For` by default.
pub fn loopback() -> Vec<IpNet> {
    ["127.0.0.0/8", "::1/128"].iter().filter_map(|n| n.parse().ok()).collect()
}

/// An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, as a dual-stack
/// listener reports IPv4 peers) as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The client's address: the peer's, or, when the peer is a trusted proxy,
/// the right-most address in `X-Forwarded-For` that is not itself a
/// trusted proxy (addresses further left were written by the client and
/// prove nothing). `None` when a trusted proxy's header cannot be read up
/// to the client: unknown, which no allowlist admits, rather than the
/// proxy's own address (which an allowlist may well admit).
pub fn client_address(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = canonical(peer?);
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    // Right to left: each trusted hop vouches for the one before it; the
    // first untrusted address is the client. Split as bytes, so a byte the
    // client wrote on the left cannot spoil the entries the proxies wrote.
    let mut entries: Vec<&[u8]> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        entries.extend(value.as_bytes().split(|b| *b == b','));
    }
    let mut client = peer;
    for entry in entries.iter().rev() {
        let ip = std::str::from_utf8(entry).ok().and_then(|e| e.trim().parse::<IpAddr>().ok()).map(canonical)?;
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    Some(client)
}

/// What the route needs, from the query.
#[derive(Debug, Default, PartialEq, Eq)]
struct Needs {
    scopes: Vec<String>,
    audience: Option<String>,
}

/// What the route needs, checked: scope names and an identifier as the
/// catalogue allows them, so they are safe in the challenge.
fn needs(query: Option<&str>) -> Result<Needs, HttpError> {
    let mut needs = Needs::default();
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "scope" => {
                for name in value.split([' ', ',']).filter(|s| !s.is_empty()) {
                    let name = keygate::ScopeName::parse(name)
                        .map_err(|m| HttpError::invalid_request(format!("the route's scope parameter: {m}")))?;
                    needs.scopes.push(name.to_string());
                }
            }
            "audience" if needs.audience.is_some() => {
                return Err(HttpError::invalid_request("the audience parameter is repeated"))
            }
            "audience" => {
                let audience = keygate::validate_identifier(&value)
                    .map_err(|_| HttpError::invalid_request("the route's audience parameter is not an absolute URI"))?;
                needs.audience = Some(audience);
            }
            _ => {}
        }
    }
    Ok(needs)
}

/// Characters escaped in a value sent as a header: controls, `%` and `"`.
/// Non-ASCII characters are percent-encoded (UTF-8) too, as header values
/// are ASCII on every proxy's path.
const HEADER_UNSAFE: &AsciiSet = &CONTROLS.add(b'%').add(b'"');

fn header_value(text: &str) -> HeaderValue {
    let encoded = utf8_percent_encode(text, HEADER_UNSAFE).to_string();
    HeaderValue::from_str(&encoded).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn identity_headers(response: &mut Response, ctx: &TokenContext) {
    let h = response.headers_mut();
    h.insert("x-keygate-client-id", header_value(&ctx.client_id));
    h.insert("x-keygate-application", header_value(&ctx.application_name));
    h.insert("x-keygate-application-id", HeaderValue::from(ctx.application_id.0));
    h.insert("x-keygate-scopes", header_value(&ctx.scopes.to_string()));
    h.insert("x-keygate-token-id", HeaderValue::from(ctx.token_id.0));
}

pub async fn forward_auth(State(state): State<AppState>, req: Request) -> Response {
    let ip = crate::oauth::client_ip(&req);
    let needs = match needs(req.uri().query()) {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    let ctx = match verify_bearer(&state, req.headers(), ip.clone(), "forward_auth").await {
        Ok(ctx) => ctx,
        Err(e) => return e.into_response(),
    };
    let quota = match count_request(&state, Metered::bearer(&ctx, ip.as_deref())).await {
        Ok(q) => q,
        Err(r) => return r,
    };
    let now = crate::now();
    let missing: Vec<&str> = needs.scopes.iter().map(String::as_str).filter(|s| !ctx.scopes.contains(s)).collect();
    let refusal = if let Some(audience) = needs.audience.as_ref().filter(|a| !ctx.audience.contains(a)) {
        let description = "the access token is not meant for this resource server";
        refuse(&state, &ctx, now, ip, json!({ "reason": "wrong_audience", "audience": audience })).await;
        Some(crate::bearer::invalid_token(description))
    } else if !missing.is_empty() {
        let needed = needs.scopes.join(" ");
        let description = format!("this route needs the scope(s) {needed}");
        refuse(&state, &ctx, now, ip, json!({ "reason": "insufficient_scope", "missing_scopes": missing })).await;
        Some(
            HttpError::oauth(OAuthError::new(OAuthErrorCode::InsufficientScope, description.clone()))
                .with_challenge(challenge(Some(OAuthErrorCode::InsufficientScope), &description, Some(&needed))),
        )
    } else {
        None
    };
    let mut response = match refusal {
        Some(e) => e.into_response(),
        None => {
            state.count(ctx.application_id, keygate::activity::ActivityKind::Used);
            let mut r = StatusCode::OK.into_response();
            identity_headers(&mut r, &ctx);
            r
        }
    };
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    rate_headers(&mut response, &quota);
    response
}

/// Audits a valid token refused at a route (folded per token, reason and
/// minute, like other refusals).
async fn refuse(state: &AppState, ctx: &TokenContext, now: i64, ip: Option<String>, details: serde_json::Value) {
    let reason = details.get("reason").and_then(|r| r.as_str()).unwrap_or("refused").to_owned();
    state.count(ctx.application_id, keygate::activity::ActivityKind::Refused(keygate::activity::RefusalReason::Scope));
    let mut rec =
        keygate::store::AuditRecord::new(now, keygate::store::ActorKind::Application, AuditAction::TokenRefused)
            .on_application(ctx.application_id, &ctx.application_name)
            .from_ip(ip)
            .details(details)
            .with("token_id", json!(ctx.token_id.0))
            .with("via", json!("forward_auth"));
    rec.actor_id = Some(ctx.application_id.0);
    rec.actor_name = Some(ctx.application_name.clone());
    // Folded per token, reason and what was missing, so refusals for
    // different needs stay apart.
    let what = rec.details.get("missing_scopes").or(rec.details.get("audience")).map(|v| v.to_string());
    let key = format!("forward:{}:{reason}:{}", ctx.token_id.0, what.unwrap_or_default());
    state.audit_deduplicated(&key, rec).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", v.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted = loopback();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let stranger: IpAddr = "10.9.8.7".parse().unwrap();
        assert_eq!(client_address(Some(local), &xff("203.0.113.5"), &trusted), "203.0.113.5".parse().ok());
        assert_eq!(client_address(Some(stranger), &xff("203.0.113.5"), &trusted), Some(stranger));
        // The client wrote the left part; the proxy appended the real peer.
        assert_eq!(client_address(Some(local), &xff("1.2.3.4, 203.0.113.5"), &trusted), "203.0.113.5".parse().ok());
        // An entry that cannot be read makes the client unknown, never the proxy.
        assert_eq!(client_address(Some(local), &xff("garbage"), &trusted), None);
        let mut odd = HeaderMap::new();
        odd.insert("x-forwarded-for", axum::http::HeaderValue::from_bytes(b"10.0.0.1\xff, 203.0.113.5").unwrap());
        assert_eq!(client_address(Some(local), &odd, &trusted), "203.0.113.5".parse().ok());
        odd.insert("x-forwarded-for", axum::http::HeaderValue::from_bytes(b"10.0.0.1\xff").unwrap());
        assert_eq!(client_address(Some(local), &odd, &trusted), None);
        // A loopback proxy seen through a dual-stack listener is still trusted.
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(client_address(Some(mapped), &xff("203.0.113.5"), &trusted), "203.0.113.5".parse().ok());
        assert_eq!(client_address(Some(mapped), &HeaderMap::new(), &trusted), Some(local));
        // Garbage the client wrote on the left does not hide it.
        assert_eq!(client_address(Some(local), &xff("garbage, 203.0.113.5"), &trusted), "203.0.113.5".parse().ok());
        // Only trusted hops: the left-most one examined.
        assert_eq!(client_address(Some(local), &xff("127.0.0.2, 127.0.0.3"), &trusted), "127.0.0.2".parse().ok());
        assert_eq!(client_address(Some(local), &HeaderMap::new(), &trusted), Some(local));
        let wider: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(client_address(Some(stranger), &xff("203.0.113.5"), &wider), "203.0.113.5".parse().ok());
    }

    #[test]
    fn needs_come_from_the_query() {
        let n = needs(Some("scope=a%20b,c&audience=https%3A%2F%2Fapi%2F")).unwrap();
        assert_eq!(n.scopes, vec!["a", "b", "c"]);
        assert_eq!(n.audience.as_deref(), Some("https://api/"));
        assert_eq!(needs(None).unwrap(), Needs::default());
        assert!(needs(Some("audience=a:b&audience=a:c")).is_err());
        assert!(needs(Some("scope=a%22b")).is_err(), "a quote would break the challenge");
        assert!(needs(Some("audience=no%0Auri")).is_err());
    }

    #[test]
    fn header_values_are_safe() {
        assert_eq!(header_value("billing sync"), "billing sync");
        assert_eq!(header_value("café"), "caf%C3%A9");
        assert_eq!(header_value("a\r\nb"), "a%0D%0Ab");
    }
}
