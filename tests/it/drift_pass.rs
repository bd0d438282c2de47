//! The periodic drift pass: paced, oldest-checked first, and silent about what the homeserver's
//! pushes vouch for.

use std::time::Duration;

use chatrooms::{
    store::drift,
    sync::{queue_drift_checks, DriftPass, SyncOutcome},
};
use reqwest::Method;
use serde_json::json;

use crate::harness::{eventually, fresh_org, TestApp};

async fn checked_at(app: &TestApp, id: i64) -> i64 {
    sqlx::query_scalar("SELECT checked_at FROM chatrooms WHERE id = $1")
        .bind(id)
        .fetch_one(app.state.store.pool())
        .await
        .unwrap()
}

/// How many spaces have a queued drift check (the organization's, if the worker made it).
async fn spaces_queued(app: &TestApp) -> u64 {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM space_jobs WHERE reason = 'reconcile'")
        .fetch_one(app.state.store.pool())
        .await
        .unwrap();
    count as u64
}

/// The rooms with a queued drift check, and when each is due.
async fn queued_checks(app: &TestApp) -> Vec<(i64, i64)> {
    sqlx::query_as(
        "SELECT chatroom_id, next_attempt_at FROM sync_jobs WHERE reason = 'reconcile' ORDER BY chatroom_id",
    )
    .fetch_all(app.state.store.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn the_pass_reads_the_longest_unchecked_rooms_at_its_pace_and_none_the_intake_vouches_for() {
    // Only the test runs the queued checks.
    let app = TestApp::spawn_with(|env| {
        env.insert("CHATROOMS_WORKER_POLL_MS".into(), "3600000".into());
    })
    .await;
    let org = fresh_org();
    let first =
        app.create_room(json!({"organizationID": org, "name": "First"})).await["id"].as_i64().unwrap();
    let second =
        app.create_room(json!({"organizationID": org, "name": "Second"})).await["id"].as_i64().unwrap();
    let (a, b) = (checked_at(&app, first).await, checked_at(&app, second).await);
    assert!(0 < a && a <= b, "a sync reads the room back: checked at {a} and {b}");

    // The homeserver's pushes are proven from now: both rooms were checked before that.
    let proven = app.state.clock.now_ms();
    let mut conn = app.state.store.pool().acquire().await.unwrap();
    assert_eq!(drift::record_intake(&mut conn, true, proven).await.unwrap(), Some(proven));
    assert_eq!(
        drift::record_intake(&mut conn, true, proven + 5_000).await.unwrap(),
        Some(proven),
        "the proof runs from the first ping that worked"
    );
    drop(conn);
    // One room per second for one second: the longest-unchecked room only.
    let now = app.state.clock.now_ms();
    let one = DriftPass::paced(now, Duration::from_secs(1), 1, Some(proven));
    assert_eq!(queue_drift_checks(&app.state.store, &one).await.unwrap(), 1);
    assert_eq!(queued_checks(&app).await, vec![(first, now)]);
    let (_, room) = app.send(app.request(Method::GET, &format!("/chatrooms/{first}"))).await;
    assert_eq!(room["syncStatus"], "synced", "an untried drift check is not a pending change");
    assert!(matches!(app.state.reconciler.converge(first).await, SyncOutcome::Synced));
    assert!(checked_at(&app, first).await >= proven);

    // Checked since the proof: skipped; the other one is next.
    let later = app.state.clock.now_ms();
    let two = DriftPass::paced(later, Duration::from_secs(2), 1, Some(proven));
    let queued = queue_drift_checks(&app.state.store, &two).await.unwrap() as u64;
    assert_eq!(queued_checks(&app).await, vec![(second, later)]);
    assert_eq!(queued, 1 + spaces_queued(&app).await, "then the space, if made, in the same budget");
    assert!(matches!(app.state.reconciler.converge(second).await, SyncOutcome::Synced));

    // A failed ping ends the proof: every room is read again, spread at two per second.
    let mut conn = app.state.store.pool().acquire().await.unwrap();
    assert_eq!(drift::record_intake(&mut conn, false, later).await.unwrap(), None);
    drop(conn);
    let last = app.state.clock.now_ms();
    let paced = DriftPass::paced(last, Duration::from_secs(2), 2, None);
    let queued = queue_drift_checks(&app.state.store, &paced).await.unwrap() as u64;
    assert_eq!(queued_checks(&app).await, vec![(first, last), (second, last + 500)]);
    assert!(queued >= 2, "both rooms, and the space if made: {queued}");
    // A room with a queued check is not queued twice.
    assert_eq!(queue_drift_checks(&app.state.store, &paced).await.unwrap(), 0);
}

#[tokio::test]
async fn the_periodic_pass_pings_through_the_homeserver_and_checks_what_predates_the_proof() {
    let app = TestApp::spawn_with(|env| {
        env.insert("CHATROOMS_RECONCILE_INTERVAL_MS".into(), "500".into());
    })
    .await;
    let room = app.create_room(json!({"organizationID": fresh_org(), "name": "Watched"})).await;
    let id = room["id"].as_i64().unwrap();
    let created = checked_at(&app, id).await;
    // The pass's first ping makes the proof; the room, checked before it, is read again.
    eventually("the room is checked after the intake was proven", Duration::from_secs(30), || async {
        let since: Option<i64> = sqlx::query_scalar("SELECT since FROM intake_proof")
            .fetch_optional(app.state.store.pool())
            .await
            .unwrap();
        match since {
            Some(since) => since > created && checked_at(&app, id).await >= since,
            None => false,
        }
    })
    .await;
}
