//! The service killed with SIGKILL in the middle of a big change: the restarted process finishes
//! it, creates no duplicate room and leaves no stuck job.

use std::{
    collections::HashMap,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{base_env, eventually, fresh_database, fresh_org, fresh_users, homeserver, API_TOKEN};

struct Service {
    child: Child,
    base: String,
}

impl Drop for Service {
    /// A failing assertion must not leave the service running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(env: &HashMap<String, String>) -> Service {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(env!("CARGO_BIN_EXE_chatrooms"))
        .arg("serve")
        .envs(env)
        .env("CHATROOMS_BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting the service binary");
    Service { child, base: format!("http://127.0.0.1:{port}") }
}

async fn wait_healthy(http: &reqwest::Client, service: &Service) {
    eventually("the service answers", Duration::from_secs(30), || async {
        http.get(format!("{}/healthz", service.base)).send().await.is_ok()
    })
    .await;
}

async fn get(http: &reqwest::Client, service: &Service, path: &str) -> Value {
    let response =
        http.get(format!("{}{path}", service.base)).header("API-TOKEN", API_TOKEN).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_service_killed_mid_change_finishes_it_after_a_restart() {
    let hs = homeserver();
    let database = fresh_database().await;
    let mut env = base_env(hs, &database.url);
    env.extend([
        // Answer at once (202) so the kill lands while the worker is still joining users.
        ("CHATROOMS_SYNC_WAIT_MS".to_owned(), "50".to_owned()),
        ("CHATROOMS_ROOM_LEASE_MS".to_owned(), "2000".to_owned()),
        ("CHATROOMS_JOIN_CONCURRENCY".to_owned(), "2".to_owned()),
    ]);
    let http = reqwest::Client::new();
    let mut service = start(&env);
    wait_healthy(&http, &service).await;

    let users = fresh_users(200);
    let name = format!("Crash {}", fresh_org());
    let response = http
        .post(format!("{}/chatrooms", service.base))
        .header("API-TOKEN", API_TOKEN)
        .json(&json!({"organizationID": fresh_org(), "name": name, "admins": [users[0]], "assignedUsers": &users[1..]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_i64().unwrap();

    // Kill it once the room exists and some, not all, users have joined.
    let matrix = crate::harness::MatrixView::new(hs);
    let room_id = std::sync::Mutex::new(String::new());
    eventually("the room is being filled", Duration::from_secs(60), || async {
        let room = get(&http, &service, &format!("/chatrooms/{id}")).await;
        let Some(matrix_id) = room["matrixRoomID"].as_str() else { return false };
        *room_id.lock().unwrap() = matrix_id.to_owned();
        matrix.room(matrix_id).await.joined.len() > 3
    })
    .await;
    let room_id = room_id.into_inner().unwrap();
    service.child.kill().expect("SIGKILL");
    service.child.wait().unwrap();
    let joined_at_kill = matrix.room(&room_id).await.joined.len();
    assert!(joined_at_kill < 201, "the kill must land mid-change; all had joined already");

    let restarted = Instant::now();
    let service = start(&env);
    wait_healthy(&http, &service).await;
    eventually("the room converges after the restart", Duration::from_secs(120), || async {
        get(&http, &service, &format!("/chatrooms/{id}")).await["syncStatus"] == "synced"
    })
    .await;
    eprintln!(
        "{joined_at_kill} of 201 members joined at the kill; converged {} ms after the restart",
        restarted.elapsed().as_millis()
    );
    let seen = matrix.room(&room_id).await;
    assert_eq!(seen.joined.len(), 201, "all 200 users and the bot");
    assert_eq!(seen.power_users.get(&format!("@app_{}:{}", users[0], hs.server_name)), Some(&100));
    let (status, search) = matrix
        .admin_get(&format!("/_synapse/admin/v1/rooms?search_term={}", urlencoding::encode(&name)))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(search["total_rooms"], 1, "no duplicate room: {search}");

    // No job left behind, leased or not.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&database.url).await.unwrap();
    let jobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sync_jobs").fetch_one(&pool).await.unwrap();
    assert_eq!(jobs, 0);
    pool.close().await;
}
