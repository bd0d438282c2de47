//! Moderation done in Matrix clients, as the homeserver pushes it: a room moderator's ban,
//! kick and unban in a matrix-sdk client become the service's own; a stranger's is undone.

use std::time::Duration;

use matrix_sdk::ruma::{OwnedRoomId, OwnedUserId};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{
    harness::{eventually, fresh_org, fresh_users, TestApp},
    mobile_client::client_of,
};

/// Only the homeserver's push brings the change: the periodic pass is off.
async fn spawn() -> TestApp {
    TestApp::spawn_with(|vars| {
        vars.insert("CHATROOMS_RECONCILE_INTERVAL_MS".into(), "0".into());
    })
    .await
}

fn matrix_id(room: &Value) -> &str {
    room["matrixRoomID"].as_str().expect("the room exists on the homeserver")
}

async fn membership(app: &TestApp, room: &Value, user: i64) -> Option<String> {
    app.matrix().room(matrix_id(room)).await.memberships.get(&app.user_id(user)).cloned()
}

async fn bans(app: &TestApp, room: &Value) -> Vec<Value> {
    let (status, list) = app.send(app.request(Method::GET, &format!("/chatrooms/{}/bans", room["id"]))).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["entries"].as_array().unwrap().clone()
}

async fn record(app: &TestApp, room: &Value) -> Value {
    let (status, record) = app.send(app.request(Method::GET, &format!("/chatrooms/{}", room["id"]))).await;
    assert_eq!(status, StatusCode::OK, "{record}");
    record
}

/// The service's own sync of the room: whatever it would undo, it undoes now.
async fn force_sync(app: &TestApp, room: &Value) {
    let (status, body) =
        app.send(app.request(Method::POST, &format!("/chatrooms/{}/sync", room["id"]))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

const WITHIN: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_moderators_ban_kick_and_unban_in_a_matrix_client_are_adopted() {
    let app = spawn().await;
    let [admin, moderator, spammer, leaver] = fresh_users(4)[..] else { unreachable!() };
    let room = app
        .create_room(json!({"organizationID": fresh_org(), "name": "Moderated in a client",
            "admins": [admin], "moderators": [moderator], "assignedUsers": [spammer, leaver]}))
        .await;
    let client = client_of(&app, moderator).await;
    let room_id: OwnedRoomId = matrix_id(&room).try_into().unwrap();
    let joined = client.get_room(&room_id).expect("the moderator is in the room");
    let user = |id: i64| -> OwnedUserId { app.user_id(id).try_into().unwrap() };

    joined.ban_user(&user(spammer), Some("spam")).await.expect("a moderator may ban");
    eventually("the client's ban is a ban record", WITHIN, || async { !bans(&app, &room).await.is_empty() })
        .await;
    let entries = bans(&app, &room).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        (&entries[0]["userID"], &entries[0]["actor"], &entries[0]["reason"], &entries[0]["expiresAt"]),
        (&json!(spammer), &json!(format!("user:{moderator}")), &json!("spam"), &Value::Null)
    );
    force_sync(&app, &room).await;
    assert_eq!(membership(&app, &room, spammer).await.as_deref(), Some("ban"), "the user stays banned");
    assert_eq!(record(&app, &room).await["assignedUsers"], json!([spammer, leaver]), "a ban keeps the place");

    joined.kick_user(&user(leaver), Some("bye")).await.expect("a moderator may kick");
    eventually("the kicked user is off the lists", WITHIN, || async {
        record(&app, &room).await["assignedUsers"] == json!([spammer])
    })
    .await;
    force_sync(&app, &room).await;
    assert_eq!(membership(&app, &room, leaver).await.as_deref(), Some("leave"), "not joined again");

    joined.unban_user(&user(spammer), None).await.expect("a moderator may unban");
    eventually("the unban lifts the ban record", WITHIN, || async { bans(&app, &room).await.is_empty() })
        .await;
    eventually("the unbanned user, still listed, is joined again", WITHIN, || async {
        membership(&app, &room, spammer).await.as_deref() == Some("join")
    })
    .await;

    // The unban taken again (a transaction processed a second time after a crash) changes
    // nothing: the user keeps their place.
    let unban = json!({"type": "m.room.member", "room_id": matrix_id(&room), "sender": app.user_id(moderator),
        "state_key": app.user_id(spammer), "event_id": "$unban-again", "content": {"membership": "leave"},
        "unsigned": {"prev_content": {"membership": "ban"}}});
    let (status, _) = app
        .send(
            app.anonymous(Method::PUT, &format!("/_matrix/app/v1/transactions/again-{}", room["id"]))
                .bearer_auth(&app.hs.env["CHATROOMS_MATRIX_HS_TOKEN"])
                .json(&json!({"events": [unban]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(record(&app, &room).await["assignedUsers"], json!([spammer]), "still listed");
    assert!(bans(&app, &room).await.is_empty());
}

#[tokio::test]
async fn a_ban_by_someone_who_is_not_the_rooms_staff_is_undone() {
    let app = spawn().await;
    let [member] = fresh_users(1)[..] else { unreachable!() };
    let room = app
        .create_room(
            json!({"organizationID": fresh_org(), "name": "Stranger danger", "assignedUsers": [member]}),
        )
        .await;
    // The room's link to its organization's space rewrites its power levels: done first.
    app.settled(&room).await;
    // A user of the homeserver outside the app's users (the appservice may act as it) is
    // given a ban's power by the bot, which the service takes as its own doing.
    let matrix = app.matrix();
    let stranger = format!("@app_stranger{}:{}", rand::random::<u32>(), app.hs.server_name);
    let room_path = format!("/_matrix/client/v3/rooms/{}", urlencoding::encode(matrix_id(&room)));
    let (status, mut levels) = matrix
        .call(Method::GET, &format!("{room_path}/state/m.room.power_levels/"), matrix.as_token(), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{levels}");
    levels["users"][&stranger] = json!(50);
    let (status, answer) = matrix
        .call(
            Method::PUT,
            &format!("{room_path}/state/m.room.power_levels/"),
            matrix.as_token(),
            Some(levels),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let as_stranger = |path: &str| format!("{path}?user_id={}", urlencoding::encode(&stranger));
    let (status, answer) = matrix
        .call(
            Method::POST,
            "/_matrix/client/v3/register",
            matrix.as_token(),
            Some(json!({"type": "m.login.application_service",
                "username": stranger.trim_start_matches('@').split(':').next().unwrap()})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = matrix
        .call(
            Method::POST,
            &format!("{room_path}/invite"),
            matrix.as_token(),
            Some(json!({"user_id": stranger})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = matrix
        .call(Method::POST, &as_stranger(&format!("{room_path}/join")), matrix.as_token(), Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let body = json!({"user_id": app.user_id(member), "reason": "I can"});
    let (status, answer) = matrix
        .call(Method::POST, &as_stranger(&format!("{room_path}/ban")), matrix.as_token(), Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "the homeserver lets the stranger ban: {answer}");
    eventually("the stranger's ban is undone", WITHIN, || async {
        membership(&app, &room, member).await.as_deref() == Some("join")
    })
    .await;
    assert!(bans(&app, &room).await.is_empty(), "no ban record for it");
}

#[tokio::test]
async fn a_transaction_left_unprocessed_is_taken_by_the_sweep() {
    let app = spawn().await;
    let [moderator, member] = fresh_users(2)[..] else { unreachable!() };
    let room = app
        .create_room(json!({"organizationID": fresh_org(), "name": "Swept",
            "moderators": [moderator], "assignedUsers": [member]}))
        .await;
    // As a replica that stopped after storing the transaction would leave it.
    let event = json!({"type": "m.room.member", "room_id": matrix_id(&room), "sender": app.user_id(moderator),
        "state_key": app.user_id(member), "event_id": "$swept", "content": {"membership": "ban", "reason": "left over"}});
    let body = json!({"events": [event]}).to_string();
    sqlx::query(
        "INSERT INTO appservice_transactions (txn_id, body, events, received_at, claimed_until) \
         VALUES ($1, $2, 1, 0, 0)",
    )
    .bind(format!("left-over-{}", room["id"]))
    .bind(&body)
    .execute(app.state.store.pool())
    .await
    .unwrap();
    // The scheduler's sweep may take it first; either way it is processed once.
    chatrooms::appservice::inbox::sweep(&app.state).await.expect("the sweep runs");
    eventually("the left-over ban is recorded", WITHIN, || async { !bans(&app, &room).await.is_empty() })
        .await;
    let entries = bans(&app, &room).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["reason"], "left over");
    eventually("the transaction is marked processed", WITHIN, || async {
        let processed: Option<i64> =
            sqlx::query_scalar("SELECT processed_at FROM appservice_transactions WHERE txn_id = $1")
                .bind(format!("left-over-{}", room["id"]))
                .fetch_one(app.state.store.pool())
                .await
                .unwrap();
        processed.is_some()
    })
    .await;
}
