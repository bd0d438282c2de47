//! Organizations as Matrix spaces: named by the backend, their rooms as children, their people as
//! members, kept as the backend says, and seen so by a Matrix client.

use std::{collections::BTreeSet, time::Duration};

use matrix_sdk::ruma::{api::client::space::get_hierarchy, OwnedRoomId};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{
    harness::{eventually, fresh_org, fresh_users, TestApp},
    mobile_client::client_of,
};

const WAIT: Duration = Duration::from_secs(20);

async fn organization(app: &TestApp, org: i64) -> Value {
    let (status, body) = app.send(app.request(Method::GET, &format!("/organizations/{org}"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The space's id once it is made and in sync.
async fn synced_space(app: &TestApp, org: i64) -> String {
    eventually("the space is made and in sync", WAIT, || async {
        let org = organization(app, org).await;
        org["matrixSpaceID"].is_string() && org["syncStatus"] == "synced"
    })
    .await;
    organization(app, org).await["matrixSpaceID"].as_str().unwrap().to_owned()
}

/// The space's children as its `m.space.child` state says (links with a `via`).
async fn children(app: &TestApp, space: &str) -> BTreeSet<String> {
    let path = format!("/_matrix/client/v3/rooms/{}/state", urlencoding::encode(space));
    let (status, events) = app.matrix().call(Method::GET, &path, app.matrix().as_token(), None).await;
    assert_eq!(status, StatusCode::OK, "{events}");
    events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["type"] == "m.space.child" && e["content"]["via"].as_array().is_some_and(|v| !v.is_empty())
        })
        .map(|e| e["state_key"].as_str().unwrap().to_owned())
        .collect()
}

async fn parent_of(app: &TestApp, room: &str, space: &str) -> Value {
    let path = format!(
        "/_matrix/client/v3/rooms/{}/state/m.space.parent/{}",
        urlencoding::encode(room),
        urlencoding::encode(space)
    );
    app.matrix().call(Method::GET, &path, app.matrix().as_token(), None).await.1
}

#[tokio::test]
async fn an_organization_member_sees_the_organizations_space_with_its_rooms_as_children() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let u = fresh_users(3);
    let (admin, member, guest) = (u[0], u[1], u[2]);
    let (status, named) = app
        .send(app.request(Method::PUT, &format!("/organizations/{org}")).json(&json!({"name": "Acme"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{named}");
    assert_eq!(named["matrixSpaceID"], Value::Null, "no room yet, so no space");
    let roster =
        json!({"members": [{"userID": admin, "role": "admin"}, {"userID": member, "role": "member"}]});
    let (status, _) =
        app.send(app.request(Method::PUT, &format!("/organizations/{org}/members")).json(&roster)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, general) = app
        .send(
            app.request(Method::POST, "/chatrooms/default")
                .json(&json!({"organizationID": org, "automationEnabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{general}");
    let general = general["matrixRoomID"].as_str().unwrap().to_owned();
    let side =
        app.create_room(json!({"organizationID": org, "name": "Side", "assignedUsers": [guest]})).await;
    let side_id = side["id"].as_i64().unwrap();
    let side = side["matrixRoomID"].as_str().unwrap().to_owned();

    let space = synced_space(&app, org).await;
    eventually("both rooms are children", WAIT, || async {
        children(&app, &space).await == BTreeSet::from([general.clone(), side.clone()])
    })
    .await;
    let seen = app.matrix().room(&space).await;
    assert_eq!(seen.name.as_deref(), Some("Acme"));
    let joined: BTreeSet<String> = seen.joined.iter().cloned().collect();
    let people: BTreeSet<String> = u.iter().map(|user| app.user_id(*user)).collect();
    assert!(joined.is_superset(&people), "everyone with a role in a room is in the space: {joined:?}");
    assert_eq!(seen.power_users.get(&app.user_id(admin)), Some(&100), "the organization's admin");
    assert_eq!(seen.power_users.get(&app.user_id(member)), None);
    eventually("each room names the space as canonical parent", WAIT, || async {
        parent_of(&app, &general, &space).await["canonical"] == true
            && parent_of(&app, &side, &space).await["canonical"] == true
    })
    .await;

    // As the member's Matrix client sees it: the space, and in its hierarchy the rooms.
    let client = client_of(&app, member).await;
    let joined_space =
        client.joined_rooms().into_iter().find(|room| room.is_space()).expect("a joined space");
    assert_eq!(joined_space.room_id().as_str(), space);
    let space_id: OwnedRoomId = space.as_str().try_into().unwrap();
    let hierarchy =
        client.send(get_hierarchy::v1::Request::new(space_id)).await.expect("the space's hierarchy");
    let top = hierarchy
        .rooms
        .iter()
        .find(|chunk| chunk.summary.room_id.as_str() == space)
        .expect("the space itself");
    assert_eq!(top.summary.name.as_deref(), Some("Acme"));
    let listed: BTreeSet<String> =
        top.children_state.iter().map(|child| child.deserialize().unwrap().state_key.to_string()).collect();
    assert_eq!(listed, BTreeSet::from([general.clone(), side.clone()]));
    let rooms: BTreeSet<&str> = hierarchy.rooms.iter().map(|chunk| chunk.summary.room_id.as_str()).collect();
    assert!(rooms.contains(general.as_str()), "the member's own room is in the hierarchy: {rooms:?}");

    // A deleted room stops being a child, and its only user leaves the space.
    let (status, _) = app.send(app.request(Method::DELETE, &format!("/chatrooms/{side_id}"))).await;
    assert!(status.is_success());
    eventually("the deleted room is no child", WAIT, || async {
        children(&app, &space).await == BTreeSet::from([general.clone()])
            && app.matrix().room(&space).await.memberships.get(&app.user_id(guest)).map(String::as_str)
                == Some("leave")
    })
    .await;

    // Renamed by the backend: the space follows.
    let (status, renamed) = app
        .send(app.request(Method::PUT, &format!("/organizations/{org}")).json(&json!({"name": "Acme Corp"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["spaceName"], "Acme Corp");
    assert_eq!(app.matrix().room(&space).await.name.as_deref(), Some("Acme Corp"));

    // The last room gone, the space stays, with the organization's admins only.
    let (status, _) =
        app.send(app.request(Method::DELETE, &format!("/organizations/{org}/chatrooms/default"))).await;
    assert!(status.is_success());
    eventually("an empty space keeps only the admins", WAIT, || async {
        let seen = app.matrix().room(&space).await;
        children(&app, &space).await.is_empty()
            && seen.joined.contains(&app.user_id(admin))
            && !seen.joined.contains(&app.user_id(member))
    })
    .await;
    assert_eq!(organization(&app, org).await["matrixSpaceID"], space.as_str(), "kept");
}

#[tokio::test]
async fn changes_to_a_space_made_by_hand_are_put_back() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let admin = fresh_users(1)[0];
    let roster = json!({"members": [{"userID": admin, "role": "admin"}]});
    let (status, _) =
        app.send(app.request(Method::PUT, &format!("/organizations/{org}/members")).json(&roster)).await;
    assert_eq!(status, StatusCode::OK);
    let room = app.create_room(json!({"organizationID": org, "name": "Only"})).await;
    let room = room["matrixRoomID"].as_str().unwrap().to_owned();
    let space = synced_space(&app, org).await;
    assert_eq!(app.matrix().room(&space).await.name, Some(format!("Organization {org}")), "the default name");
    eventually("the room is a child", WAIT, || async { children(&app, &space).await.contains(&room) }).await;

    // The organization's admin (power 100 in the space) renames it and unlinks the room.
    let token = app.matrix().login_as(&format!("app_{admin}")).await;
    let state = |kind: &str, key: &str| {
        format!(
            "/_matrix/client/v3/rooms/{}/state/{kind}/{}",
            urlencoding::encode(&space),
            urlencoding::encode(key)
        )
    };
    let (status, body) = app
        .matrix()
        .call(Method::PUT, &state("m.room.name", ""), &token, Some(json!({"name": "Mine now"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) =
        app.matrix().call(Method::PUT, &state("m.space.child", &room), &token, Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eventually("the name and the child are restored", WAIT, || async {
        app.matrix().room(&space).await.name == Some(format!("Organization {org}"))
            && children(&app, &space).await.contains(&room)
    })
    .await;

    // No room follows the roster (no default room), yet the admin leaves the space with it.
    let empty = json!({"members": []});
    let (status, _) =
        app.send(app.request(Method::PUT, &format!("/organizations/{org}/members")).json(&empty)).await;
    assert_eq!(status, StatusCode::OK);
    eventually("the former admin leaves the space", WAIT, || async {
        let seen = app.matrix().room(&space).await;
        seen.memberships.get(&app.user_id(admin)).map(String::as_str) == Some("leave")
            && !seen.power_users.contains_key(&app.user_id(admin))
    })
    .await;
}

#[tokio::test]
async fn a_room_made_before_spaces_is_attached_after_the_upgrade_and_keeps_one_parent() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let created = app.create_room(json!({"organizationID": org, "name": "Old"})).await;
    let room = created["matrixRoomID"].as_str().unwrap().to_owned();
    let earlier = synced_space(&app, org).await;
    // As before spaces: the service knows no space of the organization (the room still links
    // to one, as a room linked by hand would).
    let pool = app.state.store.pool();
    sqlx::query("DELETE FROM space_jobs").execute(pool).await.unwrap();
    sqlx::query("DELETE FROM organizations WHERE id = $1").bind(org).execute(pool).await.unwrap();

    // The upgrade's migration, as it runs on a database with rooms; then the worker's next look.
    // Both backends' migration 0016 is the same SQL.
    let migration = include_str!("../../migrations/sqlite/0016_spaces_for_existing_rooms.sql");
    sqlx::query(migration).execute(pool).await.unwrap();
    app.state.reconciler.wake_worker();
    let space = synced_space(&app, org).await;
    assert_ne!(space, earlier);
    eventually("the old room names the new space, and only it", WAIT, || async {
        parent_of(&app, &room, &space).await["canonical"] == true
            && parent_of(&app, &room, &earlier).await["via"].is_null()
            && children(&app, &space).await.contains(&room)
    })
    .await;
}
