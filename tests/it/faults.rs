//! Whatever fails, no accepted change is lost: the homeserver going away and coming back,
//! permanent refusals, and changes made on the homeserver behind the service's back.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{
    counter, eventually, fresh_org, fresh_users, homeserver, tiny_png, FaultProxy, TestApp,
};

async fn spawn_behind(proxy: &FaultProxy, extra: &[(&str, &str)]) -> TestApp {
    let url = proxy.url.clone();
    let extra: Vec<(String, String)> = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    TestApp::spawn_with(move |env| {
        env.insert("CHATROOMS_HOMESERVER_URL".into(), url);
        env.insert("CHATROOMS_HOMESERVER_TIMEOUT_MS".into(), "2000".into());
        // Writes retry within their wait: long enough for one timed-out call, short enough that
        // a test with the homeserver down does not wait 30 s per write.
        env.insert("CHATROOMS_SYNC_WAIT_MS".into(), "3000".into());
        env.extend(extra);
    })
    .await
}

async fn room(app: &TestApp, id: &Value) -> Value {
    let (status, body) = app.send(app.request(Method::GET, &format!("/chatrooms/{id}"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn while_the_homeserver_is_down_reads_work_writes_wait_and_all_converge_when_it_returns() {
    let proxy = FaultProxy::start(&homeserver().url).await;
    let app = spawn_behind(&proxy, &[]).await;
    let org = fresh_org();
    let users = fresh_users(4);
    // Made while the homeserver is up; under a loaded suite its createRoom may outlast the
    // short write wait of this test, so each is awaited until synced rather than required in one.
    let mut setup = Vec::new();
    for name in ["Kept", "Doomed"] {
        let admins = if name == "Kept" { json!([users[0]]) } else { json!([]) };
        let (status, made) = app
            .send(
                app.request(Method::POST, "/chatrooms")
                    .json(&json!({"organizationID": org, "name": name, "admins": admins})),
            )
            .await;
        assert!(matches!(status, StatusCode::CREATED | StatusCode::ACCEPTED), "{made}");
        eventually("the room is on the homeserver", Duration::from_secs(30), || async {
            room(&app, &made["id"]).await["syncStatus"] == "synced"
        })
        .await;
        setup.push(room(&app, &made["id"]).await);
    }
    let [kept, doomed] = [setup[0].clone(), setup[1].clone()];

    proxy.cut();
    let (status, ready) = app.send(app.anonymous(Method::GET, "/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(room(&app, &kept["id"]).await["name"], "Kept", "reads keep working");
    assert_eq!(app.list_total(org).await, 2);

    let (status, added) = app
        .send(app.request(Method::POST, &format!("/chatrooms/{}/users", kept["id"])).json(&json!({
            "moderators": [users[1]], "assignedUsers": [users[2]],
        })))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{added}");
    assert_eq!(added["syncStatus"], "pending");
    assert!(added["syncError"].as_str().unwrap().contains("unreachable"), "{added}");
    assert_eq!(added["moderators"], json!([users[1]]), "the change is recorded");

    let (status, renamed) = app
        .send(
            app.request(Method::PATCH, &format!("/chatrooms/{}", kept["id"]))
                .json(&json!({"name": "Kept 2"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{renamed}");
    let (status, created) = app
        .send(
            app.request(Method::POST, "/chatrooms")
                .json(&json!({"organizationID": org, "name": "Born offline", "admins": [users[3]]})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    assert_eq!(created["matrixRoomID"], Value::Null);
    let (status, _) = app.send(app.request(Method::DELETE, &format!("/chatrooms/{}", doomed["id"]))).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // A write that needs the homeserver before it can be accepted is refused whole.
    let response = app
        .request(Method::POST, "/chatrooms")
        .json(&json!({"organizationID": org, "name": "With avatar", "avatar": tiny_png()}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().get("retry-after").is_some());
    assert_eq!(app.list_total(org).await, 2, "kept and born offline; the refused one is not stored");

    proxy.restore();
    let back = Instant::now();
    eventually("every room converges", Duration::from_secs(60), || async {
        let (_, page) =
            app.send(app.request(Method::GET, &format!("/chatrooms?organization_id={org}&all=true"))).await;
        page["entries"].as_array().unwrap().iter().all(|r| r["syncStatus"] == "synced")
    })
    .await;
    let matrix = app.matrix();
    let doomed_id = doomed["matrixRoomID"].as_str().unwrap();
    eventually("the deleted room is purged", Duration::from_secs(30), || async {
        !matrix.room_exists(doomed_id).await
    })
    .await;
    eprintln!("converged {} ms after the homeserver came back", back.elapsed().as_millis());

    let seen = matrix.room(kept["matrixRoomID"].as_str().unwrap()).await;
    assert_eq!(seen.name.as_deref(), Some("Kept 2"));
    assert_eq!(seen.power_users.get(&app.user_id(users[1])), Some(&50));
    assert!(seen.joined.contains(&app.user_id(users[2])));
    let born = room(&app, &created["id"]).await;
    let seen = matrix.room(born["matrixRoomID"].as_str().expect("created once back")).await;
    assert_eq!(seen.name.as_deref(), Some("Born offline"));
    assert_eq!(seen.power_users.get(&app.user_id(users[3])), Some(&100));
}

#[tokio::test]
async fn a_room_created_before_a_crash_lost_its_id_is_adopted_not_duplicated() {
    let proxy = FaultProxy::start(&homeserver().url).await;
    let app = spawn_behind(&proxy, &[]).await;
    proxy.cut();
    let (status, pending) = app
        .send(
            app.request(Method::POST, "/chatrooms")
                .json(&json!({"organizationID": fresh_org(), "name": "Once"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // As if an earlier attempt had created the room and died before storing its id.
    let alias: String = sqlx::query_scalar("SELECT matrix_alias FROM chatrooms WHERE id = $1")
        .bind(pending["id"].as_i64().unwrap())
        .fetch_one(app.state.store.pool())
        .await
        .unwrap();
    let matrix = app.matrix();
    let (status, made) = matrix
        .call(
            Method::POST,
            "/_matrix/client/v3/createRoom",
            matrix.as_token(),
            Some(json!({"room_alias_name": alias, "preset": "private_chat"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{made}");
    proxy.restore();
    eventually("the room converges", Duration::from_secs(30), || async {
        room(&app, &pending["id"]).await["syncStatus"] == "synced"
    })
    .await;
    let adopted = room(&app, &pending["id"]).await;
    assert_eq!(adopted["matrixRoomID"], made["room_id"], "the existing room was adopted");
    assert_eq!(matrix.room(made["room_id"].as_str().unwrap()).await.name.as_deref(), Some("Once"));
}

#[tokio::test]
async fn a_permanent_refusal_is_reported_and_a_forced_sync_retries_it() {
    let app = TestApp::spawn_with(|env| {
        env.insert("CHATROOMS_MATRIX_ROOM_VERSION".into(), "11".into());
    })
    .await;
    let users = fresh_users(1);
    let created =
        app.create_room(json!({"organizationID": fresh_org(), "name": "Locked", "admins": [users[0]]})).await;
    let id = created["id"].clone();
    let room_id = created["matrixRoomID"].as_str().unwrap().to_owned();
    let matrix = app.matrix();
    let levels_path =
        format!("/_matrix/client/v3/rooms/{}/state/m.room.power_levels/", urlencoding::encode(&room_id));
    let (_, mut levels) = matrix.call(Method::GET, &levels_path, matrix.as_token(), None).await;

    // Someone demotes the bot: from now on the homeserver refuses its state changes.
    levels["users"][format!("@chatrooms:{}", app.hs.server_name)] = json!(0);
    let (status, _) = matrix.call(Method::PUT, &levels_path, matrix.as_token(), Some(levels.clone())).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .send(app.request(Method::PATCH, &format!("/chatrooms/{id}")).json(&json!({"name": "Unlocked"})))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    eventually("the sync gives up and says why", Duration::from_secs(30), || async {
        let now = room(&app, &id).await;
        now["syncStatus"] == "failed" && now["syncError"].as_str().unwrap_or_default().contains("M_FORBIDDEN")
    })
    .await;
    assert!(counter(&app, "chatrooms_syncs_failed_total").await >= 3, "three refusals before giving up");

    // Still refused: a forced sync tries again and reports it.
    let (status, retried) = app.send(app.request(Method::POST, &format!("/chatrooms/{id}/sync"))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{retried}");
    assert_ne!(retried["syncStatus"], "synced");

    // The room's admin gives the bot its power back; the forced sync now succeeds.
    let admin = format!("?user_id={}", urlencoding::encode(&app.user_id(users[0])));
    levels["users"][format!("@chatrooms:{}", app.hs.server_name)] = json!(100);
    let (status, body) =
        matrix.call(Method::PUT, &format!("{levels_path}{admin}"), matrix.as_token(), Some(levels)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, synced) = app.send(app.request(Method::POST, &format!("/chatrooms/{id}/sync"))).await;
    assert_eq!(status, StatusCode::OK, "{synced}");
    assert_eq!(synced["syncStatus"], "synced");
    assert_eq!(matrix.room(&room_id).await.name.as_deref(), Some("Unlocked"));
}

#[tokio::test]
async fn changes_made_on_the_homeserver_behind_the_services_back_are_repaired() {
    let app = TestApp::spawn_with(|env| {
        env.insert("CHATROOMS_RECONCILE_INTERVAL_MS".into(), "300".into());
        // Edits made with the bot's own token are not pushed as foreign: only a pass that
        // reads every room sees them.
        env.insert("CHATROOMS_RECONCILE_MAX_AGE_MS".into(), "0".into());
    })
    .await;
    let users = fresh_users(4);
    let (admin, moderator, leaver, kicked) = (users[0], users[1], users[2], users[3]);
    let created = app
        .create_room(json!({"organizationID": fresh_org(), "name": "Guarded", "admins": [admin],
            "moderators": [moderator], "assignedUsers": [leaver, kicked]}))
        .await;
    let room_id = created["matrixRoomID"].as_str().unwrap().to_owned();
    let matrix = app.matrix();
    let expected = matrix.room(&room_id).await;
    let encoded = urlencoding::encode(&room_id).into_owned();
    let as_token = matrix.as_token().to_owned();

    let (status, _) = matrix
        .call(
            Method::PUT,
            &format!("/_matrix/client/v3/rooms/{encoded}/state/m.room.name/"),
            &as_token,
            Some(json!({"name": "Renamed by hand"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let levels_path = format!("/_matrix/client/v3/rooms/{encoded}/state/m.room.power_levels/");
    let (_, mut levels) = matrix.call(Method::GET, &levels_path, &as_token, None).await;
    levels["users"][app.user_id(kicked)] = json!(100);
    levels["users"][app.user_id(moderator)] = json!(0);
    let (status, _) = matrix.call(Method::PUT, &levels_path, &as_token, Some(levels)).await;
    assert_eq!(status, StatusCode::OK);
    let leave = format!(
        "/_matrix/client/v3/rooms/{encoded}/leave?user_id={}",
        urlencoding::encode(&app.user_id(leaver))
    );
    let (status, _) = matrix.call(Method::POST, &leave, &as_token, Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK);
    let kick = format!("/_matrix/client/v3/rooms/{encoded}/kick");
    let (status, _) =
        matrix.call(Method::POST, &kick, &as_token, Some(json!({"user_id": app.user_id(kicked)}))).await;
    assert_eq!(status, StatusCode::OK);

    eventually("the room is restored", Duration::from_secs(30), || async {
        let now = matrix.room(&room_id).await;
        now.name == expected.name && now.power_users == expected.power_users && now.joined == expected.joined
    })
    .await;
    // The repair is counted once the sync that made it completes.
    eventually("the drift is counted", Duration::from_secs(10), || async {
        counter(&app, "chatrooms_drift_repairs_total").await >= 1
    })
    .await;
    assert_eq!(
        room(&app, &created["id"]).await["syncStatus"],
        "synced",
        "drift checks are not pending changes"
    );
}

#[tokio::test]
async fn a_homeserver_that_never_answers_times_out_instead_of_hanging() {
    let proxy = FaultProxy::start(&homeserver().url).await;
    // spawn_behind sets a 2 s timeout on every homeserver call.
    let app = spawn_behind(&proxy, &[]).await;
    let created = app.create_room(json!({"organizationID": fresh_org(), "name": "Patient"})).await;
    proxy.stall();
    let (status, stalled) = app
        .send(
            app.request(Method::PATCH, &format!("/chatrooms/{}", created["id"]))
                .json(&json!({"name": "Still here"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{stalled}");
    assert!(stalled["syncError"].as_str().unwrap_or_default().contains("timed out"), "{stalled}");
    let (status, ready) = app.send(app.anonymous(Method::GET, "/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    proxy.restore();
    eventually("the rename lands", Duration::from_secs(30), || async {
        room(&app, &created["id"]).await["syncStatus"] == "synced"
    })
    .await;
    let seen = app.matrix().room(created["matrixRoomID"].as_str().unwrap()).await;
    assert_eq!(seen.name.as_deref(), Some("Still here"));
}
