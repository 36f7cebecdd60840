//! The bearer-protected management API, `/api/v1`.

use crate::bearer::Bearer;
use crate::state::AppState;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/me", get(me))
}

/// The calling application and the token's scopes and expiry.
async fn me(Bearer(ctx): Bearer) -> Json<Value> {
    Json(json!({
        "application": {
            "id": ctx.application_id,
            "client_id": ctx.client_id,
            "name": ctx.application_name,
        },
        "token": {
            "id": ctx.token_id,
            "name": ctx.token_name,
            "scopes": ctx.scopes.names(),
            "scope": ctx.scopes.to_string(),
            "issued_at": ctx.issued_at,
            "expires_at": ctx.expires_at,
        }
    }))
}
