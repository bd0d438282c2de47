//! Archived rooms, as Matrix clients (matrix-sdk) and the homeserver see them: members and
//! moderators read the history but cannot post; unarchive gives the levels back, mutes
//! included; lists leave archived rooms out unless asked.

use matrix_sdk::{
    room::MessagesOptions,
    ruma::{events::room::message::RoomMessageEventContent, OwnedRoomId},
    Client,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{
    harness::{fresh_org, fresh_users, jwt, TestApp},
    mobile_client::client_of,
};

/// `false`: refused by the homeserver (403), not failed otherwise.
async fn posts(client: &Client, room: &OwnedRoomId, text: &str) -> bool {
    match client
        .get_room(room)
        .expect("the client knows the room")
        .send(RoomMessageEventContent::text_plain(text))
        .await
    {
        Ok(_) => true,
        Err(e) if format!("{e:?}").contains("status_code: 403") => false,
        Err(e) => panic!("the send failed otherwise: {e:?}"),
    }
}

/// The message bodies the client reads back, newest first.
async fn history(client: &Client, room: &OwnedRoomId) -> Vec<String> {
    let messages =
        client.get_room(room).unwrap().messages(MessagesOptions::backward()).await.expect("history");
    messages
        .chunk
        .iter()
        .filter_map(|event| event.raw().get_field::<Value>("content").ok().flatten())
        .filter_map(|content| content["body"].as_str().map(str::to_owned))
        .collect()
}

async fn archive(app: &TestApp, room: i64, action: &str) -> (StatusCode, Value) {
    app.send(app.request(Method::POST, &format!("/chatrooms/{room}/{action}"))).await
}

#[tokio::test]
async fn an_archived_room_is_read_but_not_posted_in_and_unarchive_gives_the_levels_back() {
    let app = TestApp::spawn().await;
    let [admin, moderator, member, muted] = fresh_users(4)[..] else { unreachable!() };
    let org = fresh_org();
    let room = app
        .create_room(
            json!({"organizationID": org, "name": "Closing", "admins": [admin], "moderators": [moderator],
            "assignedUsers": [member, muted]}),
        )
        .await;
    let id = room["id"].as_i64().unwrap();
    let room_id: OwnedRoomId = room["matrixRoomID"].as_str().unwrap().try_into().unwrap();
    let (status, _) = app
        .send(app.request(Method::POST, &format!("/chatrooms/{id}/mutes")).json(&json!({"userID": muted})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (member_client, moderator_client) = (client_of(&app, member).await, client_of(&app, moderator).await);
    assert!(posts(&member_client, &room_id, "before").await);
    let levels_in_use = app.matrix().room(room_id.as_str()).await.power_levels;

    let (status, archived) = archive(&app, id, "archive").await;
    assert_eq!(status, StatusCode::OK, "{archived}");
    assert_eq!(archived["archived"], true);
    assert!(archived["archivedAt"].is_string(), "{archived}");
    let levels = app.matrix().room(room_id.as_str()).await.power_levels;
    assert_eq!((levels["events_default"].clone(), levels["state_default"].clone()), (json!(101), json!(101)));
    assert_eq!(levels["events"]["m.room.name"], 101, "{levels}");
    assert!(!posts(&member_client, &room_id, "after").await, "a member is refused");
    assert!(!posts(&moderator_client, &room_id, "after").await, "a moderator too");
    assert_eq!(history(&member_client, &room_id).await.first().map(String::as_str), Some("before"));
    assert_eq!(history(&moderator_client, &room_id).await.first().map(String::as_str), Some("before"));
    let send = json!({"body": "through the API"});
    let (status, refused) =
        app.send(app.request(Method::POST, &format!("/chatrooms/{id}/messages")).json(&send)).await;
    assert_eq!((status, refused["error"]["code"].clone()), (StatusCode::CONFLICT, json!("room_archived")));
    // Still managed: a role list change lands, members stay.
    let (status, added) = app
        .send(
            app.request(Method::POST, &format!("/chatrooms/{id}/users"))
                .json(&json!({"moderators": [member]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{added}");
    let seen = app.matrix().room(room_id.as_str()).await;
    assert_eq!(seen.power_users.get(&app.user_id(member)), Some(&50));
    assert_eq!(seen.memberships.get(&app.user_id(muted)).map(String::as_str), Some("join"));
    let (status, again) = archive(&app, id, "archive").await;
    assert_eq!(
        (status, again["archivedAt"].clone()),
        (StatusCode::OK, archived["archivedAt"].clone()),
        "idempotent"
    );

    // Left out of lists unless asked.
    let list = |query: String| {
        let app = &app;
        async move {
            let (status, page) =
                app.send(app.request(Method::GET, &format!("/chatrooms?organization_id={org}{query}"))).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            page["total"].as_i64().unwrap()
        }
    };
    assert_eq!(
        (list(String::new()).await, list("&archived=true".into()).await, list("&archived=any".into()).await),
        (0, 1, 1)
    );
    let (_, theirs) =
        app.send(app.request(Method::GET, &format!("/users/{member}/chatrooms?archived=true"))).await;
    assert_eq!(theirs["total"], 1, "{theirs}");
    let (_, theirs) = app.send(app.request(Method::GET, &format!("/users/{member}/chatrooms"))).await;
    assert_eq!(theirs["total"], 0, "{theirs}");

    // Unarchived: the levels the settings imply, the mute and the new moderator included.
    let (status, open) = archive(&app, id, "unarchive").await;
    assert_eq!(
        (status, open["archived"].clone(), open["archivedAt"].clone()),
        (StatusCode::OK, json!(false), Value::Null)
    );
    let mut expected = levels_in_use.clone();
    expected["users"][app.user_id(member)] = json!(50);
    assert_eq!(app.matrix().room(room_id.as_str()).await.power_levels, expected);
    assert!(posts(&member_client, &room_id, "open again").await);
    let muted_client = client_of(&app, muted).await;
    assert!(!posts(&muted_client, &room_id, "still muted").await, "the mute holds");
    let (status, _) = archive(&app, id, "unarchive").await;
    assert_eq!(status, StatusCode::OK, "idempotent");
}

#[tokio::test]
async fn only_admins_archive_and_a_room_being_deleted_or_unknown_is_not_found() {
    let app = TestApp::spawn().await;
    let [admin, moderator] = fresh_users(2)[..] else { unreachable!() };
    let org = fresh_org();
    let room = app
        .create_room(
            json!({"organizationID": org, "name": "Guarded", "admins": [admin], "moderators": [moderator]}),
        )
        .await;
    let id = room["id"].as_i64().unwrap();
    let path = format!("/chatrooms/{id}/archive");
    let as_moderator = jwt(json!(moderator.to_string()), json!([]), 600);
    let (status, refused) = app.send(app.as_user(Method::POST, &path, &as_moderator)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    let (_, unchanged) = app.send(app.request(Method::GET, &format!("/chatrooms/{id}"))).await;
    assert_eq!(unchanged["archived"], false);
    let as_admin = jwt(json!(admin.to_string()), json!([]), 600);
    let (status, archived) = app.send(app.as_user(Method::POST, &path, &as_admin)).await;
    assert_eq!((status, archived["archived"].clone()), (StatusCode::OK, json!(true)), "{archived}");
    let org_admin = jwt(json!(fresh_users(1)[0].to_string()), json!([{"id": org, "admin": true}]), 600);
    let (status, _) =
        app.send(app.as_user(Method::POST, &format!("/chatrooms/{id}/unarchive"), &org_admin)).await;
    assert_eq!(status, StatusCode::OK);

    let (status, _) = app.send(app.request(Method::DELETE, &format!("/chatrooms/{id}"))).await;
    assert!(status.is_success());
    for bad in [format!("/chatrooms/{id}/archive"), "/chatrooms/999999999/archive".into()] {
        let (status, body) = app.send(app.request(Method::POST, &bad)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{bad}: {body}");
    }
    for bad in ["/chatrooms/-1/archive", "/chatrooms/x/unarchive"] {
        let (status, _) = app.send(app.request(Method::POST, bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let (status, _) =
        app.send(app.request(Method::GET, &format!("/chatrooms?organization_id={org}&archived=maybe"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
