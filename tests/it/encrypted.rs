//! End-to-end encrypted rooms: members' clients (matrix-sdk with encryption, in
//! tools/e2ee-client) exchange a message the homeserver and the service see only as
//! ciphertext; roles and moderation work as anywhere, and whatever needs the text answers
//! `409` (`room_encrypted`).

use std::{path::PathBuf, process::Stdio, sync::OnceLock, time::Duration};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::harness::{eventually, fresh_org, fresh_users, jwt, TestApp};

const SECRET: &str = "the vault code is 4711";

/// The encrypting client: `CHATROOMS_E2EE_CLIENT`, or built here (scripts/test.sh builds it
/// first, so this finds it fresh). Its own workspace, see its Cargo.toml.
fn e2ee_client() -> &'static PathBuf {
    static CLIENT: OnceLock<PathBuf> = OnceLock::new();
    CLIENT.get_or_init(|| {
        if let Ok(path) = std::env::var("CHATROOMS_E2EE_CLIENT") {
            return PathBuf::from(path);
        }
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let target =
            std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target"));
        let target = target.join("e2ee-client");
        let built = std::process::Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--manifest-path"])
            .arg(root.join("tools/e2ee-client/Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target)
            .status()
            .expect("cargo runs");
        assert!(built.success(), "tools/e2ee-client does not build");
        target.join("debug/e2ee-client")
    })
}

async fn login(app: &TestApp, user: i64) -> Value {
    let token = jwt(json!(user.to_string()), json!([]), 600);
    let (status, session) = app.send(app.as_user(Method::POST, "/user/login", &token).json(&json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    session
}

/// The sender's client encrypts the text for the room; the reader's decrypts it. The event id
/// and what the reader read.
async fn exchange(app: &TestApp, room: &str, sender: i64, reader: i64, text: &str) -> (String, String) {
    let sessions = json!({"sender": login(app, sender).await, "reader": login(app, reader).await});
    let mut child = tokio::process::Command::new(e2ee_client())
        .args([&app.hs.url, room, text])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the e2ee client starts");
    child.stdin.take().unwrap().write_all(sessions.to_string().as_bytes()).await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success(), "e2ee client: {}", String::from_utf8_lossy(&out.stderr));
    let answer: Value = serde_json::from_slice(&out.stdout).expect("the client's JSON");
    (answer["eventID"].as_str().unwrap().to_owned(), answer["decrypted"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn members_read_each_others_messages_and_the_service_sees_only_ciphertext() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let [alice, bob, mallory] = fresh_users(3)[..] else { unreachable!() };
    let room = app
        .create_room(json!({"organizationID": org, "name": "Vault", "encrypted": true,
            "moderators": [alice], "assignedUsers": [bob, mallory]}))
        .await;
    assert_eq!(room["encrypted"], true, "{room}");
    let id = room["id"].as_i64().unwrap();
    let room_id = room["matrixRoomID"].as_str().unwrap().to_owned();
    let matrix = app.matrix();
    let path = format!("/_matrix/client/v3/rooms/{}/state/m.room.encryption/", urlencoding::encode(&room_id));
    let (status, encryption) = matrix.call(Method::GET, &path, matrix.as_token(), None).await;
    assert_eq!(
        (status, &encryption["algorithm"]),
        (StatusCode::OK, &json!("m.megolm.v1.aes-sha2")),
        "{encryption}"
    );

    let (sent, read) = exchange(&app, room_id.as_str(), alice, bob, SECRET).await;
    assert_eq!(read, SECRET, "bob's client decrypted alice's message");

    // The homeserver holds ciphertext only, and so did what it pushed to the service.
    let (status, event) = matrix
        .call(
            Method::GET,
            &format!(
                "/_matrix/client/v3/rooms/{}/event/{}",
                urlencoding::encode(&room_id),
                urlencoding::encode(&sent)
            ),
            matrix.as_token(),
            None,
        )
        .await;
    assert_eq!((status, &event["type"]), (StatusCode::OK, &json!("m.room.encrypted")), "{event}");
    assert!(!event.to_string().contains("vault"), "{event}");
    eventually("the service received the encrypted event", Duration::from_secs(15), || async {
        let bodies: Vec<String> = sqlx::query_scalar("SELECT body FROM appservice_transactions")
            .fetch_all(app.state.store.pool())
            .await
            .unwrap();
        bodies.iter().any(|body| body.contains(&sent))
    })
    .await;
    let bodies: Vec<String> = sqlx::query_scalar("SELECT body FROM appservice_transactions")
        .fetch_all(app.state.store.pool())
        .await
        .unwrap();
    assert!(bodies.iter().all(|body| !body.contains("vault")), "the bot never saw the plaintext");

    // What needs the text is refused, and says why.
    let room_path = format!("/chatrooms/{id}");
    let event_path = format!("{room_path}/messages/{}", urlencoding::encode(&sent));
    for (method, path, body) in [
        (Method::GET, format!("{room_path}/messages"), None),
        (Method::GET, format!("{room_path}/messages?search=vault"), None),
        (Method::POST, format!("{room_path}/messages"), Some(json!({"body": "from the backend"}))),
        (Method::PATCH, event_path.clone(), Some(json!({"body": "edited"}))),
        (Method::POST, format!("{room_path}/truncate"), None),
        (Method::PUT, format!("{room_path}/blocklist"), Some(json!({"words": ["vault"]}))),
    ] {
        let mut request = app.request(method.clone(), &path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let (status, answer) = app.send(request).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("room_encrypted")),
            "{method} {path}: {answer}"
        );
    }
    let (status, answer) =
        app.send(app.request(Method::PATCH, &room_path).json(&json!({"encrypted": false}))).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("encryption_fixed")),
        "{answer}"
    );
    let (status, page) =
        app.send(app.request(Method::GET, &format!("/organizations/{org}/messages?search=vault"))).await;
    assert_eq!((status, &page["entries"]), (StatusCode::OK, &json!([])), "{page}");

    // Moderation needs no plaintext: a ban lands on the homeserver, a redaction too.
    let (status, answer) = app
        .send(
            app.request(Method::POST, &format!("{room_path}/bans"))
                .json(&json!({"userID": mallory, "reason": "leaks"})),
        )
        .await;
    assert!(status.is_success(), "{answer}");
    eventually("mallory is banned on the homeserver", Duration::from_secs(15), || async {
        matrix.room(&room_id).await.memberships.get(&app.user_id(mallory)).map(String::as_str) == Some("ban")
    })
    .await;
    let (status, answer) = app.send(app.request(Method::DELETE, &event_path)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
    let (_, room_now) = app.send(app.request(Method::GET, &room_path)).await;
    assert_eq!(room_now["encrypted"], true);
    let seen: Value = matrix.room(&room_id).await.power_levels;
    assert!(seen["users"][app.user_id(alice)].as_i64() == Some(50), "roles as in any room: {seen}");
}

#[tokio::test]
async fn an_event_room_is_encrypted_when_created_so_and_stays_as_created() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let path = format!("/organizations/{org}/events/{}/chatroom", rand::random::<u32>() % 1_000_000 + 1);
    let (status, room) =
        app.send(app.request(Method::PUT, &path).json(&json!({"name": "Gala", "encrypted": true}))).await;
    assert_eq!(status, StatusCode::CREATED, "{room}");
    assert_eq!(room["encrypted"], true);
    let matrix = app.matrix();
    let state = format!(
        "/_matrix/client/v3/rooms/{}/state/m.room.encryption/",
        urlencoding::encode(room["matrixRoomID"].as_str().unwrap())
    );
    let (status, _) = matrix.call(Method::GET, &state, matrix.as_token(), None).await;
    assert_eq!(status, StatusCode::OK, "m.room.encryption is in its state");
    let (status, again) = app.send(app.request(Method::PUT, &path).json(&json!({"encrypted": true}))).await;
    assert_eq!(status, StatusCode::OK, "its own value is fine: {again}");
    let (status, answer) =
        app.send(app.request(Method::PUT, &path).json(&json!({"name": "Gala 2", "encrypted": false}))).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("encryption_fixed")),
        "{answer}"
    );
    let (_, now) = app.send(app.request(Method::GET, &format!("/chatrooms/{}", room["id"]))).await;
    assert_eq!((&now["name"], &now["encrypted"]), (&json!("Gala"), &json!(true)), "nothing changed");

    // A plain room never becomes encrypted through the API.
    let plain = app.create_room(json!({"organizationID": org, "name": "Plain"})).await;
    assert_eq!(plain["encrypted"], false);
    let (status, answer) = app
        .send(
            app.request(Method::PATCH, &format!("/chatrooms/{}", plain["id"]))
                .json(&json!({"encrypted": true})),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("encryption_fixed")),
        "{answer}"
    );
    let (status, _) = matrix
        .call(
            Method::GET,
            &format!(
                "/_matrix/client/v3/rooms/{}/state/m.room.encryption/",
                urlencoding::encode(plain["matrixRoomID"].as_str().unwrap())
            ),
            matrix.as_token(),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no m.room.encryption in a plain room");

    // A room admin turning encryption on in a Matrix client: the service reads nothing there
    // from then on, and says so.
    let [admin] = fresh_users(1)[..] else { unreachable!() };
    let (status, answer) = app
        .send(
            app.request(Method::POST, &format!("/chatrooms/{}/users", plain["id"]))
                .json(&json!({"admins": [admin]})),
        )
        .await;
    assert!(status.is_success(), "{answer}");
    // Its history from before is indexed in plaintext: found until encryption is on.
    let (status, sent) = app
        .send(
            app.request(Method::POST, &format!("/chatrooms/{}/messages", plain["id"]))
                .json(&json!({"body": "zebracrossing"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let org_search = format!("/organizations/{org}/messages?search=zebracrossing");
    let (_, page) = app.send(app.request(Method::GET, &org_search)).await;
    assert_eq!(page["entries"].as_array().map(Vec::len), Some(1), "{page}");
    let (status, answer) = matrix
        .call(
            Method::PUT,
            &format!(
                "/_matrix/client/v3/rooms/{}/state/m.room.encryption/?user_id={}",
                urlencoding::encode(plain["matrixRoomID"].as_str().unwrap()),
                urlencoding::encode(&app.user_id(admin))
            ),
            matrix.as_token(),
            Some(json!({"algorithm": "m.megolm.v1.aes-sha2"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    eventually("the room reads as encrypted", Duration::from_secs(15), || async {
        app.send(app.request(Method::GET, &format!("/chatrooms/{}", plain["id"]))).await.1["encrypted"]
            == true
    })
    .await;
    let (status, answer) =
        app.send(app.request(Method::GET, &format!("/chatrooms/{}/messages", plain["id"]))).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("room_encrypted")),
        "{answer}"
    );
    let (_, page) = app.send(app.request(Method::GET, &org_search)).await;
    assert_eq!(page["entries"], json!([]), "an encrypted room is never searched: {page}");
}
