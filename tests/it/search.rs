//! Message search through the homeserver's own search: in a room, and across the rooms of an
//! organization a caller may read.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{fresh_org, fresh_users, jwt, TestApp};

async fn send(app: &TestApp, room: &Value, body: &str) -> String {
    let (status, sent) = app
        .send(
            app.request(Method::POST, &format!("/chatrooms/{}/messages", room["id"]))
                .json(&json!({"body": body})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    sent["eventID"].as_str().unwrap().to_owned()
}

fn bodies(page: &Value) -> Vec<&str> {
    page["entries"].as_array().unwrap().iter().map(|e| e["body"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn a_word_is_found_across_the_rooms_a_caller_may_read_and_redacted_messages_never() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let [member, outsider] = fresh_users(2)[..] else { unreachable!() };
    let first =
        app.create_room(json!({"organizationID": org, "name": "First", "assignedUsers": [member]})).await;
    let second =
        app.create_room(json!({"organizationID": org, "name": "Second", "assignedUsers": [member]})).await;
    let closed = app.create_room(json!({"organizationID": org, "name": "Closed"})).await;
    let elsewhere = app.create_room(json!({"organizationID": fresh_org(), "name": "Elsewhere"})).await;
    send(&app, &first, "The quarterly RAINBOW report").await;
    send(&app, &first, "nothing to see").await;
    send(&app, &second, "rainbow party tonight").await;
    let gone = send(&app, &second, "rainbow secret, regretted").await;
    send(&app, &closed, "Rainbow plans for staff").await;
    send(&app, &elsewhere, "rainbow of another organization").await;
    let (status, _) = app
        .send(app.request(
            Method::DELETE,
            &format!("/chatrooms/{}/messages/{}", second["id"], urlencoding::encode(&gone)),
        ))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let search = |token: Option<String>, query: &str| {
        let path = format!("/organizations/{org}/messages?{query}");
        match token {
            Some(token) => app.as_user(Method::GET, &path, &token),
            None => app.request(Method::GET, &path),
        }
    };
    let admin = jwt(json!("1"), json!([{"id": org, "admin": true}]), 600);
    let (status, page) = app.send(search(Some(admin), "search=rainbow")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(
        bodies(&page),
        ["Rainbow plans for staff", "rainbow party tonight", "The quarterly RAINBOW report"],
        "every room of the organization, newest first, in any case, not the redacted one: {page}"
    );
    let rooms: Vec<&Value> = page["entries"].as_array().unwrap().iter().map(|e| &e["roomID"]).collect();
    assert_eq!(rooms, [&closed["id"], &second["id"], &first["id"]]);
    assert!(page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["edited"] == false && e["senderID"].is_null()));

    let as_member = jwt(json!(member.to_string()), json!([]), 600);
    let (status, page) = app.send(search(Some(as_member.clone()), "search=RAINBOW")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(bodies(&page), ["rainbow party tonight", "The quarterly RAINBOW report"], "only their rooms");
    let (status, ban) = app
        .send(
            app.request(Method::POST, &format!("/chatrooms/{}/bans", second["id"]))
                .json(&json!({"userID": member})),
        )
        .await;
    assert!(status.is_success(), "{ban}");
    let (_, page) = app.send(search(Some(as_member.clone()), "search=rainbow")).await;
    assert_eq!(bodies(&page), ["The quarterly RAINBOW report"], "not a room they are banned from: {page}");
    let (status, _) =
        app.send(app.request(Method::DELETE, &format!("/chatrooms/{}/bans/{member}", second["id"]))).await;
    assert!(status.is_success());
    let as_outsider = jwt(json!(outsider.to_string()), json!([]), 600);
    let (status, page) = app.send(search(Some(as_outsider), "search=rainbow")).await;
    assert_eq!((status, page["entries"].as_array().unwrap().len()), (StatusCode::OK, 0), "{page}");

    // Page by page: every match once.
    let mut seen = BTreeSet::new();
    let mut from: Option<String> = None;
    for _ in 0..5 {
        let query = match &from {
            Some(from) => format!("search=rainbow&limit=2&from={}", urlencoding::encode(from)),
            None => "search=rainbow&limit=2".to_owned(),
        };
        let (status, page) = app.send(search(None, &query)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page["entries"].as_array().unwrap().len() <= 2);
        for body in bodies(&page) {
            assert!(seen.insert(body.to_owned()), "{body} came twice");
        }
        match page["next"].as_str() {
            Some(next) => from = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 3, "{seen:?}");

    // In one room: its readers only.
    let in_room = |room: &Value, token: &str| {
        app.as_user(Method::GET, &format!("/chatrooms/{}/messages?search=rainbow", room["id"]), token)
    };
    let (status, page) = app.send(in_room(&first, &as_member)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(bodies(&page), ["The quarterly RAINBOW report"]);
    assert_eq!(page["entries"][0]["roomID"], first["id"]);
    let (status, _) = app.send(in_room(&closed, &as_member)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a room they hold no role in");
}

#[tokio::test]
async fn bad_searches_are_refused() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let room = app.create_room(json!({"organizationID": org, "name": "Searched"})).await;
    send(&app, &room, "something").await;
    let long = "x".repeat(201);
    for query in
        ["search=", "search=%20%20", &format!("search={long}"), "search=a&limit=0", "search=a&limit=101"]
    {
        for path in [
            format!("/organizations/{org}/messages?{query}"),
            format!("/chatrooms/{}/messages?{query}", room["id"]),
        ] {
            let (status, body) = app.send(app.request(Method::GET, &path)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        }
    }
    let (status, body) = app.send(app.request(Method::GET, &format!("/organizations/{org}/messages"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "search is required: {body}");
    let (status, body) = app
        .send(app.request(Method::GET, &format!("/organizations/{org}/messages?search=a&from=not-a-token")))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = app.send(app.request(Method::GET, "/organizations/0/messages?search=a")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
