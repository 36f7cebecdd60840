//! Strict parsing of `application/x-www-form-urlencoded` request bodies and
//! HTTP Basic credentials for the OAuth endpoints: invalid UTF-8, repeated
//! parameters and oversized bodies are refused with `invalid_request`
//! instead of being decoded lossily.

use crate::http_error::HttpError;
use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use base64::Engine;
use percent_encoding::percent_decode;
use std::collections::HashMap;

/// Largest OAuth request body accepted.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// Decodes one form component: `+` is a space, then percent-decoding; the
/// result must be UTF-8.
pub fn decode_component(raw: &[u8]) -> Option<String> {
    let plus_fixed: Vec<u8> = raw.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
    let bytes: Vec<u8> = percent_decode(&plus_fixed).collect();
    String::from_utf8(bytes).ok()
}

/// The parameters of a form body, each at most once.
/// Parameters that may appear more than once (RFC 8707 `resource`).
const REPEATABLE: &[&str] = &["resource"];

#[derive(Debug, Default)]
pub struct FormParams(HashMap<String, String>, HashMap<String, Vec<String>>);

impl FormParams {
    pub fn parse(body: &[u8]) -> Result<Self, HttpError> {
        let mut map = HashMap::new();
        let mut lists: HashMap<String, Vec<String>> = HashMap::new();
        for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            let (k, v) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            let key =
                decode_component(k).ok_or_else(|| HttpError::invalid_request("the request body is not valid UTF-8"))?;
            let value = decode_component(v)
                .ok_or_else(|| HttpError::invalid_request(format!("parameter {key} is not valid UTF-8")))?;
            if REPEATABLE.contains(&key.as_str()) {
                lists.entry(key).or_default().push(value);
                continue;
            }
            if map.insert(key.clone(), value).is_some() {
                return Err(HttpError::invalid_request(format!("parameter {key} is repeated")));
            }
        }
        Ok(FormParams(map, lists))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn take(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }

    /// Every value of a repeatable parameter, in order.
    pub fn take_all(&mut self, key: &str) -> Vec<String> {
        self.1.remove(key).unwrap_or_default()
    }
}

/// Checks the content type and reads a bounded form body.
pub async fn read_form(headers: &HeaderMap, body: Body) -> Result<FormParams, HttpError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(HttpError::invalid_request("the request body must be application/x-www-form-urlencoded"));
    }
    let bytes =
        axum::body::to_bytes(body, MAX_FORM_BYTES).await.map_err(|e| match crate::idle_io::body_read_failure(&e) {
            StatusCode::REQUEST_TIMEOUT => HttpError::invalid_request("the request body did not arrive in time")
                .with_status(StatusCode::REQUEST_TIMEOUT),
            _ => HttpError::invalid_request(format!("the request body is larger than {MAX_FORM_BYTES} bytes"))
                .with_status(StatusCode::PAYLOAD_TOO_LARGE),
        })?;
    FormParams::parse(&bytes)
}

/// HTTP Basic client credentials, each part form-urldecoded (RFC 6749
/// §2.3.1). `Ok(None)` when there is no Basic `Authorization` header.
pub fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, HttpError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(HttpError::invalid_request("the Authorization header is repeated"));
    }
    let value = value.to_str().map_err(|_| HttpError::invalid_request("the Authorization header is not ASCII"))?;
    let Some((scheme, rest)) = value.split_once(' ') else { return Ok(None) };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let malformed = || HttpError::invalid_request("the HTTP Basic credentials are malformed");
    let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).map_err(|_| malformed())?;
    let colon = decoded.iter().position(|&b| b == b':').ok_or_else(malformed)?;
    let id = decode_component(&decoded[..colon]).ok_or_else(malformed)?;
    let secret = decode_component(&decoded[colon + 1..]).ok_or_else(malformed)?;
    Ok(Some((id, secret)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decodes_and_refuses_repeats() {
        let f = FormParams::parse(b"grant_type=client_credentials&scope=a+b%3Ac&x=").unwrap();
        assert_eq!(f.get("scope"), Some("a b:c"));
        assert_eq!(f.get("x"), Some(""));
        assert!(FormParams::parse(b"a=1&a=2").is_err());
        assert!(FormParams::parse(b"a=%FF").is_err());
        assert!(FormParams::parse(b"a=\xff").is_err());
    }

    #[test]
    fn basic_parts_are_form_decoded() {
        let mut h = HeaderMap::new();
        let raw = base64::engine::general_purpose::STANDARD.encode("kgc_a%2Db:s%2Bx+y");
        h.insert(header::AUTHORIZATION, format!("Basic {raw}").parse().unwrap());
        assert_eq!(basic_credentials(&h).unwrap(), Some(("kgc_a-b".into(), "s+x y".into())));
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(basic_credentials(&h).unwrap(), None);
        h.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert!(basic_credentials(&h).is_err());
    }
}
