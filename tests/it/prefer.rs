//! `Prefer: wait=N` and `respond-async` (RFC 7240) on writes.

use std::{sync::Arc, time::Duration};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{eventually, fresh_database, fresh_org, fresh_users, TestApp};

/// Sends with a `Prefer` header: the status, `Preference-Applied` (empty if absent) and body.
async fn send_preferring(request: reqwest::RequestBuilder, prefer: &str) -> (StatusCode, String, Value) {
    let response = request.header("Prefer", prefer).send().await.expect("request sent");
    let status = response.status();
    let applied = response
        .headers()
        .get("preference-applied")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, applied, body)
}

#[tokio::test]
async fn respond_async_answers_at_once_and_the_worker_converges_the_room() {
    let app = TestApp::spawn().await;
    let users = fresh_users(2);
    let create = app.request(Method::POST, "/chatrooms").json(&json!({
        "organizationID": fresh_org(), "name": "Later", "admins": [users[0]], "assignedUsers": [users[1]],
    }));
    let (status, applied, room) = send_preferring(create, "respond-async").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{room}");
    assert_eq!(applied, "respond-async");
    assert_eq!(room["syncStatus"], "pending");
    let id = room["id"].as_i64().unwrap();
    eventually("the worker creates the room", Duration::from_secs(30), || async {
        let (_, room) = app.send(app.request(Method::GET, &format!("/chatrooms/{id}"))).await;
        room["syncStatus"] == "synced"
    })
    .await;
    let (_, room) = app.send(app.request(Method::GET, &format!("/chatrooms/{id}"))).await;
    let seen = app.matrix().room(room["matrixRoomID"].as_str().unwrap()).await;
    assert_eq!(seen.name.as_deref(), Some("Later"));
    assert!(seen.joined.contains(&app.user_id(users[1])), "{:?}", seen.joined);

    // A caller who waits gets the synchronous answer, and is told its wait was honoured.
    let rename = app.request(Method::PATCH, &format!("/chatrooms/{id}")).json(&json!({"name": "Now"}));
    let (status, applied, renamed) = send_preferring(rename, "wait=60").await;
    assert_eq!((status, applied.as_str()), (StatusCode::OK, "wait=60"), "{renamed}");
    assert_eq!(renamed["syncStatus"], "synced");
    // Reads have nothing to wait for: nothing is applied.
    let read = app.request(Method::GET, &format!("/chatrooms/{id}"));
    let (status, applied, _) = send_preferring(read, "respond-async").await;
    assert_eq!((status, applied.as_str()), (StatusCode::OK, ""));
}

#[tokio::test]
async fn a_short_wait_answers_202_while_the_homeserver_is_down() {
    // This instance's homeserver URL points nowhere, and its own wait is long.
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let offline = TestApp::spawn_on(Arc::new(fresh_database().await), |env| {
        env.insert("CHATROOMS_HOMESERVER_URL".into(), format!("http://127.0.0.1:{dead_port}"));
        env.insert("CHATROOMS_SYNC_WAIT_MS".into(), "120000".into());
    })
    .await;
    let create = offline
        .request(Method::POST, "/chatrooms")
        .json(&json!({"organizationID": fresh_org(), "name": "Soon"}));
    let started = std::time::Instant::now();
    let (status, applied, room) = send_preferring(create, "wait=1").await;
    assert_eq!((status, applied.as_str()), (StatusCode::ACCEPTED, "wait=1"), "{room}");
    assert!(room["syncError"].as_str().unwrap_or_default().contains("unreachable"), "{room}");
    // Not a timing goal: the configured two minutes would have run past the client's patience.
    assert!(started.elapsed() < Duration::from_secs(60), "the preferred wait, not the configured one");
}

#[tokio::test]
async fn a_202_for_a_large_room_shows_how_many_listed_users_are_joined_so_far() {
    let app = TestApp::spawn().await;
    let users = fresh_users(60);
    let create = app.request(Method::POST, "/chatrooms").json(&json!({
        "organizationID": fresh_org(), "name": "Crowded", "admins": [users[0]], "assignedUsers": users[1..],
    }));
    let (status, _, room) = send_preferring(create, "respond-async").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{room}");
    let id = room["id"].as_i64().unwrap();
    // Polled as a client would: while the joins run, the count only grows, up to the 60 listed.
    let seen = std::cell::RefCell::new(Vec::<i64>::new());
    eventually("the room is synced", Duration::from_secs(120), || async {
        let (_, room) = app.send(app.request(Method::GET, &format!("/chatrooms/{id}"))).await;
        if room["syncStatus"] == "synced" {
            assert_eq!(room["syncProgress"], Value::Null, "no progress once in sync");
            return true;
        }
        if let Some(progress) = room["syncProgress"].as_object() {
            assert_eq!(progress["listed"], 60, "{room}");
            seen.borrow_mut().push(progress["joined"].as_i64().unwrap());
        }
        false
    })
    .await;
    let seen = seen.into_inner();
    assert!(!seen.is_empty(), "the joins were seen under way");
    assert!(seen.windows(2).all(|pair| pair[0] <= pair[1]), "never fewer joined than before: {seen:?}");
    assert!(seen.iter().all(|joined| (0..=60).contains(joined)), "{seen:?}");
    let (_, room) = app.send(app.request(Method::GET, &format!("/chatrooms/{id}"))).await;
    let joined = app.matrix().room(room["matrixRoomID"].as_str().unwrap()).await.joined;
    assert!(users.iter().all(|user| joined.contains(&app.user_id(*user))), "all 60 joined");
}
