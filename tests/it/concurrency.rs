//! Concurrent writers: many requests on one room, and two instances on one database.

use std::sync::Arc;

use chatrooms::{
    clock::{Clock, ShiftedClock},
    store::jobs::{self, JobKey, Lease},
    sync::start_due_deletions,
};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{fresh_org, fresh_users, TestApp};

/// Adds each user in its own request, all at once, spread over the given instances.
async fn add_each_concurrently(apps: &[&TestApp], room: i64, users: &[i64]) {
    let requests = users.iter().enumerate().map(|(i, user)| {
        let app = apps[i % apps.len()];
        let body = if i % 2 == 0 { json!({"moderators": [user]}) } else { json!({"assignedUsers": [user]}) };
        app.send(app.request(Method::POST, &format!("/chatrooms/{room}/users")).json(&body))
    });
    for (status, body) in futures::future::join_all(requests).await {
        assert!(status == StatusCode::OK || status == StatusCode::ACCEPTED, "{status}: {body}");
    }
}

async fn assert_room_has(app: &TestApp, room_id: &str, admin: i64, users: &[i64]) {
    let seen = app.matrix().room(room_id).await;
    let mut expected_levels = std::collections::BTreeMap::from([(app.user_id(admin), 100)]);
    for (i, user) in users.iter().enumerate() {
        assert!(seen.joined.contains(&app.user_id(*user)), "user {user} joined");
        if i % 2 == 0 {
            expected_levels.insert(app.user_id(*user), 50);
        }
    }
    assert_eq!(seen.power_users, expected_levels, "no power-level update was lost");
    assert_eq!(seen.joined.len(), users.len() + 2, "the users, the admin and the bot");
}

#[tokio::test]
async fn fifty_concurrent_additions_to_one_room_all_land() {
    let app = TestApp::spawn().await;
    let users = fresh_users(51);
    let room =
        app.create_room(json!({"organizationID": fresh_org(), "name": "Busy", "admins": [users[0]]})).await;
    let id = room["id"].as_i64().unwrap();
    add_each_concurrently(&[&app], id, &users[1..]).await;
    crate::harness::eventually("the room settles", std::time::Duration::from_secs(60), || async {
        app.send(app.request(Method::GET, &format!("/chatrooms/{id}"))).await.1["syncStatus"] == "synced"
    })
    .await;
    assert_room_has(&app, room["matrixRoomID"].as_str().unwrap(), users[0], &users[1..]).await;
    let (_, stored) = app.send(app.request(Method::GET, &format!("/chatrooms/{id}"))).await;
    assert_eq!(stored["moderators"].as_array().unwrap().len(), 25);
    assert_eq!(stored["assignedUsers"].as_array().unwrap().len(), 25);
}

#[tokio::test]
async fn two_instances_on_one_database_share_the_work_without_losing_updates() {
    let first = TestApp::spawn().await;
    let users = fresh_users(31);
    let room = first
        .create_room(json!({"organizationID": fresh_org(), "name": "Shared", "admins": [users[0]]}))
        .await;
    // Only now: a second instance's worker could take the new room's job, and the create
    // would rightly answer 202 (another instance is on it).
    let second = TestApp::spawn_on(first.database(), |_| {}).await;
    let id = room["id"].as_i64().unwrap();
    add_each_concurrently(&[&first, &second], id, &users[1..]).await;
    crate::harness::eventually("the room settles", std::time::Duration::from_secs(60), || async {
        second.send(second.request(Method::GET, &format!("/chatrooms/{id}"))).await.1["syncStatus"]
            == "synced"
    })
    .await;
    assert_room_has(&first, room["matrixRoomID"].as_str().unwrap(), users[0], &users[1..]).await;
}

#[tokio::test]
async fn a_room_lease_held_by_one_instance_excludes_the_other_until_it_expires() {
    // The instances' own workers stay out of the way: only this test takes the lease.
    let idle = |env: &mut std::collections::HashMap<String, String>| {
        env.insert("CHATROOMS_WORKER_POLL_MS".into(), "3600000".into());
    };
    let first = TestApp::spawn_with(idle).await;
    let room = first.create_room(json!({"organizationID": fresh_org(), "name": "Leased"})).await;
    // Only now: a second instance's worker could take the new room's job, and the create
    // would rightly answer 202 (another instance is on it).
    let second = TestApp::spawn_on(first.database(), idle).await;
    let id = room["id"].as_i64().unwrap();
    let now = first.state.clock.now_ms();
    let mut a = first.state.store.pool().acquire().await.unwrap();
    let mut b = second.state.store.pool().acquire().await.unwrap();
    // Queue a drift check so there is a job to hold, then take it from both sides.
    jobs::enqueue_recheck(&mut a, JobKey::Room(id), now).await.unwrap();
    assert!(matches!(
        jobs::lease(&mut a, JobKey::Room(id), "instance-a", now, now + 30_000).await.unwrap(),
        Lease::Held { .. }
    ));
    assert_eq!(
        jobs::lease(&mut b, JobKey::Room(id), "instance-b", now + 1_000, now + 31_000).await.unwrap(),
        Lease::Busy
    );
    // Renewed by its holder, the lease stays exclusive past its first deadline.
    jobs::extend_lease(&mut a, JobKey::Room(id), "instance-a", now + 60_000).await.unwrap();
    assert_eq!(
        jobs::lease(&mut b, JobKey::Room(id), "instance-b", now + 45_000, now + 75_000).await.unwrap(),
        Lease::Busy
    );
    // A holder that died stops renewing; after expiry the other instance takes over.
    assert!(matches!(
        jobs::lease(&mut b, JobKey::Room(id), "instance-b", now + 60_001, now + 90_000).await.unwrap(),
        Lease::Held { .. }
    ));
    jobs::release(&mut b, JobKey::Room(id), "instance-b").await.unwrap();
}

#[tokio::test]
async fn a_scheduled_deletion_starts_once_when_two_instances_race_for_it() {
    let first = TestApp::spawn().await;
    let in_an_hour = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let room = first
        .create_room(
            json!({"organizationID": fresh_org(), "name": "Racing", "scheduledDeletion": in_an_hour}),
        )
        .await;
    // Only now: a second instance's worker could take the new room's job, and the create
    // would rightly answer 202 (another instance is on it).
    let second = TestApp::spawn_on(first.database(), |_| {}).await;
    let later = ShiftedClock::default();
    later.advance(chrono::Duration::hours(2));
    let clock: Arc<dyn Clock> = Arc::new(later);
    let (a, b) = tokio::join!(
        start_due_deletions(&first.state.store, clock.as_ref()),
        start_due_deletions(&second.state.store, clock.as_ref())
    );
    let mut started = a.unwrap();
    started.extend(b.unwrap());
    assert_eq!(started, vec![room["id"].as_i64().unwrap()], "exactly one instance started it");
}
