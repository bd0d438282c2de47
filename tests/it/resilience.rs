use std::{sync::Arc, time::Duration};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{eventually, fresh_database, fresh_org, fresh_users, TestApp};

#[tokio::test]
async fn a_scheduled_deletion_runs_once_its_time_has_come_also_after_a_restart() {
    let database = Arc::new(fresh_database().await);
    let app = TestApp::spawn_on(database.clone(), |_| {}).await;
    let org = fresh_org();
    let in_an_hour = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let doomed = app
        .create_room(json!({"organizationID": org, "name": "Doomed", "scheduledDeletion": in_an_hour, "avatar": crate::harness::tiny_png()}))
        .await;
    let kept = app.create_room(json!({"organizationID": org, "name": "Kept"})).await;
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(doomed["scheduledDeletion"].as_str().unwrap()).unwrap(),
        chrono::DateTime::parse_from_rfc3339(&in_an_hour).unwrap()
    );
    app.stop().await;

    // Restarted an hour and a half later: the new process finds the due room and deletes it.
    let app = TestApp::spawn_on(database, |_| {}).await;
    app.clock.advance(chrono::Duration::minutes(90));
    let doomed_room = doomed["matrixRoomID"].as_str().unwrap().to_owned();
    let matrix = app.matrix();
    eventually("the scheduled room is purged", Duration::from_secs(30), || async {
        !matrix.room_exists(&doomed_room).await
    })
    .await;
    eventually("the record is gone", Duration::from_secs(10), || async {
        app.send(app.request(Method::GET, &format!("/chatrooms/{}", doomed["id"]))).await.0
            == StatusCode::NOT_FOUND
    })
    .await;
    assert!(!matrix.media_exists(doomed["avatarURL"].as_str().unwrap()).await);
    assert!(matrix.room_exists(kept["matrixRoomID"].as_str().unwrap()).await);
    assert_eq!(app.list_total(org).await, 1);
    // Nothing is left to start again.
    let started =
        chatrooms::sync::start_due_deletions(&app.state.store, app.state.clock.as_ref()).await.unwrap();
    assert!(started.is_empty(), "{started:?}");
}

#[tokio::test]
async fn a_change_accepted_while_the_homeserver_is_down_is_applied_when_it_is_back() {
    let database = Arc::new(fresh_database().await);
    let users = fresh_users(2);
    let org = fresh_org();
    // This instance's homeserver URL points nowhere.
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let offline = TestApp::spawn_on(database.clone(), |env| {
        env.insert("CHATROOMS_HOMESERVER_URL".into(), format!("http://127.0.0.1:{dead_port}"));
        env.insert("CHATROOMS_SYNC_WAIT_MS".into(), "1000".into());
    })
    .await;
    let (status, room) = offline
        .send(offline.request(Method::POST, "/chatrooms").json(&json!({
            "organizationID": org, "name": "Patient", "admins": [users[0]], "assignedUsers": [users[1]],
        })))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{room}");
    assert_eq!(room["syncStatus"], "pending");
    assert_eq!(room["matrixRoomID"], serde_json::Value::Null);
    assert!(room["syncError"].as_str().unwrap().contains("unreachable"), "{room}");
    let (status, ready) = offline.send(offline.anonymous(Method::GET, "/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    offline.stop().await;

    // Back with a reachable homeserver: the worker creates the room without anyone asking.
    let online = TestApp::spawn_on(database, |_| {}).await;
    let id = room["id"].as_i64().unwrap();
    eventually("the pending room converges", Duration::from_secs(30), || async {
        let (_, body) = online.send(online.request(Method::GET, &format!("/chatrooms/{id}"))).await;
        body["syncStatus"] == "synced"
    })
    .await;
    let (_, synced) = online.send(online.request(Method::GET, &format!("/chatrooms/{id}"))).await;
    let seen = online.matrix().room(synced["matrixRoomID"].as_str().unwrap()).await;
    assert_eq!(seen.name.as_deref(), Some("Patient"));
    assert!(
        seen.joined.contains(&online.user_id(users[0])) && seen.joined.contains(&online.user_id(users[1]))
    );
    assert_eq!(seen.power_users.get(&online.user_id(users[0])), Some(&100));
}
