//! A roster applied to an automated default room, against a real Synapse through the service
//! started as in the tests: how long the `PUT` takes, how long until the room and the space have
//! every member, and how many homeserver calls each user costs. Run with
//! `cargo bench --bench roster` (`CHATROOMS_BENCH_ROSTER` users, default 10,000). Not a test: it
//! prints, it does not judge.

#[allow(dead_code)]
#[path = "../tests/it/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::{fresh_org, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Homeserver calls the service made so far, by operation.
async fn homeserver_calls(app: &TestApp) -> std::collections::BTreeMap<String, f64> {
    let text = app.anonymous(Method::GET, "/metrics").send().await.unwrap().text().await.unwrap();
    let prefix = "chatrooms_homeserver_request_duration_seconds_count{";
    let mut calls = std::collections::BTreeMap::new();
    for line in text.lines().filter_map(|l| l.strip_prefix(prefix)) {
        let Some((labels, value)) = line.split_once("} ") else { continue };
        let operation = labels.split("operation=\"").nth(1).and_then(|rest| rest.split('"').next());
        if let (Some(operation), Ok(value)) = (operation, value.trim().parse::<f64>()) {
            *calls.entry(operation.to_owned()).or_default() += value;
        }
    }
    calls
}

async fn get(app: &TestApp, path: &str) -> Value {
    let (status, body) = app.send(app.request(Method::GET, path)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::main]
async fn main() {
    if std::env::var_os("RUST_LOG").is_none() {
        std::env::set_var("RUST_LOG", "warn");
    }
    let size: i64 =
        std::env::var("CHATROOMS_BENCH_ROSTER").ok().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let base = 9_000_000_000 + (rand::random::<u32>() as i64) * 100_000;
    let (status, room) = app
        .send(
            app.request(Method::POST, "/chatrooms/default")
                .json(&json!({"organizationID": org, "automationEnabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{room}");
    let id = room["id"].as_i64().unwrap();
    let room_id = room["matrixRoomID"].as_str().unwrap().to_owned();
    // One admin per hundred members, as an organization might have.
    let members: Vec<Value> = (0..size)
        .map(|i| json!({"userID": base + i, "role": if i % 100 == 0 { "admin" } else { "member" }}))
        .collect();
    let before = homeserver_calls(&app).await;

    let started = Instant::now();
    let (status, written) = app
        .send(
            app.request(Method::PUT, &format!("/organizations/{org}/members"))
                .json(&json!({"members": members})),
        )
        .await;
    let answered = started.elapsed();
    assert!(status.is_success(), "{written}");
    let room_done = loop {
        if get(&app, &format!("/chatrooms/{id}")).await["syncStatus"] == "synced" {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(3600), "not synced within an hour");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let space_done = loop {
        let organization = get(&app, &format!("/organizations/{org}")).await;
        if organization["syncStatus"] == "synced" && organization["matrixSpaceID"].is_string() {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(3600), "the space is not synced within an hour");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let after = homeserver_calls(&app).await;
    let seen = app.matrix().room(&room_id).await;
    assert_eq!(seen.joined.len() as i64, size + 1, "every member and the bot joined");
    let batches = written["chatroomIDs"].as_array().map_or(0, Vec::len);

    println!("roster of {size} users applied to an automated default room (jobs queued: {batches})");
    println!("  PUT answered ({})            {:>9.1} s", written["syncStatus"], answered.as_secs_f64());
    println!("  room converged (all joined)          {:>9.1} s", room_done.as_secs_f64());
    println!("  space converged (all joined)         {:>9.1} s", space_done.as_secs_f64());
    let mut total = 0.0;
    for (operation, count) in &after {
        let made = count - before.get(operation).copied().unwrap_or(0.0);
        if made > 0.0 {
            total += made;
            println!("  {operation:<28} {made:>8} calls  {:>6.2} per user", made / size as f64);
        }
    }
    println!("  all homeserver calls         {total:>8} calls  {:>6.2} per user", total / size as f64);
    app.stop().await;
}
