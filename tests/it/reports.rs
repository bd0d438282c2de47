//! Reported messages and the moderation queue: reports through the API and from Matrix
//! clients (matrix-sdk; read from the homeserver), worked by the room's staff, resolved with an
//! action the homeserver then shows.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use matrix_sdk::ruma::{OwnedEventId, OwnedRoomId};

use crate::{
    harness::{eventually, fresh_org, fresh_users, jwt, TestApp},
    mobile_client::client_of,
};

fn token(user: i64) -> String {
    jwt(json!(user.to_string()), json!([]), 600)
}

async fn send_as(app: &TestApp, room: &Value, user: i64, body: &str) -> String {
    let (status, sent) = app
        .send(
            app.request(Method::POST, &format!("/chatrooms/{}/messages", room["id"]))
                .json(&json!({"body": body, "senderID": user})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    sent["eventID"].as_str().unwrap().to_owned()
}

fn report(app: &TestApp, room: &Value, event: &str, user: i64, reason: &str) -> reqwest::RequestBuilder {
    let path = format!("/chatrooms/{}/messages/{}/reports", room["id"], urlencoding::encode(event));
    app.as_user(Method::POST, &path, &token(user)).json(&json!({"reason": reason}))
}

fn resolve(app: &TestApp, report: &Value, user: Option<i64>, body: Value) -> reqwest::RequestBuilder {
    let path = format!("/reports/{}/resolve", report["reportID"]);
    match user {
        Some(user) => app.as_user(Method::POST, &path, &token(user)).json(&body),
        None => app.request(Method::POST, &path).json(&body),
    }
}

async fn queue(app: &TestApp, path: &str, user: Option<i64>) -> Value {
    let request = match user {
        Some(user) => app.as_user(Method::GET, path, &token(user)),
        None => app.request(Method::GET, path),
    };
    let (status, page) = app.send(request).await;
    assert_eq!(status, StatusCode::OK, "{path}: {page}");
    page
}

fn ids(page: &Value) -> Vec<i64> {
    page["entries"].as_array().unwrap().iter().map(|e| e["reportID"].as_i64().unwrap()).collect()
}

/// The ids of a queue entry's reports, newest first.
fn ids_of_reports(entry: &Value) -> Vec<i64> {
    entry["reports"].as_array().unwrap().iter().map(|r| r["reportID"].as_i64().unwrap()).collect()
}

/// The reporters of a queue entry, newest report first.
fn reporters(entry: &Value) -> Vec<i64> {
    entry["reports"].as_array().unwrap().iter().map(|r| r["reporterID"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn reports_through_the_api_reach_the_queue_and_a_ban_resolves_them_all() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let [moderator, other_moderator, alice, bob, spammer] = fresh_users(5)[..] else { unreachable!() };
    let room = app
        .create_room(
            json!({"organizationID": org, "name": "Reported", "moderators": [moderator, other_moderator],
            "assignedUsers": [alice, bob, spammer]}),
        )
        .await;
    let spam = send_as(&app, &room, spammer, "cheap pills here").await;
    let (status, first) = app.send(report(&app, &room, &spam, alice, "spam")).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(
        (
            &first["status"],
            &first["reports"][0]["reporterID"],
            &first["reports"][0]["source"],
            &first["reports"][0]["reason"],
            &first["message"]["body"],
            &first["message"]["senderID"]
        ),
        (
            &json!("open"),
            &json!(alice),
            &json!("api"),
            &json!("spam"),
            &json!("cheap pills here"),
            &json!(spammer)
        )
    );
    let (status, again) = app.send(report(&app, &room, &spam, alice, "spam!!")).await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_reported")),
        "{again}"
    );
    let (status, second) = app.send(report(&app, &room, &spam, bob, "ads")).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");

    // One entry for the message, with both reports, the newest first.
    let room_queue = format!("/chatrooms/{}/reports", room["id"]);
    let staff = queue(&app, &room_queue, Some(moderator)).await;
    assert_eq!((ids(&staff), &staff["total"]), (vec![second["reportID"].as_i64().unwrap()], &json!(1)));
    let entry = &staff["entries"][0];
    assert_eq!(reporters(entry), [bob, alice], "{entry}");
    assert_eq!(
        entry["reports"].as_array().unwrap().iter().map(|r| r["reason"].clone()).collect::<Vec<_>>(),
        [json!("ads"), json!("spam")]
    );
    let own = queue(&app, &room_queue, Some(alice)).await;
    assert_eq!(
        (ids(&own), reporters(&own["entries"][0])),
        (vec![first["reportID"].as_i64().unwrap()], vec![alice]),
        "a reporter sees their own reports"
    );
    let org_queue = format!("/organizations/{org}/reports");
    let admin = jwt(json!("1"), json!([{"id": org, "admin": true}]), 600);
    let (status, page) = app.send(app.as_user(Method::GET, &org_queue, &admin)).await;
    assert_eq!((status, page["total"].as_i64()), (StatusCode::OK, Some(1)), "{page}");
    assert_eq!(reporters(&page["entries"][0]), [bob, alice]);
    assert_eq!(ids(&queue(&app, &org_queue, Some(bob)).await), [second["reportID"].as_i64().unwrap()]);

    // A moderator never acts on another moderator, their messages included.
    let theirs = send_as(&app, &room, other_moderator, "moderator talk").await;
    let (_, about_staff) = app.send(report(&app, &room, &theirs, alice, "rude")).await;
    // Two messages reported, two entries: paged by entry, the newest report first.
    let paged = |query: &str| format!("{room_queue}?{query}");
    let first_page = queue(&app, &paged("limit=1"), Some(moderator)).await;
    assert_eq!(
        (ids(&first_page), &first_page["total"]),
        (vec![about_staff["reportID"].as_i64().unwrap()], &json!(2))
    );
    let second_page = queue(&app, &paged("limit=1&offset=1"), Some(moderator)).await;
    assert_eq!(
        (ids(&second_page), reporters(&second_page["entries"][0])),
        (vec![second["reportID"].as_i64().unwrap()], vec![bob, alice])
    );
    let past_the_end = queue(&app, &paged("offset=5"), Some(moderator)).await;
    assert_eq!((ids(&past_the_end).len(), &past_the_end["total"]), (0, &json!(2)), "{past_the_end}");

    let (status, answer) =
        app.send(resolve(&app, &about_staff, Some(moderator), json!({"action": "ban"}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let (status, answer) =
        app.send(resolve(&app, &about_staff, Some(alice), json!({"action": "dismiss"}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "an assigned user works no queue: {answer}");

    let (status, resolved) = app
        .send(resolve(
            &app,
            &first,
            Some(moderator),
            json!({"action": "ban", "durationSeconds": 3600, "note": "spammer"}),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    assert_eq!(
        (
            &resolved["status"],
            &resolved["resolution"]["action"],
            &resolved["resolution"]["resolvedBy"],
            &resolved["resolution"]["note"]
        ),
        (&json!("resolved"), &json!("ban"), &json!(format!("user:{moderator}")), &json!("spammer"))
    );
    assert_eq!(reporters(&resolved), [bob, alice], "both reports of the message closed: {resolved}");
    let matrix = app.matrix();
    let seen = matrix.room(room["matrixRoomID"].as_str().unwrap()).await;
    assert_eq!(
        seen.memberships.get(&app.user_id(spammer)).map(String::as_str),
        Some("ban"),
        "banned on the homeserver"
    );
    let open = queue(&app, &room_queue, Some(moderator)).await;
    assert_eq!(ids(&open), [about_staff["reportID"].as_i64().unwrap()], "both reports of the message closed");
    let closed = queue(&app, &format!("{room_queue}?status=resolved"), Some(moderator)).await;
    assert_eq!(
        (&closed["total"], reporters(&closed["entries"][0])),
        (&json!(1), vec![bob, alice]),
        "{closed}"
    );
    // Reported again after the resolution: a new open entry beside the resolved one.
    let (status, again) = app.send(report(&app, &room, &spam, alice, "still spam")).await;
    assert_eq!((status, reporters(&again)), (StatusCode::CREATED, vec![alice]), "{again}");
    let open = queue(&app, &room_queue, Some(moderator)).await;
    assert_eq!(open["total"], 2, "{open}");
    assert_eq!(queue(&app, &format!("{room_queue}?status=resolved"), Some(moderator)).await["total"], 1);
    let (status, answer) = app.send(resolve(&app, &second, None, json!({"action": "dismiss"}))).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("report_resolved")),
        "{answer}"
    );
}

#[tokio::test]
async fn a_report_from_a_matrix_client_reaches_the_queue_and_a_ban_closes_it_on_the_homeserver() {
    // The intake polls often here, so that a second pass is seen not to take the report again.
    let app = TestApp::spawn_with(|env| {
        env.insert("CHATROOMS_REPORT_POLL_MS".into(), "200".into());
    })
    .await;
    let org = fresh_org();
    let [moderator, reporter, sender] = fresh_users(3)[..] else { unreachable!() };
    let room = app
        .create_room(json!({"organizationID": org, "name": "Client reports", "moderators": [moderator],
            "assignedUsers": [reporter, sender]}))
        .await;
    let event = send_as(&app, &room, sender, "something nasty").await;
    // Reported through the API first: the same user's report from their client still counts
    // (and must be closed on the homeserver with the rest).
    let (status, by_api) = app.send(report(&app, &room, &event, reporter, "first")).await;
    assert_eq!(status, StatusCode::CREATED, "{by_api}");
    let matrix = app.matrix();
    let client = client_of(&app, reporter).await;
    let room_id: OwnedRoomId = room["matrixRoomID"].as_str().unwrap().try_into().unwrap();
    let joined = client.get_room(&room_id).expect("the reporter is in the room");
    let reported_at = Instant::now();
    joined
        .report_content(OwnedEventId::try_from(event.as_str()).unwrap(), Some("nasty".into()))
        .await
        .expect("the homeserver takes the report");
    let room_queue = format!("/chatrooms/{}/reports", room["id"]);
    eventually("the client's report is in the queue", Duration::from_secs(10), || async {
        let page = queue(&app, &room_queue, Some(moderator)).await;
        page["entries"][0]["reports"].as_array().is_some_and(|reports| reports.len() == 2)
    })
    .await;
    println!("a client's report reached the queue in {} ms", reported_at.elapsed().as_millis());
    // Later passes of the intake, while the homeserver still lists it, do not take it again.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let page = queue(&app, &room_queue, Some(moderator)).await;
    assert_eq!(
        (&page["total"], page["entries"][0]["reports"].as_array().map(Vec::len)),
        (&json!(1), Some(2)),
        "{page}"
    );
    let entry = &page["entries"][0];
    let client_report = &entry["reports"][0];
    assert_eq!(
        (
            &client_report["source"],
            &client_report["reporterID"],
            &client_report["reason"],
            &entry["reports"][1]["source"],
            &entry["message"]["eventID"],
            &entry["message"]["senderID"]
        ),
        (
            &json!("homeserver"),
            &json!(reporter),
            &json!("nasty"),
            &json!("api"),
            &json!(event),
            &json!(sender)
        )
    );
    let (status, listed) = matrix
        .admin_get(&format!(
            "/_synapse/admin/v1/event_reports?room_id={}",
            urlencoding::encode(room["matrixRoomID"].as_str().unwrap())
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let homeserver_report = listed["event_reports"][0]["id"].as_i64().expect("the homeserver's report");

    let (status, resolved) = app.send(resolve(&app, entry, Some(moderator), json!({"action": "ban"}))).await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    let seen = matrix.room(room_id.as_str()).await;
    assert_eq!(
        seen.memberships.get(&app.user_id(sender)).map(String::as_str),
        Some("ban"),
        "banned on the homeserver"
    );
    eventually("the homeserver's report is gone", Duration::from_secs(10), || async {
        matrix.admin_get(&format!("/_synapse/admin/v1/event_reports/{homeserver_report}")).await.0
            == StatusCode::NOT_FOUND
    })
    .await;
    let closed = queue(&app, &format!("{room_queue}?status=resolved"), Some(moderator)).await;
    assert_eq!((&closed["total"], reporters(&closed["entries"][0])), (&json!(1), vec![reporter, reporter]));
    assert_eq!(queue(&app, &room_queue, Some(moderator)).await["total"], 0);
}

#[tokio::test]
async fn bad_reports_and_resolutions_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let [moderator, member, outsider] = fresh_users(3)[..] else { unreachable!() };
    let room = app
        .create_room(json!({"organizationID": org, "name": "Strict", "moderators": [moderator], "assignedUsers": [member]}))
        .await;
    let other =
        app.create_room(json!({"organizationID": org, "name": "Other", "assignedUsers": [member]})).await;
    let event = send_as(&app, &room, member, "fine message").await;
    let (status, _) = app.send(report(&app, &room, &event, member, &"x".repeat(1001))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "a reason over 1,000 characters");
    let (status, _) = app.send(report(&app, &other, &event, member, "wrong room")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an event of another room");
    let (status, _) = app.send(report(&app, &room, &event, outsider, "not mine")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a user holding no role in the room");
    let (status, _) = app
        .send(
            app.request(
                Method::POST,
                &format!("/chatrooms/{}/messages/{}/reports", room["id"], urlencoding::encode(&event)),
            )
            .json(&json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the backend names the reporter");
    let (status, filed) = app.send(report(&app, &room, &event, member, "test")).await;
    assert_eq!(status, StatusCode::CREATED, "{filed}");
    for body in [
        json!({"action": "obliterate"}),
        json!({"action": "ban", "durationSeconds": 31_536_001}),
        json!({"action": "dismiss", "durationSeconds": 60}),
        json!({"action": "dismiss", "note": "n".repeat(1001)}),
        json!({}),
    ] {
        let (status, answer) = app.send(resolve(&app, &filed, Some(moderator), body.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
    }
    let (status, _) = app
        .send(app.request(Method::POST, "/reports/999999999/resolve").json(&json!({"action": "dismiss"})))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) =
        app.send(app.request(Method::GET, &format!("/chatrooms/{}/reports?status=bogus", room["id"]))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let page = queue(&app, &format!("/chatrooms/{}/reports", room["id"]), None).await;
    assert_eq!(
        (page["total"].as_i64(), &page["entries"][0]["status"]),
        (Some(1), &json!("open")),
        "still open: {page}"
    );

    // Two moderators resolve one report at once: one resolution wins, the other is told so.
    let contested = send_as(&app, &room, member, "contested").await;
    let (_, contested_report) = app.send(report(&app, &room, &contested, member, "hmm")).await;
    let (dismissed, redacted) = tokio::join!(
        app.send(resolve(&app, &contested_report, Some(moderator), json!({"action": "dismiss"}))),
        app.send(resolve(&app, &contested_report, None, json!({"action": "redact"}))),
    );
    let mut outcomes = [(dismissed.0, "dismiss", dismissed.1), (redacted.0, "redact", redacted.1)];
    outcomes.sort_by_key(|(status, ..)| status.as_u16());
    let [(won, action, winner), (lost, _, loser)] = outcomes;
    assert_eq!((won, lost), (StatusCode::OK, StatusCode::CONFLICT), "{winner} {loser}");
    assert_eq!(loser["error"]["code"], "report_resolved", "{loser}");
    let closed = queue(&app, &format!("/chatrooms/{}/reports?status=resolved", room["id"]), None).await;
    assert_eq!(
        (&closed["total"], &closed["entries"][0]["resolution"]["action"]),
        (&json!(1), &json!(action)),
        "resolved once, by the winner: {closed}"
    );
    assert_eq!(winner["message"]["redacted"], json!(action == "redact"), "{winner}");

    // Resolved with a redaction, the message is redacted on the homeserver.
    let (status, resolved) =
        app.send(resolve(&app, &filed, Some(moderator), json!({"action": "redact"}))).await;
    assert_eq!((status, &resolved["message"]["redacted"]), (StatusCode::OK, &json!(true)), "{resolved}");
    let matrix = app.matrix();
    let (_, seen) = matrix
        .call(
            Method::GET,
            &format!(
                "/_matrix/client/v3/rooms/{}/event/{}",
                urlencoding::encode(room["matrixRoomID"].as_str().unwrap()),
                urlencoding::encode(&event)
            ),
            matrix.as_token(),
            None,
        )
        .await;
    assert!(!seen["unsigned"]["redacted_because"].is_null(), "redacted on the homeserver: {seen}");

    // An action that fails leaves the reports open: a mute of a sender no longer in the lists.
    let gone = send_as(&app, &room, member, "soon gone").await;
    let (status, gone_report) = app.send(report(&app, &room, &gone, moderator, "spam")).await;
    assert_eq!(status, StatusCode::CREATED, "{gone_report}");
    let (status, _) =
        app.send(app.request(Method::DELETE, &format!("/chatrooms/{}/users/{member}", room["id"]))).await;
    assert!(status.is_success(), "{status}");
    let (status, answer) = app.send(resolve(&app, &gone_report, None, json!({"action": "mute"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    let open = queue(&app, &format!("/chatrooms/{}/reports", room["id"]), None).await;
    assert_eq!(ids(&open), [gone_report["reportID"].as_i64().unwrap()], "open again: {open}");
}

#[tokio::test]
async fn a_messages_open_reports_are_claimed_by_one_resolution_only() {
    use chatrooms::store::reports::{resolve_message, Resolution};
    let app = TestApp::spawn().await;
    let [alice, bob, sender] = fresh_users(3)[..] else { unreachable!() };
    let room = app
        .create_room(
            json!({"organizationID": fresh_org(), "name": "Claims", "assignedUsers": [alice, bob, sender]}),
        )
        .await;
    let event = send_as(&app, &room, sender, "claimed once").await;
    let mut filed = Vec::new();
    for reporter in [alice, bob] {
        let (status, entry) = app.send(report(&app, &room, &event, reporter, "x")).await;
        assert_eq!(status, StatusCode::CREATED, "{entry}");
        filed.push(entry["reportID"].as_i64().unwrap());
    }
    let chatroom = room["id"].as_i64().unwrap();
    let resolution = |by: &str| Resolution { at: 1, by: by.into(), action: "dismiss".into(), note: None };
    // Both resolutions read the reports open; the first claim takes both, the second none.
    let mut first = app.state.store.begin().await.unwrap();
    let claimed = resolve_message(&mut first, chatroom, &event, &resolution("first")).await.unwrap();
    first.commit().await.unwrap();
    let mut second = app.state.store.begin().await.unwrap();
    let again = resolve_message(&mut second, chatroom, &event, &resolution("second")).await.unwrap();
    second.commit().await.unwrap();
    let mut ids: Vec<i64> = claimed.iter().map(|(id, _)| *id).collect();
    ids.sort();
    assert_eq!((ids.clone(), again.len()), (filed.clone(), 0));

    // The first resolution's action fails, and meanwhile alice reported the message again:
    // reopening leaves her earlier report closed (hers is open once) and fails on nothing.
    let (status, refiled) = app.send(report(&app, &room, &event, alice, "again")).await;
    assert_eq!(status, StatusCode::CREATED, "{refiled}");
    let mut tx = app.state.store.begin().await.unwrap();
    chatrooms::store::reports::reopen(&mut tx, &ids).await.expect("no open report twice");
    tx.commit().await.unwrap();
    let open = queue(&app, &format!("/chatrooms/{chatroom}/reports"), None).await;
    assert_eq!(reporters(&open["entries"][0]), [alice, bob], "{open}");
    assert_eq!(ids_of_reports(&open["entries"][0]), [refiled["reportID"].as_i64().unwrap(), filed[1]]);
}
