//! The service's user endpoints, proven by a real Matrix client (matrix-sdk) talking to the
//! homeserver with what the service handed out.

use std::collections::BTreeSet;

use matrix_sdk::{
    authentication::{matrix::MatrixSession, SessionTokens},
    config::SyncSettings,
    ruma::{events::room::message::RoomMessageEventContent, OwnedRoomId, UserId},
    Client, SessionMeta,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{fresh_org, fresh_users, jwt, tiny_png, TestApp};

async fn client(app: &TestApp) -> Client {
    Client::builder().homeserver_url(&app.hs.url).build().await.expect("matrix client")
}

async fn login(app: &TestApp, token: &str, body: Value) -> Value {
    let (status, session) = app.send(app.as_user(Method::POST, "/user/login", token).json(&body)).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    session
}

async fn restore(app: &TestApp, session: &Value) -> Client {
    let client = client(app).await;
    let restored = MatrixSession {
        meta: SessionMeta {
            user_id: UserId::parse(session["userID"].as_str().unwrap()).unwrap(),
            device_id: session["deviceID"].as_str().unwrap().into(),
        },
        tokens: SessionTokens {
            access_token: session["accessToken"].as_str().unwrap().to_owned(),
            refresh_token: session["refreshToken"].as_str().map(str::to_owned),
        },
    };
    client.restore_session(restored).await.expect("session restored");
    client
}

/// A matrix-sdk client of the app user, logged in through the service and synced once.
pub(crate) async fn client_of(app: &TestApp, user: i64) -> Client {
    let token = jwt(json!(user.to_string()), json!([]), 600);
    let session = login(app, &token, json!({})).await;
    let client = restore(app, &session).await;
    client.sync_once(SyncSettings::default()).await.expect("sync");
    client
}

#[tokio::test]
async fn a_mobile_client_logs_in_through_the_service_and_sees_exactly_its_rooms() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let users = fresh_users(2);
    let (me, other) = (users[0], users[1]);
    let alpha = app
        .create_room(json!({"organizationID": org, "name": "Alpha", "admins": [me], "avatar": tiny_png()}))
        .await;
    let beta = app
        .create_room(json!({"organizationID": org, "name": "Beta", "moderators": [me], "admins": [other]}))
        .await;
    let gamma = app.create_room(json!({"organizationID": org, "name": "Gamma", "assignedUsers": [me]})).await;
    app.create_room(json!({"organizationID": org, "name": "Not mine", "admins": [other]})).await;

    // The organization's space is made beside the rooms: wait for it, it is joined too.
    crate::harness::eventually("the organization's space", std::time::Duration::from_secs(20), || async {
        let (_, organization) = app.send(app.request(Method::GET, &format!("/organizations/{org}"))).await;
        organization["syncStatus"] == "synced" && organization["matrixSpaceID"].is_string()
    })
    .await;
    let token = jwt(json!(me.to_string()), json!([]), 600);
    let session = login(&app, &token, json!({"deviceID": "PHONE1"})).await;
    assert_eq!(session["userID"], app.user_id(me));
    assert_eq!(session["deviceID"], "PHONE1");
    assert!(session["expiresInMS"].as_u64().unwrap() > 0);
    assert_eq!(session["wellKnown"]["m.homeserver"]["base_url"], format!("{}/", app.hs.url));

    let client = restore(&app, &session).await;
    client.sync_once(SyncSettings::default()).await.expect("sync");
    // Besides the rooms, the organization's space (see the spaces tests).
    let spaces: Vec<OwnedRoomId> =
        client.joined_rooms().iter().filter(|r| r.is_space()).map(|r| r.room_id().to_owned()).collect();
    assert_eq!(spaces.len(), 1, "{spaces:?}");
    let joined: BTreeSet<OwnedRoomId> =
        client.joined_rooms().iter().filter(|r| !r.is_space()).map(|r| r.room_id().to_owned()).collect();
    let expected: BTreeSet<OwnedRoomId> = [&alpha, &beta, &gamma]
        .iter()
        .map(|r| r["matrixRoomID"].as_str().unwrap().try_into().unwrap())
        .collect();
    assert_eq!(joined, expected, "exactly the rooms the user holds a role in");

    let me_id = UserId::parse(app.user_id(me)).unwrap();
    for (room, name, level) in
        [(&alpha, "Alpha", Some(100)), (&beta, "Beta", Some(50)), (&gamma, "Gamma", None)]
    {
        let room_id: OwnedRoomId = room["matrixRoomID"].as_str().unwrap().try_into().unwrap();
        let seen = client.get_room(&room_id).expect("room known to the client");
        assert_eq!(seen.name().as_deref(), Some(name));
        let levels = seen.power_levels().await.expect("power levels");
        assert_eq!(levels.users.get(&me_id).map(|l| i64::from(*l)), level, "{name}");
        assert_eq!(seen.avatar_url().map(|u| u.to_string()), room["avatarURL"].as_str().map(str::to_owned));
    }
    let alpha_room =
        client.get_room(&expected.iter().find(|r| r.as_str() == alpha["matrixRoomID"]).unwrap().clone());
    alpha_room
        .unwrap()
        .send(RoomMessageEventContent::text_plain("hello from the app"))
        .await
        .expect("message sent");

    // The access token is renewed at the homeserver's /refresh with the issued refresh token.
    let before = client.access_token().unwrap();
    client.refresh_access_token().await.expect("refresh");
    let after = client.access_token().unwrap();
    assert_ne!(before, after);
    assert_eq!(client.whoami().await.expect("the new token works").user_id, me_id);

    // Logging in again on the same device keeps one device.
    login(&app, &token, json!({"deviceID": "PHONE1"})).await;
    let (status, devices) = app.send(app.as_user(Method::GET, "/user/devices", &token)).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> =
        devices["devices"].as_array().unwrap().iter().map(|d| d["deviceID"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["PHONE1"], "{devices}");

    // Logging the device out ends the client's session.
    let (status, _) = app.send(app.as_user(Method::DELETE, "/user/devices/PHONE1", &token)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(client.whoami().await.is_err(), "the logged-out token no longer works");
    let (status, _) = app.send(app.as_user(Method::DELETE, "/user/devices/PHONE1", &token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_issued_credentials_log_in_by_password() {
    let app = TestApp::spawn().await;
    let me = fresh_users(1)[0];
    let token = jwt(json!(me.to_string()), json!([]), 600);
    let (status, credentials) = app.send(app.as_user(Method::GET, "/user/credentials", &token)).await;
    assert_eq!(status, StatusCode::OK, "{credentials}");
    assert_eq!(credentials["username"], app.user_id(me));
    let password = credentials["password"].as_str().unwrap();

    let client = client(&app).await;
    client
        .matrix_auth()
        .login_username(credentials["username"].as_str().unwrap(), password)
        .send()
        .await
        .expect("password login with the issued credentials");
    assert_eq!(client.whoami().await.unwrap().user_id.as_str(), app.user_id(me));

    // Asking again gives the same password and leaves existing sessions alone.
    let (_, again) = app.send(app.as_user(Method::GET, "/user/credentials", &token)).await;
    assert_eq!(again["password"], credentials["password"]);
    assert!(client.whoami().await.is_ok());

    // A rotated secret re-derives the password; the old one stops working.
    let rotated = TestApp::spawn_on(app.database(), |env| {
        env.insert("CHATROOMS_CREDENTIALS_SECRET".into(), "a-rotated-secret".into());
    })
    .await;
    let (_, new_credentials) = rotated.send(rotated.as_user(Method::GET, "/user/credentials", &token)).await;
    assert_ne!(new_credentials["password"], credentials["password"]);
    let fresh = self::client(&app).await;
    assert!(fresh.matrix_auth().login_username(app.user_id(me), password).send().await.is_err());
    let fresh = self::client(&app).await;
    fresh
        .matrix_auth()
        .login_username(app.user_id(me), new_credentials["password"].as_str().unwrap())
        .send()
        .await
        .expect("login with the re-derived password");
}

#[tokio::test]
async fn users_get_only_their_own_credentials_and_tokens() {
    let app = TestApp::spawn().await;
    let users = fresh_users(2);
    let token = jwt(json!(users[0].to_string()), json!([]), 600);
    for (method, path) in [
        (Method::GET, format!("/user/credentials?user_id={}", users[1])),
        (Method::POST, format!("/user/login?user_id={}", users[1])),
        (Method::GET, format!("/user/devices?user_id={}", users[1])),
        (Method::DELETE, format!("/user/devices?user_id={}", users[1])),
        (Method::PUT, format!("/users/{}", users[0])),
        (Method::DELETE, format!("/users/{}", users[1])),
    ] {
        let (status, body) = app.send(app.as_user(method.clone(), &path, &token).json(&json!({}))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
    }
    // The backend names the user.
    let (status, _) = app.send(app.request(Method::GET, "/user/credentials")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, credentials) =
        app.send(app.request(Method::GET, &format!("/user/credentials?user_id={}", users[1]))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(credentials["username"], app.user_id(users[1]));
}

#[tokio::test]
async fn device_ids_are_generated_or_checked_and_first_logins_may_race() {
    let app = TestApp::spawn().await;
    let me = fresh_users(1)[0];
    let token = jwt(json!(me.to_string()), json!([]), 600);
    let (status, generated) = app.send(app.as_user(Method::POST, "/user/login", &token)).await;
    assert_eq!(status, StatusCode::OK, "{generated}");
    assert_eq!(generated["deviceID"].as_str().unwrap().len(), 10);
    for bad in ["", "has space", "ü", &"x".repeat(65)] {
        let (status, body) =
            app.send(app.as_user(Method::POST, "/user/login", &token).json(&json!({"deviceID": bad}))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}: {body}");
    }
    let (status, _) =
        app.send(app.as_user(Method::POST, "/user/login", &token).json(&json!({"deviceID": 5}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Ten first requests of a new user at once: one account, ten sessions.
    let racer = fresh_users(1)[0];
    let racer_token = jwt(json!(racer.to_string()), json!([]), 600);
    let logins = (0..10).map(|i| {
        let request = app
            .as_user(Method::POST, "/user/login", &racer_token)
            .json(&json!({"deviceID": format!("D{i}")}));
        app.send(request)
    });
    for (status, body) in futures::future::join_all(logins).await {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (_, devices) = app.send(app.as_user(Method::GET, "/user/devices", &racer_token)).await;
    assert_eq!(devices["devices"].as_array().unwrap().len(), 10, "{devices}");
    let (status, _) = app.send(app.as_user(Method::DELETE, "/user/devices", &racer_token)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, devices) = app.send(app.as_user(Method::GET, "/user/devices", &racer_token)).await;
    assert_eq!(devices["devices"], json!([]));
}

#[tokio::test]
async fn the_backend_sets_profiles_and_deactivates_users() {
    let app = TestApp::spawn().await;
    let matrix = app.matrix();
    let org = fresh_org();
    let users = fresh_users(2);
    let (leaver, stayer) = (users[0], users[1]);

    let (status, profile) = app
        .send(
            app.request(Method::PUT, &format!("/users/{leaver}"))
                .json(&json!({"displayName": "Ada", "avatar": tiny_png()})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{profile}");
    let path = format!("/_matrix/client/v3/profile/{}", urlencoding::encode(&app.user_id(leaver)));
    let token = matrix.login_as(&format!("app_{leaver}")).await;
    let (_, seen) = matrix.call(Method::GET, &path, &token, None).await;
    assert_eq!(seen["displayname"], "Ada");
    assert_eq!(seen["avatar_url"], profile["avatarURL"]);

    let one = app
        .create_room(
            json!({"organizationID": org, "name": "One", "admins": [leaver], "assignedUsers": [stayer]}),
        )
        .await;
    let two = app.create_room(json!({"organizationID": org, "name": "Two", "moderators": [leaver]})).await;
    let user_token = jwt(json!(leaver.to_string()), json!([]), 600);
    let session = login(&app, &user_token, json!({"deviceID": "OLD"})).await;

    let (status, body) = app.send(app.request(Method::DELETE, &format!("/users/{leaver}"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    for room in [&one, &two] {
        let (_, now) = app.send(app.request(Method::GET, &format!("/chatrooms/{}", room["id"]))).await;
        assert!(!now.to_string().contains(&leaver.to_string()), "removed from every list: {now}");
        let seen = matrix.room(room["matrixRoomID"].as_str().unwrap()).await;
        assert!(!seen.joined.contains(&app.user_id(leaver)));
        assert!(!seen.power_users.contains_key(&app.user_id(leaver)));
    }
    assert!(matrix.room(one["matrixRoomID"].as_str().unwrap()).await.joined.contains(&app.user_id(stayer)));
    let (status, _) = matrix
        .call(
            Method::GET,
            "/_matrix/client/v3/account/whoami",
            session["accessToken"].as_str().unwrap(),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the deactivated account's tokens stop working");
    let (status, refused) = app.send(app.as_user(Method::POST, "/user/login", &user_token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(refused["error"]["code"], "user_deactivated");
    let (status, refused) = app
        .send(
            app.request(Method::POST, &format!("/chatrooms/{}/users", one["id"]))
                .json(&json!({"admins": [leaver]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
}
