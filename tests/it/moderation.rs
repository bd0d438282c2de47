//! Bans and mutes, as the homeserver and Matrix clients (matrix-sdk) see them: a banned user
//! cannot rejoin and is back with their role when the ban ends, a muted user cannot post until
//! the mute ends, expiries run once across replicas, and who may do what.

use std::time::{Duration, Instant};

use matrix_sdk::ruma::{events::room::message::RoomMessageEventContent, OwnedRoomId};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use chatrooms::{clock::ShiftedClock, sync::end_due_moderation};

use crate::{
    harness::{counter, eventually, fresh_org, fresh_users, jwt, SeenRoom, TestApp},
    mobile_client::client_of,
};

fn matrix_id(room: &Value) -> &str {
    room["matrixRoomID"].as_str().expect("the room exists on the homeserver")
}

async fn seen(app: &TestApp, room: &Value) -> SeenRoom {
    app.matrix().room(matrix_id(room)).await
}

fn membership<'a>(seen: &'a SeenRoom, app: &TestApp, user: i64) -> Option<&'a str> {
    seen.memberships.get(&app.user_id(user)).map(String::as_str)
}

fn path(room: &Value, rest: &str) -> String {
    format!("/chatrooms/{}/{rest}", room["id"])
}

async fn ban(app: &TestApp, room: &Value, body: Value) -> (StatusCode, Value) {
    app.send(app.request(Method::POST, &path(room, "bans")).json(&body)).await
}

async fn mute(app: &TestApp, room: &Value, body: Value) -> (StatusCode, Value) {
    app.send(app.request(Method::POST, &path(room, "mutes")).json(&body)).await
}

#[tokio::test]
async fn a_banned_moderator_cannot_rejoin_and_is_back_with_their_power_level_when_the_ban_expires() {
    let app = TestApp::spawn().await;
    let [admin, moderator, member] = fresh_users(3)[..] else { unreachable!() };
    let room = app
        .create_room(json!({"organizationID": fresh_org(), "name": "Banned", "admins": [admin],
            "moderators": [moderator], "assignedUsers": [member]}))
        .await;
    let client = client_of(&app, moderator).await;

    let (status, banned) =
        ban(&app, &room, json!({"userID": moderator, "reason": "cool down", "durationSeconds": 60})).await;
    assert_eq!(status, StatusCode::CREATED, "{banned}");
    assert_eq!((banned["actor"].clone(), banned["reason"].clone()), (json!("backend"), json!("cool down")));
    assert!(banned["expiresAt"].is_string(), "{banned}");
    let now = seen(&app, &room).await;
    assert_eq!(membership(&now, &app, moderator), Some("ban"));
    assert!(!now.power_users.contains_key(&app.user_id(moderator)), "no power while banned");
    let room_id: OwnedRoomId = matrix_id(&room).try_into().unwrap();
    assert!(client.join_room_by_id(&room_id).await.is_err(), "a banned user cannot rejoin");
    let (_, record) = app.send(app.request(Method::GET, &format!("/chatrooms/{}", room["id"]))).await;
    assert_eq!(record["moderators"], json!([moderator]), "the ban keeps their place in the lists");
    let (_, list) = app.send(app.request(Method::GET, &path(&room, "bans"))).await;
    assert_eq!(list["entries"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["entries"][0]["userID"], moderator);

    // An unban by hand is undone while the ban lasts.
    let matrix = app.matrix();
    let unban = format!("/_matrix/client/v3/rooms/{}/unban", urlencoding::encode(matrix_id(&room)));
    let body = json!({"user_id": app.user_id(moderator)});
    let (status, _) = matrix.call(Method::POST, &unban, matrix.as_token(), Some(body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(membership(&seen(&app, &room).await, &app, moderator), Some("leave"));
    let (status, _) = app.send(app.request(Method::POST, &path(&room, "sync"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(membership(&seen(&app, &room).await, &app, moderator), Some("ban"));

    app.clock.advance(chrono::Duration::seconds(61));
    let expired = Instant::now();
    eventually("the moderator is back with power 50", Duration::from_secs(20), || async {
        let now = seen(&app, &room).await;
        membership(&now, &app, moderator) == Some("join")
            && now.power_users.get(&app.user_id(moderator)) == Some(&50)
    })
    .await;
    println!("ban expiry to rejoin: {} ms", expired.elapsed().as_millis());
    let (_, list) = app.send(app.request(Method::GET, &path(&room, "bans"))).await;
    assert_eq!(list["entries"], json!([]));
    assert_eq!(counter(&app, "chatrooms_moderation_expiries_total").await, 1);
}

#[tokio::test]
async fn a_user_without_a_role_can_be_banned_and_a_banned_user_added_to_a_list_stays_out_until_lifted() {
    let app = TestApp::spawn().await;
    let [outsider, other] = fresh_users(2)[..] else { unreachable!() };
    let room = app.create_room(json!({"organizationID": fresh_org(), "name": "Door"})).await;
    for user in [outsider, other] {
        let (status, body) = ban(&app, &room, json!({"userID": user})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["expiresAt"], Value::Null, "until lifted");
    }
    assert_eq!(membership(&seen(&app, &room).await, &app, outsider), Some("ban"));

    let add = json!({"assignedUsers": [outsider]});
    let (status, body) = app.send(app.request(Method::POST, &path(&room, "users")).json(&add)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["assignedUsers"], json!([outsider]));
    assert_eq!(membership(&seen(&app, &room).await, &app, outsider), Some("ban"), "still banned");

    for user in [outsider, other] {
        let (status, body) =
            app.send(app.request(Method::DELETE, &path(&room, &format!("bans/{user}")))).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    let now = seen(&app, &room).await;
    assert_eq!(membership(&now, &app, outsider), Some("join"), "listed: joined once the ban ends");
    assert_eq!(membership(&now, &app, other), Some("leave"), "not listed: only unbanned");
    let (_, list) = app.send(app.request(Method::GET, &path(&room, "bans"))).await;
    assert_eq!(list["entries"], json!([]));
    let (status, _) = app.send(app.request(Method::DELETE, &path(&room, &format!("bans/{other}")))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no ban to lift");
    let plan = app.state.reconciler.plan_for(room["id"].as_i64().unwrap()).await.unwrap().unwrap();
    assert!(plan.is_empty(), "nothing left to do: {plan:?}");
}

#[tokio::test]
async fn a_muted_user_reads_but_cannot_post_until_the_mute_ends() {
    let app = TestApp::spawn().await;
    let [admin, member, outsider] = fresh_users(3)[..] else { unreachable!() };
    let room = app
        .create_room(json!({"organizationID": fresh_org(), "name": "Quiet", "admins": [admin], "assignedUsers": [member]}))
        .await;
    let client = client_of(&app, member).await;
    let room_id: OwnedRoomId = matrix_id(&room).try_into().unwrap();
    // The homeserver decides: the client needs no fresh state to try.
    // `false`: refused by the homeserver (403), not failed otherwise.
    let post = || async {
        match client.get_room(&room_id).unwrap().send(RoomMessageEventContent::text_plain("hi")).await {
            Ok(_) => true,
            Err(e) if format!("{e:?}").contains("status_code: 403") => false,
            Err(e) => panic!("the send failed otherwise: {e:?}"),
        }
    };
    assert!(post().await);

    let (status, muted) = mute(&app, &room, json!({"userID": member, "durationSeconds": 30})).await;
    assert_eq!(status, StatusCode::CREATED, "{muted}");
    assert_eq!(seen(&app, &room).await.power_users.get(&app.user_id(member)), Some(&-1));
    assert!(!post().await, "a muted user's message is refused");
    let (_, list) = app.send(app.request(Method::GET, &path(&room, "mutes"))).await;
    assert_eq!(list["entries"][0]["userID"], member, "{list}");

    let (status, body) = mute(&app, &room, json!({"userID": admin})).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("not_mutable")),
        "{body}"
    );
    let (status, _) = mute(&app, &room, json!({"userID": outsider})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "only the room's users can be muted");

    app.clock.advance(chrono::Duration::seconds(31));
    eventually("the mute runs out", Duration::from_secs(20), || async {
        !seen(&app, &room).await.power_users.contains_key(&app.user_id(member))
    })
    .await;
    assert!(post().await, "the user posts again");

    let (status, _) = mute(&app, &room, json!({"userID": member})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(!post().await);
    let (status, _) = app.send(app.request(Method::DELETE, &path(&room, &format!("mutes/{member}")))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(post().await, "lifted by hand");
    let (status, _) = app.send(app.request(Method::DELETE, &path(&room, &format!("mutes/{member}")))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A mute is for assigned users: promoting the user ends it.
    let (status, _) = mute(&app, &room, json!({"userID": member})).await;
    assert_eq!(status, StatusCode::CREATED);
    let promote = json!({"moderators": [member]});
    let (status, _) = app.send(app.request(Method::POST, &path(&room, "users")).json(&promote)).await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = app.send(app.request(Method::GET, &path(&room, "mutes"))).await;
    assert_eq!(list["entries"], json!([]));
    assert_eq!(seen(&app, &room).await.power_users.get(&app.user_id(member)), Some(&50));
}

#[tokio::test]
async fn moderators_act_only_below_their_rank_and_members_not_at_all() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let [a1, a2, m1, m2, u1, u2, outsider, org_admin] = fresh_users(8)[..] else { unreachable!() };
    let room = app
        .create_room(json!({"organizationID": org, "name": "Ranks", "admins": [a1, a2],
            "moderators": [m1, m2], "assignedUsers": [u1, u2]}))
        .await;
    let token = |user: i64| jwt(json!(user.to_string()), json!([]), 600);
    let as_user =
        |user: i64, method: Method, rest: &str| app.as_user(method, &path(&room, rest), &token(user));
    let bans = |user: i64, target: i64| as_user(user, Method::POST, "bans").json(&json!({"userID": target}));
    let cases = [
        (m1, u1, StatusCode::CREATED),
        (m1, outsider, StatusCode::CREATED),
        (m1, m2, StatusCode::FORBIDDEN),
        (m1, a1, StatusCode::FORBIDDEN),
        (m1, m1, StatusCode::FORBIDDEN),
        (u2, u1, StatusCode::FORBIDDEN),
        (u2, outsider, StatusCode::FORBIDDEN),
        (a1, m2, StatusCode::CREATED),
        (a1, a2, StatusCode::FORBIDDEN),
    ];
    for (actor, target, expected) in cases {
        let (status, body) = app.send(bans(actor, target)).await;
        assert_eq!(status, expected, "{actor} bans {target}: {body}");
    }
    let (status, body) = app.send(as_user(a1, Method::DELETE, &format!("bans/{m2}"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // A ban set from above stays out of a moderator's reach, lifting and replacing alike; and a
    // banned moderator moderates nothing.
    let (status, _) = ban(&app, &room, json!({"userID": u2})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = app.send(as_user(m1, Method::DELETE, &format!("bans/{u2}"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = app.send(bans(m1, u2)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.send(app.request(Method::DELETE, &path(&room, &format!("bans/{u2}")))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.send(bans(a1, m2)).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = app.send(bans(m2, outsider)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a banned moderator: {body}");
    let (status, _) = app.send(as_user(a1, Method::DELETE, &format!("bans/{m2}"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.send(as_user(m1, Method::DELETE, &format!("bans/{u1}"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.send(as_user(m1, Method::POST, "mutes").json(&json!({"userID": u2}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["actor"], format!("user:{m1}"));
    let (status, _) = app.send(as_user(u1, Method::POST, "mutes").json(&json!({"userID": u2}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for (user, expected) in [(m1, StatusCode::OK), (a2, StatusCode::OK), (u1, StatusCode::FORBIDDEN)] {
        for list in ["bans", "mutes"] {
            let (status, _) = app.send(as_user(user, Method::GET, list)).await;
            assert_eq!(status, expected, "{user} lists {list}");
        }
    }
    // An organization admin outranks everyone in the organization's rooms; elsewhere nobody.
    let admin_token = jwt(json!(org_admin.to_string()), json!([{"id": org, "admin": true}]), 600);
    let (status, body) = app
        .send(app.as_user(Method::POST, &path(&room, "bans"), &admin_token).json(&json!({"userID": a2})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let other_org = jwt(json!(org_admin.to_string()), json!([{"id": fresh_org(), "admin": true}]), 600);
    let (status, _) = app
        .send(app.as_user(Method::POST, &path(&room, "bans"), &other_org).json(&json!({"userID": u2})))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, list) = app.send(app.request(Method::GET, &path(&room, "bans"))).await;
    let banned: Vec<i64> =
        list["entries"].as_array().unwrap().iter().map(|b| b["userID"].as_i64().unwrap()).collect();
    assert_eq!(banned, {
        let mut expected = vec![outsider, a2];
        expected.sort();
        expected
    });
}

#[tokio::test]
async fn bad_moderation_requests_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let [member] = fresh_users(1)[..] else { unreachable!() };
    let room = app
        .create_room(json!({"organizationID": fresh_org(), "name": "Strict", "assignedUsers": [member]}))
        .await;
    for bad in [
        json!({"userID": member, "durationSeconds": -1}),
        json!({"userID": member, "durationSeconds": 0}),
        json!({"userID": member, "durationSeconds": 31_536_001}),
        json!({"userID": 0}),
        json!({"userID": member, "reason": "x".repeat(501)}),
        json!({"userID": member, "until": "tomorrow"}),
        json!({"reason": "who?"}),
    ] {
        let (status, body) = ban(&app, &room, bad.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        if bad.get("reason").is_none() {
            let (status, body) = mute(&app, &room, bad.clone()).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        }
    }
    let (status, _) = app
        .send(app.request(Method::POST, "/chatrooms/999999999/bans").json(&json!({"userID": member})))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for list in ["bans", "mutes"] {
        let (_, body) = app.send(app.request(Method::GET, &path(&room, list))).await;
        assert_eq!(body["entries"], json!([]), "{list}");
    }
    assert_eq!(membership(&seen(&app, &room).await, &app, member), Some("join"));
}

#[tokio::test]
async fn two_replicas_racing_for_an_expiry_end_it_once() {
    let first = TestApp::spawn().await;
    let [member, other] = fresh_users(2)[..] else { unreachable!() };
    let room = first
        .create_room(
            json!({"organizationID": fresh_org(), "name": "Twice", "assignedUsers": [member, other]}),
        )
        .await;
    let second = TestApp::spawn_on(first.database(), |_| {}).await;
    let (status, _) = ban(&first, &room, json!({"userID": member, "durationSeconds": 5})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = mute(&first, &room, json!({"userID": other, "durationSeconds": 5})).await;
    assert_eq!(status, StatusCode::CREATED);
    // Both replicas' schedulers at the same moment, past the expiry (their own clocks are not).
    let later = ShiftedClock::default();
    later.advance(chrono::Duration::seconds(6));
    let (a, b) = tokio::join!(
        end_due_moderation(&first.state.store, &later),
        end_due_moderation(&second.state.store, &later)
    );
    let mut ended = a.unwrap();
    ended.extend(b.unwrap());
    assert_eq!(
        ended,
        vec![room["id"].as_i64().unwrap()],
        "the room's ban and mute ended once, by one replica"
    );
    eventually("the member is back and the other may post", Duration::from_secs(20), || async {
        let now = seen(&first, &room).await;
        membership(&now, &first, member) == Some("join")
            && !now.power_users.contains_key(&first.user_id(other))
    })
    .await;
}

#[tokio::test]
async fn a_ban_that_ran_out_while_the_service_was_down_ends_after_the_restart() {
    let app = TestApp::spawn().await;
    let [member] = fresh_users(1)[..] else { unreachable!() };
    let room = app
        .create_room(json!({"organizationID": fresh_org(), "name": "Restart", "assignedUsers": [member]}))
        .await;
    let (status, _) = ban(&app, &room, json!({"userID": member, "durationSeconds": 5})).await;
    assert_eq!(status, StatusCode::CREATED);
    let database = app.database();
    app.stop().await;
    let restarted = TestApp::spawn_on(database, |_| {}).await;
    restarted.clock.advance(chrono::Duration::seconds(6));
    eventually("the member is back after the restart", Duration::from_secs(20), || async {
        membership(&seen(&restarted, &room).await, &restarted, member) == Some("join")
    })
    .await;
    let (_, list) = restarted.send(restarted.request(Method::GET, &path(&room, "bans"))).await;
    assert_eq!(list["entries"], json!([]));
}
