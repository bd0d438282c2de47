//! Personal access tokens under attack, with RS256 configured, and secrets kept out of logs.

use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{captured_logs, fresh_users, TestApp, API_TOKEN};

const PRIVATE_KEY: &str = include_str!("../fixtures/jwt-rs256-private.pem");
const PUBLIC_KEY: &str = include_str!("../fixtures/jwt-rs256-public.pem");
const ISSUER: &str = "https://backend.example";
const AUDIENCE: &str = "chatrooms";

async fn rs256_app() -> TestApp {
    TestApp::spawn_with(|env| {
        env.remove("CHATROOMS_JWT_SECRET");
        env.insert("CHATROOMS_JWT_ALGORITHM".into(), "RS256".into());
        env.insert("CHATROOMS_JWT_PUBLIC_KEY".into(), PUBLIC_KEY.into());
        env.insert("CHATROOMS_JWT_ISSUER".into(), ISSUER.into());
        env.insert("CHATROOMS_JWT_AUDIENCE".into(), AUDIENCE.into());
    })
    .await
}

fn claims(sub: Value) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"sub": sub, "exp": now + 600, "iat": now, "iss": ISSUER, "aud": AUDIENCE})
}

fn rs256(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::RS256),
        claims,
        &EncodingKey::from_rsa_pem(PRIVATE_KEY.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn b64(value: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value)
}

#[tokio::test]
async fn forged_expired_and_malformed_tokens_are_refused() {
    let app = rs256_app().await;
    let user = fresh_users(1)[0];
    let good = claims(json!(user.to_string()));
    let (status, _) = app.send(app.as_user(Method::GET, "/user/credentials", &rs256(&good))).await;
    assert_eq!(status, StatusCode::OK, "a valid RS256 token is accepted");

    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        change(&mut c);
        rs256(&c)
    };
    let now = chrono::Utc::now().timestamp();
    let unsigned = format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), b64(good.to_string().as_bytes()));
    // A real signature, moved onto other claims.
    let tampered = {
        let token = rs256(&good);
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut evil = good.clone();
        evil["sub"] = json!("1");
        parts[1] = b64(evil.to_string().as_bytes());
        parts.join(".")
    };
    let hs256_with_public_key =
        encode(&Header::new(Algorithm::HS256), &good, &EncodingKey::from_secret(PUBLIC_KEY.as_bytes()))
            .unwrap();
    let mut no_sub = good.clone();
    no_sub.as_object_mut().unwrap().remove("sub");
    let cases: Vec<(&str, String)> = vec![
        ("alg none", unsigned),
        ("signature of other claims", tampered),
        ("HS256 signed with the public key", hs256_with_public_key),
        ("expired", with(&|c| c["exp"] = json!(now - 3600))),
        ("not yet valid", with(&|c| c["nbf"] = json!(now + 3600))),
        ("wrong issuer", with(&|c| c["iss"] = json!("https://evil.example"))),
        ("wrong audience", with(&|c| c["aud"] = json!("someone-else"))),
        ("missing sub", rs256(&no_sub)),
        ("non-numeric sub", with(&|c| c["sub"] = json!("alice"))),
        ("negative sub", with(&|c| c["sub"] = json!("-5"))),
        ("sub with a plus sign", with(&|c| c["sub"] = json!(format!("+{user}")))),
        ("sub with a leading space", with(&|c| c["sub"] = json!(format!(" {user}")))),
        ("sub with a leading zero", with(&|c| c["sub"] = json!(format!("0{user}")))),
        ("sub zero", with(&|c| c["sub"] = json!("0"))),
        ("sub as a number", with(&|c| c["sub"] = json!(user))),
        ("sub with a fraction", with(&|c| c["sub"] = json!(format!("{user}.0")))),
        ("sub too large", with(&|c| c["sub"] = json!("9223372036854775808"))),
        (
            "missing iss (an issuer is configured)",
            with(&|c| {
                c.as_object_mut().unwrap().remove("iss");
            }),
        ),
        (
            "missing aud (an audience is configured)",
            with(&|c| {
                c.as_object_mut().unwrap().remove("aud");
            }),
        ),
        (
            "missing exp",
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        ),
    ];
    for (what, token) in cases {
        let (status, body) = app.send(app.as_user(Method::GET, "/user/credentials", &token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{what}: {body}");
        let (status, _) = app
            .send(
                app.anonymous(Method::GET, "/user/credentials")
                    .header("Authorization", format!("Bearer {token}")),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what} as a bearer token");
    }
}

#[tokio::test]
async fn tokens_and_passwords_never_reach_the_logs() {
    // The harness captures everything the service logs, down to trace level.
    let app = TestApp::spawn().await;
    let user = fresh_users(1)[0];
    let token = crate::harness::jwt(json!(user.to_string()), json!([]), 600);
    let (_, session) =
        app.send(app.as_user(Method::POST, "/user/login", &token).json(&json!({"deviceID": "LOGS"}))).await;
    let (_, credentials) = app.send(app.as_user(Method::GET, "/user/credentials", &token)).await;
    let (_, _) =
        app.send(app.as_user(Method::GET, "/user/credentials", "not-a-jwt-but-secret-looking")).await;
    let secrets = [
        ("access token", session["accessToken"].as_str().unwrap().to_owned()),
        ("refresh token", session["refreshToken"].as_str().unwrap().to_owned()),
        ("password", credentials["password"].as_str().unwrap().to_owned()),
        ("personal access token", token.clone()),
        ("API token", API_TOKEN.to_owned()),
        ("appservice token", app.hs.env["CHATROOMS_MATRIX_AS_TOKEN"].clone()),
        ("shared secret", app.hs.env["CHATROOMS_MATRIX_REGISTRATION_SHARED_SECRET"].clone()),
    ];
    let logs = captured_logs();
    assert!(logs.contains("logged in"), "the service's logs were captured");
    for (what, secret) in secrets {
        assert!(!logs.contains(&secret), "the {what} appears in the logs");
    }
    assert!(!format!("{:?}", app.state.config).contains(&app.hs.env["CHATROOMS_MATRIX_AS_TOKEN"]));
}
