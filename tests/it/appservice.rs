//! The application-service API the homeserver pushes to: only its token is accepted, and each
//! transaction is stored once before it is answered, retried or received by two replicas.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::TestApp;

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
async fn two_replicas_receiving_one_transaction_store_it_once() {
    let first = TestApp::spawn().await;
    let second = TestApp::spawn_on(first.database(), |_| {}).await;
    let token = hs_token(&first);
    let path = "/_matrix/app/v1/transactions/test-shared";
    let (a, b) = tokio::join!(
        first.send(put(&first, path, Some(&token), &transaction(3))),
        second.send(put(&second, path, Some(&token), &transaction(3)))
    );
    assert_eq!((a.0, b.0), (StatusCode::OK, StatusCode::OK));
    assert_eq!(stored(&first).await, vec![("test-shared".to_owned(), 3)]);
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
