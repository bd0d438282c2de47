//! Room settings: topic, read-only, maxUsers and copyFrom, as the homeserver and a Matrix client
//! (matrix-sdk) see them.

use matrix_sdk::{
    ruma::{events::room::message::RoomMessageEventContent, OwnedRoomId},
    Client,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{
    harness::{fresh_org, fresh_users, tiny_png, TestApp},
    mobile_client::client_of,
};

fn matrix_id(room: &Value) -> &str {
    room["matrixRoomID"].as_str().expect("the room exists on the homeserver")
}

/// Whether the client may post a message in the room (the homeserver decides: the client
/// needs no fresh state to try).
async fn posts(client: &Client, room: &Value) -> bool {
    let room_id: OwnedRoomId = matrix_id(room).try_into().unwrap();
    let joined = client.get_room(&room_id).expect("the client is in the room");
    match joined.send(RoomMessageEventContent::text_plain("hello")).await {
        Ok(_) => true,
        Err(e) if format!("{e:?}").contains("status_code: 403") => false,
        Err(e) => panic!("the send failed otherwise: {e:?}"),
    }
}

async fn patch(app: &TestApp, room: &Value, body: Value) -> (StatusCode, Value) {
    app.send(app.request(Method::PATCH, &format!("/chatrooms/{}", room["id"])).json(&body)).await
}

#[tokio::test]
async fn a_read_only_room_lets_moderators_post_and_members_read_and_its_topic_is_on_the_homeserver() {
    let app = TestApp::spawn().await;
    let [moderator, member] = fresh_users(2)[..] else { unreachable!() };
    let room = app
        .create_room(json!({
            "organizationID": fresh_org(), "name": "Announcements", "topic": "  Agenda for today \n",
            "readOnly": true, "moderators": [moderator], "assignedUsers": [member],
        }))
        .await;
    assert_eq!(room["topic"], "Agenda for today");
    assert_eq!(room["readOnly"], true);
    assert_eq!(room["maxUsers"], Value::Null);
    let seen = app.matrix().room(matrix_id(&room)).await;
    assert_eq!(seen.topic.as_deref(), Some("Agenda for today"));
    assert_eq!(seen.events_default, 50);

    let (moderator, member) = (client_of(&app, moderator).await, client_of(&app, member).await);
    assert!(posts(&moderator, &room).await, "a moderator posts in a read-only room");
    assert!(!posts(&member, &room).await, "a member's message is refused by the homeserver");

    let (status, body) = patch(&app, &room, json!({"readOnly": false, "topic": null})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["readOnly"].clone(), body["topic"].clone()), (json!(false), Value::Null));
    let seen = app.matrix().room(matrix_id(&room)).await;
    assert_eq!((seen.topic, seen.events_default), (None, 0));
    assert!(posts(&member, &room).await, "the member posts once the room is open again");

    // The room's moderator may close it again through their own token, but nothing else.
    let [moderator_id] = [room["moderators"][0].as_i64().unwrap()];
    let token = crate::harness::jwt(json!(moderator_id.to_string()), json!([]), 600);
    let own =
        |body: Value| app.as_user(Method::PATCH, &format!("/chatrooms/{}", room["id"]), &token).json(&body);
    let (status, body) = app.send(own(json!({"readOnly": true}))).await;
    assert_eq!((status, body["readOnly"].clone()), (StatusCode::OK, json!(true)), "{body}");
    assert_eq!(app.matrix().room(matrix_id(&room)).await.events_default, 50);
    for other in [json!({"readOnly": false, "topic": "mine now"}), json!({"readOnly": false, "topic": null})]
    {
        let (status, _) = app.send(own(other.clone())).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "readOnly alone: {other}");
    }
    let (status, _) = app.send(own(json!({"readOnly": false}))).await;
    assert_eq!(status, StatusCode::OK);
    let member_token =
        crate::harness::jwt(json!(room["assignedUsers"][0].as_i64().unwrap().to_string()), json!([]), 600);
    let as_member = app.as_user(Method::PATCH, &format!("/chatrooms/{}", room["id"]), &member_token);
    let (status, _) = app.send(as_member.json(&json!({"readOnly": true}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "an assigned user may not");

    // Bad input changes nothing.
    for bad in
        [json!({"topic": "x".repeat(1_001)}), json!({"topic": "ring\u{7}"}), json!({"readOnly": "yes"})]
    {
        let (status, body) = patch(&app, &room, bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    let (_, now) = app.send(app.request(Method::GET, &format!("/chatrooms/{}", room["id"]))).await;
    assert_eq!((now["topic"].clone(), now["readOnly"].clone()), (Value::Null, json!(false)));
}

#[tokio::test]
async fn max_users_caps_the_lists_and_says_how_many_places_are_left() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let users = fresh_users(5);
    let room = app
        .create_room(json!({"organizationID": org, "name": "Small", "assignedUsers": [users[0], users[1]], "maxUsers": 3}))
        .await;
    assert_eq!(room["maxUsers"], 3);
    let add = |list: Vec<i64>| {
        app.request(Method::POST, &format!("/chatrooms/{}/users", room["id"]))
            .json(&json!({"assignedUsers": list}))
    };
    let (status, body) = app.send(add(vec![users[2], users[3]])).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "room_full");
    assert!(body["error"]["message"].as_str().unwrap().contains("1 places are left"), "{body}");
    let joined = app.matrix().room(matrix_id(&room)).await.joined;
    assert!(!joined.contains(&app.user_id(users[2])), "the refused addition reached nobody");

    let (status, body) = app.send(add(vec![users[2]])).await;
    assert_eq!(status, StatusCode::OK, "the last place: {body}");
    let (status, body) = app.send(add(vec![users[0]])).await;
    assert_eq!(status, StatusCode::OK, "a user already listed takes no new place: {body}");

    let (status, body) = patch(&app, &room, json!({"maxUsers": 2})).await;
    assert_eq!(status, StatusCode::CONFLICT, "below the users the room holds: {body}");
    assert_eq!(body["error"]["code"], "room_full");
    for bad in [json!({"maxUsers": 0}), json!({"maxUsers": 10_001}), json!({"maxUsers": -1})] {
        let (status, body) = patch(&app, &room, bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    let (status, body) = patch(&app, &room, json!({"maxUsers": null})).await;
    assert_eq!((status, body["maxUsers"].clone()), (StatusCode::OK, Value::Null), "{body}");
    let (status, body) = app.send(add(vec![users[3], users[4]])).await;
    assert_eq!(status, StatusCode::OK, "no limit any more: {body}");

    let too_many = json!({"organizationID": org, "name": "Crowded", "assignedUsers": users, "maxUsers": 4});
    let (status, body) = app.send(app.request(Method::POST, "/chatrooms").json(&too_many)).await;
    assert_eq!((status, body["error"]["code"].clone()), (StatusCode::CONFLICT, json!("room_full")), "{body}");
    assert_eq!(app.list_total(org).await, 1, "nothing was created");

    // The event room's PUT takes the settings too, and replacing its lists is capped alike.
    let path = format!("/organizations/{org}/events/7/chatroom");
    let put = |body: Value| app.request(Method::PUT, &path).json(&body);
    let (status, event_room) = app
        .send(put(json!({"name": "Event", "maxUsers": 2, "topic": "Doors open at 9", "readOnly": true})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{event_room}");
    let seen = app.matrix().room(matrix_id(&event_room)).await;
    assert_eq!((seen.topic.as_deref(), seen.events_default), (Some("Doors open at 9"), 50));
    let (status, body) = app.send(put(json!({"assignedUsers": [users[0], users[1], users[2]]}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("2 places are left"), "{body}");
}

#[tokio::test]
async fn copy_from_starts_a_room_with_another_rooms_settings_and_shares_its_avatar_safely() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let template = app
        .create_room(json!({
            "organizationID": org, "name": "Template", "avatar": tiny_png(), "topic": "House rules",
            "readOnly": true, "maxUsers": 5, "automationEnabled": true,
        }))
        .await;
    let copy = app
        .create_room(
            json!({"organizationID": org, "name": "Copy", "copyFrom": template["id"], "readOnly": false}),
        )
        .await;
    assert_eq!(copy["avatarURL"], template["avatarURL"]);
    assert_eq!(copy["topic"], "House rules");
    assert_eq!(copy["readOnly"], false, "a field of the request wins");
    assert_eq!(copy["maxUsers"], 5);
    assert_eq!(copy["automationEnabled"], true);
    let seen = app.matrix().room(matrix_id(&copy)).await;
    assert_eq!(seen.topic.as_deref(), Some("House rules"));
    assert_eq!(seen.avatar.as_deref(), template["avatarURL"].as_str());
    assert_eq!(seen.events_default, 0);

    let bare = app
        .create_room(json!({"organizationID": org, "name": "Bare", "copyFrom": template["id"], "avatar": null, "topic": null}))
        .await;
    assert_eq!((bare["avatarURL"].clone(), bare["topic"].clone()), (Value::Null, Value::Null));
    assert_eq!(bare["readOnly"], true);

    for (copy_from, what) in [(json!(999_999_999), "does not exist"), (json!(0), "copyFrom")] {
        let body = json!({"organizationID": org, "name": "Nope", "copyFrom": copy_from});
        let (status, answer) = app.send(app.request(Method::POST, "/chatrooms").json(&body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains(what), "{answer}");
    }
    let elsewhere = json!({"organizationID": fresh_org(), "name": "Nope", "copyFrom": template["id"]});
    let (status, answer) = app.send(app.request(Method::POST, "/chatrooms").json(&elsewhere)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("another organization"), "{answer}");
    assert_eq!(app.list_total(org).await, 3);

    // Deleting the template keeps the avatar the copy still shows; deleting the copy drops it.
    let avatar = template["avatarURL"].as_str().unwrap();
    for (room, kept) in [(&template, true), (&copy, false)] {
        let (status, _) = app.send(app.request(Method::DELETE, &format!("/chatrooms/{}", room["id"]))).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(app.matrix().media_exists(avatar).await, kept);
    }
}

#[tokio::test]
async fn a_topic_or_read_only_changed_by_hand_on_the_homeserver_is_restored() {
    let app = TestApp::spawn().await;
    let room = app
        .create_room(
            json!({"organizationID": fresh_org(), "name": "Guarded", "topic": "Ours", "readOnly": true}),
        )
        .await;
    let matrix = app.matrix();
    let state = |event: &str| {
        format!("/_matrix/client/v3/rooms/{}/state/{event}/", urlencoding::encode(matrix_id(&room)))
    };
    // The room's sync that links it to its organization's space, once made, would repair the
    // hand edits below before the test reads them: let it pass first (the room then names the
    // space).
    crate::harness::eventually("the room names its space", std::time::Duration::from_secs(30), || async {
        let (_, events) =
            matrix.call(Method::GET, &state("").replace("/state//", "/state"), matrix.as_token(), None).await;
        events.as_array().is_some_and(|events| events.iter().any(|e| e["type"] == "m.space.parent"))
    })
    .await;
    app.settled(&room).await;
    assert_eq!(
        crate::harness::counter(&app, "chatrooms_drift_repairs_total").await,
        0,
        "linking a room to its new space is no drift repair"
    );
    // The organization's space, made and in step, as the gauge counts it.
    for (status, count) in [("synced", 1.0), ("pending", 0.0), ("failed", 0.0)] {
        let series = format!("chatrooms_spaces{{sync_status=\"{status}\"}}");
        assert_eq!(crate::harness::metric(&app, &series).await, Some(count), "{series}");
    }
    let (status, _) = matrix
        .call(Method::PUT, &state("m.room.topic"), matrix.as_token(), Some(json!({"topic": "Theirs"})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, mut levels) =
        matrix.call(Method::GET, &state("m.room.power_levels"), matrix.as_token(), None).await;
    levels["events_default"] = json!(0);
    let (status, _) =
        matrix.call(Method::PUT, &state("m.room.power_levels"), matrix.as_token(), Some(levels)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(matrix.room(matrix_id(&room)).await.topic.as_deref(), Some("Theirs"));

    let (status, body) =
        app.send(app.request(Method::POST, &format!("/chatrooms/{}/sync", room["id"]))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = matrix.room(matrix_id(&room)).await;
    assert_eq!((seen.topic.as_deref(), seen.events_default), (Some("Ours"), 50));
}
