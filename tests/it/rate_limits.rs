//! Per-caller rate limits on logins, credentials and writes: a `429` with `Retry-After`, given
//! before the homeserver is asked anything.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{fresh_org, fresh_users, jwt, TestApp};

/// Homeserver calls of one operation so far, from the service's own histogram.
async fn homeserver_calls(app: &TestApp, operation: &str) -> u64 {
    let text = app.anonymous(Method::GET, "/metrics").send().await.unwrap().text().await.unwrap();
    let prefix = format!(r#"chatrooms_homeserver_request_duration_seconds_count{{operation="{operation}","#);
    text.lines()
        .filter(|line| line.starts_with(&prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn a_user_looping_on_login_gets_429_without_reaching_the_homeserver() {
    let app = TestApp::spawn_with(|vars| {
        vars.insert("CHATROOMS_RATE_LIMIT_LOGINS_PER_MINUTE".into(), "3".into());
        vars.insert("CHATROOMS_RATE_LIMIT_CREDENTIALS_PER_MINUTE".into(), "2".into());
    })
    .await;
    let [me, other] = fresh_users(2)[..] else { unreachable!() };
    let token = jwt(json!(me.to_string()), json!([]), 600);
    let login = || app.as_user(Method::POST, "/user/login", &token).json(&json!({"deviceID": "LOOP"}));
    for _ in 0..3 {
        let (status, body) = app.send(login()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let logins_before = homeserver_calls(&app, "login").await;
    assert!(logins_before >= 3, "each allowed login reached Synapse: {logins_before}");
    for _ in 0..20 {
        let response = login().send().await.unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        // Three per minute: the next login is due within about 20 s.
        assert!((1..=20).contains(&retry_after), "Retry-After {retry_after}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    }
    assert_eq!(
        homeserver_calls(&app, "login").await,
        logins_before,
        "the refused logins cost Synapse nothing"
    );

    // Another user, the user's other kinds of requests, and the backend have buckets of their own.
    let others = jwt(json!(other.to_string()), json!([]), 600);
    let (status, body) =
        app.send(app.as_user(Method::POST, "/user/login", &others).json(&json!({"deviceID": "OTHER"}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.send(app.request(Method::POST, &format!("/user/login?user_id={me}"))).await;
    assert_eq!(status, StatusCode::OK, "the backend logs the user in: {body}");
    for expected in [StatusCode::OK, StatusCode::OK, StatusCode::TOO_MANY_REQUESTS] {
        let (status, body) = app.send(app.as_user(Method::GET, "/user/credentials", &token)).await;
        assert_eq!(status, expected, "{body}");
    }
    // Reads are not limited.
    for _ in 0..5 {
        let (status, _) = app.send(app.as_user(Method::GET, "/user/devices", &token)).await;
        assert_eq!(status, StatusCode::OK);
    }
}

#[tokio::test]
async fn writes_are_limited_per_user_and_the_backend_has_its_own_higher_limit() {
    let app = TestApp::spawn_with(|vars| {
        vars.insert("CHATROOMS_RATE_LIMIT_WRITES_PER_MINUTE".into(), "2".into());
        vars.insert("CHATROOMS_RATE_LIMIT_BACKEND_PER_SECOND".into(), "5".into());
    })
    .await;
    let org = fresh_org();
    let admin = fresh_users(1)[0];
    let token = jwt(json!(admin.to_string()), json!([{"id": org, "admin": true}]), 600);
    let create = |name: &str| {
        app.as_user(Method::POST, "/chatrooms", &token).json(&json!({"organizationID": org, "name": name}))
    };
    for name in ["One", "Two"] {
        let (status, body) = app.send(create(name)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = app.send(create("Three")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(app.list_total(org).await, 2, "the refused write changed nothing");

    // The backend's bucket: twenty at once, of which five pass (more if it refilled meanwhile,
    // one every 200 ms) and the rest are refused.
    let app = &app;
    let requests = (0..20).map(|i| {
        let body = json!({"organizationID": org, "name": format!("B{i}")});
        async move { app.send(app.request(Method::POST, "/chatrooms").json(&body)).await.0 }
    });
    let statuses = futures::future::join_all(requests).await;
    let created = statuses.iter().filter(|s| **s == StatusCode::CREATED).count();
    let limited = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert!(created >= 5 && limited >= 1, "{statuses:?}");
    assert_eq!(created + limited, 20, "{statuses:?}");
}

#[tokio::test]
async fn a_report_flood_is_limited_like_other_writes() {
    let app = TestApp::spawn_with(|vars| {
        vars.insert("CHATROOMS_RATE_LIMIT_WRITES_PER_MINUTE".into(), "3".into());
    })
    .await;
    let [flooder, sender] = fresh_users(2)[..] else { unreachable!() };
    let room = app
        .create_room(
            json!({"organizationID": fresh_org(), "name": "Flooded", "assignedUsers": [flooder, sender]}),
        )
        .await;
    let token = jwt(json!(flooder.to_string()), json!([]), 600);
    let mut statuses = Vec::new();
    for i in 0..5 {
        // Sent by the backend, whose writes have a bucket of their own.
        let (status, sent) = app
            .send(
                app.request(Method::POST, &format!("/chatrooms/{}/messages", room["id"]))
                    .json(&json!({"body": format!("message {i}"), "senderID": sender})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{sent}");
        let path = format!(
            "/chatrooms/{}/messages/{}/reports",
            room["id"],
            urlencoding::encode(sent["eventID"].as_str().unwrap())
        );
        let (status, _) =
            app.send(app.as_user(Method::POST, &path, &token).json(&json!({"reason": "flood"}))).await;
        statuses.push(status);
    }
    assert_eq!(statuses[..3], [StatusCode::CREATED; 3], "{statuses:?}");
    assert_eq!(statuses[3..], [StatusCode::TOO_MANY_REQUESTS; 2], "{statuses:?}");
    let (status, queue) =
        app.send(app.request(Method::GET, &format!("/chatrooms/{}/reports", room["id"]))).await;
    assert_eq!(
        (status, &queue["total"]),
        (StatusCode::OK, &json!(3)),
        "the refused reports are not stored: {queue}"
    );
}
