//! Webhooks as a receiver sees them: every request verified with an independent implementation
//! of the Standard Webhooks specification (the `standardwebhooks` crate), each event delivered
//! once per `webhook-id` although the receiver answered the first attempt with a 500, a room's
//! events in order, and the delivery log telling how it went.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{eventually, fresh_org, fresh_users, jwt, TestApp};

/// What the receiver saw of one request.
#[derive(Clone, Debug)]
struct Received {
    id: String,
    body: Value,
    /// The signature verified against the subscription's secret.
    verified: bool,
    answered: u16,
    at: Instant,
}

/// A webhook receiver on loopback: answers `500` to the first attempt of each `webhook-id`
/// when `fail_first`, `200` otherwise; or never answers when `hang`.
#[derive(Clone)]
struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<Received>>>,
    secret: Arc<Mutex<Option<String>>>,
    /// Requests a hanging receiver took and never answered.
    hung: Arc<Mutex<Vec<Instant>>>,
}

impl Receiver {
    async fn start(fail_first: bool, hang: bool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let receiver =
            Receiver { url, seen: Default::default(), secret: Default::default(), hung: Default::default() };
        let state = receiver.clone();
        let handle = move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let state = state.clone();
            async move {
                if hang {
                    state.hung.lock().unwrap().push(Instant::now());
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                let secret = state.secret.lock().unwrap().clone().expect("the test sets the secret first");
                let verified = standardwebhooks::Webhook::new(&secret)
                    .expect("a whsec_ secret")
                    .verify(&body, &headers)
                    .is_ok();
                let id =
                    headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                let mut seen = state.seen.lock().unwrap();
                let first = !seen.iter().any(|r| r.id == id);
                let answered = if fail_first && first { 500 } else { 200 };
                seen.push(Received {
                    id,
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    verified,
                    answered,
                    at: Instant::now(),
                });
                axum::http::StatusCode::from_u16(answered).unwrap()
            }
        };
        let router = axum::Router::new().route("/hooks", axum::routing::post(handle));
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        receiver
    }

    fn seen(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }

    /// The events acknowledged with a 2xx, in the order they arrived.
    fn delivered(&self) -> Vec<Value> {
        self.seen().into_iter().filter(|r| r.answered == 200).map(|r| r.body).collect()
    }
}

async fn subscribe(app: &TestApp, receiver: &Receiver, body: Value) -> Value {
    let mut body = body;
    body["url"] = json!(receiver.url);
    let (status, sub) = app.send(app.request(Method::POST, "/webhooks").json(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{sub}");
    *receiver.secret.lock().unwrap() = Some(sub["secret"].as_str().unwrap().to_owned());
    sub
}

fn types_of(events: &[Value], room: i64) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["data"]["roomID"] == room)
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn events_are_signed_delivered_once_per_webhook_id_in_order_after_a_failed_first_attempt() {
    let app = TestApp::spawn_with(|vars| {
        vars.insert("CHATROOMS_WEBHOOK_RETRY_SCHEDULE_MS".into(), "200,400,800".into());
    })
    .await;
    let receiver = Receiver::start(true, false).await;
    let org = fresh_org();
    let sub = subscribe(&app, &receiver, json!({"organizationID": org})).await;
    assert!(sub["secret"].as_str().unwrap().starts_with("whsec_"), "{sub}");
    // Another organization's events are not this subscription's.
    app.create_room(json!({"organizationID": fresh_org(), "name": "Elsewhere"})).await;

    let [admin, member, other] = fresh_users(3)[..] else { unreachable!() };
    let room = app
        .create_room(json!({"organizationID": org, "name": "Hooked", "admins": [admin], "assignedUsers": [member, other]}))
        .await;
    let id = room["id"].as_i64().unwrap();
    let path = |rest: &str| format!("/chatrooms/{id}/{rest}");
    let (status, _) = app
        .send(app.request(Method::POST, &path("bans")).json(&json!({"userID": member, "reason": "spam"})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app.send(app.request(Method::DELETE, &path(&format!("bans/{member}")))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) =
        app.send(app.request(Method::POST, &path("mutes")).json(&json!({"userID": other}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app.send(app.request(Method::DELETE, &path(&format!("mutes/{other}")))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) =
        app.send(app.request(Method::POST, &path("messages")).json(&json!({"body": "not opted in"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app.send(app.request(Method::DELETE, &path(&format!("users/{other}")))).await;
    assert!(status.is_success(), "{status}");
    // Once a room is being deleted only its room.deleted is reported: let the kick come first.
    eventually("the kick is reported", Duration::from_secs(15), || async {
        types_of(&receiver.delivered(), id).contains(&"member.left".to_owned())
    })
    .await;
    let (status, _) = app.send(app.request(Method::DELETE, &format!("/chatrooms/{id}"))).await;
    assert!(status.is_success(), "{status}");

    let expected = [
        "room.created",
        "member.joined", // admin, member and other, in some order
        "member.joined",
        "member.joined",
        "member.banned",
        "member.unbanned",
        "member.joined",
        "member.muted",
        "member.unmuted",
        "member.left",
        "room.deleted",
    ];
    eventually("every event is delivered", Duration::from_secs(30), || async {
        types_of(&receiver.delivered(), id).last().map(String::as_str) == Some("room.deleted")
    })
    .await;
    let delivered = receiver.delivered();
    assert_eq!(types_of(&delivered, id), expected, "in the order they happened");
    assert!(delivered.iter().all(|e| e["data"]["organizationID"] == org), "only this organization's");
    let banned = delivered.iter().find(|e| e["type"] == "member.banned").unwrap();
    assert_eq!(
        (&banned["data"]["userID"], &banned["data"]["actor"], &banned["data"]["reason"]),
        (&json!(member), &json!("backend"), &json!("spam"))
    );
    let created = &delivered[0];
    assert_eq!(
        (&created["data"]["roomID"], &created["data"]["matrixRoomID"]),
        (&json!(id), &room["matrixRoomID"])
    );
    assert!(chrono::DateTime::parse_from_rfc3339(created["timestamp"].as_str().unwrap()).is_ok());

    let seen = receiver.seen();
    assert!(seen.iter().all(|r| r.verified), "every request verifies with the independent implementation");
    let mut attempts: BTreeMap<String, Vec<u16>> = BTreeMap::new();
    for r in &seen {
        attempts.entry(r.id.clone()).or_default().push(r.answered);
    }
    assert!(
        attempts.values().all(|answers| answers == &[500, 200]),
        "each webhook-id: refused once, then delivered once: {attempts:?}"
    );
    let ids: HashSet<&String> = attempts.keys().collect();
    assert_eq!(ids.len(), delivered.len(), "one webhook-id per event");

    let (status, log) =
        app.send(app.request(
            Method::GET,
            &format!("/webhooks/{}/deliveries?limit=200", sub["id"].as_str().unwrap()),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(entries.len(), delivered.len(), "{log}");
    for entry in entries {
        assert_eq!(
            (&entry["status"], &entry["attempts"], &entry["lastResponseCode"]),
            (&json!("delivered"), &json!(2), &json!(200)),
            "{entry}"
        );
    }
    assert_eq!(entries[0]["eventType"], "room.deleted", "newest first");
}

#[tokio::test]
async fn messages_are_reported_to_subscriptions_that_name_them_with_their_redactions() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(false, false).await;
    let org = fresh_org();
    subscribe(
        &app,
        &receiver,
        json!({"organizationID": org, "eventTypes": ["message.created", "message.redacted"]}),
    )
    .await;
    let [member] = fresh_users(1)[..] else { unreachable!() };
    let room =
        app.create_room(json!({"organizationID": org, "name": "Chatty", "assignedUsers": [member]})).await;
    let id = room["id"].as_i64().unwrap();
    let sent_at = Instant::now();
    let (status, sent) = app
        .send(
            app.request(Method::POST, &format!("/chatrooms/{id}/messages"))
                .json(&json!({"body": "hello", "senderID": member})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let event = sent["eventID"].as_str().unwrap();
    eventually("the message is reported", Duration::from_secs(15), || async {
        !receiver.delivered().is_empty()
    })
    .await;
    println!("message sent to its webhook delivered: {} ms", (receiver.seen()[0].at - sent_at).as_millis());
    let redact = format!("/chatrooms/{id}/messages/{}?reason=oops", urlencoding::encode(event));
    let (status, _) = app.send(app.request(Method::DELETE, &redact)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    eventually("the redaction is reported", Duration::from_secs(15), || async {
        receiver.delivered().len() == 2
    })
    .await;
    let delivered = receiver.delivered();
    assert_eq!(
        types_of(&delivered, id),
        ["message.created", "message.redacted"],
        "nothing else: {delivered:?}"
    );
    assert_eq!(
        (&delivered[0]["data"]["eventID"], &delivered[0]["data"]["senderID"], &delivered[0]["data"]["body"]),
        (&json!(event), &json!(member), &json!("hello"))
    );
    assert_eq!(
        (
            &delivered[1]["data"]["eventID"],
            &delivered[1]["data"]["actor"],
            &delivered[1]["data"]["reason"],
            &delivered[1]["data"]["editOf"]
        ),
        (&json!(event), &json!("backend"), &json!("oops"), &Value::Null)
    );

    // The blocklist's redaction of an edit says which message the edit was of.
    let (status, list) = app
        .send(
            app.request(Method::PUT, &format!("/chatrooms/{id}/blocklist"))
                .json(&json!({"words": ["forbidden"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let (_, sent) = app
        .send(
            app.request(Method::POST, &format!("/chatrooms/{id}/messages"))
                .json(&json!({"body": "fine", "senderID": member})),
        )
        .await;
    let message = sent["eventID"].as_str().unwrap();
    let path = format!("/chatrooms/{id}/messages/{}", urlencoding::encode(message));
    let token = jwt(json!(member.to_string()), json!([]), 600);
    let (status, edited) =
        app.send(app.as_user(Method::PATCH, &path, &token).json(&json!({"body": "now forbidden"}))).await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    eventually("the edit's redaction is reported", Duration::from_secs(15), || async {
        receiver.delivered().iter().any(|e| e["data"]["editOf"] == json!(message))
    })
    .await;
    let delivered = receiver.delivered();
    let redaction = delivered.iter().find(|e| e["data"]["editOf"] == json!(message)).unwrap();
    assert_eq!(redaction["type"], "message.redacted");
    assert_ne!(redaction["data"]["eventID"], json!(message), "the edit was redacted, not the message");
}

#[tokio::test]
async fn a_receiver_that_never_answers_holds_up_neither_writes_nor_intake() {
    let app = TestApp::spawn_with(|vars| {
        vars.insert("CHATROOMS_WEBHOOK_TIMEOUT_MS".into(), "600000".into());
        vars.insert("CHATROOMS_RECONCILE_INTERVAL_MS".into(), "0".into());
    })
    .await;
    let receiver = Receiver::start(false, true).await;
    let org = fresh_org();
    subscribe(&app, &receiver, json!({"organizationID": org})).await;
    // A second subscription with a receiver that answers keeps getting its events.
    let healthy = Receiver::start(false, false).await;
    subscribe(&app, &healthy, json!({"organizationID": org, "eventTypes": ["room.created"]})).await;
    let [admin, member] = fresh_users(2)[..] else { unreachable!() };
    for n in 0..3 {
        let (status, body) = app
            .send(
                app.request(Method::POST, "/chatrooms")
                    .json(&json!({"organizationID": org, "name": format!("Busy {n}"),
                "admins": [admin], "assignedUsers": [member]})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "writes are not held up: {body}");
    }
    let room = app.create_room(json!({"organizationID": org, "name": "Watched", "admins": [admin]})).await;
    // A hand edit on the homeserver still comes in and is repaired.
    let matrix = app.matrix();
    let path = format!(
        "/_matrix/client/v3/rooms/{}/state/m.room.name/",
        urlencoding::encode(room["matrixRoomID"].as_str().unwrap())
    );
    let access = matrix.login_as(&format!("app_{admin}")).await;
    let (status, _) =
        matrix.call(Method::PUT, &path, &access, Some(json!({"name": "Renamed by hand"}))).await;
    assert_eq!(status, StatusCode::OK);
    eventually("the name is restored", Duration::from_secs(15), || async {
        matrix.room(room["matrixRoomID"].as_str().unwrap()).await.name.as_deref() == Some("Watched")
    })
    .await;
    assert!(receiver.seen().is_empty(), "the receiver has answered nothing all along");
    assert!(!receiver.hung.lock().unwrap().is_empty(), "deliveries to it were attempted and hang");
    eventually("the other receiver gets every room.created", Duration::from_secs(15), || async {
        healthy.delivered().len() == 4
    })
    .await;
}

#[tokio::test]
async fn subscriptions_are_the_backends_validated_and_keep_their_secret_to_the_creation() {
    let app = TestApp::spawn_with(|vars| {
        vars.insert("CHATROOMS_WEBHOOKS_ALLOW_PRIVATE".into(), "false".into());
    })
    .await;
    let post = |body: Value| app.request(Method::POST, "/webhooks").json(&body);
    for (body, why) in [
        (json!({"url": "http://127.0.0.1:9/x"}), "loopback"),
        (json!({"url": "http://169.254.169.254/latest"}), "link-local (cloud metadata)"),
        (json!({"url": "http://localhost/x"}), "localhost"),
        (json!({"url": "ftp://example.com/x"}), "not http"),
        (json!({"url": "https://example.com/x", "eventTypes": ["room.renamed"]}), "an unknown type"),
        (json!({"url": "https://example.com/x", "eventTypes": []}), "no types"),
        (json!({"url": "https://example.com/x", "organizationID": 0}), "organizationID 0"),
        (json!({"url": "https://example.com/x", "extra": 1}), "an unknown field"),
    ] {
        let (status, answer) = app.send(post(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{why}: {answer}");
    }
    let user = jwt(json!(fresh_users(1)[0].to_string()), json!([]), 600);
    let (status, _) = app
        .send(app.as_user(Method::POST, "/webhooks", &user).json(&json!({"url": "https://example.com/x"})))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "an app user may not subscribe");
    let (status, _) = app.send(app.as_user(Method::GET, "/webhooks", &user)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, list) = app.send(app.request(Method::GET, "/webhooks")).await;
    assert_eq!((status, list["entries"].as_array().unwrap().len()), (StatusCode::OK, 0), "nothing was made");

    let (status, made) = app
        .send(post(json!({"url": "https://hooks.example.com/chat", "eventTypes": ["member.banned", "member.banned", "room.created"]})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["eventTypes"], json!(["room.created", "member.banned"]));
    let id = made["id"].as_str().unwrap();
    let (_, list) = app.send(app.request(Method::GET, "/webhooks")).await;
    assert_eq!(list["entries"][0]["id"], id);
    assert!(list["entries"][0].get("secret").is_none(), "the secret is shown once: {list}");
    let (status, one) = app.send(app.request(Method::GET, &format!("/webhooks/{id}"))).await;
    assert_eq!((status, one.get("secret").is_none()), (StatusCode::OK, true), "{one}");
    let (status, _) = app.send(app.request(Method::GET, &format!("/webhooks/{id}/deliveries?limit=0"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app.send(app.request(Method::DELETE, &format!("/webhooks/{id}"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for method in [Method::GET, Method::DELETE] {
        let (status, _) = app.send(app.request(method, &format!("/webhooks/{id}"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (status, _) = app.send(app.request(Method::GET, &format!("/webhooks/{id}/deliveries"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn archiving_and_unarchiving_are_reported_once_each() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(false, false).await;
    let org = fresh_org();
    subscribe(
        &app,
        &receiver,
        json!({"organizationID": org, "eventTypes": ["room.archived", "room.unarchived"]}),
    )
    .await;
    let room = app.create_room(json!({"organizationID": org, "name": "Seasonal"})).await;
    let id = room["id"].as_i64().unwrap();
    for action in ["archive", "archive", "unarchive", "unarchive"] {
        let (status, body) = app.send(app.request(Method::POST, &format!("/chatrooms/{id}/{action}"))).await;
        assert_eq!(status, StatusCode::OK, "{action}: {body}");
    }
    eventually("both are reported", Duration::from_secs(15), || async { receiver.delivered().len() >= 2 })
        .await;
    let delivered = receiver.delivered();
    assert_eq!(
        types_of(&delivered, id),
        ["room.archived", "room.unarchived"],
        "a repeat reports nothing: {delivered:?}"
    );
    assert_eq!(delivered[0]["data"]["name"], "Seasonal");
}

#[tokio::test]
async fn an_edit_by_its_sender_is_reported_as_message_edited() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(false, false).await;
    let org = fresh_org();
    subscribe(&app, &receiver, json!({"organizationID": org, "eventTypes": ["message.edited"]})).await;
    let [member] = fresh_users(1)[..] else { unreachable!() };
    let room =
        app.create_room(json!({"organizationID": org, "name": "Edited", "assignedUsers": [member]})).await;
    let id = room["id"].as_i64().unwrap();
    let token = jwt(json!(member.to_string()), json!([]), 600);
    let (status, sent) = app
        .send(
            app.as_user(Method::POST, &format!("/chatrooms/{id}/messages"), &token)
                .json(&json!({"body": "typo", "senderID": member})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let event = sent["eventID"].as_str().unwrap();
    let path = format!("/chatrooms/{id}/messages/{}", urlencoding::encode(event));
    let (status, edited) =
        app.send(app.as_user(Method::PATCH, &path, &token).json(&json!({"body": "fixed"}))).await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    eventually("the edit is reported", Duration::from_secs(15), || async {
        !receiver.delivered().is_empty()
    })
    .await;
    let delivered = receiver.delivered();
    assert_eq!(types_of(&delivered, id), ["message.edited"], "{delivered:?}");
    let data = &delivered[0]["data"];
    assert_eq!(
        (&data["eventID"], &data["senderID"], &data["body"]),
        (&json!(event), &json!(member), &json!("fixed"))
    );
    assert!(data["editID"].as_str().is_some_and(|edit| edit != event), "{data}");
}

#[tokio::test]
async fn a_report_is_reported_as_message_reported() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(false, false).await;
    let org = fresh_org();
    subscribe(&app, &receiver, json!({"organizationID": org, "eventTypes": ["message.reported"]})).await;
    let [reporter, sender] = fresh_users(2)[..] else { unreachable!() };
    let room = app
        .create_room(json!({"organizationID": org, "name": "Reported", "assignedUsers": [reporter, sender]}))
        .await;
    let id = room["id"].as_i64().unwrap();
    let (status, sent) = app
        .send(
            app.request(Method::POST, &format!("/chatrooms/{id}/messages"))
                .json(&json!({"body": "offensive", "senderID": sender})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let event = sent["eventID"].as_str().unwrap();
    let token = jwt(json!(reporter.to_string()), json!([]), 600);
    let path = format!("/chatrooms/{id}/messages/{}/reports", urlencoding::encode(event));
    let (status, report) =
        app.send(app.as_user(Method::POST, &path, &token).json(&json!({"reason": "rude"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{report}");
    eventually("the report is delivered", Duration::from_secs(15), || async {
        !receiver.delivered().is_empty()
    })
    .await;
    let delivered = receiver.delivered();
    assert_eq!(types_of(&delivered, id), ["message.reported"], "{delivered:?}");
    let data = &delivered[0]["data"];
    assert_eq!(
        (&data["reportID"], &data["eventID"], &data["reporterID"], &data["reason"], &data["source"]),
        (&report["reportID"], &json!(event), &json!(reporter), &json!("rude"), &json!("api"))
    );
    assert_eq!(data["sender"], app.user_id(sender));
}
