//! A real OAuth 2.0 client library (the `oauth2` crate over reqwest) against
//! a served instance on a TCP port.

mod common;

use common::*;
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{AuthType, ClientId, ClientSecret, RequestTokenError, Scope, TokenResponse, TokenUrl};
use std::net::SocketAddr;

async fn serve(t: &TestApp) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = t.router.clone();
    tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
    });
    addr
}

#[tokio::test]
async fn oauth2_crate_obtains_and_uses_a_token() {
    let t = test_app().await;
    let c = t.create_app("reporting", "applications:read tokens:read").await;
    let addr = serve(&t).await;
    let http =
        oauth2::reqwest::ClientBuilder::new().redirect(oauth2::reqwest::redirect::Policy::none()).build().unwrap();

    for auth in [AuthType::BasicAuth, AuthType::RequestBody] {
        let client = BasicClient::new(ClientId::new(c.app.client_id.clone()))
            .set_client_secret(ClientSecret::new(c.secret.clone()))
            .set_auth_type(auth)
            .set_token_uri(TokenUrl::new(format!("http://{addr}/oauth2/token")).unwrap());
        let token = client
            .exchange_client_credentials()
            .add_scope(Scope::new("tokens:read".into()))
            .request_async(&http)
            .await
            .expect("token response");
        assert!(token.access_token().secret().starts_with("kgt_"));
        assert_eq!(token.expires_in().unwrap().as_secs(), 3600);
        assert_eq!(token.scopes().unwrap(), &vec![Scope::new("tokens:read".into())]);

        let me: serde_json::Value = http
            .get(format!("http://{addr}/api/v1/me"))
            .bearer_auth(token.access_token().secret())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(me["application"]["name"], "reporting");
    }

    let bad = BasicClient::new(ClientId::new(c.app.client_id.clone()))
        .set_client_secret(ClientSecret::new("kgs_not-the-secret".into()))
        .set_token_uri(TokenUrl::new(format!("http://{addr}/oauth2/token")).unwrap());
    match bad.exchange_client_credentials().request_async(&http).await {
        Err(RequestTokenError::ServerResponse(e)) => assert_eq!(*e.error(), BasicErrorResponseType::InvalidClient),
        other => panic!("expected invalid_client, got {other:?}"),
    }
}
