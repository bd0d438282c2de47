use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{fresh_org, fresh_users, TestApp};

/// Sends a request that must be refused with `status` and the one error shape.
async fn refused(app: &TestApp, request: reqwest::RequestBuilder, status: StatusCode, what: &str) -> Value {
    let (got, body) = app.send(request).await;
    assert_eq!(got, status, "{what}: {body}");
    let error = &body["error"];
    assert!(
        error["code"].is_string() && error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
    body
}

#[tokio::test]
async fn bad_query_parameters_are_a_400() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    for (query, what) in [
        (String::new(), "missing organization_id"),
        (format!("organization_id={org}&limit=0"), "limit 0"),
        (format!("organization_id={org}&limit=51"), "limit 51"),
        (format!("organization_id={org}&offset=-1"), "negative offset"),
        (format!("organization_id={org}&limit=ten"), "limit not a number"),
        ("organization_id=abc".to_owned(), "organization_id not a number"),
        (format!("organization_id={org}&all=maybe"), "all not a boolean"),
    ] {
        let body = refused(
            &app,
            app.request(Method::GET, &format!("/chatrooms?{query}")),
            StatusCode::BAD_REQUEST,
            what,
        )
        .await;
        if what == "limit 51" {
            assert!(body["error"]["message"].as_str().unwrap().contains("between 1 and 50"), "{body}");
        }
    }
    refused(
        &app,
        app.request(Method::GET, "/chatrooms/by-event?organization_id=1"),
        StatusCode::BAD_REQUEST,
        "missing event_id",
    )
    .await;
    refused(
        &app,
        app.request(Method::GET, "/chatrooms/abc"),
        StatusCode::BAD_REQUEST,
        "room id not a number",
    )
    .await;
    refused(&app, app.request(Method::GET, "/chatrooms/999999999"), StatusCode::NOT_FOUND, "unknown room")
        .await;
    refused(&app, app.request(Method::GET, "/no/such/path"), StatusCode::NOT_FOUND, "unknown path").await;
}

#[tokio::test]
async fn bad_bodies_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let users = fresh_users(2);
    let room = app.create_room(json!({"organizationID": org, "name": "Stable", "admins": [users[0]]})).await;
    let id = room["id"].as_i64().unwrap();
    let room_id = room["matrixRoomID"].as_str().unwrap().to_owned();
    let before = app.matrix().room(&room_id).await;

    let create = |body: &str| {
        app.request(Method::POST, "/chatrooms")
            .header("content-type", "application/json")
            .body(body.to_owned())
    };
    let huge_admins: Vec<i64> = (0..2500).map(|i| 9_000_000_000 + i).collect();
    let not_png: Vec<u8> = b"GIF8 not really".to_vec();
    let cases: Vec<(reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (create("{\"organizationID\": 1, \"name\": "), StatusCode::BAD_REQUEST, "malformed JSON"),
        (
            app.request(Method::POST, "/chatrooms").body("{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "no JSON content type",
        ),
        (
            create(&json!({"name": "x"}).to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing organizationID",
        ),
        (
            create(&json!({"organizationID": "one", "name": "x"}).to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "organizationID a string",
        ),
        (
            create(&json!({"organizationID": org, "name": 5}).to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name a number",
        ),
        (
            create(&json!({"organizationID": org, "name": "   "}).to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "blank name",
        ),
        (
            create(&json!({"organizationID": org, "name": "x".repeat(256)}).to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name too long",
        ),
        (
            create(
                &json!({"organizationID": org, "name": "x", "admins": [1], "moderators": [1]}).to_string(),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "a user in two lists",
        ),
        (
            create(&json!({"organizationID": org, "name": "x", "admins": [-4]}).to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "negative user id",
        ),
        (
            create(&json!({"organizationID": org, "name": "x", "admins": ["a"]}).to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "user id a string",
        ),
        (
            create(&json!({"organizationID": org, "name": "x", "avatar": not_png}).to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "avatar not an image",
        ),
        (
            create(&json!({"organizationID": org, "name": "x", "avatar": [300]}).to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "avatar byte out of range",
        ),
        (
            create(&json!({"organizationID": org, "name": "x", "scheduledDeletion": "soon"}).to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "scheduledDeletion not RFC 3339",
        ),
        (
            create(
                &json!({"organizationID": org, "name": "x", "scheduledDeletion": "2001-01-01T00:00:00Z"})
                    .to_string(),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "scheduledDeletion in the past",
        ),
        (
            create(&json!({"organizationID": org, "name": "x", "scheduledDeletion": 5}).to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "scheduledDeletion a number",
        ),
        (
            create(&json!({"organizationID": org, "name": "x", "admin": [1]}).to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown field (typo)",
        ),
        (
            create(&json!({"organizationID": org, "name": "x", "admins": huge_admins}).to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "more admins than a power-levels event holds",
        ),
        (
            app.request(Method::POST, &format!("/chatrooms/{id}/users"))
                .json(&json!({"admins": [users[1]], "assignedUsers": [users[1]]})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "add: a user in two lists",
        ),
        (
            app.request(Method::POST, &format!("/chatrooms/{id}/users"))
                .json(&json!({"moderators": huge_admins})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "add: too many moderators",
        ),
        (
            app.request(Method::POST, &format!("/chatrooms/{id}/users")).json(&json!({"admins": "all"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "add: wrong type",
        ),
        (
            app.request(Method::POST, "/chatrooms/999999999/users").json(&json!({"admins": [1]})),
            StatusCode::NOT_FOUND,
            "add: unknown room",
        ),
        (
            app.request(Method::PATCH, &format!("/chatrooms/{id}"))
                .json(&json!({"automationEnabled": "yes"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "update: wrong type",
        ),
        (
            app.request(Method::PATCH, &format!("/chatrooms/{id}")).json(&json!({"name": ""})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "update: empty name",
        ),
        (
            app.request(Method::PATCH, "/chatrooms/999999999").json(&json!({"automationEnabled": true})),
            StatusCode::NOT_FOUND,
            "update: unknown room",
        ),
        (app.request(Method::DELETE, "/chatrooms/999999999"), StatusCode::NOT_FOUND, "delete: unknown room"),
        (
            app.request(Method::DELETE, &format!("/chatrooms/{id}/users/{}", users[1])),
            StatusCode::NOT_FOUND,
            "remove: user holds no role",
        ),
        (
            app.request(Method::POST, "/chatrooms/default")
                .json(&json!({"organizationID": org, "automationEnabled": 1})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "default: wrong type",
        ),
        (
            app.request(Method::POST, &format!("/chatrooms/{id}/claim")),
            StatusCode::BAD_REQUEST,
            "claim by the backend without user_id",
        ),
        (
            app.request(Method::POST, &format!("/chatrooms/{id}/claim?user_id={}", users[1])),
            StatusCode::FORBIDDEN,
            "claim for a user without a role",
        ),
    ];
    for (request, status, what) in cases {
        refused(&app, request, status, what).await;
    }

    let body_limit = 4 * 1024 * 1024 + 1024 * 1024;
    let oversized = format!("{{\"organizationID\": {org}, \"name\": \"{}\"}}", "x".repeat(body_limit));
    refused(&app, create(&oversized), StatusCode::PAYLOAD_TOO_LARGE, "body over the limit").await;

    // Nothing changed: one room, same record, same homeserver state.
    assert_eq!(app.list_total(org).await, 1);
    let (_, after) = app.send(app.request(Method::GET, &format!("/chatrooms/{id}"))).await;
    assert_eq!(after["name"], "Stable");
    assert_eq!(after["admins"], json!([users[0]]));
    assert_eq!(after["automationEnabled"], false);
    let seen = app.matrix().room(&room_id).await;
    assert_eq!(seen.power_users, before.power_users);
    assert_eq!(seen.joined, before.joined);
}

#[tokio::test]
async fn the_largest_power_levels_the_service_allows_are_accepted_by_synapse() {
    let app = TestApp::spawn().await;
    let room = app.create_room(json!({"organizationID": fresh_org(), "name": "Crowded"})).await;
    let room_id = room["matrixRoomID"].as_str().unwrap();
    let users = |n: i64| -> serde_json::Map<String, Value> {
        (0..n).map(|i| (format!("@app_{}:{}", 1_000_000_000 + i, app.hs.server_name), json!(100))).collect()
    };
    // The service refuses 1,950 such admins (one event cannot hold them) ...
    let too_many: Vec<i64> = (0..1950).map(|i| 1_000_000_000 + i).collect();
    refused(
        &app,
        app.request(Method::POST, &format!("/chatrooms/{}/users", room["id"]))
            .json(&json!({"admins": too_many})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "1,950 admins",
    )
    .await;
    // ... while 1,900, the most it allows, fit in what Synapse accepts, and far more do not.
    let matrix = app.matrix();
    let path =
        format!("/_matrix/client/v3/rooms/{}/state/m.room.power_levels/", urlencoding::encode(room_id));
    let (_, mut levels) = matrix.call(Method::GET, &path, matrix.as_token(), None).await;
    levels["users"] = Value::Object(users(1900));
    let (status, body) = matrix.call(Method::PUT, &path, matrix.as_token(), Some(levels.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    levels["users"] = Value::Object(users(2200));
    let (status, body) = matrix.call(Method::PUT, &path, matrix.as_token(), Some(levels)).await;
    assert!(status.is_client_error(), "Synapse refuses an event over 64 KiB: {status} {body}");
}
