//! Rosters and automation: the backend pushes who belongs to an organization or takes part in an
//! event, and automated rooms follow, as the homeserver shows.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use std::time::Duration;

use crate::harness::{eventually, fresh_org, fresh_users, jwt, TestApp};

fn members(list: &[(i64, &str)]) -> Value {
    json!({"members": list.iter().map(|(user, role)| json!({"userID": user, "role": role})).collect::<Vec<_>>()})
}

/// An automated default room; `lists` (admins, moderators, assignedUsers) are added after, and
/// `settings` (maxUsers...) patched in.
async fn create_default(app: &TestApp, org: i64, lists: Value, settings: Value) -> (i64, String) {
    let body = json!({"organizationID": org, "automationEnabled": true});
    let (status, room) = app.send(app.request(Method::POST, "/chatrooms/default").json(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{room}");
    let id = room["id"].as_i64().unwrap();
    if lists != json!({}) {
        let (status, added) =
            app.send(app.request(Method::POST, &format!("/chatrooms/{id}/users")).json(&lists)).await;
        assert_eq!(status, StatusCode::OK, "{added}");
    }
    if settings != json!({}) {
        let (status, patched) =
            app.send(app.request(Method::PATCH, &format!("/chatrooms/{id}")).json(&settings)).await;
        assert_eq!(status, StatusCode::OK, "{patched}");
    }
    (id, room["matrixRoomID"].as_str().unwrap().to_owned())
}

/// The organization's space, once made and in sync.
async fn organization_space(app: &TestApp, org: i64) -> Option<String> {
    let (_, organization) = app.send(app.request(Method::GET, &format!("/organizations/{org}"))).await;
    let synced = organization["syncStatus"] == "synced";
    organization["matrixSpaceID"].as_str().filter(|_| synced).map(str::to_owned)
}

/// Each user's membership in the Matrix room ("" when none) and their power level (0 when none).
async fn seen(app: &TestApp, room_id: &str, users: &[i64]) -> Vec<(String, i64)> {
    let room = app.matrix().room(room_id).await;
    users
        .iter()
        .map(|user| {
            let id = app.user_id(*user);
            (
                room.memberships.get(&id).cloned().unwrap_or_default(),
                room.power_users.get(&id).copied().unwrap_or(0),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_organization_roster_joins_and_kicks_the_automated_default_rooms_members_and_an_explicit_role_wins(
) {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let u = fresh_users(4);
    let (id, room_id) = create_default(&app, org, json!({"admins": [u[3]]}), json!({})).await;
    let path = format!("/organizations/{org}/members");

    let body = members(&[(u[0], "admin"), (u[1], "member"), (u[3], "member")]);
    let (status, written) = app.send(app.request(Method::PUT, &path).json(&body)).await;
    assert_eq!(status, StatusCode::OK, "{written}");
    assert_eq!(written, json!({"total": 3, "chatroomIDs": [id], "syncStatus": "synced"}));
    // The roster's admin at 100, its member joined without power; u[3] keeps their explicit
    // admin role over the roster's "member".
    let joined = |level| ("join".to_owned(), level);
    assert_eq!(seen(&app, &room_id, &u).await, [joined(100), joined(0), (String::new(), 0), joined(100)]);
    let (_, room) = app.send(app.request(Method::GET, &format!("/chatrooms/{id}"))).await;
    assert_eq!(room["admins"], json!([u[3]]), "the explicit lists are as the backend set them");
    assert_eq!(room["roster"], json!({"admins": [u[0]], "assignedUsers": [u[1]]}));

    // A roster member acts as one: the Matrix client of u[1] posts in the room.
    let token = app.matrix().login_as(&format!("app_{}", u[1])).await;
    let send = format!("/_matrix/client/v3/rooms/{}/send/m.room.message/t1", urlencoding::encode(&room_id));
    let (status, sent) =
        app.matrix().call(Method::PUT, &send, &token, Some(json!({"msgtype": "m.text", "body": "hi"}))).await;
    assert_eq!(status, StatusCode::OK, "{sent}");

    // Adding one, removing two: u[1] is kicked, u[3] stays as the lists' admin.
    let (status, added) =
        app.send(app.request(Method::POST, &path).json(&members(&[(u[2], "member")]))).await;
    assert_eq!((status, added["total"].clone()), (StatusCode::OK, json!(4)), "{added}");
    // Everyone is in the organization's space too before two leave the roster.
    let in_space = |expected: [&'static str; 4]| {
        let app = &app;
        let u = &u;
        async move {
            let Some(space) = organization_space(app, org).await else { return false };
            let seen = seen(app, &space, u).await;
            seen.iter().map(|(membership, _)| membership.as_str()).collect::<Vec<_>>() == expected
                && seen[0].1 == 100
        }
    };
    eventually("all four in the space", Duration::from_secs(20), || in_space(["join"; 4])).await;
    for (user, total) in [(u[1], 3), (u[3], 2)] {
        let (status, removed) = app.send(app.request(Method::DELETE, &format!("{path}/{user}"))).await;
        assert_eq!((status, removed["total"].clone()), (StatusCode::OK, json!(total)), "{removed}");
    }
    assert_eq!(
        seen(&app, &room_id, &u).await,
        [joined(100), ("leave".to_owned(), 0), joined(0), joined(100)]
    );
    // So in the organization's space: u[1] is out of it, u[3] (explicit admin) and the others in.
    eventually("the space follows the room", Duration::from_secs(20), || {
        in_space(["join", "leave", "join", "join"])
    })
    .await;
    // A roster-only user leaves by the roster, not the room's lists.
    let (status, refused) =
        app.send(app.request(Method::DELETE, &format!("/chatrooms/{id}/users/{}", u[0]))).await;
    assert_eq!(
        (status, refused["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("by_roster")),
        "{refused}"
    );
    let (status, _) = app.send(app.request(Method::DELETE, &format!("{path}/{}", u[1]))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not a member any more");

    let (status, page) = app.send(app.request(Method::GET, &format!("{path}?limit=1&offset=1"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page, json!({"entries": [{"userID": u[2], "role": "member"}], "total": 2}));
}

#[tokio::test]
async fn switching_automation_off_and_on_moves_exactly_the_roster_only_users() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let u = fresh_users(3);
    // u[0] is in the lists and the roster; u[1] and u[2] only in the roster.
    let (id, room_id) = create_default(&app, org, json!({"assignedUsers": [u[0]]}), json!({})).await;
    let roster = members(&[(u[0], "member"), (u[1], "member"), (u[2], "admin")]);
    let (status, _) =
        app.send(app.request(Method::PUT, &format!("/organizations/{org}/members")).json(&roster)).await;
    assert_eq!(status, StatusCode::OK);
    let joined = |level| ("join".to_owned(), level);
    assert_eq!(seen(&app, &room_id, &u).await, [joined(0), joined(0), joined(100)]);

    let patch = |on: bool| {
        app.request(Method::PATCH, &format!("/chatrooms/{id}")).json(&json!({"automationEnabled": on}))
    };
    let (status, off) = app.send(patch(false)).await;
    assert_eq!(status, StatusCode::OK, "{off}");
    assert_eq!(off["roster"], json!({"admins": [], "assignedUsers": []}));
    let left = ("leave".to_owned(), 0);
    assert_eq!(seen(&app, &room_id, &u).await, [joined(0), left.clone(), left]);

    let (status, on) = app.send(patch(true)).await;
    assert_eq!(status, StatusCode::OK, "{on}");
    assert_eq!(seen(&app, &room_id, &u).await, [joined(0), joined(0), joined(100)]);
}

#[tokio::test]
async fn event_participants_are_stored_before_the_room_and_applied_when_it_appears() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let u = fresh_users(3);
    let path = format!("/organizations/{org}/events/5/participants");
    let (status, stored) =
        app.send(app.request(Method::PUT, &path).json(&json!({"participants": [u[0], u[1]]}))).await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(stored, json!({"total": 2, "chatroomIDs": [], "syncStatus": "synced"}));

    let room_path = format!("/organizations/{org}/events/5/chatroom");
    let body = json!({"name": "Gig", "automationEnabled": true, "moderators": [u[1]]});
    let (status, room) = app.send(app.request(Method::PUT, &room_path).json(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{room}");
    assert_eq!(room["roster"], json!({"admins": [], "assignedUsers": [u[0]]}), "u[1] is explicit");
    let room_id = room["matrixRoomID"].as_str().unwrap().to_owned();
    let joined = |level| ("join".to_owned(), level);
    assert_eq!(seen(&app, &room_id, &u).await, [joined(0), joined(50), (String::new(), 0)]);

    // Another event's participants do not reach this room.
    let other = format!("/organizations/{org}/events/6/participants");
    let (status, _) = app.send(app.request(Method::PUT, &other).json(&json!({"participants": [u[2]]}))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.send(app.request(Method::POST, &path).json(&json!({"participants": [u[2]]}))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.send(app.request(Method::DELETE, &format!("{path}/{}", u[0]))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen(&app, &room_id, &u).await, [("leave".to_owned(), 0), joined(50), joined(0)]);
    let (_, page) = app.send(app.request(Method::GET, &format!("{path}?all=true"))).await;
    assert_eq!(page, json!({"entries": [u[1], u[2]], "total": 2}));
}

#[tokio::test]
async fn bad_rosters_are_refused_whole_and_change_nothing() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let u = fresh_users(4);
    let path = format!("/organizations/{org}/members");
    let (status, _) = app.send(app.request(Method::PUT, &path).json(&members(&[(u[0], "admin")]))).await;
    assert_eq!(status, StatusCode::OK);

    let refused = [
        members(&[(u[1], "owner")]),
        members(&[(u[1], "member"), (u[1], "admin")]),
        members(&[(-4, "member")]),
        members(&[(0, "member")]),
        json!({"members": [{"userID": u[1]}]}),
        json!({"members": [{"userID": "seven", "role": "member"}]}),
        json!({"members": [{"userID": u[1], "role": "member", "extra": 1}]}),
        json!({"participants": [u[1]]}),
        json!([]),
        members(&(1..=10_001).map(|i| (i, "member")).collect::<Vec<_>>()),
    ];
    for body in &refused {
        for method in [Method::PUT, Method::POST] {
            let (status, answer) = app.send(app.request(method.clone(), &path).json(body)).await;
            assert!(status.is_client_error(), "{method} {body:.80} answered {status}: {answer}");
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{method}: {answer}");
        }
    }
    let (status, _) = app.send(app.request(Method::DELETE, &format!("{path}/0"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app.send(app.request(Method::GET, &format!("{path}?limit=1001"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let participants = format!("/organizations/{org}/events/1/participants");
    for body in [json!({"participants": [u[1], u[1]]}), json!({"participants": [-1]})] {
        let (status, _) = app.send(app.request(Method::PUT, &participants).json(&body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }

    // Only the backend writes rosters; the organization's admins may read them.
    let admin = jwt(json!(u[0].to_string()), json!([{"id": org, "admin": true}]), 600);
    let (status, _) =
        app.send(app.as_user(Method::PUT, &path, &admin).json(&members(&[(u[1], "member")]))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, page) = app.send(app.as_user(Method::GET, &path, &admin)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page, json!({"entries": [{"userID": u[0], "role": "admin"}], "total": 1}), "nothing changed");
    let stranger = jwt(json!(u[1].to_string()), json!([]), 600);
    let (status, _) = app.send(app.as_user(Method::GET, &path, &stranger)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A roster that would overfill the automated room is refused, the roster left as it was.
    let (id, _) = create_default(&app, org, json!({}), json!({"maxUsers": 2})).await;
    let three = members(&[(u[0], "admin"), (u[1], "member"), (u[2], "member")]);
    let (status, full) = app.send(app.request(Method::PUT, &path).json(&three)).await;
    assert_eq!((status, full["error"]["code"].clone()), (StatusCode::CONFLICT, json!("room_full")), "{full}");
    let (_, page) = app.send(app.request(Method::GET, &path)).await;
    assert_eq!(page["total"], 1);
    // And so is raising the room's own lists past it.
    let (status, _) = app
        .send(
            app.request(Method::POST, &format!("/chatrooms/{id}/users"))
                .json(&json!({"assignedUsers": [u[1], u[2]]})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // A deactivated user cannot join a roster.
    let (status, _) = app.send(app.request(Method::DELETE, &format!("/users/{}", u[3]))).await;
    assert!(status.is_success(), "{status}");
    let (status, answer) =
        app.send(app.request(Method::POST, &path).json(&members(&[(u[3], "member")]))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
}

#[tokio::test]
async fn a_roster_of_ten_thousand_users_is_stored_and_read_back_in_pages() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let base = fresh_users(1)[0];
    let all: Vec<(i64, &str)> =
        (0..10_000).map(|i| (base + i, if i % 100 == 0 { "admin" } else { "member" })).collect();
    let path = format!("/organizations/{org}/members");
    let (status, written) = app.send(app.request(Method::PUT, &path).json(&members(&all))).await;
    assert_eq!(status, StatusCode::OK, "{written}");
    assert_eq!(written["total"], 10_000);
    let (_, page) = app.send(app.request(Method::GET, &format!("{path}?limit=1000&offset=9500"))).await;
    assert_eq!(page["total"], 10_000);
    assert_eq!(page["entries"].as_array().unwrap().len(), 500);
    assert_eq!(page["entries"][0], json!({"userID": base + 9500, "role": "admin"}));
    let (_, everyone) = app.send(app.request(Method::GET, &format!("{path}?all=true"))).await;
    assert_eq!(everyone["entries"].as_array().unwrap().len(), 10_000);
}

#[tokio::test]
async fn concurrent_roster_puts_end_as_one_of_them_and_too_many_admins_are_refused() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let path = format!("/organizations/{org}/members");
    let base = fresh_users(1)[0];
    // Two disjoint whole lists, sent at once: the roster is one of them, never a mix.
    let first: Vec<(i64, &str)> = (0..300).map(|i| (base + i, "member")).collect();
    let second: Vec<(i64, &str)> = (300..600).map(|i| (base + i, "member")).collect();
    let (a, b) = tokio::join!(
        app.send(app.request(Method::PUT, &path).json(&members(&first))),
        app.send(app.request(Method::PUT, &path).json(&members(&second)))
    );
    assert_eq!((a.0, b.0), (StatusCode::OK, StatusCode::OK), "{} {}", a.1, b.1);
    let (_, page) = app.send(app.request(Method::GET, &format!("{path}?all=true"))).await;
    let users: Vec<i64> =
        page["entries"].as_array().unwrap().iter().map(|e| e["userID"].as_i64().unwrap()).collect();
    let either = |list: &[(i64, &str)]| users == list.iter().map(|(u, _)| *u).collect::<Vec<_>>();
    assert!(either(&first) || either(&second), "a mix of both lists: {} users", users.len());

    // The organization's admins are its space's admins: more than its power levels hold is a 422.
    let admins: Vec<(i64, &str)> = (0..2_500).map(|i| (base + 1_000 + i, "admin")).collect();
    let (status, refused) = app.send(app.request(Method::PUT, &path).json(&members(&admins))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let (_, after) = app.send(app.request(Method::GET, &format!("{path}?limit=1"))).await;
    assert_eq!(after["total"], 300, "nothing changed");
}
