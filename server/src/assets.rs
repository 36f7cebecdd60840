//! The console's compiled assets (`/pkg/`: wasm, JS, CSS).
//!
//! Pages name them with a content fingerprint (`keygate.<fp>.wasm`),
//! computed once at start-up from the files themselves, so a name always
//! means the same bytes: those answers are cached for a year
//! (`immutable`). A fingerprint of another build (a page rendered by an
//! instance not yet upgraded, or already upgraded, during a rolling
//! deploy) gets this build's file, revalidated every time, so the page
//! keeps its styles. The files are sent
//! precompressed (`.br`, `.gz` written at build time by `cargo leptos
//! build --precompress`) when the browser accepts it.

use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::path::{Path as FsPath, PathBuf};
use tower::ServiceExt;
use tower_http::services::ServeDir;

/// The files a page loads; the fingerprint covers all of them.
const FINGERPRINTED: [&str; 3] = ["js", "wasm", "css"];

/// A fingerprint of the site's `pkg` files named `{base}.{js,wasm,css}`
/// and their precompressed forms (`.br`, `.gz`, which are what most
/// browsers get): 16 hex digits of their SHA-256 (missing files count as
/// empty).
pub fn fingerprint(pkg_dir: &FsPath, base: &str) -> String {
    let mut h = Sha256::new();
    for ext in FINGERPRINTED {
        for variant in ["", ".br", ".gz"] {
            let name = format!("{base}.{ext}{variant}");
            h.update(name.as_bytes());
            let bytes = std::fs::read(pkg_dir.join(&name)).unwrap_or_default();
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        }
    }
    h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// `pkg` under the site root.
pub fn pkg_dir(state: &AppState) -> PathBuf {
    PathBuf::from(state.leptos_options.site_root.as_ref()).join(state.leptos_options.site_pkg_dir.as_ref())
}

/// Splits the output name `keygate.<fp>` into its base and fingerprint.
fn base_and_fingerprint(output_name: &str) -> (&str, &str) {
    output_name.rsplit_once('.').unwrap_or((output_name, ""))
}

/// What a requested file name is.
#[derive(Debug, PartialEq, Eq)]
enum Requested {
    /// This build's file (`keygate.<fp>.wasm`, or `…_bg.wasm` as Leptos
    /// names it in builds not made by cargo-leptos): the file on disk.
    Current(String),
    /// A fingerprinted name of another build: this build's file.
    Stale(String),
    /// Any other file, served as it is and revalidated.
    Plain,
}

fn classify(file: &str, base: &str, fp: &str) -> Requested {
    let Some(rest) = file.strip_prefix(base).and_then(|r| r.strip_prefix('.')) else { return Requested::Plain };
    let Some((stamp, ext)) = rest.split_once('.') else { return Requested::Plain };
    let stamp = stamp.strip_suffix("_bg").unwrap_or(stamp);
    if stamp.len() != 16 || !stamp.bytes().all(|b| b.is_ascii_hexdigit()) || !FINGERPRINTED.contains(&ext) {
        return Requested::Plain;
    }
    if stamp == fp {
        Requested::Current(format!("{base}.{ext}"))
    } else {
        Requested::Stale(format!("{base}.{ext}"))
    }
}

/// `GET /pkg/{*file}`.
pub async fn serve(State(state): State<AppState>, Path(file): Path<String>, req: Request<Body>) -> Response {
    let (base, fp) = base_and_fingerprint(&state.leptos_options.output_name);
    let (on_disk, cache) = match classify(&file, base, fp) {
        Requested::Current(name) => (name, "public, max-age=31536000, immutable"),
        Requested::Plain => (file.clone(), "no-cache"),
        Requested::Stale(name) => (name, "no-cache"),
    };
    let (mut parts, body) = req.into_parts();
    parts.uri = match format!("/{on_disk}").parse() {
        Ok(uri) => uri,
        Err(_) => return StatusCode::NOT_FOUND.into_response(),
    };
    let files = ServeDir::new(pkg_dir(&state)).precompressed_br().precompressed_gzip();
    let mut response = match files.oneshot(Request::from_parts(parts, body)).await {
        Ok(r) => r.map(Body::new),
        Err(never) => match never {},
    };
    if response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED {
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    }
    // The body depends on Accept-Encoding: caches must key on it.
    response.headers_mut().append(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_strictly() {
        let fp = "0123456789abcdef";
        assert_eq!(classify("keygate.0123456789abcdef.wasm", "keygate", fp), Requested::Current("keygate.wasm".into()));
        assert_eq!(
            classify("keygate.0123456789abcdef_bg.wasm", "keygate", fp),
            Requested::Current("keygate.wasm".into())
        );
        assert_eq!(classify("keygate.0123456789abcdef.css", "keygate", fp), Requested::Current("keygate.css".into()));
        assert_eq!(classify("keygate.fedcba9876543210.js", "keygate", fp), Requested::Stale("keygate.js".into()));
        assert_eq!(classify("keygate.wasm", "keygate", fp), Requested::Plain);
        assert_eq!(classify("keygate.0123456789abcdef.d.ts", "keygate", fp), Requested::Plain);
        assert_eq!(classify("other.0123456789abcdef.js", "keygate", fp), Requested::Plain);
    }

    #[test]
    fn the_fingerprint_follows_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let empty = fingerprint(dir.path(), "keygate");
        std::fs::write(dir.path().join("keygate.js"), "a").unwrap();
        let one = fingerprint(dir.path(), "keygate");
        assert_ne!(one, empty);
        assert_eq!(one.len(), 16);
        std::fs::write(dir.path().join("keygate.css"), "a").unwrap();
        let two = fingerprint(dir.path(), "keygate");
        assert_ne!(two, one);
        // A stale precompressed file changes it too.
        std::fs::write(dir.path().join("keygate.css.br"), "old").unwrap();
        assert_ne!(fingerprint(dir.path(), "keygate"), two);
    }
}
