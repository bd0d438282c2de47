//! Exports: an organization's (or every) record as NDJSON, parsed back and compared with what
//! the API answers; gzip; who may export; a client that leaves mid-stream.

use std::io::Read;

use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{fresh_org, fresh_users, jwt, TestApp};

fn lines(body: &[u8]) -> Vec<Value> {
    body.split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).expect("each line is JSON"))
        .collect()
}

fn of_type<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines.iter().filter(|line| line["type"] == kind).collect()
}

#[tokio::test]
async fn an_organizations_export_parsed_back_equals_what_the_api_answers() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let [admin, member, banned, muted]: [i64; 4] = fresh_users(4).try_into().unwrap();
    // Two rooms made through the API, with a ban, a mute and an archive ...
    let room = app
        .create_room(json!({"organizationID": org, "name": "Real", "admins": [admin], "assignedUsers": [member, muted]}))
        .await;
    let id = room["id"].as_i64().unwrap();
    for (path, body) in
        [("bans", json!({"userID": banned, "reason": "spam"})), ("mutes", json!({"userID": muted}))]
    {
        let (status, answer) =
            app.send(app.request(Method::POST, &format!("/chatrooms/{id}/{path}")).json(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    let archived = app.create_room(json!({"organizationID": org, "name": "Old"})).await;
    let (status, _) =
        app.send(app.request(Method::POST, &format!("/chatrooms/{}/archive", archived["id"]))).await;
    assert_eq!(status, StatusCode::OK);
    let members =
        json!({"members": [{"userID": admin, "role": "admin"}, {"userID": member, "role": "member"}]});
    let (status, _) =
        app.send(app.request(Method::PUT, &format!("/organizations/{org}/members")).json(&members)).await;
    assert_eq!(status, StatusCode::OK);
    let participants = json!({"participants": [member]});
    let (status, _) = app
        .send(
            app.request(Method::PUT, &format!("/organizations/{org}/events/4/participants"))
                .json(&participants),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // ... and 1,000 stored directly, as created and in sync (a thousand Matrix rooms take long),
    // each with an admin; another organization's room stays out.
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) \
         INSERT INTO chatrooms (kind, organization_id, name, automation_enabled, matrix_room_id, \
           matrix_alias, created_at, updated_at) \
         SELECT 'custom', $1, 'Bulk ' || CAST(i AS TEXT), 0, '!export' || CAST(i AS TEXT) || ':localhost', \
           'export-' || CAST($1 AS TEXT) || '-' || CAST(i AS TEXT), 0, 0 FROM n",
    )
    .bind(org)
    .execute(app.state.store.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO chatroom_members (chatroom_id, app_user_id, role) \
         SELECT id, $2, 'admin' FROM chatrooms WHERE organization_id = $1 AND name LIKE 'Bulk %'",
    )
    .bind(org)
    .bind(admin)
    .execute(app.state.store.pool())
    .await
    .unwrap();
    app.create_room(json!({"organizationID": org + 1, "name": "Elsewhere"})).await;

    let response = app.request(Method::GET, &format!("/organizations/{org}/export")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/x-ndjson");
    let body = response.bytes().await.unwrap();
    let lines = lines(&body);
    assert_eq!(
        (&lines[0]["type"], &lines[0]["version"], &lines[0]["organizationID"]),
        (&json!("export"), &json!(1), &json!(org))
    );
    assert!(lines[0]["takenAt"].is_string());

    let rooms = of_type(&lines, "room");
    assert_eq!(rooms.len(), 1002, "every room of the organization, archived included, no other");
    for line in &rooms {
        let path = format!("/chatrooms/{}", line["room"]["id"]);
        let (status, answered) = app.send(app.request(Method::GET, &path)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(line["room"], answered);
    }
    let real = rooms.iter().find(|line| line["room"]["id"] == id).unwrap();
    assert_eq!(
        real["bans"],
        json!([{"userID": banned, "reason": "spam", "actor": "backend", "expiresAt": null}])
    );
    assert_eq!(real["mutes"], json!([{"userID": muted, "actor": "backend", "expiresAt": null}]));
    assert!(rooms.iter().any(|line| line["room"]["archived"] == true));
    let roster: Vec<(i64, String)> = of_type(&lines, "organizationMember")
        .iter()
        .map(|line| (line["userID"].as_i64().unwrap(), line["role"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(roster, [(admin, "admin".to_owned()), (member, "member".to_owned())]);
    assert_eq!(
        of_type(&lines, "eventParticipant"),
        [&json!({"type": "eventParticipant", "organizationID": org, "eventID": 4, "userID": member})]
    );
    let accounts: Vec<(i64, Value, Value)> = of_type(&lines, "account")
        .iter()
        .map(|line| {
            (line["userID"].as_i64().unwrap(), line["matrixUserID"].clone(), line["deactivated"].clone())
        })
        .collect();
    let expected: Vec<(i64, Value, Value)> =
        [admin, member, muted].iter().map(|user| (*user, json!(app.user_id(*user)), json!(false))).collect();
    assert_eq!(accounts, expected, "the accounts of the users it names (the banned one holds no role)");

    // Gzipped on request, the same lines.
    let gzipped = app
        .request(Method::GET, &format!("/organizations/{org}/export"))
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gzipped.headers()[header::CONTENT_ENCODING], "gzip");
    let compressed = gzipped.bytes().await.unwrap();
    assert!(compressed.len() * 4 < body.len(), "{} of {} bytes", compressed.len(), body.len());
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&compressed[..]).read_to_end(&mut unzipped).unwrap();
    let again = self::lines(&unzipped);
    assert_eq!(again[1..], lines[1..], "all but the time it was taken");

    // Everything, for the backend: this organization's rooms among the others.
    let everything = app.request(Method::GET, "/export").send().await.unwrap().bytes().await.unwrap();
    let everything = self::lines(&everything);
    assert_eq!(everything[0]["organizationID"], Value::Null);
    assert_eq!(of_type(&everything, "room").len(), 1003);
}

#[tokio::test]
async fn exports_are_for_the_backend_and_organization_admins_and_a_client_may_leave_midway() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let [someone] = fresh_users(1)[..] else { unreachable!() };
    app.create_room(json!({"organizationID": org, "name": "Exported", "assignedUsers": [someone]})).await;
    let path = format!("/organizations/{org}/export");
    let admin = jwt(json!(someone.to_string()), json!([{"id": org, "admin": true}]), 600);
    let member = jwt(json!(someone.to_string()), json!([{"id": org, "admin": false}]), 600);
    let response = app.as_user(Method::GET, &path, &admin).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(of_type(&lines(&response.bytes().await.unwrap()), "room").len(), 1);
    for (path, token) in [(path.as_str(), &member), ("/export", &admin)] {
        let (status, refused) = app.send(app.as_user(Method::GET, path, token)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {refused}");
    }
    for bad in ["/organizations/0/export", "/organizations/-3/export", "/organizations/x/export"] {
        let (status, _) = app.send(app.request(Method::GET, bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let (status, _) = app.send(app.anonymous(Method::GET, "/export")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Gone after the first chunk: nothing is held, the next write goes through.
    let mut leaving = app.request(Method::GET, "/export").send().await.unwrap();
    assert!(leaving.chunk().await.unwrap().is_some());
    drop(leaving);
    let after = app.create_room(json!({"organizationID": org, "name": "After"})).await;
    assert_eq!(after["syncStatus"], "synced");
}
