//! Homeserver calls in flight are bounded: creations beyond their slots queue, and none of them
//! times out for want of one.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{fresh_org, metric, TestApp};

async fn sample(app: &TestApp, series: &str) -> f64 {
    metric(app, series).await.unwrap_or(0.0)
}

#[tokio::test]
async fn room_creations_beyond_their_slots_queue_and_all_succeed() {
    let app = TestApp::spawn_with(|env| {
        env.insert("CHATROOMS_HOMESERVER_CREATE_CONCURRENCY".into(), "1".into());
    })
    .await;
    let org = fresh_org();
    let creations = (0..4).map(|i| {
        let body = json!({"organizationID": org + i, "name": format!("Queued {i}")});
        app.send(app.request(Method::POST, "/chatrooms").json(&body))
    });
    let answers = futures::future::join_all(creations).await;
    for (status, room) in &answers {
        assert_eq!(*status, StatusCode::CREATED, "{room}");
        let seen = app.matrix().room(room["matrixRoomID"].as_str().unwrap()).await;
        assert_eq!(seen.name.as_deref(), room["name"].as_str());
    }
    let queued = r#"chatrooms_homeserver_queue_seconds_count{operation="create room"}"#;
    let waited = r#"chatrooms_homeserver_queue_seconds_sum{operation="create room"}"#;
    let succeeded =
        r#"chatrooms_homeserver_request_duration_seconds_count{operation="create room",outcome="success"}"#;
    assert_eq!(sample(&app, queued).await, 4.0, "every creation passed through the slots");
    assert!(sample(&app, waited).await > 0.0, "with one slot, creations sent together waited for it");
    assert_eq!(sample(&app, succeeded).await, 4.0, "and each went through once, none timed out");
}
