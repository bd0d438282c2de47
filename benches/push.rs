//! What hearing the homeserver buys, measured against a real Synapse through the service
//! started as in the tests: a hand edit of a room's name to its repair, a member's blocked
//! message to its redaction, and an event to its webhook's delivery. Run with
//! `cargo bench --bench push`. Not a test: it prints, it does not judge.

#[allow(dead_code)]
#[path = "../tests/it/harness.rs"]
mod harness;
#[path = "support/summary.rs"]
mod summary;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use harness::{fresh_org, fresh_users, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use summary::summary;

const SAMPLES: usize = 15;

/// Polls `check` every 5 ms until it holds; how long that took.
async fn time_until<F, Fut>(started: Instant, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "nothing happened within 30 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::main]
async fn main() {
    if std::env::var_os("RUST_LOG").is_none() {
        std::env::set_var("RUST_LOG", "warn");
    }
    // Only the homeserver's push brings the repair: the periodic pass is off.
    let app = TestApp::spawn_with(|vars| {
        vars.insert("CHATROOMS_RECONCILE_INTERVAL_MS".into(), "0".into());
        vars.insert("CHATROOMS_WORKER_POLL_MS".into(), "1000".into());
        vars.insert("CHATROOMS_WEBHOOK_POLL_MS".into(), "250".into());
    })
    .await;
    let matrix = app.matrix();
    let org = fresh_org();
    let [admin, member] = fresh_users(2)[..] else { unreachable!() };
    let room = app
        .create_room(
            json!({"organizationID": org, "name": "Bench", "admins": [admin], "assignedUsers": [member]}),
        )
        .await;
    let room_id = room["matrixRoomID"].as_str().unwrap().to_owned();
    let encoded = urlencoding::encode(&room_id).into_owned();
    let admin_token = matrix.login_as(&format!("app_{admin}")).await;

    let mut repairs = Vec::new();
    for n in 0..SAMPLES {
        let path = format!("/_matrix/client/v3/rooms/{encoded}/state/m.room.name/");
        let started = Instant::now();
        let (status, _) = matrix
            .call(Method::PUT, &path, &admin_token, Some(json!({"name": format!("hand edit {n}")})))
            .await;
        assert_eq!(status, StatusCode::OK);
        repairs.push(
            time_until(started, || async { matrix.room(&room_id).await.name.as_deref() == Some("Bench") })
                .await,
        );
    }
    summary("hand edit of the name to its repair", repairs);

    let (status, _) = app
        .send(
            app.request(Method::PUT, &format!("/organizations/{org}/blocklist"))
                .json(&json!({"words": ["blocked"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let member_token = matrix.login_as(&format!("app_{member}")).await;
    let mut redactions = Vec::new();
    for n in 0..SAMPLES {
        let path = format!(
            "/_matrix/client/v3/rooms/{encoded}/send/m.room.message/bench-{n}-{}",
            rand::random::<u32>()
        );
        let started = Instant::now();
        let (status, sent) = matrix
            .call(
                Method::PUT,
                &path,
                &member_token,
                Some(json!({"msgtype": "m.text", "body": "a blocked word"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{sent}");
        let event = format!(
            "/_matrix/client/v3/rooms/{encoded}/event/{}",
            urlencoding::encode(sent["event_id"].as_str().unwrap())
        );
        redactions.push(
            time_until(started, || async {
                let (_, seen) = matrix.call(Method::GET, &event, matrix.as_token(), None).await;
                seen["unsigned"]["redacted_because"].is_object()
            })
            .await,
        );
    }
    summary("member's blocked message to its redaction", redactions);

    // A receiver that notes when each event arrived.
    let arrived: Arc<Mutex<Vec<(Value, Instant)>>> = Default::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let seen = arrived.clone();
    let router = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |body: axum::Json<Value>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push((body.0, Instant::now()));
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let (status, _) = app
        .send(app.request(Method::POST, "/webhooks").json(&json!({"url": url, "organizationID": org,
            "eventTypes": ["member.muted"]})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut deliveries = Vec::new();
    for _ in 0..SAMPLES {
        let before = arrived.lock().unwrap().len();
        let started = Instant::now();
        let (status, _) = app
            .send(
                app.request(Method::POST, &format!("/chatrooms/{}/mutes", room["id"]))
                    .json(&json!({"userID": member})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        deliveries.push(time_until(started, || async { arrived.lock().unwrap().len() > before }).await);
        let (status, _) =
            app.send(app.request(Method::DELETE, &format!("/chatrooms/{}/mutes/{member}", room["id"]))).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    summary("POST .../mutes to member.muted delivered", deliveries);
    app.stop().await;
}
