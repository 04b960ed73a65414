//! Shared helpers for the HTTP-level tests.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::blocking::{Client, Response};
use serde_json::Value;

pub fn client() -> Client {
    Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .expect("client")
}

/// `GET realm?query` with optional Basic credentials.
pub fn jwt(realm: &str, query: &str, basic: Option<(&str, &str)>) -> Response {
    let mut rb = client().get(format!("{realm}?{query}"));
    if let Some((u, p)) = basic {
        rb = rb.basic_auth(u, Some(p));
    }
    rb.send().expect("request")
}

pub fn json(resp: Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().expect("body");
    let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    (status, value)
}

/// Decode (without verifying) a JWT into (header, claims).
pub fn decode_jwt(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let h = URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap();
    let c = URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap();
    assert!(parts.next().is_some(), "signature present");
    (
        serde_json::from_slice(&h).unwrap(),
        serde_json::from_slice(&c).unwrap(),
    )
}

/// Claims of the JWT of a 200 `/jwt/auth` answer (asserting the body has only `token`).
pub fn token_claims(resp: Response) -> Value {
    let (status, body) = json(resp);
    assert_eq!(status, 200, "body: {body}");
    let obj = body.as_object().unwrap();
    assert_eq!(obj.len(), 1, "only `token` in the body: {body}");
    decode_jwt(obj["token"].as_str().unwrap()).1
}

/// `access` claim as (name, actions) pairs.
pub fn access(claims: &Value) -> Vec<(String, Vec<String>)> {
    claims["access"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["actions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

pub fn unauthorized_body(base: &str) -> Value {
    serde_json::json!({"errors":[{"code":"UNAUTHORIZED","message":format!("HTTP Basic: Access denied. If a password was provided for Git authentication, the password was incorrect or you're required to use a token instead of a password. If a token was provided, it was either incorrect, expired, or improperly scoped. See {base}/help/user/profile/account/two_factor_authentication_troubleshooting.md#error-http-basic-access-denied-if-a-password-was-provided-for-git-authentication-")}]})
}

pub fn denied_body() -> Value {
    serde_json::json!({"errors":[{"code":"DENIED","message":"access forbidden"}],"http_status":403})
}
