use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{fresh_org, fresh_users, tiny_png, TestApp};

fn as_ids(value: &Value) -> Vec<i64> {
    let mut ids: Vec<i64> = value.as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn creating_a_custom_room_creates_the_matrix_room_with_name_avatar_roles_and_members() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let users = fresh_users(4);
    let (admin, moderator, assigned) = (users[0], users[1], &users[2..]);
    let room = app
        .create_room(json!({
            "organizationID": org, "name": "  Launch party  ", "admins": [admin], "moderators": [moderator],
            "assignedUsers": assigned, "automationEnabled": true, "avatar": tiny_png(),
        }))
        .await;

    assert_eq!(room["name"], "Launch party");
    assert_eq!(room["type"], "custom");
    assert_eq!(room["organizationID"], org);
    assert_eq!(room["eventID"], Value::Null);
    assert_eq!(room["automationEnabled"], true);
    assert_eq!(room["syncStatus"], "synced");
    assert_eq!(as_ids(&room["admins"]), vec![admin]);
    assert_eq!(as_ids(&room["moderators"]), vec![moderator]);
    assert_eq!(as_ids(&room["assignedUsers"]), assigned.to_vec());
    let avatar = room["avatarURL"].as_str().expect("avatarURL");
    assert!(avatar.starts_with("mxc://"), "{avatar}");
    let room_id = room["matrixRoomID"].as_str().expect("matrixRoomID");

    let matrix = app.matrix();
    let seen = matrix.room(room_id).await;
    assert_eq!(seen.creator, format!("@chatrooms:{}", app.hs.server_name), "the bot created the room");
    assert_eq!(seen.name.as_deref(), Some("Launch party"));
    assert_eq!(seen.avatar.as_deref(), Some(avatar));
    assert_eq!(seen.join_rule.as_deref(), Some("invite"));
    assert_eq!(seen.guest_access.as_deref(), Some("forbidden"));
    let expected_levels = [(app.user_id(admin), 100), (app.user_id(moderator), 50)].into_iter().collect();
    assert_eq!(seen.power_users, expected_levels, "exactly admins 100 and moderators 50");
    let mut expected_joined: Vec<String> = users.iter().map(|u| app.user_id(*u)).collect();
    expected_joined.push(format!("@chatrooms:{}", app.hs.server_name));
    expected_joined.sort();
    assert_eq!(seen.joined, expected_joined);

    // A member sees the avatar's bytes through authenticated media.
    let token = matrix.login_as(&format!("app_{}", assigned[0])).await;
    assert_eq!(matrix.download(avatar, &token).await, tiny_png());
}

#[tokio::test]
async fn create_add_users_claim_update_delete_each_show_on_the_homeserver() {
    let app = TestApp::spawn().await;
    let matrix = app.matrix();
    let org = fresh_org();
    let users = fresh_users(4);
    let room = app.create_room(json!({"organizationID": org, "name": "Crew", "admins": [users[0]]})).await;
    let id = room["id"].as_i64().unwrap();
    let room_id = room["matrixRoomID"].as_str().unwrap().to_owned();

    // Add users: a moderator and an assigned user join with their levels.
    let (status, after_add) = app
        .send(
            app.request(Method::POST, &format!("/chatrooms/{id}/users"))
                .json(&json!({"moderators": [users[1]], "assignedUsers": [users[2]]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{after_add}");
    let seen = matrix.room(&room_id).await;
    assert_eq!(seen.power_users.get(&app.user_id(users[1])), Some(&50));
    assert!(seen.joined.contains(&app.user_id(users[2])));

    // Claim: the user left the room behind the service's back; claiming joins them again.
    let token = matrix.login_as(&format!("app_{}", users[2])).await;
    let leave = format!("/_matrix/client/v3/rooms/{}/leave", urlencoding::encode(&room_id));
    let (status, _) = matrix.call(Method::POST, &leave, &token, Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!matrix.room(&room_id).await.joined.contains(&app.user_id(users[2])));
    let claim_token = crate::harness::jwt(json!(users[2].to_string()), json!([]), 300);
    let (status, claimed) =
        app.send(app.as_user(Method::POST, &format!("/chatrooms/{id}/claim"), &claim_token)).await;
    assert_eq!(status, StatusCode::OK, "{claimed}");
    assert!(matrix.room(&room_id).await.joined.contains(&app.user_id(users[2])));
    // Claiming again changes nothing and still succeeds.
    let (status, _) =
        app.send(app.as_user(Method::POST, &format!("/chatrooms/{id}/claim"), &claim_token)).await;
    assert_eq!(status, StatusCode::OK);
    // The user's own client sees the room among its joined rooms.
    let (_, joined) = matrix.call(Method::GET, "/_matrix/client/v3/joined_rooms", &token, None).await;
    assert!(joined["joined_rooms"].as_array().unwrap().iter().any(|r| r == room_id.as_str()), "{joined}");

    // Move the moderator to admin: one role per room.
    let (status, moved) = app
        .send(
            app.request(Method::POST, &format!("/chatrooms/{id}/users")).json(&json!({"admins": [users[1]]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(as_ids(&moved["admins"]), vec![users[0], users[1]]);
    assert_eq!(moved["moderators"], json!([]));
    assert_eq!(matrix.room(&room_id).await.power_users.get(&app.user_id(users[1])), Some(&100));

    // Update: automation, name, avatar.
    let (status, updated) = app
        .send(app.request(Method::PATCH, &format!("/chatrooms/{id}")).json(&json!({
            "automationEnabled": true, "name": "Crew 2", "avatar": tiny_png(),
        })))
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["automationEnabled"], true);
    let seen = matrix.room(&room_id).await;
    assert_eq!(seen.name.as_deref(), Some("Crew 2"));
    assert_eq!(seen.avatar.as_deref(), updated["avatarURL"].as_str());
    let avatar = updated["avatarURL"].as_str().unwrap().to_owned();

    // Remove a user: kicked and no power level left.
    let (status, removed) =
        app.send(app.request(Method::DELETE, &format!("/chatrooms/{id}/users/{}", users[1]))).await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    let seen = matrix.room(&room_id).await;
    assert!(!seen.joined.contains(&app.user_id(users[1])));
    assert!(!seen.power_users.contains_key(&app.user_id(users[1])));

    // Delete: purged on the homeserver, media gone, record gone.
    assert!(matrix.media_exists(&avatar).await);
    let (status, _) = app.send(app.request(Method::DELETE, &format!("/chatrooms/{id}"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!matrix.room_exists(&room_id).await, "the homeserver no longer has the room");
    assert!(!matrix.media_exists(&avatar).await, "the avatar was deleted");
    let (status, body) = app.send(app.request(Method::GET, &format!("/chatrooms/{id}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = app.send(app.request(Method::DELETE, &format!("/chatrooms/{id}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn rooms_of_room_version_11_keep_the_bot_in_power_levels() {
    let app = TestApp::spawn_with(|env| {
        env.insert("CHATROOMS_MATRIX_ROOM_VERSION".into(), "11".into());
    })
    .await;
    let users = fresh_users(2);
    let room =
        app.create_room(json!({"organizationID": fresh_org(), "name": "Old", "admins": [users[0]]})).await;
    let id = room["id"].as_i64().unwrap();
    let room_id = room["matrixRoomID"].as_str().unwrap();
    let (status, _) = app
        .send(
            app.request(Method::POST, &format!("/chatrooms/{id}/users"))
                .json(&json!({"moderators": [users[1]]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let seen = app.matrix().room(room_id).await;
    assert_eq!(seen.room_version, "11");
    let bot = format!("@chatrooms:{}", app.hs.server_name);
    let expected =
        [(bot, 100), (app.user_id(users[0]), 100), (app.user_id(users[1]), 50)].into_iter().collect();
    assert_eq!(seen.power_users, expected);
}

#[tokio::test]
async fn a_room_of_ten_users_is_created_joined_in_one_request() {
    let app = TestApp::spawn().await;
    let users = fresh_users(10);
    let room = app
        .create_room(json!({"organizationID": fresh_org(), "name": "Ten", "admins": [users[0]],
            "moderators": [users[1]], "assignedUsers": &users[2..]}))
        .await;
    let seen = app.matrix().room(room["matrixRoomID"].as_str().unwrap()).await;
    assert_eq!(seen.joined.len(), 11, "ten users and the bot: {:?}", seen.joined);
}

#[tokio::test]
async fn planning_again_right_after_a_sync_gives_nothing_to_do() {
    for version in ["11", "12"] {
        let app = TestApp::spawn_with(|env| {
            env.insert("CHATROOMS_MATRIX_ROOM_VERSION".into(), version.into());
        })
        .await;
        let users = fresh_users(4);
        let room = app
            .create_room(json!({
                "organizationID": fresh_org(), "name": "Settled", "avatar": tiny_png(),
                "admins": [users[0]], "moderators": [users[1]], "assignedUsers": [users[2]],
            }))
            .await;
        let id = room["id"].as_i64().unwrap();
        let reconciler = &app.state.reconciler;
        let plan = reconciler.plan_for(id).await.unwrap().expect("the room exists on the homeserver");
        assert!(plan.is_empty(), "v{version}: right after creating: {plan:?}");

        // Every kind of change, applied, leaves nothing to do.
        let (status, _) = app
            .send(app.request(Method::POST, &format!("/chatrooms/{id}/users")).json(&json!({
                "admins": [users[2]], "assignedUsers": [users[3]],
            })))
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) =
            app.send(app.request(Method::DELETE, &format!("/chatrooms/{id}/users/{}", users[1]))).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = app
            .send(
                app.request(Method::PATCH, &format!("/chatrooms/{id}"))
                    .json(&json!({"name": "Moved", "avatar": null})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let plan = reconciler.plan_for(id).await.unwrap().unwrap();
        assert!(plan.is_empty(), "v{version}: right after the changes: {plan:?}");

        // And a change made behind the service's back shows up in the plan.
        let matrix = app.matrix();
        let room_id = room["matrixRoomID"].as_str().unwrap();
        let name_path =
            format!("/_matrix/client/v3/rooms/{}/state/m.room.name/", urlencoding::encode(room_id));
        let (status, _) =
            matrix.call(Method::PUT, &name_path, matrix.as_token(), Some(json!({"name": "Hand"}))).await;
        assert_eq!(status, StatusCode::OK);
        let plan = reconciler.plan_for(id).await.unwrap().unwrap();
        assert_eq!(plan.actions, vec![chatrooms::sync::plan::Action::SetName("Moved".into())]);
        app.stop().await;
    }
}
