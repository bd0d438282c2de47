use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use chatrooms::domain::Role;

use crate::harness::{fresh_org, fresh_users, jwt, seed_roles, TestApp};

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
    // Magic bytes without an image behind them, and a real image beyond the dimension cap.
    let fake_png: Vec<u8> = b"\x89PNG\r\n\x1a\n....".to_vec();
    let too_wide: Vec<u8> = include_bytes!("../../src/domain/testdata/4097x1.png").to_vec();
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
            create(&json!({"organizationID": org, "name": "x", "avatar": fake_png}).to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "avatar only a PNG signature",
        ),
        (
            create(&json!({"organizationID": org, "name": "x", "avatar": too_wide}).to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "avatar 4097 pixels wide",
        ),
        (
            create(&json!({"organizationID": org, "name": "\u{200B}\u{FEFF}\u{202E}"}).to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name of invisible characters only",
        ),
        (
            create(&json!({"organizationID": org, "name": "\u{3000}\u{00A0}"}).to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name of Unicode whitespace only",
        ),
        (
            create(&json!({"organizationID": 0, "name": "x"}).to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "organizationID 0",
        ),
        (
            create(&json!({"organizationID": -org, "name": "x"}).to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "negative organizationID",
        ),
        (
            create(&json!({"organizationID": org, "name": "x", "assignedUsers": [0]}).to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "user id 0",
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
            "more users than one request may name",
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
            app.request(Method::PATCH, &format!("/chatrooms/{id}"))
                .json(&json!({"name": "\u{2066}\u{00AD}"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "update: invisible name",
        ),
        (
            app.request(Method::POST, "/chatrooms/default").json(&json!({"organizationID": 0})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "default: organizationID 0",
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
    // The service refuses 1,950 such admins (one event cannot hold them): with 1,000 already
    // listed (seeded, as registering them would take minutes), adding 950 more is refused.
    let id = room["id"].as_i64().unwrap();
    let seeded: Vec<(i64, Role)> = (0..1000).map(|i| (1_000_000_000 + i, Role::Admin)).collect();
    seed_roles(&app, id, &seeded).await;
    let more: Vec<i64> = (1000..1950).map(|i| 1_000_000_000 + i).collect();
    let body = refused(
        &app,
        app.request(Method::POST, &format!("/chatrooms/{id}/users")).json(&json!({"admins": more})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "1,950 admins",
    )
    .await;
    assert!(body["error"]["message"].as_str().unwrap().contains("power levels"), "{body}");
    let (_, unchanged) = app.send(app.request(Method::GET, &format!("/chatrooms/{id}"))).await;
    assert_eq!(unchanged["admins"].as_array().unwrap().len(), 1000);
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

#[tokio::test]
async fn ids_in_paths_and_queries_are_positive_integers_written_in_digits() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let users = fresh_users(2);
    let room = app.create_room(json!({"organizationID": org, "name": "Keep", "admins": [users[0]]})).await;
    let id = room["id"].as_i64().unwrap();
    let (status, _) = app
        .send(
            app.request(Method::PUT, &format!("/organizations/{org}/events/7/chatroom"))
                .json(&json!({"name": "Ev"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let user = users[0];
    // Spellings of real ids (they would find the room, the user, the event) and non-ids.
    let spellings = |real: i64| {
        vec![
            format!("+{real}"),
            format!("0{real}"),
            format!("%20{real}"),
            format!("{real}.0"),
            "0".to_owned(),
            "-1".to_owned(),
            "9223372036854775808".to_owned(),
        ]
    };
    let mut cases: Vec<(Method, String, Option<Value>)> = Vec::new();
    for room_id in spellings(id) {
        cases.extend([
            (Method::GET, format!("/chatrooms/{room_id}"), None),
            (Method::PATCH, format!("/chatrooms/{room_id}"), Some(json!({"name": "Changed"}))),
            (Method::DELETE, format!("/chatrooms/{room_id}"), None),
            (Method::POST, format!("/chatrooms/{room_id}/users"), Some(json!({"assignedUsers": [users[1]]}))),
            (Method::DELETE, format!("/chatrooms/{room_id}/users/{user}"), None),
            (Method::POST, format!("/chatrooms/{room_id}/claim?user_id={user}"), None),
            (Method::POST, format!("/chatrooms/{room_id}/sync"), None),
        ]);
    }
    for user_id in spellings(user) {
        cases.extend([
            (Method::DELETE, format!("/chatrooms/{id}/users/{user_id}"), None),
            (Method::POST, format!("/chatrooms/{id}/claim?user_id={user_id}"), None),
            (Method::GET, format!("/user/credentials?user_id={user_id}"), None),
            (Method::GET, format!("/user/devices?user_id={user_id}"), None),
            (Method::POST, format!("/user/login?user_id={user_id}"), None),
            (Method::DELETE, format!("/user/devices?user_id={user_id}"), None),
            (Method::PUT, format!("/users/{user_id}"), Some(json!({"displayName": "Changed"}))),
            (Method::DELETE, format!("/users/{user_id}"), None),
        ]);
    }
    for org_id in spellings(org) {
        cases.extend([
            (Method::GET, format!("/chatrooms?organization_id={org_id}"), None),
            (Method::GET, format!("/chatrooms/by-event?organization_id={org_id}&event_id=7"), None),
            (Method::DELETE, format!("/organizations/{org_id}/chatrooms/default"), None),
            (
                Method::PUT,
                format!("/organizations/{org_id}/events/7/chatroom"),
                Some(json!({"name": "Changed"})),
            ),
            (Method::DELETE, format!("/organizations/{org_id}/events/7/chatroom"), None),
        ]);
    }
    for event_id in spellings(7) {
        cases.extend([
            (Method::GET, format!("/chatrooms/by-event?organization_id={org}&event_id={event_id}"), None),
            (
                Method::PUT,
                format!("/organizations/{org}/events/{event_id}/chatroom"),
                Some(json!({"name": "Changed"})),
            ),
            (Method::DELETE, format!("/organizations/{org}/events/{event_id}/chatroom"), None),
        ]);
    }
    for (method, path, body) in cases {
        let mut request = app.request(method.clone(), &path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        refused(&app, request, StatusCode::BAD_REQUEST, &format!("{method} {path}")).await;
    }

    // Nothing changed: both rooms are there as they were, the user still listed.
    assert_eq!(app.list_total(org).await, 2);
    let (status, after) = app.send(app.request(Method::GET, &format!("/chatrooms/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (after["name"].as_str(), &after["admins"], &after["assignedUsers"]),
        (Some("Keep"), &json!([user]), &json!([]))
    );
    let (_, event_room) = app
        .send(app.request(Method::GET, &format!("/chatrooms/by-event?organization_id={org}&event_id=7")))
        .await;
    assert_eq!(event_room["name"], "Ev");
}

#[tokio::test]
async fn bodies_must_be_json_objects_sent_as_json() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let users = fresh_users(2);
    let room = app.create_room(json!({"organizationID": org, "name": "Shape", "admins": [users[0]]})).await;
    let id = room["id"].as_i64().unwrap();
    let endpoints = [
        (Method::POST, "/chatrooms".to_owned()),
        (Method::PATCH, format!("/chatrooms/{id}")),
        (Method::POST, format!("/chatrooms/{id}/users")),
        (Method::POST, "/chatrooms/default".to_owned()),
        (Method::PUT, format!("/organizations/{org}/events/9/chatroom")),
        (Method::PUT, format!("/users/{}", users[1])),
        (Method::POST, format!("/user/login?user_id={}", users[1])),
    ];
    for (method, path) in &endpoints {
        for body in ["[]", "[null, null, null, null, null, null]", "\"x\"", "42", "null", "true"] {
            let request =
                app.request(method.clone(), path).header("content-type", "application/json").body(body);
            refused(&app, request, StatusCode::UNPROCESSABLE_ENTITY, &format!("{method} {path} {body}"))
                .await;
        }
        for content_type in ["text/plain", "application/x-www-form-urlencoded", "application/xml"] {
            let request = app.request(method.clone(), path).header("content-type", content_type).body("{}");
            refused(
                &app,
                request,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!("{method} {path} {content_type}"),
            )
            .await;
        }
        let untyped = app.request(method.clone(), path).body("{}");
        refused(
            &app,
            untyped,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!("{method} {path} no content type"),
        )
        .await;
    }
    // A login body as text, naming a device, is not taken as JSON either.
    let login = format!("/user/login?user_id={}", users[1]);
    let request = app
        .request(Method::POST, &login)
        .header("content-type", "text/plain")
        .body(r#"{"deviceID": "SHAPE"}"#);
    refused(&app, request, StatusCode::UNSUPPORTED_MEDIA_TYPE, "login as text/plain").await;

    // Nothing changed: one room, as it was; no event room; no device, no account for the user.
    assert_eq!(app.list_total(org).await, 1);
    let (_, after) = app.send(app.request(Method::GET, &format!("/chatrooms/{id}"))).await;
    assert_eq!(
        (after["name"].as_str(), &after["admins"], &after["moderators"]),
        (Some("Shape"), &json!([users[0]]), &json!([]))
    );
    let (status, _) = app
        .send(app.request(Method::GET, &format!("/chatrooms/by-event?organization_id={org}&event_id=9")))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let matrix = app.matrix();
    let (status, _) = matrix.admin_get(&format!("/_synapse/admin/v2/users/{}", app.user_id(users[1]))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no refused request registered the user");

    // A login may leave its body out entirely, or send an empty JSON object.
    let (status, session) = app.send(app.request(Method::POST, &login)).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    let (status, session) = app.send(app.request(Method::POST, &login).json(&json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    let (_, devices) =
        app.send(app.request(Method::GET, &format!("/user/devices?user_id={}", users[1]))).await;
    let names: Vec<&str> =
        devices["devices"].as_array().unwrap().iter().filter_map(|d| d["device_id"].as_str()).collect();
    assert!(!names.contains(&"SHAPE"), "{devices}");
}

#[tokio::test]
async fn role_lists_are_capped_per_request_and_per_room() {
    let app = TestApp::spawn_with(|env| {
        env.insert("CHATROOMS_RECONCILE_INTERVAL_MS".into(), "0".into());
    })
    .await;
    let org = fresh_org();
    let many: Vec<i64> = (0..1001).map(|i| 2_000_000_000 + i).collect();
    let room = app.create_room(json!({"organizationID": org, "name": "Big"})).await;
    let id = room["id"].as_i64().unwrap();
    let over_per_request = [
        (
            app.request(Method::POST, "/chatrooms")
                .json(&json!({"organizationID": org, "name": "x", "assignedUsers": many})),
            "create: 1,001 assigned users",
        ),
        (
            app.request(Method::POST, "/chatrooms").json(&json!({
                "organizationID": org, "name": "x", "admins": [1], "moderators": many[..500], "assignedUsers": many[500..1000],
            })),
            "create: 1,001 users over three lists",
        ),
        (
            app.request(Method::PUT, &format!("/organizations/{org}/events/3/chatroom"))
                .json(&json!({"name": "x", "assignedUsers": many})),
            "event room: 1,001 assigned users",
        ),
        (
            app.request(Method::POST, &format!("/chatrooms/{id}/users")).json(&json!({"assignedUsers": many})),
            "add: 1,001 assigned users",
        ),
    ];
    for (request, what) in over_per_request {
        let body = refused(&app, request, StatusCode::UNPROCESSABLE_ENTITY, what).await;
        assert!(body["error"]["message"].as_str().unwrap().contains("at most 1000"), "{what}: {body}");
    }
    // The room holds 9,990 users (seeded: registering them would take minutes); 11 more would
    // take it over 10,000. (A create or event-room PUT names at most 1,000, so only adding
    // users can reach the room's limit.)
    let seeded: Vec<(i64, Role)> = (0..9990).map(|i| (3_000_000_000 + i, Role::Assigned)).collect();
    seed_roles(&app, id, &seeded).await;
    let eleven: Vec<i64> = (0..11).map(|i| 4_000_000_000 + i).collect();
    let body = refused(
        &app,
        app.request(Method::POST, &format!("/chatrooms/{id}/users")).json(&json!({"moderators": eleven})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "add: a room of 10,001 users",
    )
    .await;
    assert!(body["error"]["message"].as_str().unwrap().contains("at most 10000"), "{body}");

    // Nothing changed: one room, with its seeded users only; nobody was registered.
    assert_eq!(app.list_total(org).await, 1);
    let (_, after) = app.send(app.request(Method::GET, &format!("/chatrooms/{id}"))).await;
    assert_eq!(after["assignedUsers"].as_array().unwrap().len(), 9990);
    assert_eq!(after["moderators"], json!([]));
    let (status, _) = app
        .send(app.request(Method::GET, &format!("/chatrooms/by-event?organization_id={org}&event_id=3")))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let matrix = app.matrix();
    for user in [many[0], many[1000], eleven[0]] {
        let (status, _) = matrix.admin_get(&format!("/_synapse/admin/v2/users/{}", app.user_id(user))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "user {user} was registered");
    }
}

#[tokio::test]
async fn an_organization_admin_is_refused_zero_ids_too() {
    // A token naming organization 0 as administered does not open organization 0.
    let app = TestApp::spawn().await;
    let token = jwt(json!(fresh_users(1)[0].to_string()), json!([{"id": 0, "admin": true}]), 600);
    let request =
        app.as_user(Method::POST, "/chatrooms", &token).json(&json!({"organizationID": 0, "name": "Zero"}));
    refused(&app, request, StatusCode::UNPROCESSABLE_ENTITY, "organizationID 0 as its admin").await;
    let request = app.as_user(Method::GET, "/chatrooms?organization_id=0", &token);
    refused(&app, request, StatusCode::BAD_REQUEST, "listing organization 0").await;
}
