//! Blocklists on a real homeserver: a member's message that breaks the organization's or the
//! room's list is redacted by the bot (reason naming the rule), counted and reported; room
//! staff are exempt; the lists are validated and only staff change them.

use std::time::{Duration, Instant};

use matrix_sdk::ruma::{events::room::message::RoomMessageEventContent, OwnedRoomId};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{
    harness::{eventually, fresh_org, fresh_users, jwt, metric, TestApp},
    mobile_client::client_of,
};

/// The event as the homeserver serves it to the bot.
async fn event(app: &TestApp, room: &Value, event: &str) -> Value {
    let matrix = app.matrix();
    let path = format!(
        "/_matrix/client/v3/rooms/{}/event/{}",
        urlencoding::encode(room["matrixRoomID"].as_str().unwrap()),
        urlencoding::encode(event)
    );
    let (status, body) = matrix.call(Method::GET, &path, matrix.as_token(), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn redaction_reason(event: &Value) -> Option<String> {
    event["unsigned"]["redacted_because"]["content"]["reason"].as_str().map(str::to_owned)
}

async fn send(app: &TestApp, room: &Value, sender: i64, body: &str) -> String {
    let (status, sent) = app
        .send(
            app.request(Method::POST, &format!("/chatrooms/{}/messages", room["id"]))
                .json(&json!({"body": body, "senderID": sender})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    sent["eventID"].as_str().unwrap().to_owned()
}

async fn blocked_count(app: &TestApp, rule: &str) -> u64 {
    metric(app, &format!("chatrooms_messages_blocked_total{{rule=\"{rule}\"}}")).await.unwrap_or(0.0) as u64
}

#[tokio::test]
async fn a_members_message_that_breaks_a_list_is_redacted_at_once_and_a_moderators_is_not() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let [moderator, member] = fresh_users(2)[..] else { unreachable!() };
    let room = app
        .create_room(json!({"organizationID": org, "name": "Clean talk", "moderators": [moderator],
            "assignedUsers": [member]}))
        .await;
    let (status, list) = app
        .send(
            app.request(Method::PUT, &format!("/organizations/{org}/blocklist"))
                .json(&json!({"words": ["Forbidden", "buy now"]})),
        )
        .await;
    assert_eq!((status, &list["words"]), (StatusCode::OK, &json!(["buy now", "forbidden"])), "{list}");
    let (status, list) = app
        .send(app.request(Method::PUT, &format!("/chatrooms/{}/blocklist", room["id"])).json(&json!({
            "patterns": [r"\b\d{4}-\d{4}-\d{4}-\d{4}\b"], "allowedLinkDomains": ["example.com"]})))
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");

    let exempt = send(&app, &room, moderator, "forbidden words are fine for me").await;
    let client = client_of(&app, member).await;
    let room_id: OwnedRoomId = room["matrixRoomID"].as_str().unwrap().try_into().unwrap();
    let joined = client.get_room(&room_id).expect("the member is in the room");
    let sent_at = Instant::now();
    let blocked = joined
        .send(RoomMessageEventContent::text_plain("this is FORBIDDEN, friends"))
        .await
        .expect("the homeserver takes the message")
        .response
        .event_id
        .to_string();
    eventually("the member's message is redacted", Duration::from_secs(10), || async {
        redaction_reason(&event(&app, &room, &blocked).await).is_some()
    })
    .await;
    println!("sent to redacted: {} ms", sent_at.elapsed().as_millis());
    let seen = event(&app, &room, &blocked).await;
    assert_eq!(redaction_reason(&seen).as_deref(), Some("blocked word or phrase \"forbidden\""));
    assert!(seen["content"].as_object().unwrap().is_empty(), "the text is gone: {seen}");
    assert_eq!(
        seen["unsigned"]["redacted_because"]["sender"].as_str().unwrap(),
        format!("@chatrooms:{}", app.hs.server_name),
        "the bot redacted it"
    );
    // Processed in order: the moderator's, sent before, was checked already.
    assert_eq!(redaction_reason(&event(&app, &room, &exempt).await), None, "staff are exempt");

    let card = send(&app, &room, member, "my card: 4111-1111-1111-1111").await;
    let link = send(&app, &room, member, "cheap stuff at https://evil.example.org/deal").await;
    let fine =
        send(&app, &room, member, "docs at https://docs.example.com/guide and plain forbiddenness").await;
    let marker = send(&app, &room, member, "buy   NOW").await;
    eventually("the last one is redacted", Duration::from_secs(10), || async {
        redaction_reason(&event(&app, &room, &marker).await).is_some()
    })
    .await;
    assert_eq!(
        redaction_reason(&event(&app, &room, &card).await).as_deref(),
        Some(r"matches blocked pattern \b\d{4}-\d{4}-\d{4}-\d{4}\b"),
        "the room's own pattern"
    );
    assert_eq!(
        redaction_reason(&event(&app, &room, &link).await).as_deref(),
        Some("link to evil.example.org, which is not an allowed domain")
    );
    assert_eq!(redaction_reason(&event(&app, &room, &fine).await), None, "an allowed link, no whole word");
    assert_eq!(
        (
            blocked_count(&app, "word").await,
            blocked_count(&app, "pattern").await,
            blocked_count(&app, "link").await
        ),
        (2, 1, 1)
    );
    // Another organization's room knows nothing of this list.
    let elsewhere = app
        .create_room(json!({"organizationID": fresh_org(), "name": "Free", "assignedUsers": [member]}))
        .await;
    let free = send(&app, &elsewhere, member, "forbidden").await;
    let after = send(&app, &room, member, "forbidden again").await;
    eventually("the room's next one is redacted", Duration::from_secs(10), || async {
        redaction_reason(&event(&app, &room, &after).await).is_some()
    })
    .await;
    assert_eq!(redaction_reason(&event(&app, &elsewhere, &free).await), None);
}

#[tokio::test]
async fn blocklists_are_validated_and_changed_only_by_staff() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let [admin, moderator, member] = fresh_users(3)[..] else { unreachable!() };
    let room = app
        .create_room(
            json!({"organizationID": org, "name": "Rules", "admins": [admin], "moderators": [moderator],
            "assignedUsers": [member]}),
        )
        .await;
    let org_path = format!("/organizations/{org}/blocklist");
    let room_path = format!("/chatrooms/{}/blocklist", room["id"]);
    for (body, why) in [
        (json!({"words": [""]}), "an empty word"),
        (json!({"words": ["x".repeat(101)]}), "an overlong word"),
        (json!({"patterns": ["(unclosed"]}), "a pattern that does not compile"),
        (json!({"patterns": [r"(a)\1"]}), "a backreference (not linear-time)"),
        (json!({"patterns": [r"\w{1000}\w{1000}\w{1000}"]}), "a pattern too big compiled"),
        (json!({"allowedLinkDomains": ["not a domain"]}), "a bad domain"),
        (json!({"words": vec!["w"; 1001]}), "too many words"),
        (json!({"words": "spam"}), "not a list"),
        (json!({"colour": []}), "an unknown field"),
    ] {
        let (status, answer) = app.send(app.request(Method::PUT, &org_path).json(&body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{why}: {answer}");
    }
    let (status, list) = app.send(app.request(Method::GET, &org_path)).await;
    assert_eq!(
        (status, &list["words"], &list["updatedAt"]),
        (StatusCode::OK, &json!([]), &Value::Null),
        "nothing stored"
    );

    let token = |user: i64, orgs: Value| jwt(json!(user.to_string()), orgs, 600);
    let body = json!({"words": ["spam"]});
    let (status, _) =
        app.send(app.as_user(Method::PUT, &org_path, &token(admin, json!([]))).json(&body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a room admin is not an organization admin");
    let org_admin = token(fresh_users(1)[0], json!([{"id": org, "admin": true}]));
    let (status, list) = app.send(app.as_user(Method::PUT, &org_path, &org_admin).json(&body)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert!(list["updatedAt"].is_string());

    let (status, _) =
        app.send(app.as_user(Method::PUT, &room_path, &token(moderator, json!([]))).json(&body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a moderator reads the room's list but does not change it");
    let (status, _) = app.send(app.as_user(Method::GET, &room_path, &token(moderator, json!([])))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.send(app.as_user(Method::GET, &room_path, &token(member, json!([])))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "an assigned user does not see it");
    let (status, list) = app
        .send(
            app.as_user(Method::PUT, &room_path, &token(admin, json!([]))).json(&json!({"words": ["eggs"]})),
        )
        .await;
    assert_eq!((status, &list["words"]), (StatusCode::OK, &json!(["eggs"])), "{list}");
    let (status, _) = app.send(app.request(Method::PUT, "/chatrooms/999999999/blocklist").json(&body)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
