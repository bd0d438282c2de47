//! A user's rooms: by the rooms' lists, by rosters, and by bans, across organizations, as the
//! backend, the user and an organization admin may see them; checked against the user's joined
//! rooms on the homeserver.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{fresh_org, fresh_users, jwt, TestApp};

async fn created(app: &TestApp, method: Method, path: &str, body: Value) -> Value {
    let (status, room) = app.send(app.request(method, path).json(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{path}: {room}");
    room
}

async fn ok(app: &TestApp, method: Method, path: &str, body: Value) {
    let (status, answer) = app.send(app.request(method, path).json(&body)).await;
    assert!(status.is_success(), "{path}: {status} {answer}");
}

fn ids(page: &Value) -> Vec<i64> {
    page["entries"].as_array().unwrap().iter().map(|room| room["id"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn a_users_rooms_across_three_organizations_come_with_their_role_its_source_and_bans() {
    let app = TestApp::spawn().await;
    let [user, admin_of_a, stranger, other]: [i64; 4] = fresh_users(4).try_into().unwrap();
    let (a, b, c) = (fresh_org(), fresh_org(), fresh_org());

    // A: a moderator by the list; an assigned user by the organization's roster.
    let a_list = created(
        &app,
        Method::POST,
        "/chatrooms",
        json!({"organizationID": a, "name": "A list", "moderators": [user]}),
    )
    .await;
    ok(
        &app,
        Method::PUT,
        &format!("/organizations/{a}/members"),
        json!({"members": [{"userID": user, "role": "member"}, {"userID": admin_of_a, "role": "admin"}]}),
    )
    .await;
    let a_default = created(
        &app,
        Method::POST,
        "/chatrooms/default",
        json!({"organizationID": a, "automationEnabled": true}),
    )
    .await;
    created(
        &app,
        Method::POST,
        "/chatrooms",
        json!({"organizationID": a, "name": "A without", "assignedUsers": [other]}),
    )
    .await;
    // B: a participant of an automated event room; banned from a room without a role.
    ok(
        &app,
        Method::PUT,
        &format!("/organizations/{b}/events/9/participants"),
        json!({"participants": [user]}),
    )
    .await;
    let b_event = created(
        &app,
        Method::PUT,
        &format!("/organizations/{b}/events/9/chatroom"),
        json!({"name": "Gig", "automationEnabled": true}),
    )
    .await;
    let b_banned =
        created(&app, Method::POST, "/chatrooms", json!({"organizationID": b, "name": "B banned"})).await;
    let (status, ban) = app
        .send(
            app.request(Method::POST, &format!("/chatrooms/{}/bans", b_banned["id"]))
                .json(&json!({"userID": user})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ban}");
    // C: an admin by the list; a deleted room is not listed.
    let c_list = created(
        &app,
        Method::POST,
        "/chatrooms",
        json!({"organizationID": c, "name": "C list", "admins": [user]}),
    )
    .await;
    let c_gone = created(
        &app,
        Method::POST,
        "/chatrooms",
        json!({"organizationID": c, "name": "C gone", "admins": [user]}),
    )
    .await;
    let (status, _) = app.send(app.request(Method::DELETE, &format!("/chatrooms/{}", c_gone["id"]))).await;
    assert!(status.is_success(), "{status}");

    let path = format!("/users/{user}/chatrooms");
    let (status, all) = app.send(app.request(Method::GET, &format!("{path}?limit=50"))).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let expected = [&a_list, &a_default, &b_event, &b_banned, &c_list];
    let expected_ids: Vec<i64> = expected.iter().map(|room| room["id"].as_i64().unwrap()).collect();
    assert_eq!((ids(&all), all["total"].as_i64()), (expected_ids.clone(), Some(5)), "{all}");
    let what: Vec<(Value, Value, Value)> = all["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|room| (room["role"].clone(), room["roleSource"].clone(), room["banned"].clone()))
        .collect();
    assert_eq!(
        what,
        [
            (json!("moderator"), json!("list"), json!(false)),
            (json!("assigned"), json!("roster"), json!(false)),
            (json!("assigned"), json!("roster"), json!(false)),
            (json!(null), json!(null), json!(true)),
            (json!("admin"), json!("list"), json!(false)),
        ]
    );
    // Each entry is the room as GET /chatrooms/{roomID} answers, and three fields more.
    for entry in all["entries"].as_array().unwrap() {
        let (_, room) = app.send(app.request(Method::GET, &format!("/chatrooms/{}", entry["id"]))).await;
        let mut entry = entry.as_object().unwrap().clone();
        for field in ["role", "roleSource", "banned"] {
            entry.remove(field);
        }
        assert_eq!(Value::Object(entry), room);
    }

    // The homeserver agrees: the user is joined where they hold a role, not where banned.
    let matrix_user = app.user_id(user);
    let localpart = matrix_user.trim_start_matches('@').split(':').next().unwrap().to_owned();
    let token = app.matrix().login_as(&localpart).await;
    let (status, joined) =
        app.matrix().call(Method::GET, "/_matrix/client/v3/joined_rooms", &token, None).await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    let joined = joined["joined_rooms"].as_array().unwrap();
    for room in [&a_list, &a_default, &b_event, &c_list] {
        assert!(joined.contains(&room["matrixRoomID"]), "{} in {joined:?}", room["name"]);
    }
    assert!(!joined.contains(&b_banned["matrixRoomID"]));

    // Pages, and one organization.
    let page = |query: String, token: Option<String>| {
        let (app, path) = (&app, &path);
        async move {
            let url = format!("{path}?{query}");
            let request = match &token {
                Some(token) => app.as_user(Method::GET, &url, token),
                None => app.request(Method::GET, &url),
            };
            app.send(request).await
        }
    };
    let (_, second) = page("limit=2&offset=1".into(), None).await;
    assert_eq!((ids(&second), second["total"].as_i64()), (expected_ids[1..3].to_vec(), Some(5)));
    let (_, past) = page("limit=2&offset=9".into(), None).await;
    assert_eq!((ids(&past), past["total"].as_i64()), (vec![], Some(5)));
    let (_, of_b) = page(format!("organization_id={b}"), None).await;
    assert_eq!((ids(&of_b), of_b["total"].as_i64()), (expected_ids[2..4].to_vec(), Some(2)));

    // The user sees all of theirs; an admin of A only A's; a stranger nothing.
    let own = jwt(json!(user.to_string()), json!([]), 600);
    let (status, mine) = page("limit=50".into(), Some(own)).await;
    assert_eq!((status, ids(&mine)), (StatusCode::OK, expected_ids.clone()), "{mine}");
    let admin =
        jwt(json!(admin_of_a.to_string()), json!([{"id": a, "admin": true}, {"id": c, "admin": false}]), 600);
    let (status, of_a) = page("limit=50".into(), Some(admin.clone())).await;
    assert_eq!(
        (status, ids(&of_a), of_a["total"].as_i64()),
        (StatusCode::OK, expected_ids[..2].to_vec(), Some(2))
    );
    let (status, refused) = page(format!("organization_id={c}"), Some(admin)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    let member = jwt(json!(stranger.to_string()), json!([{"id": a, "admin": false}]), 600);
    let (status, refused) = page(String::new(), Some(member)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");

    // Someone without rooms has an empty page.
    let (status, none) = app.send(app.request(Method::GET, &format!("/users/{stranger}/chatrooms"))).await;
    assert_eq!((status, none), (StatusCode::OK, json!({"entries": [], "total": 0})));
}

#[tokio::test]
async fn bad_queries_of_a_users_rooms_are_refused() {
    let app = TestApp::spawn().await;
    for path in [
        "/users/-1/chatrooms",
        "/users/abc/chatrooms",
        "/users/0/chatrooms",
        "/users/5/chatrooms?organization_id=0",
        "/users/5/chatrooms?organization_id=x",
        "/users/5/chatrooms?limit=0",
        "/users/5/chatrooms?limit=51",
        "/users/5/chatrooms?offset=-1",
    ] {
        let (status, refused) = app.send(app.request(Method::GET, path)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {refused}");
    }
    let (status, _) = app.send(app.anonymous(Method::GET, "/users/5/chatrooms")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
