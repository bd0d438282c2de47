//! `Idempotency-Key`: a retried creating request returns the first result and creates nothing twice.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{fresh_org, fresh_users, jwt, TestApp};

#[tokio::test]
async fn a_retried_create_returns_the_first_room_and_creates_nothing_twice() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let users = fresh_users(2);
    let body = json!({"organizationID": org, "name": "Once only", "admins": [users[0]], "assignedUsers": [users[1]]});
    let create =
        |key: &str| app.request(Method::POST, "/chatrooms").header("Idempotency-Key", key).json(&body);

    let (status, first) = app.send(create("key-1")).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, retried) = app.send(create("key-1")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(retried["id"], first["id"]);
    assert_eq!(retried["matrixRoomID"], first["matrixRoomID"]);

    // Five retries racing each other still make one room.
    let racing = (0..5).map(|_| app.send(create("key-2")));
    let answers = futures::future::join_all(racing).await;
    let ids: std::collections::BTreeSet<_> = answers
        .iter()
        .map(|(status, room)| {
            assert_eq!(*status, StatusCode::CREATED, "{room}");
            room["id"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{answers:?}");
    assert_eq!(app.list_total(org).await, 2);

    // The same key for another request is refused; nothing is created.
    let (status, refused) = app
        .send(
            app.request(Method::POST, "/chatrooms")
                .header("Idempotency-Key", "key-1")
                .json(&json!({"organizationID": org, "name": "Other"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused["error"]["code"], "idempotency_key_reused");
    // Keys belong to their caller: an organization admin's "key-1" is a new request.
    let admin = jwt(json!(users[0].to_string()), json!([{"id": org, "admin": true}]), 600);
    let (status, own) = app
        .send(app.as_user(Method::POST, "/chatrooms", &admin).header("Idempotency-Key", "key-1").json(&body))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(own["id"], first["id"]);
    assert_eq!(app.list_total(org).await, 3);

    let (status, _) = app.send(create(&"k".repeat(256))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app.send(create("")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(app.list_total(org).await, 3);
}

#[tokio::test]
async fn a_retried_default_room_create_answers_with_the_room_instead_of_a_conflict() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let create = |key: Option<&str>| {
        let request = app.request(Method::POST, "/chatrooms/default").json(&json!({"organizationID": org}));
        match key {
            Some(key) => request.header("Idempotency-Key", key),
            None => request,
        }
    };
    let (status, first) = app.send(create(Some("default-1"))).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, retried) = app.send(create(Some("default-1"))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(retried["id"], first["id"]);
    let (status, conflict) = app.send(create(None)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{conflict}");
    let (status, _) = app.send(create(Some("default-2"))).await;
    assert_eq!(status, StatusCode::CONFLICT, "a new key is a new request");
}

#[tokio::test]
async fn idempotency_keys_are_forgotten_after_a_day() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let create = || {
        app.request(Method::POST, "/chatrooms")
            .header("Idempotency-Key", "daily")
            .json(&json!({"organizationID": org, "name": "Daily"}))
    };
    let (status, first) = app.send(create()).await;
    assert_eq!(status, StatusCode::CREATED);
    app.clock.advance(chrono::Duration::hours(25));
    // The scheduler forgets keys older than a day; the same key is then a new request.
    crate::harness::eventually("the key is forgotten", std::time::Duration::from_secs(10), || async {
        let (status, again) = app.send(create()).await;
        status == StatusCode::CREATED && again["id"] != first["id"]
    })
    .await;
    assert_eq!(app.list_total(org).await, 2);
}
