//! What operators see: `/metrics` (request and homeserver call histograms, the sync backlog,
//! rooms by sync status) and `x-request-id` on every response and in the request's log lines.

use std::{process::Stdio, time::Duration};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{
    fault_injection::refusal,
    harness::{base_env, fresh_database, fresh_org, homeserver, TestApp, API_TOKEN},
    sync_faults::spawn_faulty,
};

async fn scrape(app: &TestApp) -> String {
    let response = app.anonymous(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    response.text().await.unwrap()
}

/// The value of the sample `series` (name with its labels, as exposed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_time_requests_and_homeserver_calls_and_show_the_sync_backlog() {
    // Retries far apart: the room whose creation fails stays pending while we look.
    let (app, faults) = spawn_faulty(&[
        ("CHATROOMS_SYNC_WAIT_MS", "10000"),
        ("CHATROOMS_RETRY_BASE_MS", "600000"),
        ("CHATROOMS_RETRY_CAP_MS", "600000"),
    ])
    .await;
    let org = fresh_org();
    app.create_room(json!({"organizationID": org, "name": "Synced"})).await;
    faults.script("create_room", [refusal("create room", 502, "M_UNKNOWN")]);
    let (status, pending) = app
        .send(app.request(Method::POST, "/chatrooms").json(&json!({"organizationID": org, "name": "Stuck"})))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{pending}");
    let (status, _) = app.send(app.request(Method::GET, "/chatrooms/999999999")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    tokio::time::sleep(Duration::from_millis(50)).await;

    let text = scrape(&app).await;
    let http = |method: &str, route: &str, status: u16| {
        sample(
            &text,
            &format!(
                r#"chatrooms_http_request_duration_seconds_count{{method="{method}",route="{route}",status="{status}"}}"#
            ),
        )
    };
    assert_eq!(http("POST", "/chatrooms", 201), Some(1.0), "{text}");
    assert_eq!(http("POST", "/chatrooms", 202), Some(1.0), "{text}");
    // By the route's template, not the id asked for.
    assert_eq!(http("GET", "/chatrooms/{roomID}", 404), Some(1.0), "{text}");
    let created = sample(
        &text,
        r#"chatrooms_homeserver_request_duration_seconds_count{operation="create room",outcome="success"}"#,
    );
    assert_eq!(created, Some(1.0), "only the first room reached Synapse's createRoom: {text}");
    assert!(
        sample(
            &text,
            r#"chatrooms_homeserver_request_duration_seconds_bucket{le="+Inf",operation="create room",outcome="success"}"#
        ) == Some(1.0),
        "{text}"
    );
    assert_eq!(sample(&text, r#"chatrooms_rooms{sync_status="synced"}"#), Some(1.0), "{text}");
    assert_eq!(sample(&text, r#"chatrooms_rooms{sync_status="pending"}"#), Some(1.0), "{text}");
    assert_eq!(sample(&text, r#"chatrooms_rooms{sync_status="failed"}"#), Some(0.0), "{text}");
    assert_eq!(sample(&text, "chatrooms_sync_jobs_pending"), Some(1.0), "{text}");
    let age = sample(&text, "chatrooms_sync_jobs_oldest_age_seconds").expect("the age gauge");
    assert!(age > 0.0 && age < 60.0, "the stuck room has waited since its create: {age}");
    assert_eq!(sample(&text, "chatrooms_syncs_failed_total"), Some(1.0), "{text}");
}

#[tokio::test]
async fn an_unreachable_homeserver_shows_as_unreachable_calls() {
    let app = TestApp::spawn_with(|vars| {
        vars.insert("CHATROOMS_HOMESERVER_URL".into(), "http://127.0.0.1:9".into());
    })
    .await;
    let (status, _) = app.send(app.anonymous(Method::GET, "/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let text = scrape(&app).await;
    let series = r#"chatrooms_homeserver_request_duration_seconds_count{operation="check the appservice token",outcome="unreachable"}"#;
    // A refused connection is a passing fault: the call and its three repeats, each counted.
    assert_eq!(sample(&text, series), Some(4.0), "{text}");
    assert_eq!(
        sample(
            &text,
            r#"chatrooms_http_request_duration_seconds_count{method="GET",route="/readyz",status="503"}"#
        ),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_a_callers_own_is_kept() {
    let app = TestApp::spawn().await;
    let mut seen = Vec::new();
    for (request, status) in [
        (app.anonymous(Method::GET, "/healthz"), StatusCode::OK),
        (app.anonymous(Method::GET, "/chatrooms"), StatusCode::UNAUTHORIZED),
        (app.request(Method::GET, "/no/such/endpoint"), StatusCode::NOT_FOUND),
        (app.request(Method::POST, "/chatrooms").json(&json!({"name": 5})), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status);
        let id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(id.len(), 36, "a UUID: {id}");
        assert_eq!(id.matches('-').count(), 4, "a UUID: {id}");
        seen.push(id);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 4, "one id per request");
    let response =
        app.anonymous(Method::GET, "/healthz").header("x-request-id", "gateway-7f3a").send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "gateway-7f3a");
}

/// The real binary with JSON logs: every line about the room the request created, including
/// those of the sync it waited for, names the request's id, and so does the access log line.
#[tokio::test]
async fn a_requests_log_lines_all_carry_its_request_id() {
    let database = fresh_database().await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_chatrooms"))
        .arg("serve")
        .env_clear()
        .envs(base_env(homeserver(), &database.url))
        .env("CHATROOMS_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        // The worker stays idle: its syncs of the room (after making the organization's space)
        // are nobody's request.
        .env("CHATROOMS_WORKER_POLL_MS", "3600000")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the service binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next_line().await.unwrap().expect("the service logs that it serves");
        let entry: Value = serde_json::from_str(&line).expect("JSON log lines");
        if entry["message"] == "serving" {
            break entry["addr"].as_str().unwrap().to_owned();
        }
    };
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/chatrooms"))
        .header("API-TOKEN", API_TOKEN)
        .header("x-request-id", "log-test-41c9")
        .json(&json!({"organizationID": fresh_org(), "name": "Logged"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let room: Value = response.json().await.unwrap();
    child.start_kill().unwrap();
    child.wait().await.unwrap();

    let mut about_room = 0;
    let mut access_logged = false;
    while let Some(line) = lines.next_line().await.unwrap() {
        let entry: Value = serde_json::from_str(&line).expect("JSON log lines");
        // The outermost span is the request's; `span` is the innermost one.
        let request_id = &entry["spans"][0]["request_id"];
        if entry["chatroom"] == room["id"] {
            about_room += 1;
            assert_eq!(request_id, "log-test-41c9", "a line of the request without its id: {line}");
        }
        if entry["message"] == "finished processing request" {
            assert_eq!(request_id, "log-test-41c9", "{line}");
            assert_eq!(entry["spans"][0]["route"], "/chatrooms", "{line}");
            access_logged = true;
        }
    }
    assert!(about_room >= 3, "planning, creating and finishing the sync are logged: {about_room}");
    assert!(access_logged, "the request's access log line");
}
