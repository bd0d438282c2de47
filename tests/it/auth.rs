use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{fresh_org, fresh_users, jwt, TestApp, API_TOKEN};

/// Every operation, with a body good enough to get past parsing.
fn operations(room: i64, org: i64) -> Vec<(Method, String, Option<serde_json::Value>)> {
    vec![
        (Method::GET, format!("/chatrooms?organization_id={org}"), None),
        (Method::POST, "/chatrooms".into(), Some(json!({"organizationID": org, "name": "x"}))),
        (Method::GET, format!("/chatrooms/by-event?organization_id={org}&event_id=1"), None),
        (Method::GET, format!("/chatrooms/{room}"), None),
        (Method::PATCH, format!("/chatrooms/{room}"), Some(json!({"automationEnabled": true}))),
        (Method::DELETE, format!("/chatrooms/{room}"), None),
        (Method::POST, format!("/chatrooms/{room}/users"), Some(json!({"admins": [1]}))),
        (Method::DELETE, format!("/chatrooms/{room}/users/1"), None),
        (Method::POST, format!("/chatrooms/{room}/claim"), None),
        (Method::POST, "/chatrooms/default".into(), Some(json!({"organizationID": org}))),
        (Method::DELETE, format!("/organizations/{org}/chatrooms/default"), None),
        (Method::PUT, format!("/organizations/{org}/events/1/chatroom"), Some(json!({"name": "x"}))),
        (Method::DELETE, format!("/organizations/{org}/events/1/chatroom"), None),
    ]
}

#[tokio::test]
async fn every_operation_needs_valid_credentials() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let room = app.create_room(json!({"organizationID": org, "name": "Guarded"})).await;
    let id = room["id"].as_i64().unwrap();
    let expired = jwt(json!("5"), json!([{"id": org, "admin": true}]), -3600);
    let wrong_key = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "5", "exp": chrono::Utc::now().timestamp() + 600}),
        &jsonwebtoken::EncodingKey::from_secret(b"not-the-configured-secret"),
    )
    .unwrap();
    for (method, path, body) in operations(id, org) {
        let with_body = |mut request: reqwest::RequestBuilder| {
            if let Some(body) = &body {
                request = request.json(body);
            }
            request
        };
        let attempts = [
            ("no credentials", with_body(app.anonymous(method.clone(), &path))),
            (
                "unknown API token",
                with_body(app.anonymous(method.clone(), &path).header("API-TOKEN", "nope")),
            ),
            ("garbage JWT", with_body(app.as_user(method.clone(), &path, "not.a.jwt"))),
            ("expired JWT", with_body(app.as_user(method.clone(), &path, &expired))),
            ("JWT signed with another key", with_body(app.as_user(method.clone(), &path, &wrong_key))),
        ];
        for (what, request) in attempts {
            let (status, body) = app.send(request).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {method} {path} answered {body}");
            assert_eq!(body["error"]["code"], "unauthorized", "{body}");
        }
    }
    // Nothing was changed by any of it.
    let (status, unchanged) = app.send(app.request(Method::GET, &format!("/chatrooms/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(unchanged["automationEnabled"], false);
    assert_eq!(app.list_total(org).await, 1);
}

#[tokio::test]
async fn users_act_only_within_their_organizations_and_rooms() {
    let app = TestApp::spawn().await;
    let (org, other_org) = (fresh_org(), fresh_org());
    let users = fresh_users(3);
    let (org_admin, member, outsider) = (users[0], users[1], users[2]);
    let admin_token = jwt(json!(org_admin.to_string()), json!([{"id": org, "admin": true}]), 600);
    let member_token = jwt(json!(member.to_string()), json!([{"id": org, "admin": false}]), 600);
    let outsider_token = jwt(json!(outsider.to_string()), json!([{"id": other_org, "admin": true}]), 600);

    // The organization's admin creates rooms in their organization, not in another.
    let (status, room) = app
        .send(app.as_user(Method::POST, "/chatrooms", &admin_token).json(&json!({
            "organizationID": org, "name": "Members", "assignedUsers": [member],
        })))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{room}");
    let (status, _) = app
        .send(
            app.as_user(Method::POST, "/chatrooms", &admin_token)
                .json(&json!({"organizationID": other_org, "name": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let private = app.create_room(json!({"organizationID": org, "name": "Staff only"})).await;
    let id = room["id"].as_i64().unwrap();

    // An admin of another organization touches nothing here.
    for (method, path, body) in operations(id, org) {
        let mut request = app.as_user(method.clone(), &path, &outsider_token);
        if let Some(body) = &body {
            request = request.json(body);
        }
        let (status, answer) = app.send(request).await;
        if path.starts_with("/chatrooms/by-event") {
            assert_eq!(status, StatusCode::NOT_FOUND, "no such event room: {answer}");
            continue;
        }
        if path.starts_with("/chatrooms?") {
            // Listing another organization shows only rooms one holds a role in: none.
            assert_eq!(status, StatusCode::OK);
            assert_eq!(answer["total"], 0, "{answer}");
            continue;
        }
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path} answered {answer}");
        assert_eq!(answer["error"]["code"], "forbidden");
    }

    // A member reads and claims the room they hold a role in, and nothing else.
    let (status, _) = app.send(app.as_user(Method::GET, &format!("/chatrooms/{id}"), &member_token)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) =
        app.send(app.as_user(Method::POST, &format!("/chatrooms/{id}/claim"), &member_token)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) =
        app.send(app.as_user(Method::GET, &format!("/chatrooms/{}", private["id"]), &member_token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .send(
            app.as_user(Method::PATCH, &format!("/chatrooms/{id}"), &member_token)
                .json(&json!({"name": "Mine"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, page) =
        app.send(app.as_user(Method::GET, &format!("/chatrooms?organization_id={org}"), &member_token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["total"], 1, "a member lists only their rooms: {page}");
    let (status, page) =
        app.send(app.as_user(Method::GET, &format!("/chatrooms?organization_id={org}"), &admin_token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["total"], 2, "an admin lists every room: {page}");

    // The organization admin without a role in the room cannot claim it.
    let (status, _) =
        app.send(app.as_user(Method::POST, &format!("/chatrooms/{id}/claim"), &admin_token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, unchanged) = app.send(app.request(Method::GET, &format!("/chatrooms/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(unchanged["name"], "Members");
}

#[tokio::test]
async fn a_request_naming_two_callers_is_refused() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let users = fresh_users(2);
    let admin = |user: i64| jwt(json!(user.to_string()), json!([{"id": org, "admin": true}]), 600);
    let (first, second) = (admin(users[0]), admin(users[1]));
    let create =
        || app.anonymous(Method::POST, "/chatrooms").json(&json!({"organizationID": org, "name": "Whose?"}));
    let attempts = [
        (
            "Personal-Access-Token and Bearer of different users",
            create().header("Personal-Access-Token", &first).bearer_auth(&second),
        ),
        (
            "API-TOKEN and a Personal-Access-Token",
            create().header("API-TOKEN", API_TOKEN).header("Personal-Access-Token", &first),
        ),
        ("API-TOKEN and a Bearer token", create().header("API-TOKEN", API_TOKEN).bearer_auth(&first)),
        (
            "API-TOKEN and an invalid Personal-Access-Token",
            create().header("API-TOKEN", API_TOKEN).header("Personal-Access-Token", "not.a.jwt"),
        ),
        (
            "two different API-TOKENs",
            create().header("API-TOKEN", API_TOKEN).header("API-TOKEN", "other-token"),
        ),
        (
            "two different Personal-Access-Tokens",
            create().header("Personal-Access-Token", &first).header("Personal-Access-Token", &second),
        ),
        (
            "a valid Personal-Access-Token and an invalid Bearer token",
            create().header("Personal-Access-Token", &first).bearer_auth("not.a.jwt"),
        ),
    ];
    for (what, request) in attempts {
        let (status, body) = app.send(request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{what}: {body}");
    }
    assert_eq!(app.list_total(org).await, 0, "no refused request created a room");

    // The same token in both headers names one caller.
    let (status, room) = app.send(create().header("Personal-Access-Token", &first).bearer_auth(&first)).await;
    assert_eq!(status, StatusCode::CREATED, "{room}");
    assert_eq!(app.list_total(org).await, 1);
}
