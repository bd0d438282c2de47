//! The application-service API the homeserver pushes to: only its token is accepted, and each
//! transaction is stored once before it is answered, retried or received by two replicas.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use std::time::Duration;

use crate::harness::{MatrixView, PrivateHomeserver, TestApp};

fn hs_token(app: &TestApp) -> String {
    app.hs.env["CHATROOMS_MATRIX_HS_TOKEN"].clone()
}

fn put(app: &TestApp, path: &str, token: Option<&str>, body: &Value) -> reqwest::RequestBuilder {
    let request = app.anonymous(Method::PUT, path).json(body);
    match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

/// The transactions this test pushed (Synapse's own pushes reach every test's service too).
async fn stored(app: &TestApp) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT txn_id, events FROM appservice_transactions WHERE txn_id LIKE 'test-%' ORDER BY txn_id",
    )
    .fetch_all(app.state.store.pool())
    .await
    .unwrap()
}

fn transaction(events: usize) -> Value {
    let event = json!({"type": "m.room.message", "room_id": "!x:localhost", "sender": "@a:localhost",
        "event_id": "$e", "content": {"body": "hi"}});
    json!({"events": vec![event; events]})
}

#[tokio::test]
async fn only_the_homeserver_may_push_and_each_transaction_is_stored_once() {
    let app = TestApp::spawn().await;
    let token = hs_token(&app);
    let path = "/_matrix/app/v1/transactions/test-1";
    for (bad, what) in [
        (None, "no token"),
        (Some("not-it"), "another token"),
        (Some(crate::harness::API_TOKEN), "the backend's"),
    ] {
        let (status, body) = app.send(put(&app, path, bad, &transaction(2))).await;
        assert_eq!(
            (status, body["errcode"].clone()),
            (StatusCode::FORBIDDEN, json!("M_FORBIDDEN")),
            "{what}"
        );
    }
    assert!(stored(&app).await.is_empty(), "nothing refused was stored");

    for _ in 0..2 {
        let (status, body) = app.send(put(&app, path, Some(&token), &transaction(2))).await;
        assert_eq!((status, body), (StatusCode::OK, json!({})), "a retried txn id is answered alike");
    }
    let legacy = format!("/transactions/test-2?access_token={token}");
    let (status, _) = app.send(app.anonymous(Method::PUT, &legacy).json(&transaction(1))).await;
    assert_eq!(status, StatusCode::OK, "the legacy path and token parameter");
    assert_eq!(stored(&app).await, vec![("test-1".to_owned(), 2), ("test-2".to_owned(), 1)]);

    let (status, body) = app
        .send(
            app.anonymous(Method::PUT, "/_matrix/app/v1/transactions/test-bad")
                .bearer_auth(&token)
                .body("{not json"),
        )
        .await;
    assert_eq!((status, body["errcode"].clone()), (StatusCode::BAD_REQUEST, json!("M_BAD_JSON")));
    let (status, _) = app
        .send(put(&app, "/_matrix/app/v1/transactions/test-huge", Some(&token), &transaction(1_001)))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a batch no homeserver sends");
    assert_eq!(stored(&app).await.len(), 2);
}

#[tokio::test]
async fn two_replicas_receiving_one_transaction_store_and_process_it_once() {
    let first = TestApp::spawn().await;
    let [moderator, member] = crate::harness::fresh_users(2)[..] else { unreachable!() };
    let room = first
        .create_room(json!({"organizationID": crate::harness::fresh_org(), "name": "Twice",
            "moderators": [moderator], "assignedUsers": [member]}))
        .await;
    let second = TestApp::spawn_on(first.database(), |_| {}).await;
    let token = hs_token(&first);
    // A moderator's ban as a client's would come: adopted once, whichever replica takes it.
    let ban = json!({"type": "m.room.member", "room_id": room["matrixRoomID"], "sender": first.user_id(moderator),
        "state_key": first.user_id(member), "event_id": "$shared-ban", "content": {"membership": "ban"}});
    let body = json!({"events": [ban, transaction(1)["events"][0], transaction(1)["events"][0]]});
    let path = "/_matrix/app/v1/transactions/test-shared";
    let (a, b) = tokio::join!(
        first.send(put(&first, path, Some(&token), &body)),
        second.send(put(&second, path, Some(&token), &body))
    );
    assert_eq!((a.0, b.0), (StatusCode::OK, StatusCode::OK), "the second waits for the first: {a:?} {b:?}");
    assert_eq!(stored(&first).await, vec![("test-shared".to_owned(), 3)]);
    let adopted = |text: String| {
        text.lines()
            .find_map(|l| l.strip_prefix("chatrooms_client_moderation_total{outcome=\"adopted\"} "))
            .map_or(0, |n| n.parse::<u64>().unwrap())
    };
    let scrape = |app: &TestApp| app.anonymous(Method::GET, "/metrics").send();
    let (one, two) = tokio::join!(scrape(&first), scrape(&second));
    let total = adopted(one.unwrap().text().await.unwrap()) + adopted(two.unwrap().text().await.unwrap());
    assert_eq!(total, 1, "processed by one replica, once");
    let (_, bans) = first.send(first.request(Method::GET, &format!("/chatrooms/{}/bans", room["id"]))).await;
    assert_eq!(bans["entries"].as_array().unwrap().len(), 1, "{bans}");
}

#[tokio::test]
async fn a_power_level_edited_by_a_room_admin_in_a_client_is_restored_at_once() {
    // The periodic pass is off: only the homeserver's push can bring the repair.
    let app = TestApp::spawn_with(|vars| {
        vars.insert("CHATROOMS_RECONCILE_INTERVAL_MS".into(), "0".into());
    })
    .await;
    let [admin, member] = crate::harness::fresh_users(2)[..] else { unreachable!() };
    let room = app
        .create_room(json!({"organizationID": crate::harness::fresh_org(), "name": "Watched",
            "admins": [admin], "assignedUsers": [member]}))
        .await;
    let matrix = app.matrix();
    let access = matrix.login_as(&format!("app_{admin}")).await;
    let levels_path = format!(
        "/_matrix/client/v3/rooms/{}/state/m.room.power_levels/",
        urlencoding::encode(room["matrixRoomID"].as_str().unwrap())
    );
    let (status, mut levels) = matrix.call(Method::GET, &levels_path, &access, None).await;
    assert_eq!(status, StatusCode::OK, "{levels}");
    levels["users"][app.user_id(member)] = json!(50);
    let (status, answer) = matrix.call(Method::PUT, &levels_path, &access, Some(levels)).await;
    assert_eq!(status, StatusCode::OK, "the room's admin may edit power levels: {answer}");
    let edited = std::time::Instant::now();
    crate::harness::eventually(
        "the member's power level is restored",
        std::time::Duration::from_secs(15),
        || async {
            !matrix
                .room(room["matrixRoomID"].as_str().unwrap())
                .await
                .power_users
                .contains_key(&app.user_id(member))
        },
    )
    .await;
    println!("hand edit to repair: {} ms", edited.elapsed().as_millis());
}

#[tokio::test]
async fn a_service_stopped_while_a_moderator_bans_catches_up_from_the_homeservers_retries() {
    // A homeserver of its own, pushing straight to this service's fixed address: no fan-out
    // answers for the service while it is down.
    let port = crate::harness::free_port();
    let private = PrivateHomeserver::start_pushing_to(&format!("http://127.0.0.1:{port}")).await;
    let bind = |vars: &mut std::collections::HashMap<String, String>| {
        vars.insert("CHATROOMS_BIND_ADDR".into(), format!("127.0.0.1:{port}"));
        vars.insert("CHATROOMS_RECONCILE_INTERVAL_MS".into(), "0".into());
    };
    let app = TestApp::spawn_against(private.hs, bind).await;
    let [moderator, member] = crate::harness::fresh_users(2)[..] else { unreachable!() };
    let room = app
        .create_room(json!({"organizationID": crate::harness::fresh_org(), "name": "Away",
            "moderators": [moderator], "assignedUsers": [member]}))
        .await;
    let database = app.database();
    app.stop().await;

    let matrix = MatrixView::new(private.hs);
    let access = matrix.login_as(&format!("app_{moderator}")).await;
    let ban_path = format!(
        "/_matrix/client/v3/rooms/{}/ban",
        urlencoding::encode(room["matrixRoomID"].as_str().unwrap())
    );
    let body = json!({"user_id": format!("@app_{member}:{}", private.hs.server_name), "reason": "while you were away"});
    let (status, answer) = matrix.call(Method::POST, &ban_path, &access, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let app = TestApp::spawn_against_on(private.hs, database, bind).await;
    crate::harness::eventually(
        "the ban is adopted from the homeserver's retry",
        Duration::from_secs(90),
        || async {
            let (_, bans) =
                app.send(app.request(Method::GET, &format!("/chatrooms/{}/bans", room["id"]))).await;
            bans["entries"].as_array().is_some_and(|entries| !entries.is_empty())
        },
    )
    .await;
    let (_, bans) = app.send(app.request(Method::GET, &format!("/chatrooms/{}/bans", room["id"]))).await;
    assert_eq!(
        (&bans["entries"][0]["actor"], &bans["entries"][0]["reason"]),
        (&json!(format!("user:{moderator}")), &json!("while you were away"))
    );
    let (status, ready) = app.send(app.anonymous(Method::GET, "/readyz")).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert!(
        ready["appservice"].as_str().unwrap().starts_with("ok ("),
        "the homeserver pings the service: {ready}"
    );
    let unprocessed: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM appservice_transactions WHERE processed_at IS NULL")
            .fetch_one(app.state.store.pool())
            .await
            .unwrap();
    assert_eq!(unprocessed, 0, "every transaction is processed");
    let text = app.anonymous(Method::GET, "/metrics").send().await.unwrap().text().await.unwrap();
    assert!(
        text.lines().any(|l| l == "chatrooms_client_moderation_total{outcome=\"adopted\"} 1"),
        "the ban was taken once: {}",
        text.lines().filter(|l| l.starts_with("chatrooms_client_moderation")).collect::<Vec<_>>().join("\n")
    );
}

#[tokio::test]
async fn garbage_and_events_of_rooms_we_do_not_manage_change_nothing() {
    let app = TestApp::spawn().await;
    let token = hs_token(&app);
    let events = json!([
        "not an object",
        {"type": "m.room.name"},
        {"type": "m.room.name", "room_id": "!unmanaged:localhost", "sender": "@someone:localhost",
            "event_id": "$1", "state_key": "", "content": {"name": "x"}},
        {"type": "m.room.member", "room_id": "!unmanaged:localhost", "sender": "@app_1:localhost",
            "event_id": "$2", "state_key": "@app_2:localhost", "content": {"membership": "ban"}},
        {"type": "m.room.message", "room_id": 42, "sender": [], "event_id": null, "content": "body"},
    ]);
    let (status, body) = app
        .send(put(
            &app,
            "/_matrix/app/v1/transactions/test-garbage",
            Some(&token),
            &json!({"events": events}),
        ))
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    let jobs: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sync_jobs").fetch_one(app.state.store.pool()).await.unwrap();
    let bans: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM room_bans").fetch_one(app.state.store.pool()).await.unwrap();
    assert_eq!((jobs, bans), (0, 0), "nothing queued, nothing recorded");
    for (body, why) in [
        (json!({"events": "many"}), "events not a list"),
        (json!({}), "no events"),
        (json!([1]), "not an object"),
    ] {
        let (status, answer) =
            app.send(put(&app, "/_matrix/app/v1/transactions/test-bad-shape", Some(&token), &body)).await;
        assert_eq!(
            (status, answer["errcode"].clone()),
            (StatusCode::BAD_REQUEST, json!("M_BAD_JSON")),
            "{why}"
        );
    }
}

#[tokio::test]
async fn the_homeserver_asks_about_users_and_aliases_and_pings_the_service() {
    let app = TestApp::spawn().await;
    let token = hs_token(&app);
    let get = |path: String, token: Option<&str>| {
        let request = app.anonymous(Method::GET, &path);
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    };
    let user = crate::harness::fresh_users(1)[0];
    let path = format!("/_matrix/app/v1/users/{}", urlencoding::encode(&app.user_id(user)));
    let (status, _) = app.send(get(path.clone(), None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = app.send(get(path, Some(&token))).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})), "an app user's account is made when asked");
    let matrix = app.matrix();
    let (status, profile) = matrix
        .call(
            Method::GET,
            &format!("/_matrix/client/v3/profile/{}", urlencoding::encode(&app.user_id(user))),
            matrix.as_token(),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the account exists on the homeserver: {profile}");
    for stranger in ["@app_007:localhost", "@someone:localhost", "not-a-user"] {
        let (status, body) = app
            .send(get(format!("/_matrix/app/v1/users/{}", urlencoding::encode(stranger)), Some(&token)))
            .await;
        assert_eq!(
            (status, body["errcode"].clone()),
            (StatusCode::NOT_FOUND, json!("M_NOT_FOUND")),
            "{stranger}"
        );
    }
    let alias = format!("/_matrix/app/v1/rooms/{}", urlencoding::encode("#chatrooms_nothing:localhost"));
    let (status, body) = app.send(get(alias, Some(&token))).await;
    assert_eq!((status, body["errcode"].clone()), (StatusCode::NOT_FOUND, json!("M_NOT_FOUND")));

    let (status, _) = app.send(app.anonymous(Method::POST, "/_matrix/app/v1/ping").json(&json!({}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, ready) = app.send(app.anonymous(Method::GET, "/readyz")).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    // The shared Synapse pings the fan-out, which answers for every service (the test of a
    // private homeserver pushing to one service shows the service's own answer).
    assert!(ready["appservice"].as_str().unwrap().starts_with("ok"), "{ready}");
}
