//! Messages through the API: sent as the bot or as a room's user, read back newest first page
//! by page, redacted; checked on the homeserver as the room's users see them.

use std::time::Instant;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{
    fault_injection::refusal,
    harness::{fresh_org, fresh_users, jwt, TestApp},
    sync_faults::spawn_faulty,
};

fn path(room: &Value, rest: &str) -> String {
    format!("/chatrooms/{}/{rest}", room["id"])
}

async fn send(app: &TestApp, room: &Value, body: Value) -> (StatusCode, Value) {
    app.send(app.request(Method::POST, &path(room, "messages")).json(&body)).await
}

fn token(user: i64) -> String {
    jwt(json!(user.to_string()), json!([]), 600)
}

/// The event as one of the room's users reads it on the homeserver.
async fn event_as(app: &TestApp, user: i64, room: &Value, event: &str) -> Value {
    let matrix = app.matrix();
    let access = matrix.login_as(&format!("app_{user}")).await;
    let path = format!(
        "/_matrix/client/v3/rooms/{}/event/{}",
        urlencoding::encode(room["matrixRoomID"].as_str().unwrap()),
        urlencoding::encode(event)
    );
    let (status, event) = matrix.call(Method::GET, &path, &access, None).await;
    assert_eq!(status, StatusCode::OK, "{event}");
    event
}

#[tokio::test]
async fn messages_go_out_as_the_bot_or_as_the_rooms_users_and_read_back_newest_first() {
    let app = TestApp::spawn().await;
    let [admin, moderator, member] = fresh_users(3)[..] else { unreachable!() };
    let room = app
        .create_room(json!({"organizationID": fresh_org(), "name": "Talk", "admins": [admin],
            "moderators": [moderator], "assignedUsers": [member]}))
        .await;

    let (status, notice) =
        send(&app, &room, json!({"body": "Welcome", "formattedBody": "<b>Welcome</b>", "notice": true}))
            .await;
    assert_eq!(status, StatusCode::CREATED, "{notice}");
    let seen = event_as(&app, member, &room, notice["eventID"].as_str().unwrap()).await;
    assert_eq!(seen["content"]["msgtype"], "m.notice");
    assert_eq!(seen["content"]["formatted_body"], "<b>Welcome</b>");
    assert!(seen["sender"].as_str().unwrap().starts_with("@chatrooms:"), "the bot sent it: {seen}");

    let (status, theirs) = send(&app, &room, json!({"body": "on behalf", "senderID": member})).await;
    assert_eq!(status, StatusCode::CREATED, "{theirs}");
    let seen = event_as(&app, admin, &room, theirs["eventID"].as_str().unwrap()).await;
    assert_eq!(seen["sender"], app.user_id(member));

    let as_user = |user: i64, body: Value| {
        app.as_user(Method::POST, &path(&room, "messages"), &token(user)).json(&body)
    };
    let (status, _) = app.send(as_user(member, json!({"body": "mine", "senderID": member}))).await;
    assert_eq!(status, StatusCode::CREATED);
    for (user, body) in [
        (member, json!({"body": "as the bot"})),
        (member, json!({"body": "as the admin", "senderID": admin})),
        (moderator, json!({"body": "as the member", "senderID": member})),
    ] {
        let (status, answer) = app.send(as_user(user, body.clone())).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{user} {body}: {answer}");
    }
    let (status, _) = app.send(as_user(moderator, json!({"body": "Doors at 9", "notice": true}))).await;
    assert_eq!(status, StatusCode::CREATED, "a moderator sends notices as the bot");

    // A retried send with the same key is one message.
    let keyed = || {
        app.request(Method::POST, &path(&room, "messages"))
            .header("Idempotency-Key", "once-1")
            .json(&json!({"body": "once"}))
    };
    let (status, first) = app.send(keyed()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again) = app.send(keyed()).await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(first["eventID"], again["eventID"]);
    let reused = app
        .request(Method::POST, &path(&room, "messages"))
        .header("Idempotency-Key", "once-1")
        .json(&json!({"body": "other"}));
    let (status, body) = app.send(reused).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("idempotency_key_reused"))
    );

    let (status, page) = app.send(app.request(Method::GET, &path(&room, "messages?limit=10"))).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let bodies: Vec<&str> =
        page["entries"].as_array().unwrap().iter().map(|e| e["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["once", "Doors at 9", "mine", "on behalf", "Welcome"], "newest first, each once");
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries[2]["senderID"], member);
    assert_eq!(entries[4]["senderID"], Value::Null, "the bot");
    assert_eq!((entries[4]["notice"].clone(), entries[4]["redacted"].clone()), (json!(true), json!(false)));
    assert!(entries[0]["timestamp"].is_string());

    let (status, _) = app.send(app.as_user(Method::GET, &path(&room, "messages"), &token(member))).await;
    assert_eq!(status, StatusCode::OK, "the room's users read it");
    let (status, _) =
        app.send(app.as_user(Method::GET, &path(&room, "messages"), &token(fresh_users(1)[0]))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "others do not");
}

#[tokio::test]
async fn history_pages_back_through_120_messages_without_gaps_or_repeats() {
    let app = TestApp::spawn().await;
    let room = app.create_room(json!({"organizationID": fresh_org(), "name": "Long"})).await;
    for i in 0..120 {
        let (status, _) = send(&app, &room, json!({"body": format!("message {i}")})).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let mut bodies = Vec::new();
    let mut from: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let query = match &from {
            Some(token) => format!("messages?limit=50&from={}", urlencoding::encode(token)),
            None => "messages?limit=50".to_owned(),
        };
        let started = Instant::now();
        let (status, page) = app.send(app.request(Method::GET, &path(&room, &query))).await;
        pages.push(started.elapsed().as_millis());
        assert_eq!(status, StatusCode::OK, "{page}");
        bodies.extend(
            page["entries"].as_array().unwrap().iter().map(|e| e["body"].as_str().unwrap().to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => from = Some(next.to_owned()),
            None => break,
        }
        assert!(pages.len() < 10, "the history ends");
    }
    println!("history pages of 50: {pages:?} ms");
    let expected: Vec<String> = (0..120).rev().map(|i| format!("message {i}")).collect();
    assert_eq!(bodies, expected);
    let (status, _) = app.send(app.request(Method::GET, &path(&room, "messages?limit=101"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for bad in ["%20", "000000000000000000000000"] {
        let (status, body) =
            app.send(app.request(Method::GET, &path(&room, &format!("messages?from={bad}")))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
}

#[tokio::test]
async fn redaction_and_who_may_post_are_enforced() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let [moderator, member, muted, banned, outsider] = fresh_users(5)[..] else { unreachable!() };
    let room = app
        .create_room(json!({"organizationID": org, "name": "Rules", "moderators": [moderator],
            "assignedUsers": [member, muted, banned]}))
        .await;
    let other_room = app.create_room(json!({"organizationID": org, "name": "Elsewhere"})).await;
    let (_, sent) = send(&app, &room, json!({"body": "regrettable", "senderID": member})).await;
    let event = sent["eventID"].as_str().unwrap();
    let redact = |user: Option<i64>, room: &Value, event: &str| {
        let path = format!("{}?reason=spam", path(room, &format!("messages/{}", urlencoding::encode(event))));
        match user {
            Some(user) => app.as_user(Method::DELETE, &path, &token(user)),
            None => app.request(Method::DELETE, &path),
        }
    };
    let (status, _) = app.send(redact(Some(member), &room, event)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "an assigned user redacts nothing");
    let (status, body) = app.send(redact(Some(moderator), &room, event)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _) = app.send(redact(None, &room, event)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "again: nothing changes");
    let (status, _) = app.send(redact(None, &other_room, event)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an event of another room");
    let (status, _) = app.send(redact(None, &room, "not-an-event-id")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Only messages: a state event (the room's name) is not one.
    let matrix = app.matrix();
    let state_path = format!(
        "/_matrix/client/v3/rooms/{}/state",
        urlencoding::encode(room["matrixRoomID"].as_str().unwrap())
    );
    let (status, state) = matrix.call(Method::GET, &state_path, matrix.as_token(), None).await;
    assert_eq!(status, StatusCode::OK, "{state}");
    let name =
        state.as_array().unwrap().iter().find(|e| e["type"] == "m.room.name").expect("a name event").clone();
    let (status, _) = app.send(redact(None, &room, name["event_id"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a state event is not a message");
    let (_, page) = app.send(app.request(Method::GET, &path(&room, "messages"))).await;
    let entry = &page["entries"][0];
    assert_eq!((entry["redacted"].clone(), entry["body"].clone()), (json!(true), Value::Null), "{page}");
    let seen = event_as(&app, moderator, &room, event).await;
    assert_eq!(seen["content"], json!({}), "redacted on the homeserver: {seen}");
    // A moderator never acts on another moderator (or an admin), their messages included.
    let [colleague] = fresh_users(1)[..] else { unreachable!() };
    let (status, other) = app
        .send(
            app.request(Method::POST, &format!("/chatrooms/{}/users", room["id"]))
                .json(&json!({"moderators": [colleague]})),
        )
        .await;
    assert!(status.is_success(), "{other}");
    let (_, theirs) = send(&app, &room, json!({"body": "staff talk", "senderID": colleague})).await;
    let staff_event = theirs["eventID"].as_str().expect("sent");
    let (status, _) = app.send(redact(Some(moderator), &room, staff_event)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a moderator's message is out of another moderator's reach");
    let (status, _) = app.send(redact(None, &room, staff_event)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "the backend redacts it");

    let (status, _) =
        app.send(app.request(Method::POST, &path(&room, "mutes")).json(&json!({"userID": muted}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) =
        app.send(app.request(Method::POST, &path(&room, "bans")).json(&json!({"userID": banned}))).await;
    assert_eq!(status, StatusCode::CREATED);
    for (sender, expected) in [
        (muted, StatusCode::FORBIDDEN),
        (banned, StatusCode::FORBIDDEN),
        (outsider, StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let (status, body) = send(&app, &room, json!({"body": "hi", "senderID": sender})).await;
        assert_eq!(status, expected, "{sender}: {body}");
    }
    let (status, _) = app
        .send(
            app.request(Method::PATCH, &format!("/chatrooms/{}", room["id"]))
                .json(&json!({"readOnly": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(&app, &room, json!({"body": "hi", "senderID": member})).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::FORBIDDEN, json!("cannot_post")),
        "{body}"
    );
    let (status, _) = send(&app, &room, json!({"body": "hi", "senderID": moderator})).await;
    assert_eq!(status, StatusCode::CREATED, "a moderator posts in a read-only room");
    for bad in [json!({"body": ""}), json!({"body": "x".repeat(16_001)}), json!({"body": "x", "senderID": 0})]
    {
        let (status, answer) = send(&app, &room, bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    }
    let html = json!({"body": "x", "formattedBody": "<p>".repeat(12_000)});
    let (status, _) = send(&app, &room, html).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "HTML over 32 KiB");
}

#[tokio::test]
async fn a_send_refused_as_unavailable_is_a_503_and_its_retry_with_the_key_sends_it_once() {
    let (app, faults) = spawn_faulty(&[]).await;
    let room = app.create_room(json!({"organizationID": fresh_org(), "name": "Offline"})).await;
    faults.script("send_message", [refusal("send message", 502, "M_UNKNOWN")]);
    let attempt = || {
        app.request(Method::POST, &path(&room, "messages"))
            .header("Idempotency-Key", "retry-me")
            .json(&json!({"body": "eventually"}))
    };
    let response = attempt().send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    // The refused attempt recorded no key: the retry really sends, and a second retry replays.
    let (status, first) = app.send(attempt()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again) = app.send(attempt()).await;
    assert_eq!((status, again["eventID"].clone()), (StatusCode::CREATED, first["eventID"].clone()));
    assert_eq!(faults.calls("send_message"), 2, "the replay did not reach the homeserver");
    let (_, page) = app.send(app.request(Method::GET, &path(&room, "messages"))).await;
    let bodies: Vec<&str> =
        page["entries"].as_array().unwrap().iter().map(|e| e["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["eventually"], "one message on the homeserver");
}

#[tokio::test]
async fn truncate_purges_the_messages_and_keeps_members_and_settings() {
    let app = TestApp::spawn().await;
    let [admin, moderator, member] = fresh_users(3)[..] else { unreachable!() };
    let room = app
        .create_room(json!({"organizationID": fresh_org(), "name": "Purged", "topic": "Stays",
            "admins": [admin], "moderators": [moderator], "assignedUsers": [member]}))
        .await;
    for i in 0..5 {
        let (status, _) = send(&app, &room, json!({"body": format!("bot {i}")})).await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, _) = send(&app, &room, json!({"body": format!("member {i}"), "senderID": member})).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let before = app.matrix().room(room["matrixRoomID"].as_str().unwrap()).await;
    let truncate = |user: i64| truncate_room(&app, user, &room);
    let (status, _) = app.send(truncate(moderator)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a moderator may not");
    let (status, answer) = app.send(truncate(admin)).await;
    match status {
        StatusCode::NO_CONTENT => {}
        StatusCode::ACCEPTED => {
            let status_path = path(&room, &format!("truncate/{}", answer["purgeID"].as_str().unwrap()));
            crate::harness::eventually("the purge completes", std::time::Duration::from_secs(60), || async {
                let (_, now) = app.send(app.request(Method::GET, &status_path)).await;
                now["status"] == "complete"
            })
            .await;
        }
        other => panic!("truncate answered {other}: {answer}"),
    }
    let (_, page) = app.send(app.request(Method::GET, &path(&room, "messages"))).await;
    assert_eq!(page["entries"], json!([]), "no messages left: {page}");
    // As the member's client reads the room: no message either.
    let matrix = app.matrix();
    let access = matrix.login_as(&format!("app_{member}")).await;
    let messages = format!(
        "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=50",
        urlencoding::encode(room["matrixRoomID"].as_str().unwrap())
    );
    let (status, seen) = matrix.call(Method::GET, &messages, &access, None).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    let left: Vec<&Value> =
        seen["chunk"].as_array().unwrap().iter().filter(|e| e["type"] == "m.room.message").collect();
    assert!(left.is_empty(), "{left:?}");
    let after = matrix.room(room["matrixRoomID"].as_str().unwrap()).await;
    assert_eq!((after.name, after.topic), (before.name, before.topic), "settings stay");
    assert_eq!(after.joined, before.joined, "members stay");
    assert_eq!(after.power_users, before.power_users);

    let (status, _) = send(&app, &room, json!({"body": "a fresh start"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, page) = app.send(app.request(Method::GET, &path(&room, "messages"))).await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 1);
    let (status, _) = app.send(app.request(Method::GET, &path(&room, "truncate/nosuchpurge"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A truncation's status is its room's: another room's admin cannot poll it.
    let other =
        app.create_room(json!({"organizationID": fresh_org(), "name": "Other", "admins": [admin]})).await;
    let (status, started) = app.send(truncate_room(&app, admin, &other)).await;
    assert!(status == StatusCode::NO_CONTENT || status == StatusCode::ACCEPTED, "{started}");
    let purges: Vec<String> = sqlx::query_scalar("SELECT purge_id FROM room_truncations")
        .fetch_all(app.state.store.pool())
        .await
        .unwrap();
    assert_eq!(purges.len(), 2, "both truncations recorded");
    for purge in &purges {
        let (status, _) =
            app.send(app.request(Method::GET, &path(&room, &format!("truncate/{purge}")))).await;
        let (other_status, _) =
            app.send(app.request(Method::GET, &path(&other, &format!("truncate/{purge}")))).await;
        assert!(
            (status == StatusCode::OK) != (other_status == StatusCode::OK),
            "each purge answers for its own room only: {status} {other_status}"
        );
    }
}

#[tokio::test]
async fn pins_reach_the_homeserver_and_pins_made_in_clients_stay() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let [moderator, member] = fresh_users(2)[..] else { unreachable!() };
    let room = app
        .create_room(json!({"organizationID": org, "name": "Pinned", "moderators": [moderator], "assignedUsers": [member]}))
        .await;
    let other_room = app.create_room(json!({"organizationID": org, "name": "Other"})).await;
    let matrix = app.matrix();
    let pinned_on_homeserver = || async {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/state/m.room.pinned_events/",
            urlencoding::encode(room["matrixRoomID"].as_str().unwrap())
        );
        let (status, content) = matrix.call(Method::GET, &path, matrix.as_token(), None).await;
        assert_eq!(status, StatusCode::OK, "{content}");
        content["pinned"].clone()
    };
    let (status, notice) = send(&app, &room, json!({"body": "Read me", "notice": true, "pin": true})).await;
    assert_eq!(status, StatusCode::CREATED, "{notice}");
    let notice = notice["eventID"].as_str().unwrap().to_owned();
    assert_eq!(pinned_on_homeserver().await, json!([notice]));
    let (_, now) = app.send(app.request(Method::GET, &format!("/chatrooms/{}", room["id"]))).await;
    assert_eq!(now["pinnedEventIDs"], json!([notice]));

    let (_, later) = send(&app, &room, json!({"body": "later"})).await;
    let later = later["eventID"].as_str().unwrap().to_owned();
    let pins = |user: Option<i64>, method: Method, room: &Value, event: &str| {
        let path = path(room, &format!("pins/{}", urlencoding::encode(event)));
        match user {
            Some(user) => app.as_user(method, &path, &token(user)),
            None => app.request(method, &path),
        }
    };
    let (status, body) = app.send(pins(Some(member), Method::PUT, &room, &later)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    for _ in 0..2 {
        let (status, body) = app.send(pins(Some(moderator), Method::PUT, &room, &later)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["pinnedEventIDs"], json!([notice, later]), "pinned once");
    }
    let (status, _) = app.send(pins(None, Method::PUT, &other_room, &later)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an event of another room");
    let (status, body) = app.send(pins(None, Method::DELETE, &room, &notice)).await;
    assert_eq!((status, body["pinnedEventIDs"].clone()), (StatusCode::OK, json!([later])));
    let (status, _) = app.send(pins(None, Method::DELETE, &room, &notice)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not pinned any more");
    assert_eq!(pinned_on_homeserver().await, json!([later]));

    // A pin made in a Matrix client stays, and room responses learn of it at the next sync.
    let (_, third) = send(&app, &room, json!({"body": "pinned in a client"})).await;
    let third = third["eventID"].as_str().unwrap().to_owned();
    let state_path = format!(
        "/_matrix/client/v3/rooms/{}/state/m.room.pinned_events/",
        urlencoding::encode(room["matrixRoomID"].as_str().unwrap())
    );
    let (status, _) = matrix
        .call(Method::PUT, &state_path, matrix.as_token(), Some(json!({"pinned": [later, third]})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, synced) = app.send(app.request(Method::POST, &path(&room, "sync"))).await;
    assert_eq!(status, StatusCode::OK, "{synced}");
    assert_eq!(synced["pinnedEventIDs"], json!([later, third]));
    assert_eq!(pinned_on_homeserver().await, json!([later, third]), "not reverted");

    let (status, _) = app
        .send(
            app.as_user(Method::POST, &path(&room, "messages"), &token(member))
                .json(&json!({"body": "mine", "senderID": member, "pin": true})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "an assigned user pins nothing");
}

fn truncate_room(app: &TestApp, user: i64, room: &Value) -> reqwest::RequestBuilder {
    app.as_user(Method::POST, &path(room, "truncate"), &token(user))
}
