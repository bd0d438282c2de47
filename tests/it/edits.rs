//! Edits: an `m.replace` sent as the message's sender, shown by history and search with
//! `edited`, seen by a Matrix client as the replacement; nobody else's edit counts.

use std::time::Duration;

use matrix_sdk::ruma::{
    events::{
        room::message::{Relation, RoomMessageEventContent},
        AnySyncMessageLikeEvent, AnySyncTimelineEvent, SyncMessageLikeEvent,
    },
    EventId, OwnedRoomId,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{
    harness::{eventually, fresh_org, fresh_users, jwt, metric, TestApp},
    mobile_client::client_of,
};

fn token(user: i64) -> String {
    jwt(json!(user.to_string()), json!([]), 600)
}

async fn history(app: &TestApp, room: &Value) -> Vec<Value> {
    let (status, page) =
        app.send(app.request(Method::GET, &format!("/chatrooms/{}/messages", room["id"]))).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["entries"].as_array().unwrap().clone()
}

fn edit(app: &TestApp, room: &Value, event: &str, user: Option<i64>, body: Value) -> reqwest::RequestBuilder {
    let path = format!("/chatrooms/{}/messages/{}", room["id"], urlencoding::encode(event));
    match user {
        Some(user) => app.as_user(Method::PATCH, &path, &token(user)).json(&body),
        None => app.request(Method::PATCH, &path).json(&body),
    }
}

#[tokio::test]
async fn a_senders_edit_reads_as_edited_in_history_search_and_a_matrix_client() {
    let app = TestApp::spawn().await;
    let [author, other] = fresh_users(2)[..] else { unreachable!() };
    let room = app
        .create_room(
            json!({"organizationID": fresh_org(), "name": "Drafts", "assignedUsers": [author, other]}),
        )
        .await;
    let (status, sent) = app
        .send(
            app.as_user(Method::POST, &format!("/chatrooms/{}/messages", room["id"]), &token(author))
                .json(&json!({"body": "first draft", "senderID": author})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let event = sent["eventID"].as_str().unwrap().to_owned();

    let (status, edited) = app
        .send(edit(
            &app,
            &room,
            &event,
            Some(author),
            json!({"body": "final text", "formattedBody": "<b>final</b> text"}),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(
        (&edited["eventID"], &edited["body"], &edited["edited"]),
        (&json!(event), &json!("final text"), &json!(true))
    );
    assert_eq!(edited["formattedBody"], "<b>final</b> text");
    assert!(edited["editedAt"].is_string(), "{edited}");

    let entries = history(&app, &room).await;
    assert_eq!(entries.len(), 1, "the edit is not a message of its own: {entries:?}");
    assert_eq!((&entries[0]["body"], &entries[0]["edited"]), (&json!("final text"), &json!(true)));

    let search =
        |term: &str| app.request(Method::GET, &format!("/chatrooms/{}/messages?search={term}", room["id"]));
    let (status, page) = app.send(search("final")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let found: Vec<&Value> = page["entries"].as_array().unwrap().iter().map(|e| &e["eventID"]).collect();
    assert_eq!(found, [&json!(event)], "the edit is found as the message it edits: {page}");
    assert_eq!(page["entries"][0]["body"], "final text");
    let (_, page) = app.send(search("draft")).await;
    assert_eq!(page["entries"], json!([]), "what the edit took out is not found: {page}");

    // A Matrix client reads the message with the sender's replacement.
    let client = client_of(&app, other).await;
    let room_id: OwnedRoomId = room["matrixRoomID"].as_str().unwrap().try_into().unwrap();
    let joined = client.get_room(&room_id).expect("the other user is in the room");
    let seen = joined.event(&EventId::parse(&event).unwrap(), None).await.expect("the message");
    let AnySyncTimelineEvent::MessageLike(AnySyncMessageLikeEvent::RoomMessage(
        SyncMessageLikeEvent::Original(original),
    )) = seen.raw().deserialize().expect("a room message")
    else {
        panic!("not a room message")
    };
    assert_eq!(original.content.body(), "first draft", "the original stays as it was sent");
    let replacement = original.unsigned.relations.replace.expect("the replacement is bundled");
    let Some(Relation::Replacement(replacement)) = replacement.content.relates_to else {
        panic!("an m.replace")
    };
    assert_eq!(replacement.new_content.msgtype.body(), "final text");

    // Someone else's edit in a Matrix client is stored, but shows nowhere.
    joined
        .send(RoomMessageEventContent::text_plain("* forged").make_replacement(
            matrix_sdk::ruma::events::room::message::ReplacementMetadata::new(
                EventId::parse(&event).unwrap(),
                None,
            ),
        ))
        .await
        .expect("the homeserver takes the forged edit");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let entries = history(&app, &room).await;
    assert_eq!((entries.len(), &entries[0]["body"]), (1, &json!("final text")), "{entries:?}");

    // A blocklist applies to an edit's new text: the edit is redacted, and the message reads as
    // before, once (the redacted edit, stripped of its relation, is not a message of its own).
    let (status, list) = app
        .send(
            app.request(Method::PUT, &format!("/chatrooms/{}/blocklist", room["id"]))
                .json(&json!({"words": ["forbidden"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let (status, _) =
        app.send(edit(&app, &room, &event, Some(author), json!({"body": "now forbidden"}))).await;
    assert_eq!(status, StatusCode::OK, "the edit is sent; the blocklist acts on what the homeserver pushes");
    let blocked = "chatrooms_messages_blocked_total{rule=\"word\"}";
    eventually("the blocked edit is redacted", Duration::from_secs(15), || async {
        metric(&app, blocked).await == Some(1.0)
    })
    .await;
    eventually("history shows the message once, as before the edit", Duration::from_secs(10), || async {
        let entries = history(&app, &room).await;
        entries.len() == 1 && entries[0]["eventID"] == json!(event) && entries[0]["body"] == "final text"
    })
    .await;

    // Only the sender edits: not another user, not the backend (the bot did not send it).
    for (user, code) in [(Some(other), "not_the_sender"), (None, "not_the_sender")] {
        let (status, body) = app.send(edit(&app, &room, &event, user, json!({"body": "hijacked"}))).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some(code)), "{body}");
    }
    // The backend edits the bot's messages.
    let (_, notice) = app
        .send(
            app.request(Method::POST, &format!("/chatrooms/{}/messages", room["id"]))
                .json(&json!({"body": "Doors at 8", "notice": true})),
        )
        .await;
    let notice = notice["eventID"].as_str().unwrap();
    let (status, edited) = app.send(edit(&app, &room, notice, None, json!({"body": "Doors at 9"}))).await;
    assert_eq!(
        (status, &edited["body"], &edited["notice"]),
        (StatusCode::OK, &json!("Doors at 9"), &json!(true)),
        "{edited}"
    );
    let entries = history(&app, &room).await;
    let shown = entries.iter().find(|e| e["eventID"] == json!(notice)).expect("the notice in history");
    assert_eq!((&shown["body"], &shown["edited"]), (&json!("Doors at 9"), &json!(true)), "{entries:?}");
}

#[tokio::test]
async fn bad_edits_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let [author] = fresh_users(1)[..] else { unreachable!() };
    let room =
        app.create_room(json!({"organizationID": org, "name": "Strict", "assignedUsers": [author]})).await;
    let other_room = app.create_room(json!({"organizationID": org, "name": "Other"})).await;
    let (_, sent) = app
        .send(
            app.request(Method::POST, &format!("/chatrooms/{}/messages", room["id"]))
                .json(&json!({"body": "as sent"})),
        )
        .await;
    let event = sent["eventID"].as_str().unwrap().to_owned();
    for (body, status) in [
        (json!({"body": ""}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"body": "x".repeat(16_001)}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"body": "ok", "notice": true}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!(["not", "an", "object"]), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let (answered, answer) = app.send(edit(&app, &room, &event, None, body.clone())).await;
        assert_eq!(answered, status, "{body}: {answer}");
    }
    let (status, _) = app.send(edit(&app, &other_room, &event, None, json!({"body": "elsewhere"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an event of another room");
    let (status, _) = app.send(edit(&app, &room, "not-an-event-id", None, json!({"body": "x"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let redact = format!("/chatrooms/{}/messages/{}", room["id"], urlencoding::encode(&event));
    let (status, _) = app.send(app.request(Method::DELETE, &redact)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.send(edit(&app, &room, &event, None, json!({"body": "after the redaction"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a redacted message is not edited");
    let entries = history(&app, &room).await;
    assert_eq!(
        (entries.len(), &entries[0]["edited"], &entries[0]["redacted"]),
        (1, &json!(false), &json!(true)),
        "{entries:?}"
    );
}
