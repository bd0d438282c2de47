//! Latency figures measured against a real Synapse, through the service started exactly as in
//! the tests. Run with `cargo bench --bench service`. Not a test: it prints, it does not judge.

#[allow(dead_code)]
#[path = "../tests/it/harness.rs"]
mod harness;
#[path = "support/summary.rs"]
mod summary;

use std::time::Instant;

use harness::{fresh_org, fresh_users, jwt, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;
use summary::summary;

#[tokio::main]
async fn main() {
    if std::env::var_os("RUST_LOG").is_none() {
        std::env::set_var("RUST_LOG", "warn");
    }
    // Password logins cost what they cost in production: Synapse's default bcrypt rounds.
    std::env::set_var("SYNAPSE_BCRYPT_ROUNDS", "12");
    let app = TestApp::spawn().await;
    // Warm-up: the admin token and the room version are fetched once per process.
    app.create_room(json!({"organizationID": fresh_org(), "name": "warm-up"})).await;

    let mut create_ten = Vec::new();
    for _ in 0..7 {
        let users = fresh_users(10);
        let body = json!({"organizationID": fresh_org(), "name": "Bench", "admins": [users[0]],
            "moderators": [users[1]], "assignedUsers": &users[2..]});
        let started = Instant::now();
        app.create_room(body).await;
        create_ten.push(started.elapsed());
    }
    summary("create room with 10 new users (POST /chatrooms)", create_ten);

    // Logins, interleaved so that each kind sees the same homeserver conditions.
    let user = fresh_users(1)[0];
    let token = jwt(json!(user.to_string()), json!([]), 3600);
    let (status, credentials) = app.send(app.as_user(Method::GET, "/user/credentials", &token)).await;
    assert_eq!(status, StatusCode::OK);
    let matrix = app.matrix();
    let as_token = app.hs.env["CHATROOMS_MATRIX_AS_TOKEN"].clone();
    let as_login = json!({"type": "m.login.application_service",
        "identifier": {"type": "m.id.user", "user": app.user_id(user)}, "device_id": "BENCH_AS", "refresh_token": true});
    let password_login = json!({"type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": credentials["username"]},
        "password": credentials["password"], "device_id": "BENCH_PW", "refresh_token": true});
    let (mut service, mut appservice, mut password) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..60 {
        let started = Instant::now();
        let (status, _) = app
            .send(app.as_user(Method::POST, "/user/login", &token).json(&json!({"deviceID": "BENCH_SVC"})))
            .await;
        assert_eq!(status, StatusCode::OK);
        service.push(started.elapsed());

        let started = Instant::now();
        let (status, _) =
            matrix.call(Method::POST, "/_matrix/client/v3/login", &as_token, Some(as_login.clone())).await;
        assert_eq!(status, StatusCode::OK);
        appservice.push(started.elapsed());

        if round % 3 == 0 {
            let started = Instant::now();
            let (status, _) =
                matrix.call(Method::POST, "/_matrix/client/v3/login", "", Some(password_login.clone())).await;
            assert_eq!(status, StatusCode::OK);
            password.push(started.elapsed());
        }
    }
    summary("POST /user/login through the service", service);
    summary("homeserver application-service login", appservice);
    summary("homeserver password login (bcrypt, 12 rounds)", password);
    app.stop().await;
}
