use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{fresh_org, fresh_users, TestApp};

#[tokio::test]
async fn an_organization_has_at_most_one_default_room_and_can_remove_it() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let create = || {
        app.request(Method::POST, "/chatrooms/default")
            .json(&json!({"organizationID": org, "automationEnabled": true}))
    };
    let (status, room) = app.send(create()).await;
    assert_eq!(status, StatusCode::CREATED, "{room}");
    assert_eq!(room["type"], "default");
    assert_eq!(room["name"], "General");
    let room_id = room["matrixRoomID"].as_str().unwrap().to_owned();
    assert_eq!(app.matrix().room(&room_id).await.name.as_deref(), Some("General"));

    let (status, second) = app.send(create()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(second["error"]["code"], "default_room_exists");
    assert_eq!(app.list_total(org).await, 1, "the second create changed nothing");

    // Not through the custom-room path.
    let id = room["id"].as_i64().unwrap();
    let (status, refused) = app.send(app.request(Method::DELETE, &format!("/chatrooms/{id}"))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(refused["error"]["code"], "not_custom_room");
    assert!(app.matrix().room_exists(&room_id).await);

    let remove = format!("/organizations/{org}/chatrooms/default");
    let (status, _) = app.send(app.request(Method::DELETE, &remove)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!app.matrix().room_exists(&room_id).await);
    let (status, _) = app.send(app.request(Method::DELETE, &remove)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // With the old one gone, a new default room can be made.
    let (status, _) = app.send(create()).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn the_event_room_put_is_idempotent_and_replaces_role_lists() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let users = fresh_users(3);
    let path = format!("/organizations/{org}/events/77/chatroom");
    let body = json!({"name": "Concert", "admins": [users[0]], "assignedUsers": [users[1]]});
    let (status, created) = app.send(app.request(Method::PUT, &path).json(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["type"], "event");
    assert_eq!(created["eventID"], 77);
    let room_id = created["matrixRoomID"].as_str().unwrap().to_owned();

    let (status, again) = app.send(app.request(Method::PUT, &path).json(&body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["id"], created["id"]);
    assert_eq!(again["matrixRoomID"], created["matrixRoomID"], "no second Matrix room");
    assert_eq!(app.list_total(org).await, 1);

    let (status, found) = app
        .send(app.request(Method::GET, &format!("/chatrooms/by-event?organization_id={org}&event_id=77")))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["id"], created["id"]);
    let (status, _) = app
        .send(app.request(Method::GET, &format!("/chatrooms/by-event?organization_id={org}&event_id=78")))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // New lists replace the old: users[1] leaves, users[2] joins as moderator.
    let (status, replaced) = app
        .send(app.request(Method::PUT, &path).json(&json!({"admins": [users[0]], "moderators": [users[2]]})))
        .await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["name"], "Concert", "absent fields keep their value");
    let seen = app.matrix().room(&room_id).await;
    assert!(!seen.joined.contains(&app.user_id(users[1])));
    assert!(seen.joined.contains(&app.user_id(users[2])));
    let expected = [(app.user_id(users[0]), 100), (app.user_id(users[2]), 50)].into_iter().collect();
    assert_eq!(seen.power_users, expected);

    let (status, refused) =
        app.send(app.request(Method::DELETE, &format!("/chatrooms/{}", created["id"]))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    let (status, _) = app.send(app.request(Method::DELETE, &path)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!app.matrix().room_exists(&room_id).await);
}

#[tokio::test]
async fn a_new_event_room_needs_a_name() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let (status, body) = app
        .send(app.request(Method::PUT, &format!("/organizations/{org}/events/1/chatroom")).json(&json!({})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"]["message"].as_str().unwrap().contains("name"), "{body}");
    assert_eq!(app.list_total(org).await, 0);
}
